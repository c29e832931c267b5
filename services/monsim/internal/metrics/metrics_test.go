package metrics

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mgrplane/mgrplane/internal/runtimemetrics"
)

// fakeSource is a Source whose answers the test sets.
type fakeSource struct {
	epoch    atomic.Uint64
	leading  atomic.Bool
	watchers atomic.Int64
}

func (f *fakeSource) Epoch() uint64 { return f.epoch.Load() }
func (f *fakeSource) Leading() bool { return f.leading.Load() }
func (f *fakeSource) Watchers() int { return int(f.watchers.Load()) }

func TestScrapeTimeGauges(t *testing.T) {
	src := &fakeSource{}
	reg := prometheus.NewPedanticRegistry()
	if _, err := New(reg, "monsim-1", src); err != nil {
		t.Fatal(err)
	}
	names := []string{"mgrplane_monitor_info", "mgrplane_monitor_leader", "mgrplane_monitor_map_epoch", "mgrplane_monitor_watchers"}
	want := func(leader, epoch, watchers int) string {
		return strings.NewReplacer("LEADER", strconv.Itoa(leader), "EPOCH", strconv.Itoa(epoch), "WATCHERS", strconv.Itoa(watchers)).Replace(`
# HELP mgrplane_monitor_info Always 1; the id label is this monitor's id in the quorum.
# TYPE mgrplane_monitor_info gauge
mgrplane_monitor_info{id="monsim-1"} 1
# HELP mgrplane_monitor_leader 1 while this monitor leads the quorum (and judges liveness), else 0.
# TYPE mgrplane_monitor_leader gauge
mgrplane_monitor_leader LEADER
# HELP mgrplane_monitor_map_epoch Epoch of the newest MgrMap this monitor applied.
# TYPE mgrplane_monitor_map_epoch gauge
mgrplane_monitor_map_epoch EPOCH
# HELP mgrplane_monitor_watchers Open map watch streams on this monitor.
# TYPE mgrplane_monitor_watchers gauge
mgrplane_monitor_watchers WATCHERS
`)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(0, 0, 0)), names...); err != nil {
		t.Fatal(err)
	}
	src.epoch.Store(42)
	src.leading.Store(true)
	src.watchers.Store(3)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(1, 42, 3)), names...); err != nil {
		t.Fatal(err)
	}
}

func TestBeaconsByResult(t *testing.T) {
	m, err := New(prometheus.NewRegistry(), "m", &fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{BeaconAnswered, BeaconAnswered, BeaconForwarded, BeaconFailed, BeaconAnswered} {
		m.Beacon(r)
	}
	want := map[string]float64{BeaconAnswered: 3, BeaconForwarded: 1, BeaconFailed: 1}
	for r, n := range want {
		if got := testutil.ToFloat64(m.beacons.WithLabelValues(r)); got != n {
			t.Errorf("beacons{result=%q} = %v, want %v", r, got, n)
		}
	}
	if n := testutil.CollectAndCount(m.beacons); n != len(beaconResults) {
		t.Errorf("%d beacon series, want %d (every result from the start)", n, len(beaconResults))
	}
}

func TestDurations(t *testing.T) {
	m, err := New(prometheus.NewRegistry(), "m", &fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	m.Tick(2 * time.Millisecond)
	m.Committed(5 * time.Millisecond)
	m.Committed(7 * time.Millisecond)
	m.Applied(20 * time.Microsecond)
	tests := map[string]struct {
		h          prometheus.Histogram
		name       string
		count      int
		sum        float64
		firstAbove float64 // the smallest bucket bound that counts every sample
	}{
		"tick":   {h: m.tick, name: "mgrplane_monitor_tick_duration_seconds", count: 1, sum: 0.002, firstAbove: 0.0032},
		"commit": {h: m.commit, name: "mgrplane_monitor_raft_commit_duration_seconds", count: 2, sum: 0.012, firstAbove: 0.0128},
		"apply":  {h: m.apply, name: "mgrplane_monitor_raft_apply_duration_seconds", count: 1, sum: 0.00002, firstAbove: 0.000032},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(tc.h)
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			if len(mfs) != 1 || mfs[0].GetName() != tc.name {
				t.Fatalf("gathered %v, want %s", mfs, tc.name)
			}
			h := mfs[0].GetMetric()[0].GetHistogram()
			if int(h.GetSampleCount()) != tc.count || !near(h.GetSampleSum(), tc.sum) {
				t.Errorf("count %d sum %v, want %d and %v", h.GetSampleCount(), h.GetSampleSum(), tc.count, tc.sum)
			}
			for _, b := range h.GetBucket() {
				full := int(b.GetCumulativeCount()) == tc.count
				if wantFull := b.GetUpperBound() >= tc.firstAbove*0.999; full != wantFull {
					t.Errorf("bucket le=%v holds %d of %d samples", b.GetUpperBound(), b.GetCumulativeCount(), tc.count)
				}
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, "a", &fakeSource{}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, "b", &fakeSource{}); err == nil || !strings.Contains(err.Error(), "failed to register the monitor's metrics") {
		t.Fatalf("second New on one registry = %v, want a registration error", err)
	}
	for i := range 2 {
		if err := runtimemetrics.Register(reg); err != nil {
			t.Fatalf("RegisterRuntime #%d: %v", i+1, err)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
