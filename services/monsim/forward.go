package monsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/rpcserver"
	"github.com/mgrplane/mgrplane/services/monsim/internal/quorum"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Any monitor answers. Writes (authenticate, beacons, leaves, admin
// changes) are forwarded inside the quorum to the leader, whose memory holds
// liveness and leases; reads and watches are served from each monitor's own
// applied state.

// forwarder keeps one client connection per leader address.
type forwarder struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	// creds: mutual TLS with the monitor certificate, or plaintext when the
	// monitor is insecure.
	creds credentials.TransportCredentials
}

// newForwarder dials other monitors with tc (nil: plaintext).
func newForwarder(tc *tls.Config) *forwarder {
	f := &forwarder{conns: map[string]*grpc.ClientConn{}, creds: insecure.NewCredentials()}
	if tc != nil {
		f.creds = credentials.NewTLS(tc)
	}
	return f
}

func (f *forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(f.creds),
		grpc.WithKeepaliveParams(rpcserver.ClientKeepaliveParams()))
	if err != nil {
		return nil, fmt.Errorf("failed to dial the leader at %s: %w", addr, err)
	}
	f.conns[addr] = c
	return c, nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a, c := range f.conns {
		_ = c.Close()
		delete(f.conns, a)
	}
}

// errNoLeader: no leader is known (an election, or no quorum).
var errNoLeader = errors.New("no quorum leader is known (election in progress, or no quorum); retry or try another monitor")

// leaderConn returns a connection to the leader, or nil when this monitor
// leads (and serves the write itself).
func (s *Server) leaderConn() (*grpc.ClientConn, error) {
	if s.leading.Load() {
		return nil, nil
	}
	id, addr := s.node.Leader()
	if addr == "" || id == s.node.ID() {
		return nil, fmt.Errorf("%w", quorum.ErrNotLeader)
	}
	return s.fwd.conn(addr)
}

// join asks the members in cfg.Join to add this monitor, until one does or
// this monitor is already a voter; then it stops for good.
func (s *Server) join(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if members, err := s.node.Members(); err == nil {
			for _, m := range members {
				if m.ID == s.node.ID() && m.Voter {
					s.logger.Info("member of the quorum", "id", m.ID)
					return nil
				}
			}
		}
		addr := s.cfg.Join[attempt%len(s.cfg.Join)]
		if err := s.askToJoin(ctx, addr); err != nil {
			s.logger.Warn("join request failed; retrying", "member", addr, "error", err)
		} else {
			// Admitted once: never ask again, or a later `quorum remove`
			// would be undone by this loop.
			s.logger.Info("admitted to the quorum", "by", addr)
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Server) askToJoin(ctx context.Context, addr string) error {
	c, err := s.fwd.conn(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = mgrv1.NewAdminServiceClient(c).AddMonitor(ctx, &mgrv1.AddMonitorRequest{Id: s.node.ID(), Address: s.advertise})
	return err
}
