package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/creds"
)

// installTimeout bounds scripts/install-deps.sh when the test runs it.
const installTimeout = 5 * time.Minute

// findPrometheus returns the paths of promtool and prometheus (Debian's
// prometheus package). When either is missing it runs
// scripts/install-deps.sh (what `make deps` runs; CI runs it first), and
// skips the test, printing why, only when they are still missing.
func findPrometheus(t *testing.T) (promtool, prometheus string) {
	t.Helper()
	look := func() (string, string, []string) {
		var missing []string
		p1, err := exec.LookPath("promtool")
		if err != nil {
			missing = append(missing, "promtool")
		}
		p2, err := exec.LookPath("prometheus")
		if err != nil {
			missing = append(missing, "prometheus")
		}
		return p1, p2, missing
	}
	promtool, prometheus, missing := look()
	if len(missing) == 0 {
		return promtool, prometheus
	}
	t.Logf("%s not on PATH; running scripts/install-deps.sh (make deps)", strings.Join(missing, " and "))
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join("..", "..", "scripts", "install-deps.sh")).CombinedOutput()
	promtool, prometheus, missing = look()
	if len(missing) > 0 {
		t.Skipf("SKIP: %s not on PATH and `make deps` (scripts/install-deps.sh) could not install Debian's prometheus package (%v):\n%s",
			strings.Join(missing, " and "), err, out)
	}
	return promtool, prometheus
}

// promtoolCheck runs `promtool check metrics` on body and fails the test
// on any problem it reports.
func promtoolCheck(t *testing.T, promtool, what, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) != "" {
		t.Errorf("promtool check metrics on %s: %v\n%s", what, err, out.String())
	}
}

// promServer is a real Prometheus server run by the test.
type promServer struct {
	*proc
	addr string
}

// startPrometheus writes a config scraping every manager's
// /prometheus/metrics (job mgr, without following the standbys'
// redirects) and monsim's /metrics (job monsim) every 250 ms, and starts
// Prometheus on a free port with its storage in a temporary directory.
func startPrometheus(t *testing.T, c *cluster, bin, monsimMetrics string) *promServer {
	t.Helper()
	var mgrs []string
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range c.standbys {
			if !yield(n) {
				return
			}
		}
	}) {
		mgrs = append(mgrs, strconv.Quote(c.standbys[n].httpAddr))
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 250ms
  scrape_timeout: 200ms
scrape_configs:
  - job_name: mgr
    scheme: https
    tls_config: {ca_file: %[3]q}
    metrics_path: /prometheus/metrics
    follow_redirects: false
    static_configs:
      - targets: [%[1]s]
  - job_name: monsim
    scheme: https
    tls_config: {ca_file: %[3]q}
    static_configs:
      - targets: [%[2]q]
`, strings.Join(mgrs, ", "), monsimMetrics, filepath.Join(testCreds, creds.CACertFile))
	path := filepath.Join(c.dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{addr: freeAddr(t)}
	p.proc = startProc(t, c.dir, "prometheus", bin,
		"--config.file="+path,
		"--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+p.addr,
	)
	waitFor(t, "Prometheus to be ready", func() (bool, string) {
		if p.exited() {
			t.Fatalf("prometheus exited:\n%s", p.tail(logTail))
		}
		code, body, err := httpGet("http://" + p.addr + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	return p
}

// promSample is one series of an instant query's answer.
type promSample struct {
	labels map[string]string
	value  float64
}

// query runs an instant PromQL query through Prometheus's HTTP API.
func (p *promServer) query(q string) ([]promSample, error) {
	code, body, err := httpGet("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, fmt.Errorf("query %s: %d, not JSON: %w\n%s", q, code, err, body)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: %d %s %s (%s)", q, code, r.Status, r.Error, r.Data.ResultType)
	}
	out := make([]promSample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", q, s.Value[1], err)
		}
		out = append(out, promSample{labels: s.Metric, value: v})
	}
	return out, nil
}

// waitQuery polls q until cond holds for its answer.
func (p *promServer) waitQuery(t *testing.T, what, q string, cond func([]promSample) bool) []promSample {
	t.Helper()
	var got []promSample
	waitFor(t, what+" in Prometheus ("+q+")", func() (bool, string) {
		if p.exited() {
			t.Fatalf("prometheus exited:\n%s", p.tail(logTail))
		}
		var err error
		if got, err = p.query(q); err != nil {
			return false, err.Error()
		}
		return cond(got), fmt.Sprintf("%+v", got)
	})
	return got
}

// one reports whether samples is one series with a value satisfying ok.
func one(samples []promSample, ok func(float64) bool) bool {
	return len(samples) == 1 && ok(samples[0].value)
}

// The prometheus module and monsim's metrics, through the real binaries: the
// module is enabled live with mgrctl, both outputs pass `promtool check
// metrics`, and a real Prometheus server scraping every manager and monsim
// sees the active's map epoch; after `mgrctl fail` it sees the new active's
// metrics, with the failover counted. Disabling the module takes its
// metrics away, with no restart.
func TestPrometheusScrapesTheActiveAcrossAFailover(t *testing.T) {
	requireE2E(t)
	promtool, promBin := findPrometheus(t)
	monMetrics := freeAddr(t)
	c := newCluster(t, "--metrics-addr", monMetrics)
	st := c.start("a", "b")
	first := st.ActiveName
	pid := c.standbys[first].cmd.Process.Pid

	if !slices.Contains(c.dump().Modules, "prometheus") {
		if out := c.mustMgrctl("module", "enable", "prometheus"); !strings.Contains(out, "enabled module prometheus") {
			t.Fatalf("module enable printed %q", out)
		}
	}
	var metricsURL, body string
	waitFor(t, "the prometheus module of "+first+" to serve its metrics", func() (bool, string) {
		u := c.serviceURL("prometheus")
		if u == "" || c.byHTTPPort(u) != first {
			return false, fmt.Sprintf("prometheus URL %q", u)
		}
		metricsURL = u + "metrics"
		code, b, err := httpGet(metricsURL)
		if err != nil {
			return false, err.Error()
		}
		body = b
		return code == http.StatusOK, fmt.Sprintf("GET %s: %d", metricsURL, code)
	})
	if c.standbys[first].exited() || c.standbys[first].cmd.Process.Pid != pid {
		t.Fatalf("%s restarted when prometheus was enabled", first)
	}
	for _, want := range []string{"\nmgrplane_manager_map_epoch ", "\nmgrplane_manager_role{role=\"active\"} 1\n",
		"\nmgrplane_manager_module_running{module=\"prometheus\"} 1\n", "\nmgrplane_manager_beacon_rtt_seconds_count ", "\ngo_goroutines "} {
		if !strings.Contains(body, want) {
			t.Errorf("GET %s lacks %q:\n%s", metricsURL, strings.TrimSpace(want), body)
		}
	}
	promtoolCheck(t, promtool, metricsURL, body)

	monURL := "https://" + monMetrics + "/metrics"
	code, monBody, err := httpGet(monURL)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v", monURL, code, err)
	}
	for _, want := range []string{"\nmgrplane_monitor_map_epoch ", "\nmgrplane_monitor_leader 1\n", "\nmgrplane_monitor_beacons_total{result=\"answered\"} ",
		"\nmgrplane_monitor_watchers ", "\nmgrplane_monitor_raft_commit_duration_seconds_count ", "\nmgrplane_monitor_tick_duration_seconds_count "} {
		if !strings.Contains(monBody, want) {
			t.Errorf("GET %s lacks %q:\n%s", monURL, strings.TrimSpace(want), monBody)
		}
	}
	promtoolCheck(t, promtool, monURL, monBody)

	prom := startPrometheus(t, c, promBin, monMetrics)
	firstAddr := c.standbys[first].httpAddr
	epoch := float64(c.stat().Epoch)
	prom.waitQuery(t, fmt.Sprintf("the active %s's map epoch (at least %v)", first, epoch),
		fmt.Sprintf(`mgrplane_manager_map_epoch{job="mgr",instance=%q}`, firstAddr),
		func(s []promSample) bool { return one(s, func(v float64) bool { return v >= epoch }) })
	prom.waitQuery(t, "monsim leading at that epoch or later", `mgrplane_monitor_map_epoch{job="monsim"} and on() mgrplane_monitor_leader == 1`,
		func(s []promSample) bool { return one(s, func(v float64) bool { return v >= epoch }) })
	prom.waitQuery(t, "two managers watching the map on monsim", `mgrplane_monitor_watchers{job="monsim"}`,
		func(s []promSample) bool { return one(s, func(v float64) bool { return v >= 2 }) })
	// Only the active answers its metrics: the standby's target is down.
	prom.waitQuery(t, "only the active's target up", `up{job="mgr"} == 1`, func(s []promSample) bool {
		return len(s) == 1 && s[0].labels["instance"] == firstAddr
	})

	// Failover: the new active's metrics appear, with the failover counted.
	c.mustMgrctl("fail", first)
	st2 := c.waitActive(first, 1)
	second := st2.ActiveName
	secondAddr := c.standbys[second].httpAddr
	epoch2 := float64(st2.Epoch)
	prom.waitQuery(t, fmt.Sprintf("the new active %s's map epoch (at least %v)", second, epoch2),
		fmt.Sprintf(`mgrplane_manager_map_epoch{job="mgr",instance=%q}`, secondAddr),
		func(s []promSample) bool { return one(s, func(v float64) bool { return v >= epoch2 }) })
	prom.waitQuery(t, second+" active with the failover counted",
		fmt.Sprintf(`mgrplane_manager_role{role="active",instance=%q} == 1 and on(instance) mgrplane_manager_failovers_seen_total >= 1`, secondAddr),
		func(s []promSample) bool { return len(s) == 1 })
	prom.waitQuery(t, "only the new active's target up", `up{job="mgr"} == 1`, func(s []promSample) bool {
		return len(s) == 1 && s[0].labels["instance"] == secondAddr
	})
	prom.waitQuery(t, "a beacon round trip from the new active", fmt.Sprintf(`mgrplane_manager_beacon_rtt_seconds_count{instance=%q}`, secondAddr),
		func(s []promSample) bool { return one(s, func(v float64) bool { return v > 0 }) })

	// Disabled live: the metrics go away on the same process.
	pid2 := c.standbys[second].cmd.Process.Pid
	c.mustMgrctl("module", "disable", "prometheus")
	waitFor(t, "the prometheus service to leave the map and its metrics to stop", func() (bool, string) {
		if u := c.serviceURL("prometheus"); u != "" {
			return false, "still listed: " + u
		}
		code, _, err := httpGet("https://" + secondAddr + "/prometheus/metrics")
		return err == nil && code != http.StatusOK, fmt.Sprintf("GET: %d %v", code, err)
	})
	prom.waitQuery(t, "no manager target up", `up{job="mgr"} == 1`, func(s []promSample) bool { return len(s) == 0 })
	if c.standbys[second].exited() || c.standbys[second].cmd.Process.Pid != pid2 {
		t.Fatalf("%s restarted when prometheus was disabled", second)
	}
}
