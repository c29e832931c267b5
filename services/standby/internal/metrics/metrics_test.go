package metrics

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/runtimemetrics"
	"github.com/mgrplane/mgrplane/services/standby/internal/role"
)

// fakeSource is a Source whose answers the test sets.
type fakeSource struct {
	mu      sync.Mutex
	gid     uint64
	serving bool
	modules []ModuleState
}

func (f *fakeSource) GID() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gid
}

func (f *fakeSource) Serving() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.serving
}

func (f *fakeSource) Modules() []ModuleState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ModuleState(nil), f.modules...)
}

func newTestManager(t *testing.T, src Source) (*Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg, "x", src)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

func standbys(n int) []*mgrv1.StandbyInfo {
	out := make([]*mgrv1.StandbyInfo, n)
	for i := range out {
		out[i] = &mgrv1.StandbyInfo{Gid: uint64(10 + i)}
	}
	return out
}

func TestMapMetrics(t *testing.T) {
	m, reg := newTestManager(t, &fakeSource{})
	m.MapReceived(&mgrv1.MgrMap{Epoch: 7, ActiveGid: 4, ActiveEpoch: 5, Standbys: standbys(2)})
	want := `
# HELP mgrplane_manager_map_active_gid Gid of the active manager in the newest map; 0 when there is none.
# TYPE mgrplane_manager_map_active_gid gauge
mgrplane_manager_map_active_gid 4
# HELP mgrplane_manager_map_epoch Epoch of the newest MgrMap this manager received.
# TYPE mgrplane_manager_map_epoch gauge
mgrplane_manager_map_epoch 7
# HELP mgrplane_manager_map_standbys Number of standbys in the newest map.
# TYPE mgrplane_manager_map_standbys gauge
mgrplane_manager_map_standbys 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"mgrplane_manager_map_epoch", "mgrplane_manager_map_active_gid", "mgrplane_manager_map_standbys"); err != nil {
		t.Fatal(err)
	}
	// A map without an active.
	m.MapReceived(&mgrv1.MgrMap{Epoch: 8, ActiveEpoch: 5})
	if got := testutil.ToFloat64(m.activeGID); got != 0 {
		t.Errorf("active gid = %v after a map without an active, want 0", got)
	}
	if got := testutil.ToFloat64(m.standbys); got != 0 {
		t.Errorf("standbys = %v, want 0", got)
	}
}

func TestFailoversSeen(t *testing.T) {
	type step struct {
		gid, activeEpoch uint64
	}
	tests := map[string]struct {
		maps []step
		want float64
	}{
		"no active ever":                  {maps: []step{{0, 0}, {0, 0}}, want: 0},
		"the first active is no failover": {maps: []step{{0, 0}, {4, 2}, {4, 2}}, want: 0},
		"joined under a running active":   {maps: []step{{4, 9}}, want: 0},
		"active to active":                {maps: []step{{4, 2}, {5, 6}}, want: 1},
		"through a map without an active": {maps: []step{{4, 2}, {0, 2}, {5, 8}}, want: 1},
		"same gid promoted again":         {maps: []step{{4, 2}, {4, 9}}, want: 1},
		"three actives":                   {maps: []step{{4, 2}, {5, 6}, {0, 6}, {4, 12}}, want: 2},
		"an older map changes nothing":    {maps: []step{{4, 2}, {5, 6}, {4, 2}}, want: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, _ := newTestManager(t, &fakeSource{})
			for i, s := range tc.maps {
				m.MapReceived(&mgrv1.MgrMap{Epoch: uint64(i + 1), ActiveGid: s.gid, ActiveEpoch: s.activeEpoch})
			}
			if got := testutil.ToFloat64(m.failovers); got != tc.want {
				t.Errorf("failovers seen = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRoleAndActivations(t *testing.T) {
	m, reg := newTestManager(t, &fakeSource{})
	roleOf := func() map[string]float64 {
		out := map[string]float64{}
		for _, r := range roles {
			out[r.String()] = testutil.ToFloat64(m.role.WithLabelValues(r.String()))
		}
		return out
	}
	check := func(want string) {
		t.Helper()
		for r, v := range roleOf() {
			if wantV := boolValue(r == want); v != wantV {
				t.Errorf("role %q = %v, want %v (in role %s)", r, v, wantV, want)
			}
		}
	}
	check("standby")
	for _, s := range []role.State{role.StateActivating, role.StateActive, role.StateStopping, role.StateStandby, role.StateActivating} {
		m.StateChanged(s)
		check(s.String())
	}
	if got := testutil.ToFloat64(m.activations); got != 2 {
		t.Errorf("activations = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(m.role); n != len(roles) {
		t.Errorf("%d role series, want %d", n, len(roles))
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP mgrplane_manager_activations_total Times this manager was named active and started serving.
# TYPE mgrplane_manager_activations_total counter
mgrplane_manager_activations_total 2
`), "mgrplane_manager_activations_total"); err != nil {
		t.Error(err)
	}
}

func TestBeacons(t *testing.T) {
	m, reg := newTestManager(t, &fakeSource{})
	m.BeaconDone(3*time.Millisecond, nil)
	m.BeaconDone(300*time.Millisecond, nil)
	m.BeaconDone(time.Second, errors.New("deadline exceeded"))
	if got := testutil.ToFloat64(m.beaconFailures); got != 1 {
		t.Errorf("beacon failures = %v, want 1", got)
	}
	want := `
# HELP mgrplane_manager_beacon_rtt_seconds Round trip of the beacons the monitor answered, from send to answer.
# TYPE mgrplane_manager_beacon_rtt_seconds histogram
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.0005"} 0
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.001"} 0
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.002"} 0
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.004"} 1
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.008"} 1
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.016"} 1
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.032"} 1
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.064"} 1
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.128"} 1
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.256"} 1
mgrplane_manager_beacon_rtt_seconds_bucket{le="0.512"} 2
mgrplane_manager_beacon_rtt_seconds_bucket{le="1.024"} 2
mgrplane_manager_beacon_rtt_seconds_bucket{le="2.048"} 2
mgrplane_manager_beacon_rtt_seconds_bucket{le="4.096"} 2
mgrplane_manager_beacon_rtt_seconds_bucket{le="+Inf"} 2
mgrplane_manager_beacon_rtt_seconds_sum 0.303
mgrplane_manager_beacon_rtt_seconds_count 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mgrplane_manager_beacon_rtt_seconds"); err != nil {
		t.Fatal(err)
	}
}

func TestScrapeTimeMetrics(t *testing.T) {
	src := &fakeSource{gid: 12, serving: true, modules: []ModuleState{
		{Name: "status", Enabled: true, Running: true},
		{Name: "prometheus", Enabled: true, Running: false},
		{Name: "dashboard"},
	}}
	_, reg := newTestManager(t, src)
	want := `
# HELP mgrplane_manager_gid This manager's gid; 0 while it has none.
# TYPE mgrplane_manager_gid gauge
mgrplane_manager_gid 12
# HELP mgrplane_manager_info Always 1; the name label is the manager's name.
# TYPE mgrplane_manager_info gauge
mgrplane_manager_info{name="x"} 1
# HELP mgrplane_manager_module_enabled 1 when the map enables the module (or it is always on), else 0; one series per module this manager carries.
# TYPE mgrplane_manager_module_enabled gauge
mgrplane_manager_module_enabled{module="dashboard"} 0
mgrplane_manager_module_enabled{module="prometheus"} 1
mgrplane_manager_module_enabled{module="status"} 1
# HELP mgrplane_manager_module_running 1 when the module runs on this manager now, else 0.
# TYPE mgrplane_manager_module_running gauge
mgrplane_manager_module_running{module="dashboard"} 0
mgrplane_manager_module_running{module="prometheus"} 0
mgrplane_manager_module_running{module="status"} 1
# HELP mgrplane_manager_serving 1 while this manager serves as the active (named active and holding a lease), else 0.
# TYPE mgrplane_manager_serving gauge
mgrplane_manager_serving 1
`
	names := []string{"mgrplane_manager_gid", "mgrplane_manager_info", "mgrplane_manager_module_enabled",
		"mgrplane_manager_module_running", "mgrplane_manager_serving"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Read again at the next scrape.
	src.mu.Lock()
	src.gid, src.serving = 0, false
	src.mu.Unlock()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP mgrplane_manager_serving 1 while this manager serves as the active (named active and holding a lease), else 0.
# TYPE mgrplane_manager_serving gauge
mgrplane_manager_serving 0
`), "mgrplane_manager_serving"); err != nil {
		t.Fatal(err)
	}
}

func TestRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, "x", &fakeSource{}); err != nil {
		t.Fatalf("New: %v", err)
	}
	// One registry carries one manager.
	if _, err := New(reg, "y", &fakeSource{}); err == nil || !strings.Contains(err.Error(), "failed to register the manager's metrics") {
		t.Fatalf("second New on one registry = %v, want a registration error", err)
	}
	// The runtime collectors register once; a second call keeps them.
	for i := range 2 {
		if err := runtimemetrics.Register(reg); err != nil {
			t.Fatalf("RegisterRuntime #%d: %v", i+1, err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
	}
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total", "mgrplane_manager_map_epoch"} {
		if !seen[n] {
			t.Errorf("%s not gathered", n)
		}
	}
	// The metrics pass promtool's lint rules (client_golang's port).
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
