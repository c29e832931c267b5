package monsim

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"github.com/mgrplane/mgrplane/services/monsim/internal/quorum"
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
	// AdvertiseAddr is the address other monitors and forwarded calls use
	// to reach this one; empty means the listen address.
	AdvertiseAddr string
	// Peers is the quorum's initial membership as id=host:port, the same
	// list on every member, bootstrapped once. Empty: this monitor alone.
	Peers []string
	// Join lists addresses of running members to ask for admission, for a
	// monitor added to an existing quorum (no bootstrap).
	Join []string
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
	// MetricsAddr is where the monitor serves its Prometheus metrics
	// (GET /metrics, docs/metrics.md), host:port (port 0 for any); empty
	// serves none.
	MetricsAddr string
	// HealthAddr is where the monitor serves grpc.health.v1 alone, in
	// plaintext, for probes that cannot speak TLS (Kubernetes' grpc
	// probes), host:port; empty serves none. It says whether the monitor
	// serves (it leads, or follows and has caught up), nothing else.
	HealthAddr string
	// Registry receives the monitor's metrics and the Go runtime's and the
	// process's; it is the process's own registry (prometheus.NewRegistry),
	// never the package-global default one. Nil makes a new one
	// (Server.Registry). One registry carries one monitor's metrics.
	Registry *prometheus.Registry

	// Creds are the monitor's TLS certificates and the keyring that seeds
	// the replicated one on first start (creds.LoadMonitor). Required
	// unless Insecure.
	Creds *creds.Monitor
	// Insecure serves plaintext without authentication; every caller is
	// treated as client.admin. For tests and embedders only.
	Insecure bool
	// AuditLog is a file to append the audit log to as JSON lines; empty
	// writes it to the logger named monsim.audit.
	AuditLog string
	// MaxMsgSize bounds one request, in bytes.
	MaxMsgSize int
	// AuthRate and AuthBurst limit Authenticate calls per peer address.
	AuthRate  float64
	AuthBurst int
	// BeaconRate and BeaconBurst limit Beacon calls per peer address.
	BeaconRate  float64
	BeaconBurst int
	// MaxWatches bounds the watch streams one entity may hold open.
	MaxWatches int
}

// Bounds and defaults of the security limits.
const (
	DefaultMaxMsgSize = 1 << 20
	MinMaxMsgSize     = 4096
	MaxMaxMsgSize     = 64 << 20
	maxRate           = 1e6
)

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
		MaxMsgSize:      DefaultMaxMsgSize,
		AuthRate:        5,
		AuthBurst:       20,
		BeaconRate:      50,
		BeaconBurst:     100,
		MaxWatches:      64,
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
	case mgrmap.ValidateName("id", c.NodeID) != nil:
		return fmt.Errorf("id %q: must be %s", c.NodeID, mgrmap.NameRule)
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
	case c.Creds == nil && !c.Insecure:
		return fmt.Errorf("creds: required (certificates and keyring; `monsim creds init`), or Insecure for tests")
	case c.MaxMsgSize < MinMaxMsgSize || c.MaxMsgSize > MaxMaxMsgSize:
		return fmt.Errorf("max message size %d: must be between %d and %d bytes", c.MaxMsgSize, MinMaxMsgSize, MaxMaxMsgSize)
	case !(c.AuthRate > 0 && c.AuthRate <= maxRate) || c.AuthBurst < 1 || c.AuthBurst > maxRate:
		return fmt.Errorf("auth rate %v burst %d: the rate must be above 0 and at most %v per second, the burst between 1 and %v", c.AuthRate, c.AuthBurst, maxRate, maxRate)
	case !(c.BeaconRate > 0 && c.BeaconRate <= maxRate) || c.BeaconBurst < 1 || c.BeaconBurst > maxRate:
		return fmt.Errorf("beacon rate %v burst %d: the rate must be above 0 and at most %v per second, the burst between 1 and %v", c.BeaconRate, c.BeaconBurst, maxRate, maxRate)
	case c.MaxWatches < 1 || c.MaxWatches > maxRate:
		return fmt.Errorf("max watches %d: must be between 1 and %v", c.MaxWatches, maxRate)
	}
	if c.HealthAddr != "" {
		_, port, err := net.SplitHostPort(c.HealthAddr)
		if err != nil {
			return fmt.Errorf("health addr %q: must be host:port (port 0 for any), or empty to serve none", c.HealthAddr)
		}
		if port != "0" && (c.HealthAddr == c.Addr || c.HealthAddr == c.MetricsAddr) {
			return fmt.Errorf("health addr %q: must differ from the gRPC and metrics addrs", c.HealthAddr)
		}
	}
	if c.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(c.MetricsAddr)
		if err != nil || port == "" {
			return fmt.Errorf("metrics addr %q: must be host:port (port 0 for any), or empty to serve no metrics", c.MetricsAddr)
		}
		if c.MetricsAddr == c.Addr && port != "0" {
			return fmt.Errorf("metrics addr %q: must differ from the gRPC addr", c.MetricsAddr)
		}
	}
	if _, err := c.peers(); err != nil {
		return err
	}
	if len(c.Peers) > 0 && len(c.Join) > 0 {
		return fmt.Errorf("peers and join: give one, not both (peers bootstraps a new quorum, join enters an existing one)")
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

// peers parses Peers ("id=host:port") and checks this monitor is among them.
func (c Config) peers() ([]quorum.Peer, error) {
	if len(c.Peers) == 0 {
		return nil, nil
	}
	if len(c.Peers) > MaxPeers {
		return nil, fmt.Errorf("peers: %d given, at most %d", len(c.Peers), MaxPeers)
	}
	var out []quorum.Peer
	seen := map[string]bool{}
	self := false
	for _, p := range c.Peers {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || mgrmap.ValidateName("peer id", id) != nil {
			return nil, fmt.Errorf("peer %q: must be id=host:port with an id of %s", p, mgrmap.NameRule)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("peer %q: address must be host:port: %v", p, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("peer id %q listed twice", id)
		}
		seen[id] = true
		self = self || id == c.NodeID
		out = append(out, quorum.Peer{ID: id, Addr: addr})
	}
	if !self {
		return nil, fmt.Errorf("peers: this monitor's id %q is not in the list", c.NodeID)
	}
	return out, nil
}

// MaxPeers bounds a quorum: raft clusters beyond seven voters only slow down.
const MaxPeers = 7
