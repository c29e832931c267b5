// Package chaos is the chaos harness: it runs a local mgrplane cluster of
// real processes (one monsim or a raft quorum of three, several standby
// daemons) on 127.0.0.1, injects random faults into the active manager (or
// into the raft leader among the monitors) round after round, probes every
// manager's gRPC and HTTP endpoints all along, and proves from the answers
// whether two managers ever served as active at one instant. It measures,
// per kind of fault, the time from the fault to the first answer of the new
// active and the window in which no manager answered, and draws the run as
// an SVG timeline.
package chaos

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// FaultKind names a fault the harness injects into the active manager.
type FaultKind string

// The faults. Each is injected into the current active.
const (
	// Kill9 sends SIGKILL; the process is started again (same name, same
	// ports) once a new active serves.
	Kill9 FaultKind = "kill9"
	// SigStop sends SIGSTOP (a silent failure: the process holds its
	// connections but answers nothing); SIGCONT once a new active serves.
	SigStop FaultKind = "sigstop"
	// SigTerm sends SIGTERM (a graceful shutdown: the active hands over);
	// the process is started again once it has exited.
	SigTerm FaultKind = "sigterm"
	// Restart sends SIGKILL and starts the process again at once under the
	// same name, as a supervisor restarts a crashed daemon: the monitor sees
	// the same name with a new gid.
	Restart FaultKind = "restart"
	// Fail asks the monitor to fail the active (the FailManager call that
	// `mgrctl fail` makes); the process stays up and rejoins as a standby.
	Fail FaultKind = "fail"
	// MonKill sends SIGKILL to the raft leader among the monitors (only
	// with three monitors), waits until another monitor names a new
	// leader, then starts the killed one again on its data directory and
	// port and waits until it is back in the quorum. No new active is
	// expected: the active may keep serving.
	MonKill FaultKind = "monkill"
	// MonStop sends SIGSTOP to the raft leader among the monitors (only
	// with three monitors: a partition of the leader), SIGCONT after
	// Grace + 2 s, and waits until the monitors agree on a leader again.
	MonStop FaultKind = "monstop"
)

// AllFaults lists every fault kind, in the order tables show them.
func AllFaults() []FaultKind {
	return []FaultKind{Kill9, SigStop, SigTerm, Restart, Fail, MonKill, MonStop}
}

// ManagerFaults lists the faults injected into the active manager.
func ManagerFaults() []FaultKind {
	return []FaultKind{Kill9, SigStop, SigTerm, Restart, Fail}
}

// DefaultFaults is every fault a cluster with that many monitors can take:
// the manager faults, and the monitor faults with three monitors.
func DefaultFaults(monitors int) []FaultKind {
	if monitors == quorumMonitors {
		return AllFaults()
	}
	return ManagerFaults()
}

// OnMonitor reports whether k is injected into a monitor, not a manager.
func (k FaultKind) OnMonitor() bool {
	return k == MonKill || k == MonStop
}

// ParseFaults parses a comma-separated list of fault kinds ("kill9,fail").
// Duplicates are dropped; an empty list or an unknown name is an error.
func ParseFaults(s string) ([]FaultKind, error) {
	var out []FaultKind
	for _, f := range strings.Split(s, ",") {
		k := FaultKind(strings.TrimSpace(f))
		if k == "" {
			continue
		}
		if !slices.Contains(AllFaults(), k) {
			return nil, fmt.Errorf("unknown fault %q: must be one of %s", k, faultNames(AllFaults()))
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no fault named: want a comma-separated list of %s", faultNames(AllFaults()))
	}
	return out, nil
}

func faultNames(ks []FaultKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

// Bounds of the configuration.
const (
	maxRounds        = 100000
	minManagers      = 2
	maxManagers      = 9
	minProbeTimeout  = 10 * time.Millisecond
	maxProbeTimeout  = 10 * time.Second
	maxProbePause    = time.Second
	maxClusterPeriod = 10 * time.Minute
	// quorumMonitors is the size of a raft quorum the harness runs.
	quorumMonitors = 3
)

// managerName is what a standby accepts as --name.
var managerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Config is one chaos run.
type Config struct {
	// Rounds is how many faults are injected, one per round.
	Rounds int
	// Seed seeds the choice of faults and of the pause before each.
	Seed uint64
	// Faults are the kinds of fault drawn from, uniformly.
	Faults []FaultKind
	// Managers are the names of the standby daemons.
	Managers []string
	// Monitors is how many monsims run: 1, or 3 as a raft quorum (ids m1,
	// m2, m3, each with its own data directory and port).
	Monitors int
	// BeaconPeriod, Grace and Tick configure monsim (and the standbys'
	// beacon period).
	BeaconPeriod time.Duration
	Grace        time.Duration
	Tick         time.Duration
	// FenceTimeout is passed to monsim as --fence-timeout when it is not
	// zero and monsim has that flag; zero keeps monsim's default.
	FenceTimeout time.Duration
	// ProbeTimeout bounds one probe call; ProbePause is the pause between
	// two calls of one prober loop.
	ProbeTimeout time.Duration
	ProbePause   time.Duration
	// NewActiveTimeout bounds the wait, after a fault, for a new active's
	// answer; zero means 3 × Grace.
	NewActiveTimeout time.Duration
	// SettleTimeout bounds the wait, before a fault, for a whole cluster
	// (an available active that answers, every other manager standing by);
	// zero means 3 × Grace + 10 s.
	SettleTimeout time.Duration
	// Dir holds the monitor's data (and the logs, without LogDir).
	Dir string
	// LogDir holds every process's log; empty means Dir/logs.
	LogDir string
}

// DefaultConfig is 20 rounds of every manager fault on one monitor and three managers x, y, z with
// mgrplane's default timings (beacon 1 s, grace 6 s, tick 1 s). Dir is left
// empty: the caller picks it.
func DefaultConfig() Config {
	return Config{
		Rounds:       20,
		Seed:         1,
		Faults:       ManagerFaults(),
		Managers:     []string{"x", "y", "z"},
		Monitors:     1,
		BeaconPeriod: time.Second,
		Grace:        6 * time.Second,
		Tick:         time.Second,
		ProbeTimeout: 200 * time.Millisecond,
		ProbePause:   2 * time.Millisecond,
	}
}

// CephTimings sets Ceph's timings: beacon 2 s, grace 30 s, tick 2 s.
func (c *Config) CephTimings() {
	c.BeaconPeriod = 2 * time.Second
	c.Grace = 30 * time.Second
	c.Tick = 2 * time.Second
}

// Validate reports the first field out of its bounds.
func (c Config) Validate() error {
	switch {
	case c.Rounds < 1 || c.Rounds > maxRounds:
		return fmt.Errorf("Rounds is %d: must be between 1 and %d", c.Rounds, maxRounds)
	case len(c.Faults) == 0:
		return fmt.Errorf("Faults is empty: name at least one of %s", faultNames(AllFaults()))
	case len(c.Managers) < minManagers || len(c.Managers) > maxManagers:
		return fmt.Errorf("Managers has %d names: must have between %d and %d", len(c.Managers), minManagers, maxManagers)
	case c.Monitors != 1 && c.Monitors != quorumMonitors:
		return fmt.Errorf("Monitors is %d: must be 1 or %d", c.Monitors, quorumMonitors)
	case c.Dir == "":
		return fmt.Errorf("Dir is empty: must name a directory for data and logs")
	}
	for _, f := range c.Faults {
		if !slices.Contains(AllFaults(), f) {
			return fmt.Errorf("Faults names %q: must be one of %s", f, faultNames(AllFaults()))
		}
		if f.OnMonitor() && c.Monitors != quorumMonitors {
			return fmt.Errorf("Faults names %q with Monitors %d: monitor faults need Monitors = %d", f, c.Monitors, quorumMonitors)
		}
	}
	seen := map[string]bool{}
	for _, n := range c.Managers {
		if !managerName.MatchString(n) || n == "map" {
			return fmt.Errorf("Managers names %q: must be 1 to 64 of [A-Za-z0-9_.-] starting with a letter or digit, and not \"map\"", n)
		}
		if seen[n] {
			return fmt.Errorf("Managers names %q twice: names must be unique", n)
		}
		seen[n] = true
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"BeaconPeriod", c.BeaconPeriod}, {"Grace", c.Grace}, {"Tick", c.Tick}} {
		if d.v <= 0 || d.v > maxClusterPeriod {
			return fmt.Errorf("%s is %v: must be above 0 and at most %v", d.name, d.v, maxClusterPeriod)
		}
	}
	switch {
	case c.FenceTimeout < 0 || c.FenceTimeout >= c.Grace:
		return fmt.Errorf("FenceTimeout is %v: must be at least 0 (0: monsim's default) and below Grace (%v)", c.FenceTimeout, c.Grace)
	case c.ProbeTimeout < minProbeTimeout || c.ProbeTimeout > maxProbeTimeout:
		return fmt.Errorf("ProbeTimeout is %v: must be between %v and %v", c.ProbeTimeout, minProbeTimeout, maxProbeTimeout)
	case c.ProbePause < 0 || c.ProbePause > maxProbePause:
		return fmt.Errorf("ProbePause is %v: must be between 0 and %v", c.ProbePause, maxProbePause)
	case c.NewActiveTimeout < 0 || c.NewActiveTimeout > 10*maxClusterPeriod:
		return fmt.Errorf("NewActiveTimeout is %v: must be between 0 (3 × Grace) and %v", c.NewActiveTimeout, 10*maxClusterPeriod)
	case c.SettleTimeout < 0 || c.SettleTimeout > 10*maxClusterPeriod:
		return fmt.Errorf("SettleTimeout is %v: must be between 0 (3 × Grace + 10 s) and %v", c.SettleTimeout, 10*maxClusterPeriod)
	}
	return nil
}

// logDir is LogDir or its default.
func (c Config) logDir() string {
	if c.LogDir != "" {
		return c.LogDir
	}
	return filepath.Join(c.Dir, "logs")
}

// newActiveTimeout is NewActiveTimeout or its default.
func (c Config) newActiveTimeout() time.Duration {
	if c.NewActiveTimeout > 0 {
		return c.NewActiveTimeout
	}
	return 3 * c.Grace
}

// settleTimeout is SettleTimeout or its default.
func (c Config) settleTimeout() time.Duration {
	if c.SettleTimeout > 0 {
		return c.SettleTimeout
	}
	return 3*c.Grace + 10*time.Second
}
