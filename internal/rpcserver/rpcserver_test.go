package rpcserver

import (
	"context"
	"github.com/mgrplane/mgrplane/internal/testlog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// panicky is a manager service whose GetStatus panics, to prove recovery.
type panicky struct {
	mgrv1.UnimplementedManagerServiceServer
}

func (panicky) GetStatus(context.Context, *mgrv1.GetStatusRequest) (*mgrv1.GetStatusResponse, error) {
	panic("boom")
}

func TestServerHasHealthReflectionAndRecovery(t *testing.T) {
	logger := hclog.New(&hclog.LoggerOptions{Output: testlog.Writer(t), Level: hclog.Debug})
	var gated int
	gate := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		gated++
		return h(ctx, req)
	}
	s, h := New(logger, Options{Unary: []grpc.UnaryServerInterceptor{gate}})
	mgrv1.RegisterManagerServiceServer(s, panicky{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(func() { Stop(s, time.Second) })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(ClientKeepaliveParams()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := context.Background()

	h.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING || gated != 1 {
		t.Fatalf("health: %v %v (gate ran %d times)", r, err, gated)
	}
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rs.Recv()
	if err != nil || !strings.Contains(resp.String(), "grpc.health.v1.Health") {
		t.Fatalf("reflection list: %v %v", resp, err)
	}
	_ = rs.CloseSend()

	_, err = mgrv1.NewManagerServiceClient(conn).GetStatus(ctx, &mgrv1.GetStatusRequest{})
	if status.Code(err) != codes.Internal || status.Convert(err).Message() != "internal error" {
		t.Fatalf("panicking handler: %v", err)
	}
	// The server still answers after the panic.
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("after panic: %v", err)
	}
}
