package monsim

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/rpcserver"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
)

// The crash fast path (docs/fencing.md). A manager keeps a map watch open
// to the monitor for as long as it runs. When the active's last watch
// stream closes without a Leave, the leader stops granting it leases and
// tries to connect to every address the active serves on. If every one
// refuses, no process serves as that active any more (a manager listens on
// them for as long as it runs, standby or active, and binds them before it
// can hold any lease), and the next standby is promoted at once. So it is
// too when the active's gRPC address is an IP literal and the manager
// answering there says it holds another gid: a listening ip:port is held by
// one socket, so the suspect's process no longer holds its listener (it
// was killed and the manager restarted on the same ports, the usual
// supervisor restart), or it has moved to a new gid, which it does only
// after it stopped serving. Otherwise the active is replaced when its lease
// has run out on the monitor's clock, never the whole grace.

// probeTimeout bounds one connection attempt to a suspect's address. A
// timeout proves nothing (a stopped process's socket still accepts), so it
// only costs the fast path, never safety.
const probeTimeout = 300 * time.Millisecond

// identifyTimeout bounds asking the manager at an address which gid it
// holds (a TLS handshake and one health check on loopback take about a
// millisecond); no answer in time proves nothing.
const identifyTimeout = 100 * time.Millisecond

// reportTimeout bounds a follower's report to the leader that the active's
// stream closed.
const reportTimeout = time.Second

// A killed process's sockets close in an order the kernel chooses: its
// connection to the monitor may close a moment before its listeners. So an
// address that still answers is probed again, up to probeAttempts times
// probeRetry apart, before the fast path declines. A later refusal proves
// as much as an earlier one (the listeners close only when the manager's
// Run ends), and no lease is granted meanwhile.
const (
	probeAttempts = 5
	probeRetry    = 20 * time.Millisecond
)

// crashWatch counts each manager's open watch streams and queues the active
// for a probe when its last one closes.
type crashWatch struct {
	mu      sync.Mutex
	streams map[uint64]int
	suspect chan uint64
	// isActive reports whether gid is the active in the applied map.
	isActive func(gid uint64) bool
	lost     func(gid uint64, lost bool)
}

func newCrashWatch(isActive func(uint64) bool, lost func(uint64, bool)) *crashWatch {
	return &crashWatch{streams: map[uint64]int{}, suspect: make(chan uint64, 16), isActive: isActive, lost: lost}
}

func (c *crashWatch) opened(gid uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.streams[gid]++
	c.lost(gid, false)
}

// closed records a stream's end; broken is false when the monitor itself
// ended it (shutdown).
func (c *crashWatch) closed(gid uint64, broken bool) {
	c.mu.Lock()
	c.streams[gid]--
	last := c.streams[gid] <= 0
	if last {
		delete(c.streams, gid)
	}
	c.mu.Unlock()
	if !last || !broken || !c.isActive(gid) {
		return
	}
	c.lost(gid, true)
	c.suspectGID(gid)
}

// suspectGID queues gid for a probe.
func (c *crashWatch) suspectGID(gid uint64) {
	select {
	case c.suspect <- gid:
	default: // a probe queue this long means probes are running anyway
	}
}

// identifier tells the gid held by the manager that answers a gRPC health
// check at addr (rpcserver.GIDHeader); ok is false when nothing tells it.
type identifier func(ctx context.Context, addr string) (gid uint64, ok bool)

// probeGone reports whether the process of gid, the active at addrs (its
// gRPC address first), is proved gone from there, and how: every address
// refuses connections (DROP_REASON_GONE), or the gRPC address is an IP
// literal where a manager answers under another gid
// (DROP_REASON_ADDRESS_TAKEN). UNSPECIFIED means nothing is proved.
func probeGone(ctx context.Context, addrs []string, gid uint64, identify identifier) mgrv1.DropReason {
	none := mgrv1.DropReason_DROP_REASON_UNSPECIFIED
	if len(addrs) == 0 {
		return none // nowhere to look: prove nothing
	}
	if allRefuse(ctx, addrs) {
		return mgrv1.DropReason_DROP_REASON_GONE
	}
	if identify == nil || !ipLiteral(addrs[0]) {
		return none // a name may lead to another host than the suspect's
	}
	if other, ok := identify(ctx, addrs[0]); ok && other != gid {
		return mgrv1.DropReason_DROP_REASON_ADDRESS_TAKEN
	}
	return none
}

// ipLiteral reports whether addr is ip:port.
func ipLiteral(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	_, err = netip.ParseAddr(host)
	return err == nil
}

// identify asks the manager at addr, over TLS checked against the cluster
// CA (plaintext for an insecure monitor), which gid it holds. Every answer
// of a manager's gRPC server carries the header, refusals included.
func (s *Server) identify(ctx context.Context, addr string) (uint64, bool) {
	tc := insecure.NewCredentials()
	if !s.cfg.Insecure {
		tc = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: s.cfg.Creds.CAPool})
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(tc))
	if err != nil {
		return 0, false
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, identifyTimeout)
	defer cancel()
	var md metadata.MD
	_, _ = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md))
	v := md.Get(rpcserver.GIDHeader)
	if len(v) != 1 {
		return 0, false
	}
	gid, err := strconv.ParseUint(v[0], 10, 64)
	return gid, err == nil
}

// allRefuse reports whether every address refuses connections.
func allRefuse(ctx context.Context, addrs []string) bool {
	d := net.Dialer{Timeout: probeTimeout}
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			_ = conn.Close()
			return false
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return false
		}
	}
	return true
}

// runCrashProbes handles suspects until ctx ends: on the leader, revoke the
// suspect's leases, probe, and drop it when it is proved gone.
func (s *Server) runCrashProbes(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case gid := <-s.crash.suspect:
			s.probe(ctx, gid)
		}
	}
}

func (s *Server) probe(ctx context.Context, gid uint64) {
	m := s.node.State().GetMap()
	if m.GetActiveGid() != gid {
		return
	}
	if !s.leading.Load() {
		s.reportClosed(ctx, gid)
		return
	}
	log := s.logger.With("gid", gid, "name", m.GetActiveName())
	// No lease may be granted from here on: a lease granted during the
	// probe could outlive a promotion the probe leads to.
	s.live.Revoke(gid)
	start := time.Now()
	gone := probeGone(ctx, m.GetActiveAddrs(), gid, s.identify)
	for i := 1; i < probeAttempts && gone == mgrv1.DropReason_DROP_REASON_UNSPECIFIED && ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-time.After(probeRetry):
			gone = probeGone(ctx, m.GetActiveAddrs(), gid, s.identify)
		}
	}
	if gone == mgrv1.DropReason_DROP_REASON_UNSPECIFIED {
		s.live.Unrevoke(gid)
		log.Info("active's connection closed but its addresses answer; it is replaced if its lease runs out", "addrs", m.GetActiveAddrs())
		return
	}
	r, err := s.node.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Drop{Drop: &mgrv1.DropOp{Gids: []*mgrv1.SilentGid{{
		Gid: gid, SilentMs: time.Since(s.live.LastSeen(gid)).Milliseconds(), Reason: gone,
	}}}}})
	if err != nil {
		s.live.Unrevoke(gid) // the lease rule still bounds it
		log.Warn("failed to drop a gone active", "error", err)
		return
	}
	s.commitNudge()
	logGone(log, gone, r.Epoch, time.Since(start))
}

// reportClosed tells the leader, which alone probes and grants leases,
// that the active's stream on this follower closed.
func (s *Server) reportClosed(ctx context.Context, gid uint64) {
	c, err := s.leaderConn()
	if c == nil {
		s.logger.Debug("the active's stream closed, and no leader to tell", "gid", gid, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	if _, err := mgrv1.NewMonitorServiceClient(c).ReportStreamClosed(ctx, &mgrv1.ReportStreamClosedRequest{Gid: gid}); err != nil {
		s.logger.Warn("failed to tell the leader that the active's stream closed; the lease or the grace will replace it", "gid", gid, "error", err)
		return
	}
	s.logger.Info("told the leader that the active's stream closed", "gid", gid)
}

func logGone(log hclog.Logger, how mgrv1.DropReason, epoch uint64, probe time.Duration) {
	log.Info("active is gone: "+mgrmap.GoneProof(how), "epoch", epoch, "probe", probe)
}
