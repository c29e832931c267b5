// Package rpcserver builds the gRPC servers every mgrplane process runs: the
// same interceptors (hclog logging that skips health checks, recovery
// innermost), keepalive, message size bound, health and reflection, so that
// grpcurl works against any of them with no proto files.
package rpcserver

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// GIDHeader is the gRPC header in which a manager's server tells, on every
// answer, the gid its process holds (0 before it has one). A monitor that
// suspects a crashed active asks whoever listens at the active's address:
// an answer under another gid proves the suspect no longer holds it.
const GIDHeader = "mgr-gid"

// Keepalive: the server lets clients ping every MinClientPing at most, and
// pings idle clients itself. ClientPing is what mgrplane clients use; it
// must not be below MinClientPing or the server closes the connection.
const (
	MinClientPing  = 10 * time.Second
	ClientPing     = 15 * time.Second
	ClientPingWait = 5 * time.Second
	serverPing     = 30 * time.Second
	serverPingWait = 10 * time.Second
	// MaxRecvMsgSize bounds one request. Every request mgrplane defines is
	// far smaller; the bound stops a peer from making a server buffer more.
	MaxRecvMsgSize = 1 << 20
)

// ClientKeepaliveParams returns the keepalive parameters for mgrplane clients.
func ClientKeepaliveParams() keepalive.ClientParameters {
	return keepalive.ClientParameters{Time: ClientPing, Timeout: ClientPingWait, PermitWithoutStream: true}
}

// Options adds a server's own interceptors, which run after the call is
// logged and inside panic recovery, and any other server options.
type Options struct {
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	Extra  []grpc.ServerOption
	// MaxRecvMsgSize bounds one request; 0 means MaxRecvMsgSize.
	MaxRecvMsgSize int
}

// handshakeTimeout bounds a new connection's TLS and HTTP/2 handshakes, so
// a peer that connects and says nothing holds nothing for long.
const handshakeTimeout = 10 * time.Second

// New builds a gRPC server with health (returned, so the caller flips
// serving status) and reflection registered.
func New(logger hclog.Logger, o Options) (*grpc.Server, *health.Server) {
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(c codes.Code) logging.Level {
			switch c {
			case codes.OK, codes.Canceled:
				return logging.LevelDebug
			case codes.Internal, codes.Unknown, codes.DataLoss:
				return logging.LevelError
			default:
				return logging.LevelInfo
			}
		}),
	}
	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return c.Service != healthpb.Health_ServiceDesc.ServiceName
	})
	recover := recovery.WithRecoveryHandler(func(p any) error {
		logger.Error("panic in handler", "panic", fmt.Sprint(p))
		return status.Error(codes.Internal, "internal error")
	})
	maxRecv := o.MaxRecvMsgSize
	if maxRecv <= 0 {
		maxRecv = MaxRecvMsgSize
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: MinClientPing, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: serverPing, Timeout: serverPingWait}),
		grpc.ChainUnaryInterceptor(slices.Concat(
			[]grpc.UnaryServerInterceptor{selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(hclogAdapter(logger), logOpts...), notHealth)},
			o.Unary,
			[]grpc.UnaryServerInterceptor{recovery.UnaryServerInterceptor(recover)},
		)...),
		grpc.ChainStreamInterceptor(slices.Concat(
			[]grpc.StreamServerInterceptor{selector.StreamServerInterceptor(logging.StreamServerInterceptor(hclogAdapter(logger), logOpts...), notHealth)},
			o.Stream,
			[]grpc.StreamServerInterceptor{recovery.StreamServerInterceptor(recover)},
		)...),
	}
	s := grpc.NewServer(append(opts, o.Extra...)...)
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, h)
	reflection.Register(s)
	return s, h
}

// hclogAdapter writes the middleware's log lines to an hclog logger.
func hclogAdapter(l hclog.Logger) logging.Logger {
	return logging.LoggerFunc(func(_ context.Context, lvl logging.Level, msg string, fields ...any) {
		switch lvl {
		case logging.LevelDebug:
			l.Debug(msg, fields...)
		case logging.LevelInfo:
			l.Info(msg, fields...)
		case logging.LevelWarn:
			l.Warn(msg, fields...)
		default:
			l.Error(msg, fields...)
		}
	})
}

// Stop stops s gracefully, and forcibly once timeout has passed.
func Stop(s *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.Stop()
		<-done
	}
}
