package rpcserver

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Bounds of the health-only listener: a probe's request is a service name,
// and a kubelet opens one stream at a time.
const (
	healthMaxRecvMsgSize = 4096
	healthMaxStreams     = 16
	healthStopTimeout    = time.Second
)

// HealthListener serves only grpc.health.v1.Health, in plaintext, for
// probes that cannot speak TLS (Kubernetes' grpc probes). It tells whether
// the process serves and nothing else, and takes no other call: every other
// method is Unimplemented, and there is no reflection.
type HealthListener struct {
	lis  net.Listener
	srv  *grpc.Server
	done chan struct{}
}

// ListenHealth binds addr; Serve starts answering there.
func ListenHealth(addr string) (*HealthListener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen for health checks on %s: %w", addr, err)
	}
	return &HealthListener{lis: lis, done: make(chan struct{})}, nil
}

// Addr is the bound address.
func (l *HealthListener) Addr() string { return l.lis.Addr().String() }

// Serve answers health checks from h in a goroutine until Stop. Call it
// once.
func (l *HealthListener) Serve(h healthpb.HealthServer, log hclog.Logger) {
	l.srv = grpc.NewServer(
		grpc.MaxRecvMsgSize(healthMaxRecvMsgSize),
		grpc.MaxConcurrentStreams(healthMaxStreams),
		grpc.ConnectionTimeout(handshakeTimeout),
	)
	healthpb.RegisterHealthServer(l.srv, h)
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(l.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("health listener failed", "addr", l.lis.Addr().String(), "error", err)
		}
	}()
}

// Stop closes the listener, letting checks in flight (and Watch streams,
// for at most a second) finish; it returns once the server has stopped.
func (l *HealthListener) Stop() {
	if l.srv == nil {
		_ = l.lis.Close()
		return
	}
	Stop(l.srv, healthStopTimeout)
	<-l.done
}
