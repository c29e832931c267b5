package monsim

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// The crash fast path (docs/fencing.md). A manager keeps a map watch open
// to the monitor for as long as it runs. When the active's last watch
// stream closes without a Leave, the leader stops granting it leases and
// tries to connect to every address the active serves on. If every one
// refuses, no process serves as that active any more (a manager listens on
// them for as long as it runs, standby or active, and binds them before it
// can hold any lease), and the next standby is promoted at once. Otherwise
// the active is replaced when its lease has run out on the monitor's clock,
// never the whole grace.

// probeTimeout bounds one connection attempt to a suspect's address. A
// timeout proves nothing (a stopped process's socket still accepts), so it
// only costs the fast path, never safety.
const probeTimeout = 300 * time.Millisecond

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
	select {
	case c.suspect <- gid:
	default: // a probe queue this long means probes are running anyway
	}
}

// probeGone reports whether every address refuses connections.
func probeGone(ctx context.Context, addrs []string) bool {
	if len(addrs) == 0 {
		return false // nowhere to look: prove nothing
	}
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
	if !s.leading.Load() || m.GetActiveGid() != gid {
		return
	}
	log := s.logger.With("gid", gid, "name", m.GetActiveName())
	// No lease may be granted from here on: a lease granted during the
	// probe could outlive a promotion the probe leads to.
	s.live.Revoke(gid)
	start := time.Now()
	gone := probeGone(ctx, m.GetActiveAddrs())
	for i := 1; i < probeAttempts && !gone && ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-time.After(probeRetry):
			gone = probeGone(ctx, m.GetActiveAddrs())
		}
	}
	if !gone {
		s.live.Unrevoke(gid)
		log.Info("active's connection closed but its addresses answer; it is replaced if its lease runs out", "addrs", m.GetActiveAddrs())
		return
	}
	r, err := s.node.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Drop{Drop: &mgrv1.DropOp{Gids: []*mgrv1.SilentGid{{
		Gid: gid, SilentMs: time.Since(s.live.LastSeen(gid)).Milliseconds(), Reason: mgrv1.DropReason_DROP_REASON_GONE,
	}}}}})
	if err != nil {
		s.live.Unrevoke(gid) // the lease rule still bounds it
		log.Warn("failed to drop a gone active", "error", err)
		return
	}
	s.commitNudge()
	logGone(log, r.Epoch, time.Since(start))
}

func logGone(log hclog.Logger, epoch uint64, probe time.Duration) {
	log.Info("active is gone: its connection closed and nothing listens at its addresses", "epoch", epoch, "probe", probe)
}
