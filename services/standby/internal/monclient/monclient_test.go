package monclient

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/testlog"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/montest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	_ = l.Close()
	return a
}

func TestMovesToTheNextMonitor(t *testing.T) {
	mon := montest.Start(t)
	c, err := New([]string{deadAddr(t), mon.Addr()}, testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "x"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("first call = %v, want Unavailable from the dead monitor", err)
	}
	resp, err := c.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "x"})
	if err != nil || resp.GetGid() == 0 {
		t.Fatalf("second call = %v, %v; want a gid from the live monitor", resp, err)
	}
	// A refusal is an answer: the client stays.
	if _, err := c.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: ""}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad name = %v, want InvalidArgument", err)
	}
	if i, _ := c.Monitor(); c.Addr(i) != mon.Addr() {
		t.Errorf("in use: %s, want %s", c.Addr(i), mon.Addr())
	}
}

func TestUnreachable(t *testing.T) {
	tests := map[string]struct {
		err  error
		want bool
	}{
		"unavailable":      {err: status.Error(codes.Unavailable, "x"), want: true},
		"deadline":         {err: status.Error(codes.DeadlineExceeded, "x"), want: true},
		"failed condition": {err: status.Error(codes.FailedPrecondition, "x")},
		"nil":              {err: nil},
		"plain":            {err: errors.New("x")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Unreachable(tc.err); got != tc.want {
				t.Errorf("Unreachable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestNewWithoutAddress(t *testing.T) {
	if _, err := New(nil, testlog.New(t)); err == nil {
		t.Fatal("New accepted no address")
	}
}

func TestClassify(t *testing.T) {
	tests := map[string]struct {
		err  error
		want error
	}{
		"unavailable":    {err: status.Error(codes.Unavailable, "not leader"), want: ErrUnavailable},
		"deadline":       {err: status.Error(codes.DeadlineExceeded, "slow"), want: ErrUnavailable},
		"internal":       {err: status.Error(codes.Internal, "internal error"), want: ErrUnavailable},
		"stale gid":      {err: status.Error(codes.FailedPrecondition, "stale gid"), want: ErrRefused},
		"never issued":   {err: status.Error(codes.NotFound, "gid 9"), want: ErrRefused},
		"another name":   {err: status.Error(codes.PermissionDenied, "owner"), want: ErrRefused},
		"trimmed":        {err: status.Error(codes.OutOfRange, "trimmed"), want: ErrTrimmed},
		"slow":           {err: status.Error(codes.ResourceExhausted, "slow"), want: ErrSlow},
		"bad argument":   {err: status.Error(codes.InvalidArgument, "name"), want: ErrInvalid},
		"no credentials": {err: status.Error(codes.Unauthenticated, "who"), want: ErrInvalid},
		"end of stream":  {err: io.EOF, want: io.EOF},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Classify(tc.err)
			if !errors.Is(got, tc.want) {
				t.Errorf("Classify(%v) = %v, want it to wrap %v", tc.err, got, tc.want)
			}
			if status.Code(got) != status.Code(tc.err) {
				t.Errorf("code %v, want %v kept", status.Code(got), status.Code(tc.err))
			}
		})
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

func TestConnCallsTheMonitorInUseAndMovesOn(t *testing.T) {
	mon := montest.Start(t)
	c, err := New([]string{deadAddr(t), mon.Addr()}, testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	mc := mgrv1.NewMonitorServiceClient(c.Conn())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := mc.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "x"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("first call = %v, want Unavailable from the dead monitor", err)
	}
	resp, err := mc.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "x"})
	if err != nil || resp.GetGid() == 0 {
		t.Fatalf("second call = %v, %v; want a gid from the live monitor", resp, err)
	}
	// Streams go to the monitor in use too.
	s, err := mc.WatchMap(ctx, &mgrv1.WatchMapRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.Recv(); err != nil || m.GetMap().GetFsid() != montest.FSID {
		t.Fatalf("stream: %v %v", m, err)
	}
}
