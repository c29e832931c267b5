package monsim

import (
	"fmt"
	"net"
	"time"

	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"github.com/mgrplane/mgrplane/services/monsim/internal/watch"
)

// Config tunes a monitor. Every field has a flag and an environment variable
// in cmd/monsim.
type Config struct {
	// Addr is the gRPC listen address.
	Addr string
	// DataDir holds the raft log and snapshots.
	DataDir string
	// NodeID names this monitor in the quorum.
	NodeID string
	// FSID is the cluster id used at bootstrap; empty makes a random one.
	// It is ignored once the data dir holds a cluster.
	FSID string
	// BeaconPeriod is how often managers beacon (told to them at authenticate).
	BeaconPeriod time.Duration
	// Grace is how long a manager may be silent before it is dropped.
	Grace time.Duration
	// FenceTimeout is the lease: how long an active may serve after sending
	// a beacon the monitor acknowledged.
	FenceTimeout time.Duration
	// Tick is how often the leader looks for silent managers.
	Tick time.Duration
	// HistoryLimit is how many maps are kept for dump --epoch and watch resume.
	HistoryLimit int
	// WatchMaxLag is how many maps a watcher may fall behind before it is cut off.
	WatchMaxLag int
	// AlwaysOnModules are the modules that cannot be disabled.
	AlwaysOnModules []string
}

// LeaseMargin is the slack between a lease running out on the manager's
// clock and the monitor acting on it, for clock rate skew and scheduling.
const LeaseMargin = 500 * time.Millisecond

// beaconSlack is how late a beacon may be before its lease lapses: half a
// period, at least 100 ms (managers check the same bound).
func beaconSlack(period time.Duration) time.Duration { return max(period/2, 100*time.Millisecond) }

// DefaultConfig returns the defaults of DESIGN.md (Ceph's in brackets):
// beacon 1 s [2 s], grace 6 s [30 s], fence timeout 4 s [none], tick 1 s
// [2 s], history 500 [500].
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:6789",
		DataDir:         "data/monsim",
		NodeID:          "monsim-1",
		BeaconPeriod:    time.Second,
		Grace:           6 * time.Second,
		FenceTimeout:    4 * time.Second,
		Tick:            time.Second,
		HistoryLimit:    mgrmap.DefaultHistoryLimit,
		WatchMaxLag:     watch.DefaultMaxLag,
		AlwaysOnModules: []string{"status"},
	}
}

// Validate checks every field and names the bound that failed.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q: must be host:port: %v", c.Addr, err)
	}
	switch {
	case c.DataDir == "":
		return fmt.Errorf("data dir: required")
	case c.NodeID == "" || len(c.NodeID) > 64:
		return fmt.Errorf("node id %q: must be 1 to 64 bytes", c.NodeID)
	case len(c.FSID) > mgrmap.MaxFSIDLen:
		return fmt.Errorf("fsid: at most %d bytes", mgrmap.MaxFSIDLen)
	case c.BeaconPeriod < 10*time.Millisecond || c.BeaconPeriod > time.Minute:
		return fmt.Errorf("beacon period %v: must be between 10ms and 1m", c.BeaconPeriod)
	case c.FenceTimeout <= c.BeaconPeriod+beaconSlack(c.BeaconPeriod):
		return fmt.Errorf("fence timeout %v: must exceed the beacon period (%v) plus %v, or leases lapse between beacons", c.FenceTimeout, c.BeaconPeriod, beaconSlack(c.BeaconPeriod))
	case c.Grace <= c.FenceTimeout+c.BeaconPeriod+LeaseMargin:
		return fmt.Errorf("grace %v: must exceed fence timeout (%v) + beacon period (%v) + margin (%v) = %v", c.Grace, c.FenceTimeout, c.BeaconPeriod, LeaseMargin, c.FenceTimeout+c.BeaconPeriod+LeaseMargin)
	case c.Grace > 10*time.Minute:
		return fmt.Errorf("grace %v: must be at most 10m", c.Grace)
	case c.Tick < 10*time.Millisecond || c.Tick > c.Grace:
		return fmt.Errorf("tick %v: must be between 10ms and the grace (%v)", c.Tick, c.Grace)
	case c.HistoryLimit < 1 || c.HistoryLimit > mgrmap.MaxHistoryLimit:
		return fmt.Errorf("history %d: must be between 1 and %d", c.HistoryLimit, mgrmap.MaxHistoryLimit)
	}
	if err := (watch.Config{MaxLag: c.WatchMaxLag}).Validate(); err != nil {
		return fmt.Errorf("watch max lag: %w", err)
	}
	for _, m := range c.AlwaysOnModules {
		if err := mgrmap.ValidateModuleName("always-on module", m); err != nil {
			return err
		}
	}
	return nil
}
