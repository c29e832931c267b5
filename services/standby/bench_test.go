package standby

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/montest"
	"github.com/mgrplane/mgrplane/services/standby/internal/role"
)

// benchModule answers GET /bench/ while enabled.
type benchModule struct{}

func (benchModule) Name() string  { return "bench" }
func (benchModule) CanRun() error { return nil }
func (benchModule) Register(r Registrar) {
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
}
func (benchModule) Run(ctx context.Context, _ Host) error {
	<-ctx.Done()
	return nil
}

// benchManager runs a manager (warm, or cold-start as before warm standbys)
// with the bench module until the benchmark ends, logging nothing.
func benchManager(b *testing.B, mon *montest.Monitor, name string, cold bool) *running {
	b.Helper()
	cfg := testConfig(b, mon, name)
	cfg.Logger = nil
	sb, err := newStandby(cfg, cold, []Module{benchModule{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Standby: sb, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sb.Run(ctx) }()
	b.Cleanup(func() { _ = r.stop(b) })
	waitStandby(b, mon, r)
	return r
}

// waitStandby waits until r stands by in the fake's map, its newest beacon
// answered as a standby's: no answer to a beacon it sent while active is
// still on its way (one answered STALE would make it rejoin under a new
// gid).
func waitStandby(b *testing.B, mon *montest.Monitor, r *running) {
	b.Helper()
	eventually(b, r.cfg.Name+" stands by", func() bool {
		gid := r.GID()
		last, ok := lastBeacon(mon, gid)
		return !r.Active() && r.role.State() == role.StateStandby && gid != 0 && standbyIndex(mon.Map(), gid) >= 0 &&
			ok && !last.Req.GetAvailable() && last.Standing == mgrv1.Standing_STANDING_STANDBY && r.GID() == gid
	})
}

// benchClient makes a new connection per request (a cold-started server's
// listener is new at every activation) and follows no redirect.
func benchClient() *http.Client {
	return &http.Client{
		Timeout:       time.Second,
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// answers reports whether GET path on r answers 200 as the active at
// epoch (epoch 0: any).
func answers(c *http.Client, r *running, path string, epoch uint64) bool {
	addr := r.HTTPAddr()
	if addr == "" {
		return false
	}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK && (epoch == 0 || resp.Header.Get("Mgr-Active-Epoch") == strconv.FormatUint(epoch, 10))
}

// activation times one promotion of r: from the map naming it active to
// its first answer as active (GET /status/ answered 200 with the new
// active epoch); then it makes park the active again and waits for r to
// stand by (not timed).
func activation(b *testing.B, mon *montest.Monitor, c *http.Client, r *running, park uint64) time.Duration {
	b.Helper()
	start := time.Now()
	epoch, err := mon.MakeActive(r.GID())
	if err != nil {
		b.Fatal(err)
	}
	for !answers(c, r, "/status/", epoch) {
		if time.Since(start) > 10*time.Second {
			b.Fatalf("%s did not answer as active within 10s", r.cfg.Name)
		}
	}
	d := time.Since(start)
	if _, err := mon.MakeActive(park); err != nil {
		b.Fatal(err)
	}
	waitStandby(b, mon, r)
	return d
}

// BenchmarkActivation times the switch of a warm standby to active: from
// the map naming it active to its first answer as active, over HTTP on a
// new connection (ms_median, ms_p99). Its baseline, in the same
// iterations, is the cold start of the design before warm standbys: the
// server built, its modules registered and its listeners bound at
// activation (baseline_ms_median; x_baseline = ms_median /
// baseline_ms_median).
func BenchmarkActivation(b *testing.B) {
	mon := montest.Start(b)
	park := mon.AddStandby("park")
	if _, err := mon.MakeActive(park); err != nil {
		b.Fatal(err)
	}
	warm := benchManager(b, mon, "warm", false)
	cold := benchManager(b, mon, "cold", true)
	c := benchClient()
	var lat, base []time.Duration
	for b.Loop() {
		lat = append(lat, activation(b, mon, c, warm, park))
		base = append(base, activation(b, mon, c, cold, park))
	}
	med, baseMed := percentile(lat, 0.5), percentile(base, 0.5)
	b.ReportMetric(ms(med), "ms_median")
	b.ReportMetric(ms(percentile(lat, 0.99)), "ms_p99")
	b.ReportMetric(ms(baseMed), "baseline_ms_median")
	b.ReportMetric(float64(med)/float64(baseMed), "x_baseline")
}

// BenchmarkModuleEnable times a live enable on the active: from the map
// enabling the module to its first answer (GET /bench/ answered 200;
// ms_median, ms_p99; the target is a median under 50 ms), while a client
// polls GET /status/ throughout and counts the answers that were not 200
// (status_failures, of status_calls). Its baseline, in the same
// iterations, is what a manager that respawns to load a module costs at
// least (as Ceph's does): a cold activation with the module enabled, from
// the map naming the manager active to the module's first answer
// (baseline_ms_median; x_baseline = ms_median / baseline_ms_median).
func BenchmarkModuleEnable(b *testing.B) {
	mon := montest.Start(b)
	park := mon.AddStandby("park")
	if _, err := mon.MakeActive(park); err != nil {
		b.Fatal(err)
	}
	live := benchManager(b, mon, "live", false)
	cold := benchManager(b, mon, "cold", true)
	c := benchClient()
	promote := func(r *running) {
		b.Helper()
		epoch, err := mon.MakeActive(r.GID())
		if err != nil {
			b.Fatal(err)
		}
		eventually(b, r.cfg.Name+" answers as active", func() bool { return answers(c, r, "/status/", epoch) })
	}

	// The other module, polled while the live manager is active.
	var calls, failures atomic.Int64
	var polling atomic.Bool
	// inFlight is held across each poll, so that stopPolling returns once
	// no poll is on its way.
	var inFlight sync.Mutex
	stopPolling := func() {
		polling.Store(false)
		inFlight.Lock()
		inFlight.Unlock() //nolint:staticcheck // an empty critical section: waits for the poll in flight
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pc := benchClient()
		for ctx.Err() == nil {
			inFlight.Lock()
			if polling.Load() {
				calls.Add(1)
				if !answers(pc, live, "/status/", 0) {
					failures.Add(1)
				}
			}
			inFlight.Unlock()
			time.Sleep(200 * time.Microsecond)
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	var lat, base []time.Duration
	for b.Loop() {
		promote(live)
		polling.Store(true)
		start := time.Now()
		mon.SetModules("bench")
		for !answers(c, live, "/bench/", 0) {
			if time.Since(start) > 10*time.Second {
				b.Fatal("the module did not answer within 10s of its enable")
			}
		}
		lat = append(lat, time.Since(start))
		mon.SetModules()
		eventually(b, "the module is refused once disabled", func() bool { return !answers(c, live, "/bench/", 0) })
		stopPolling()

		// Baseline: the module is enabled, the manager (re)starts serving.
		mon.SetModules("bench")
		start = time.Now()
		if _, err := mon.MakeActive(cold.GID()); err != nil {
			b.Fatal(err)
		}
		for !answers(c, cold, "/bench/", 0) {
			if time.Since(start) > 10*time.Second {
				b.Fatal("the cold manager's module did not answer within 10s")
			}
		}
		base = append(base, time.Since(start))
		mon.SetModules()
		if _, err := mon.MakeActive(park); err != nil {
			b.Fatal(err)
		}
		waitStandby(b, mon, cold)
		waitStandby(b, mon, live)
	}
	med, baseMed := percentile(lat, 0.5), percentile(base, 0.5)
	b.ReportMetric(ms(med), "ms_median")
	b.ReportMetric(ms(percentile(lat, 0.99)), "ms_p99")
	b.ReportMetric(ms(baseMed), "baseline_ms_median")
	b.ReportMetric(float64(med)/float64(baseMed), "x_baseline")
	b.ReportMetric(float64(failures.Load()), "status_failures")
	b.ReportMetric(float64(calls.Load()), "status_calls")
}

// percentile returns the p-th percentile (0 < p <= 1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
