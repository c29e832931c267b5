// Package metrics is the monitor's Prometheus metrics: beacons, the tick,
// raft commit and apply times, watchers, the map epoch and leadership, and
// the Go runtime's and the process's own, all on a registry the process
// owns (never the package-global default one). docs/metrics.md lists them.
package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace and Subsystem prefix every monitor metric: mgrplane_monitor_*.
const (
	Namespace = "mgrplane"
	Subsystem = "monitor"
)

// Values of the result label of mgrplane_monitor_beacons_total.
const (
	// BeaconAnswered: this monitor (the leader) answered the beacon.
	BeaconAnswered = "answered"
	// BeaconForwarded: this monitor passed the beacon to the leader.
	BeaconForwarded = "forwarded"
	// BeaconFailed: the beacon was refused or failed (stale gid, no
	// leader, bad input).
	BeaconFailed = "failed"
)

// beaconResults are the result label's values.
var beaconResults = []string{BeaconAnswered, BeaconForwarded, BeaconFailed}

// Buckets of the duration histograms, in seconds.
var (
	// TickBuckets: 50 µs doubling to about 0.8 s (a tick that proposes
	// waits for a raft commit).
	TickBuckets = prometheus.ExponentialBuckets(0.00005, 2, 15)
	// CommitBuckets: 100 µs doubling to about 3.3 s (raft's apply timeout
	// is 5 s).
	CommitBuckets = prometheus.ExponentialBuckets(0.0001, 2, 16)
	// ApplyBuckets: 1 µs doubling to about 65 ms (the state machine is
	// pure and in memory).
	ApplyBuckets = prometheus.ExponentialBuckets(0.000001, 2, 17)
)

// Source is what the monitor answers at scrape time. Its methods must be
// safe for concurrent use and return at once.
type Source interface {
	// Epoch is the epoch of the newest map this monitor applied.
	Epoch() uint64
	// Leading reports whether this monitor leads the quorum and judges
	// liveness.
	Leading() bool
	// Watchers is the number of open map watch streams on this monitor.
	Watchers() int
}

// Monitor holds one monitor's metrics. Its methods are safe for concurrent
// use.
type Monitor struct {
	beacons *prometheus.CounterVec
	tick    prometheus.Histogram
	commit  prometheus.Histogram
	apply   prometheus.Histogram
}

// New makes the metrics of the monitor id, reading src at scrape time, and
// registers them on reg. It fails when reg already holds them.
func New(reg prometheus.Registerer, id string, src Source) (*Monitor, error) {
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: Subsystem, Name: name, Help: help, Buckets: buckets})
	}
	gaugeOpts := func(name, help string) prometheus.GaugeOpts {
		return prometheus.GaugeOpts{Namespace: Namespace, Subsystem: Subsystem, Name: name, Help: help}
	}
	m := &Monitor{
		beacons: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: Subsystem, Name: "beacons_total",
			Help: "Beacons this monitor received, by result: answered (as leader), forwarded (to the leader), failed; rate() gives beacons per second."},
			[]string{"result"}),
		tick: hist("tick_duration_seconds", "Time the leader took for one liveness tick, including the raft commit of any drop or promotion.", TickBuckets),
		commit: hist("raft_commit_duration_seconds",
			"Time from proposing a change on the leader until raft committed it and this monitor applied it.", CommitBuckets),
		apply: hist("raft_apply_duration_seconds", "Time the state machine took to apply one committed command on this monitor.", ApplyBuckets),
	}
	for _, r := range beaconResults {
		m.beacons.WithLabelValues(r)
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: Subsystem, Name: "info",
		Help: "Always 1; the id label is this monitor's id in the quorum.", ConstLabels: prometheus.Labels{"id": id}})
	info.Set(1)
	epoch := prometheus.NewGaugeFunc(gaugeOpts("map_epoch", "Epoch of the newest MgrMap this monitor applied."),
		func() float64 { return float64(src.Epoch()) })
	leader := prometheus.NewGaugeFunc(gaugeOpts("leader", "1 while this monitor leads the quorum (and judges liveness), else 0."),
		func() float64 {
			if src.Leading() {
				return 1
			}
			return 0
		})
	watchers := prometheus.NewGaugeFunc(gaugeOpts("watchers", "Open map watch streams on this monitor."),
		func() float64 { return float64(src.Watchers()) })
	for _, c := range []prometheus.Collector{m.beacons, m.tick, m.commit, m.apply, info, epoch, leader, watchers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("failed to register the monitor's metrics: %w", err)
		}
	}
	return m, nil
}

// Beacon counts one beacon with its result (BeaconAnswered, …).
func (m *Monitor) Beacon(result string) { m.beacons.WithLabelValues(result).Inc() }

// Tick records one liveness tick's duration.
func (m *Monitor) Tick(d time.Duration) { m.tick.Observe(d.Seconds()) }

// Committed records how long one proposal took to commit and apply.
func (m *Monitor) Committed(d time.Duration) { m.commit.Observe(d.Seconds()) }

// Applied records how long the state machine took on one command.
func (m *Monitor) Applied(d time.Duration) { m.apply.Observe(d.Seconds()) }
