// Package metrics is the manager's Prometheus metrics: what its role sees
// (maps, its state, beacon round trips), its modules' states, and the Go
// runtime's and the process's own, all on a registry the process owns
// (never the package-global default one). docs/metrics.md lists them.
package metrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/role"
)

// Namespace and Subsystem prefix every manager metric: mgrplane_manager_*.
const (
	Namespace = "mgrplane"
	Subsystem = "manager"
)

// BeaconBuckets are the beacon round-trip histogram's upper bounds in
// seconds: 0.5 ms doubling to about 4 s (a beacon times out after
// max(beacon period, 250 ms)).
var BeaconBuckets = prometheus.ExponentialBuckets(0.0005, 2, 14)

// roles are the values of the role label, one per role.State.
var roles = []role.State{role.StateStandby, role.StateActivating, role.StateActive, role.StateStopping}

// ModuleState is one module as the manager carries it.
type ModuleState struct {
	Name string
	// Enabled: the map enables it (or it is always on).
	Enabled bool
	// Running: it runs on this manager now.
	Running bool
}

// Source is what the manager answers at scrape time. Its methods must be
// safe for concurrent use and return at once.
type Source interface {
	// GID is the manager's gid, 0 while it has none.
	GID() uint64
	// Serving reports whether the manager serves as the active now.
	Serving() bool
	// Modules lists the modules the manager carries.
	Modules() []ModuleState
}

// Manager holds one manager's metrics and observes its role
// (role.Observer). Its methods are safe for concurrent use.
type Manager struct {
	epoch          prometheus.Gauge
	activeGID      prometheus.Gauge
	standbys       prometheus.Gauge
	failovers      prometheus.Counter
	activations    prometheus.Counter
	beaconRTT      prometheus.Histogram
	beaconFailures prometheus.Counter
	role           *prometheus.GaugeVec

	mu sync.Mutex
	// lastActiveEpoch is the active epoch of the newest map naming an
	// active; 0 before the first.
	lastActiveEpoch uint64
}

var _ role.Observer = (*Manager)(nil)

// New makes the metrics of the manager name, reading src at scrape time,
// and registers them on reg. It fails when reg already holds them (one
// registry carries one manager).
func New(reg prometheus.Registerer, name string, src Source) (*Manager, error) {
	opts := func(n, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: Namespace, Subsystem: Subsystem, Name: n, Help: help}
	}
	m := &Manager{
		epoch:     prometheus.NewGauge(prometheus.GaugeOpts(opts("map_epoch", "Epoch of the newest MgrMap this manager received."))),
		activeGID: prometheus.NewGauge(prometheus.GaugeOpts(opts("map_active_gid", "Gid of the active manager in the newest map; 0 when there is none."))),
		standbys:  prometheus.NewGauge(prometheus.GaugeOpts(opts("map_standbys", "Number of standbys in the newest map."))),
		failovers: prometheus.NewCounter(prometheus.CounterOpts(opts("failovers_seen_total",
			"Maps this manager received that named a new active after another (the active epoch moved), not counting the first active it saw."))),
		activations: prometheus.NewCounter(prometheus.CounterOpts(opts("activations_total", "Times this manager was named active and started serving."))),
		beaconRTT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: Subsystem, Name: "beacon_rtt_seconds",
			Help:    "Round trip of the beacons the monitor answered, from send to answer.",
			Buckets: BeaconBuckets,
		}),
		beaconFailures: prometheus.NewCounter(prometheus.CounterOpts(opts("beacon_failures_total", "Beacons that failed (no answer in time, monitor unavailable, refused)."))),
		role: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("role",
			"1 for the role this manager is in now (standby, activating, active, stopping), 0 for the others.")), []string{"role"}),
	}
	for _, r := range roles {
		m.role.WithLabelValues(r.String())
	}
	m.StateChanged(role.StateStandby)

	info := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: Subsystem, Name: "info",
		Help: "Always 1; the name label is the manager's name.", ConstLabels: prometheus.Labels{"name": name}})
	info.Set(1)
	gid := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("gid", "This manager's gid; 0 while it has none.")),
		func() float64 { return float64(src.GID()) })
	serving := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("serving",
		"1 while this manager serves as the active (named active and holding a lease), else 0.")),
		func() float64 { return boolValue(src.Serving()) })

	for _, c := range []prometheus.Collector{m.epoch, m.activeGID, m.standbys, m.failovers, m.activations,
		m.beaconRTT, m.beaconFailures, m.role, info, gid, serving, newModuleCollector(src)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("failed to register the manager's metrics: %w", err)
		}
	}
	return m, nil
}

// StateChanged implements role.Observer.
func (m *Manager) StateChanged(s role.State) {
	for _, r := range roles {
		m.role.WithLabelValues(r.String()).Set(boolValue(r == s))
	}
	if s == role.StateActivating {
		m.activations.Inc()
	}
}

// MapReceived implements role.Observer.
func (m *Manager) MapReceived(mm *mgrv1.MgrMap) {
	m.epoch.Set(float64(mm.GetEpoch()))
	m.activeGID.Set(float64(mm.GetActiveGid()))
	m.standbys.Set(float64(len(mm.GetStandbys())))
	ae := mm.GetActiveEpoch()
	if mm.GetActiveGid() == 0 || ae == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ae == m.lastActiveEpoch {
		return
	}
	if m.lastActiveEpoch != 0 && ae > m.lastActiveEpoch {
		m.failovers.Inc()
	}
	m.lastActiveEpoch = max(m.lastActiveEpoch, ae)
}

// BeaconDone implements role.Observer.
func (m *Manager) BeaconDone(rtt time.Duration, err error) {
	if err != nil {
		m.beaconFailures.Inc()
		return
	}
	m.beaconRTT.Observe(rtt.Seconds())
}

// moduleCollector reports each module's state at scrape time.
type moduleCollector struct {
	src              Source
	enabled, running *prometheus.Desc
}

func newModuleCollector(src Source) *moduleCollector {
	return &moduleCollector{
		src: src,
		enabled: prometheus.NewDesc(prometheus.BuildFQName(Namespace, Subsystem, "module_enabled"),
			"1 when the map enables the module (or it is always on), else 0; one series per module this manager carries.",
			[]string{"module"}, nil),
		running: prometheus.NewDesc(prometheus.BuildFQName(Namespace, Subsystem, "module_running"),
			"1 when the module runs on this manager now, else 0.", []string{"module"}, nil),
	}
}

func (c *moduleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.enabled
	ch <- c.running
}

func (c *moduleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.src.Modules() {
		ch <- prometheus.MustNewConstMetric(c.enabled, prometheus.GaugeValue, boolValue(st.Enabled), st.Name)
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, boolValue(st.Running), st.Name)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
