package standby

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mgrplane/mgrplane/services/standby/internal/montest"
)

// scrape GETs url and parses the Prometheus text it answers.
func scrape(t *testing.T, url string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, body := httpGet(t, url)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("GET %s: not the Prometheus text format: %v\n%s", url, err, body)
	}
	return resp.StatusCode, mfs
}

// gathered gathers reg directly.
func gathered(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	list, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range list {
		out[mf.GetName()] = mf
	}
	return out
}

// value is the value of the series of family name whose labels include
// labels (name=value pairs); ok is false when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
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
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestPrometheusModuleServesTheManagersMetrics(t *testing.T) {
	mon := montest.Start(t)
	regX, regY := prometheus.NewRegistry(), prometheus.NewRegistry()
	cfgX := testConfig(t, mon, "x")
	cfgX.Registry = regX
	x := start(t, cfgX, NewPrometheusModule(regX))
	waitActive(t, mon, x)
	cfgY := testConfig(t, mon, "y")
	cfgY.Registry = regY
	y := start(t, cfgY, NewPrometheusModule(regY))
	if x.Registry() != regX || y.Registry() != regY {
		t.Fatal("Registry is not the configured registry")
	}
	eventually(t, "y stands by", func() bool { return len(mon.Map().GetStandbys()) == 1 && y.GID() != 0 })

	url := "http://" + x.HTTPAddr() + "/prometheus/metrics"
	if code, _ := scrape(t, url); code != http.StatusServiceUnavailable {
		t.Errorf("GET %s before the module is enabled: %d, want 503", url, code)
	}
	mon.SetModules(PrometheusModule)
	eventually(t, "the prometheus module is published", func() bool {
		return mon.Map().GetServices()[PrometheusModule] == "http://"+x.HTTPAddr()+"/prometheus/"
	})
	resp, body := httpGet(t, mon.Map().GetServices()[PrometheusModule])
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="metrics"`) {
		t.Errorf("GET /prometheus/: %d %q, want a link to metrics", resp.StatusCode, body)
	}

	var mfs map[string]*dto.MetricFamily
	eventually(t, "x's metrics show the newest map with the module running", func() bool {
		var code int
		code, mfs = scrape(t, url)
		epoch, _ := value(mfs, "mgrplane_manager_map_epoch")
		running, _ := value(mfs, "mgrplane_manager_module_running", "module", PrometheusModule)
		return code == http.StatusOK && epoch == float64(mon.Map().GetEpoch()) && running == 1
	})
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mgrplane_manager_role", []string{"role", "active"}, 1},
		{"mgrplane_manager_role", []string{"role", "standby"}, 0},
		{"mgrplane_manager_serving", nil, 1},
		{"mgrplane_manager_gid", nil, float64(x.GID())},
		{"mgrplane_manager_map_active_gid", nil, float64(x.GID())},
		{"mgrplane_manager_map_standbys", nil, 1},
		{"mgrplane_manager_failovers_seen_total", nil, 0},
		{"mgrplane_manager_activations_total", nil, 1},
		{"mgrplane_manager_module_enabled", []string{"module", StatusModule}, 1},
		{"mgrplane_manager_module_enabled", []string{"module", PrometheusModule}, 1},
		{"mgrplane_manager_info", []string{"name", "x"}, 1},
	}
	for _, c := range checks {
		if got, ok := value(mfs, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n, _ := value(mfs, "mgrplane_manager_beacon_rtt_seconds"); n == 0 {
		t.Error("no beacon round trip observed")
	}
	for _, n := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if mfs[n] == nil {
			t.Errorf("%s missing: the runtime collectors are not on the registry", n)
		}
	}

	// Failover: x is told to stop, y takes over and counts the failover.
	if _, err := mon.Fail(x.GID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "y is active", func() bool { return y.Active() && mon.Map().GetActiveGid() == y.GID() })
	urlY := "http://" + y.HTTPAddr() + "/prometheus/metrics"
	eventually(t, "y's metrics show it active after one failover", func() bool {
		code, mfs := scrape(t, urlY)
		role, _ := value(mfs, "mgrplane_manager_role", "role", "active")
		failovers, _ := value(mfs, "mgrplane_manager_failovers_seen_total")
		gid, _ := value(mfs, "mgrplane_manager_map_active_gid")
		return code == http.StatusOK && role == 1 && failovers == 1 && gid == float64(y.GID())
	})
	// x no longer serves; its own registry says it stands by.
	eventually(t, "x's registry says standby", func() bool {
		mfs := gathered(t, regX)
		standby, _ := value(mfs, "mgrplane_manager_role", "role", "standby")
		serving, _ := value(mfs, "mgrplane_manager_serving")
		return standby == 1 && serving == 0
	})
}

func TestPrometheusModuleWithoutGatherer(t *testing.T) {
	m := NewPrometheusModule(nil)
	if m.Name() != PrometheusModule {
		t.Errorf("Name = %q", m.Name())
	}
	if err := m.CanRun(); err == nil || !strings.Contains(err.Error(), "nil gatherer") {
		t.Errorf("CanRun = %v, want an error naming the nil gatherer", err)
	}
}

func TestConfigRegistry(t *testing.T) {
	tests := map[string]struct {
		reg *prometheus.Registry
	}{
		"none: New makes one": {},
		"the process's own":   {reg: prometheus.NewRegistry()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Insecure = true
			cfg.Name = "x"
			cfg.Registry = tc.reg
			sb, err := New(cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if sb.Registry() == nil || (tc.reg != nil && sb.Registry() != tc.reg) {
				t.Fatalf("Registry = %p, want %p (or a new one when nil)", sb.Registry(), tc.reg)
			}
			if _, err := sb.Registry().Gather(); err != nil {
				t.Fatalf("Gather: %v", err)
			}
			// A second manager on the same registry is refused.
			cfg.Registry = sb.Registry()
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "failed to register the manager's metrics") {
				t.Errorf("a second New on the registry = %v, want a registration error", err)
			}
		})
	}
}
