package monsim

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/testlog"
)

// refusedTCP reports whether a connection to addr is refused.
func refusedTCP(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	_ = c.Close()
	return false
}

// scrapeMetrics GETs the monitor's metrics and parses them.
func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + addr + MetricsPath)
	if err != nil {
		t.Fatalf("GET %s: %v", MetricsPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", MetricsPath, resp.StatusCode, err, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("GET %s: not the Prometheus text format: %v\n%s", MetricsPath, err, body)
	}
	return mfs
}

// sample is the value of the first series of name whose labels include the
// name=value pairs (a histogram's sample count); -1 when there is none.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
next:
	for _, m := range mfs[name].GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetricsServer(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.Tick = 20 * time.Millisecond
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	tm := startMonitor(t, cfg)
	if tm.srv.Registry() != reg {
		t.Fatal("Registry is not the configured registry")
	}
	addr := tm.srv.MetricsAddr()
	if addr == "" {
		t.Fatal("no metrics address with MetricsAddr set")
	}
	gid := tm.join(t, "x")
	// A beacon from an unknown gid fails.
	if _, err := tm.mon.Beacon(context.Background(), &mgrv1.BeaconRequest{Fsid: tm.current(t).GetFsid(), Gid: gid + 100, Name: "ghost"}); err == nil {
		t.Fatal("a beacon from an unknown gid was answered")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := tm.mon.WatchMap(ctx, &mgrv1.WatchMapRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	var mfs map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		mfs = scrapeMetrics(t, addr)
		if sample(mfs, "mgrplane_monitor_tick_duration_seconds") > 0 && sample(mfs, "mgrplane_monitor_watchers") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tick or no watcher counted: ticks %v watchers %v",
				sample(mfs, "mgrplane_monitor_tick_duration_seconds"), sample(mfs, "mgrplane_monitor_watchers"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	epoch := float64(tm.current(t).GetEpoch())
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mgrplane_monitor_leader", nil, 1},
		{"mgrplane_monitor_map_epoch", nil, epoch},
		{"mgrplane_monitor_beacons_total", []string{"result", "answered"}, 1},
		{"mgrplane_monitor_beacons_total", []string{"result", "failed"}, 1},
		{"mgrplane_monitor_beacons_total", []string{"result", "forwarded"}, 0},
		{"mgrplane_monitor_info", []string{"id", cfg.NodeID}, 1},
	}
	for _, c := range checks {
		if got := sample(mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Bootstrap, authenticate and the first beacon each committed a change.
	if n := sample(mfs, "mgrplane_monitor_raft_commit_duration_seconds"); n < 3 {
		t.Errorf("%v raft commits observed, want at least 3", n)
	}
	if n := sample(mfs, "mgrplane_monitor_raft_apply_duration_seconds"); n < 3 {
		t.Errorf("%v raft applies observed, want at least 3", n)
	}
	for _, n := range []string{"go_goroutines", "process_open_fds"} {
		if mfs[n] == nil {
			t.Errorf("%s missing: the runtime collectors are not on the registry", n)
		}
	}
	cancel()
	tm.stop(t)
	if !refusedTCP(addr) {
		t.Error("the metrics server still accepts connections after Run returned")
	}
}

func TestMetricsOffByDefault(t *testing.T) {
	tm := startMonitor(t, testConfig(t))
	if a := tm.srv.MetricsAddr(); a != "" {
		t.Errorf("MetricsAddr = %q with no MetricsAddr configured, want none", a)
	}
	if tm.srv.Registry() == nil {
		t.Error("no registry")
	}
}

func TestMetricsConfigValidate(t *testing.T) {
	tests := map[string]struct {
		change func(*Config)
		want   string
	}{
		"no port":       {change: func(c *Config) { c.MetricsAddr = "127.0.0.1" }, want: `metrics addr "127.0.0.1": must be host:port`},
		"same as gRPC":  {change: func(c *Config) { c.Addr, c.MetricsAddr = "127.0.0.1:7000", "127.0.0.1:7000" }, want: "must differ from the gRPC addr"},
		"port zero":     {change: func(c *Config) { c.MetricsAddr = "127.0.0.1:0" }},
		"all addresses": {change: func(c *Config) { c.MetricsAddr = ":9100" }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Insecure = true
			tc.change(&cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestMetricsListenFailure(t *testing.T) {
	busy := startMonitor(t, func() Config { c := testConfig(t); c.MetricsAddr = "127.0.0.1:0"; return c }())
	cfg := testConfig(t)
	cfg.MetricsAddr = busy.srv.MetricsAddr()
	if _, err := New(cfg, testlog.New(t)); err == nil || !strings.Contains(err.Error(), "failed to listen for metrics") {
		t.Fatalf("New on a taken metrics port = %v, want a listen error", err)
	}
}
