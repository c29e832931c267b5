package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/testlog"
	"github.com/mgrplane/mgrplane/services/standby/internal/feed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a manager whose maps the test publishes.
type fakeSource struct {
	maps *feed.Feed[*mgrv1.MgrMap]
	log  hclog.Logger
}

func (s *fakeSource) Watch(ctx context.Context) <-chan *mgrv1.MgrMap { return s.maps.Watch(ctx) }
func (s *fakeSource) Name() string                                   { return "x" }
func (s *fakeSource) GID() uint64                                    { return 7 }
func (s *fakeSource) Logger() hclog.Logger                           { return s.log }

// fakeAdmin answers beacon ages and history from fields the test sets.
type fakeAdmin struct {
	mu      sync.Mutex
	ages    map[uint64]time.Duration
	history []*mgrv1.HistoryEntry
	err     error
}

func (a *fakeAdmin) ListBeacons(context.Context, *mgrv1.ListBeaconsRequest) (*mgrv1.ListBeaconsResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return nil, a.err
	}
	resp := &mgrv1.ListBeaconsResponse{}
	for gid, age := range a.ages {
		resp.Managers = append(resp.Managers, &mgrv1.ManagerBeacon{Gid: gid, Age: durationpb.New(age)})
	}
	return resp, nil
}

func (a *fakeAdmin) ListHistory(_ context.Context, req *mgrv1.ListHistoryRequest) (*mgrv1.ListHistoryResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return nil, a.err
	}
	resp := &mgrv1.ListHistoryResponse{}
	for _, e := range a.history {
		if e.GetEpoch() > req.GetSinceEpoch() {
			resp.Entries = append(resp.Entries, e)
		}
	}
	return resp, nil
}

func (a *fakeAdmin) add(epoch, gid uint64, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.history = append(a.history, &mgrv1.HistoryEntry{Epoch: epoch, ActiveGid: gid, ActiveName: name,
		Time: timestamppb.Now(), Cause: mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED, Reason: "promoted " + name})
}

// mapAt is a map at epoch with active x (gid 7), standby y (gid 8), and
// the dashboard enabled.
func mapAt(epoch uint64) *mgrv1.MgrMap {
	return &mgrv1.MgrMap{
		Epoch: epoch, Fsid: "f", ActiveGid: 7, ActiveName: "x", ActiveEpoch: 2, Available: true,
		ActiveAddrs: []string{"127.0.0.1:6800", "127.0.0.1:6880"}, ActiveChange: timestamppb.Now(),
		Standbys:         []*mgrv1.StandbyInfo{{Gid: 8, Name: "y"}},
		Modules:          []string{"dashboard"},
		AlwaysOnModules:  []string{"status"},
		AvailableModules: []*mgrv1.ModuleInfo{{Name: "dashboard", CanRun: true}, {Name: "status", CanRun: true}, {Name: "gpu", ErrorString: "no GPU"}},
		Services:         map[string]string{"status": "http://127.0.0.1:6880/status/", "dashboard": "http://127.0.0.1:6880/dashboard/"},
		Cause:            mgrv1.ChangeCause_CHANGE_CAUSE_MODULES, Reason: "dashboard enabled by client.admin",
	}
}

// harness runs a dashboard behind an HTTP test server until the test ends.
type harness struct {
	src   *fakeSource
	admin *fakeAdmin
	srv   *httptest.Server
	stop  func()
}

// testConfig refreshes only on maps: no tick fires within a test.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Refresh = MaxRefresh
	return cfg
}

func newHarness(t *testing.T, run bool) *harness {
	t.Helper()
	d, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{src: &fakeSource{maps: feed.New[*mgrv1.MgrMap](), log: testlog.New(t)},
		admin: &fakeAdmin{ages: map[uint64]time.Duration{7: 300 * time.Millisecond, 8: 1500 * time.Millisecond}}}
	mux := http.NewServeMux()
	for _, r := range d.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	h.stop = func() {}
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx, h.src, h.admin) }()
		var once sync.Once
		h.stop = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		}
		t.Cleanup(h.stop)
	}
	return h
}

// events reads the server-sent events of one stream.
type events struct {
	body io.ReadCloser
	r    *bufio.Reader
}

func (h *harness) openEvents(t *testing.T, ctx context.Context) *events {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	return &events{body: resp.Body, r: bufio.NewReader(resp.Body)}
}

// next returns the data of the next "state" event, or the read error.
func (e *events) next() (View, error) {
	var name, data string
	for {
		line, err := e.r.ReadString('\n')
		if err != nil {
			return View{}, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if name == "state" {
				var v View
				err := json.Unmarshal([]byte(data), &v)
				return v, err
			}
			name, data = "", ""
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestEventsCarryTheNewestViewThenEachNewMap(t *testing.T) {
	h := newHarness(t, true)
	h.admin.add(1, 0, "")
	h.admin.add(2, 7, "x")
	h.src.maps.Publish(mapAt(2))
	ev := h.openEvents(t, context.Background())
	v, err := ev.next()
	if err != nil {
		t.Fatal(err)
	}
	if v.Epoch != 2 || v.ServedBy != (Manager{Name: "x", GID: 7}) || v.Active == nil || v.Active.Name != "x" ||
		v.Active.GID != 7 || len(v.Active.Addrs) != 2 || !v.Active.Available || v.Cause != "modules" {
		t.Fatalf("first view %+v", v)
	}
	if v.Active.BeaconAge == nil || *v.Active.BeaconAge != 0.3 || len(v.Standbys) != 1 || v.Standbys[0].Name != "y" ||
		v.Standbys[0].BeaconAge == nil || *v.Standbys[0].BeaconAge != 1.5 {
		t.Fatalf("beacon ages: active %+v standbys %+v", v.Active, v.Standbys)
	}
	if len(v.Services) != 2 || v.Services[0].Module != "dashboard" || v.Services[1].Module != "status" {
		t.Fatalf("services %+v", v.Services)
	}
	if len(v.Failovers) != 1 || v.Failovers[0].Epoch != 2 || v.Failovers[0].From != "" || v.Failovers[0].To != "x" {
		t.Fatalf("failovers %+v", v.Failovers)
	}

	// A failover: y takes over at epoch 3; the open stream carries it.
	h.admin.add(3, 8, "y")
	m := mapAt(3)
	m.ActiveGid, m.ActiveName, m.Standbys = 8, "y", nil
	h.src.maps.Publish(m)
	v, err = ev.next()
	if err != nil {
		t.Fatal(err)
	}
	if v.Epoch != 3 || v.Active.Name != "y" || len(v.Standbys) != 0 || len(v.Failovers) != 2 ||
		v.Failovers[0].From != "x" || v.Failovers[0].To != "y" || v.Failovers[1].To != "x" {
		t.Fatalf("after failover: %+v", v)
	}
}

func TestEventsEndWhenTheDashboardStops(t *testing.T) {
	h := newHarness(t, true)
	h.src.maps.Publish(mapAt(2))
	ev := h.openEvents(t, context.Background())
	if _, err := ev.next(); err != nil {
		t.Fatal(err)
	}
	h.stop()
	if _, err := ev.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after stop: %v, want the stream to end", err)
	}
	// Then new requests are refused.
	resp, err := h.srv.Client().Get(h.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /events after stop: %s", resp.Status)
	}
}

func TestClientGoneEndsItsStream(t *testing.T) {
	h := newHarness(t, true)
	h.src.maps.Publish(mapAt(2))
	ctx, cancel := context.WithCancel(context.Background())
	ev := h.openEvents(t, ctx)
	if _, err := ev.next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := ev.next(); err == nil {
		t.Fatal("read after the client cancelled")
	}
	// goleak (TestMain) checks that the handler's goroutines ended.
}

func TestRequestsWhileNotRunning(t *testing.T) {
	h := newHarness(t, false)
	tests := map[string]struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		"events":     {path: "/events", wantStatus: http.StatusServiceUnavailable, wantBody: msgNotRunning},
		"state":      {path: "/state", wantStatus: http.StatusServiceUnavailable, wantBody: msgNotRunning},
		"page":       {path: "/", wantStatus: http.StatusOK, wantBody: `id="active-name"`},
		"script":     {path: "/static/app.js", wantStatus: http.StatusOK, wantBody: `new EventSource("events")`},
		"stylesheet": {path: "/static/style.css", wantStatus: http.StatusOK, wantBody: "--bg"},
		"no file":    {path: "/static/nope.js", wantStatus: http.StatusNotFound, wantBody: "not found"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp, err := h.srv.Client().Get(h.srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(b), tc.wantBody) {
				t.Fatalf("GET %s: %s %q, want %d with %q", tc.path, resp.Status, b, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestStateAnswersTheNewestView(t *testing.T) {
	h := newHarness(t, true)
	ev := h.openEvents(t, context.Background())
	h.src.maps.Publish(mapAt(5))
	if _, err := ev.next(); err != nil {
		t.Fatal(err)
	}
	resp, err := h.srv.Client().Get(h.srv.URL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v View
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Epoch != 5 || v.Active.Name != "x" {
		t.Fatalf("state %+v %v", v, err)
	}
}

func TestMonitorErrorIsShownAndAgesUnknown(t *testing.T) {
	h := newHarness(t, true)
	h.admin.err = errors.New("monitor unreachable")
	h.src.maps.Publish(mapAt(2))
	v, err := h.openEvents(t, context.Background()).next()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.MonitorError, "monitor unreachable") || v.Active.BeaconAge != nil || v.Standbys[0].BeaconAge != nil ||
		!v.BeaconsAt.IsZero() || v.Epoch != 2 || v.Active.Name != "x" {
		t.Fatalf("view %+v", v)
	}
}

func TestModules(t *testing.T) {
	got := modules(mapAt(1))
	want := []Module{
		{Name: "dashboard", State: "enabled", CanRun: true, Reported: true},
		{Name: "gpu", State: "disabled", CanRun: false, Error: "no GPU", Reported: true},
		{Name: "status", State: "always on", CanRun: true, Reported: true},
	}
	if len(got) != len(want) {
		t.Fatalf("modules %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("module %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestHistoryKeepsTheNewestChangesOfActive(t *testing.T) {
	entry := func(epoch, gid uint64, name string) *mgrv1.HistoryEntry {
		return &mgrv1.HistoryEntry{Epoch: epoch, ActiveGid: gid, ActiveName: name}
	}
	tests := map[string]struct {
		reads [][]*mgrv1.HistoryEntry
		max   int
		want  []string // from>to, newest first
	}{
		"first entry is the start, not a change": {
			reads: [][]*mgrv1.HistoryEntry{{entry(5, 1, "x"), entry(6, 1, "x"), entry(7, 2, "y")}},
			max:   10, want: []string{"x>y"},
		},
		"read in steps": {
			reads: [][]*mgrv1.HistoryEntry{{entry(1, 0, ""), entry(2, 1, "x")}, {entry(3, 1, "x"), entry(4, 0, "")}, {entry(5, 2, "y")}},
			max:   10, want: []string{">y", "x>", ">x"},
		},
		"bounded": {
			reads: [][]*mgrv1.HistoryEntry{{entry(1, 1, "a"), entry(2, 2, "b"), entry(3, 3, "c"), entry(4, 4, "d")}},
			max:   2, want: []string{"c>d", "b>c"},
		},
		"gap after trimming starts again": {
			reads: [][]*mgrv1.HistoryEntry{{entry(1, 1, "x"), entry(2, 2, "y")}, {entry(9, 3, "z"), entry(10, 1, "x")}},
			max:   10, want: []string{"z>x", "x>y"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Failovers = tc.max
			a := &fakeAdmin{}
			b := &builder{cfg: cfg, admin: a, log: testlog.New(t)}
			for _, read := range tc.reads {
				a.history = read
				if err := b.history(context.Background(), read[len(read)-1].GetEpoch()); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, f := range b.failovers {
				got = append(got, f.From+">"+f.To)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("failovers %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		edit func(*Config)
		want string
	}{
		"defaults":          {edit: func(*Config) {}},
		"refresh too short": {edit: func(c *Config) { c.Refresh = time.Millisecond }, want: "refresh 1ms: must be between 100ms and 1m0s"},
		"refresh too long":  {edit: func(c *Config) { c.Refresh = time.Hour }, want: "refresh 1h0m0s: must be between"},
		"no call timeout":   {edit: func(c *Config) { c.CallTimeout = 0 }, want: "call timeout 0s: must be above 0"},
		"no keepalive":      {edit: func(c *Config) { c.Keepalive = 0 }, want: "keepalive 0s: must be above 0"},
		"no failovers":      {edit: func(c *Config) { c.Failovers = 0 }, want: "failovers 0: must be between 1 and 100"},
		"too many":          {edit: func(c *Config) { c.Failovers = 101 }, want: "failovers 101: must be between 1 and 100"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if _, err := New(cfg); (err == nil) != (tc.want == "") {
				t.Fatalf("New: %v", err)
			}
		})
	}
}

// The page is one document: its stylesheet and script are in it, the
// script after the elements it looks up, and nothing refers to static/.
func TestPageIsOneDocument(t *testing.T) {
	h := newHarness(t, false)
	resp, err := h.srv.Client().Get(h.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	for _, want := range []string{"<style>\n", "--bg", "<script>\n", `new EventSource("events")`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{`href="static/`, `src="static/`} {
		if strings.Contains(page, bad) {
			t.Errorf("the page still loads %q", bad)
		}
	}
	if last, script := strings.LastIndex(page, `id="reason"`), strings.Index(page, "<script>"); script < last {
		t.Errorf("the script (at %d) comes before the element it renders last (at %d)", script, last)
	}
}

func TestInlineRefusesAPageItCannotInline(t *testing.T) {
	const html = `<head>` + styleTag + scriptTag + `</head><body></body>`
	tests := map[string]struct {
		html, css, js string
		want          string
	}{
		"no stylesheet tag": {html: `<head>` + scriptTag + `</head><body></body>`, css: "a{}", js: "x()", want: "has 0 of"},
		"two script tags":   {html: `<head>` + styleTag + scriptTag + scriptTag + `</head><body></body>`, css: "a{}", js: "x()", want: "has 2 of"},
		"no body end":       {html: `<head>` + styleTag + scriptTag + `</head><body>`, css: "a{}", js: "x()", want: "</body>"},
		"style ends early":  {html: html, css: "a{}</STYLE>", js: "x()", want: "style.css contains"},
		"script ends early": {html: html, css: "a{}", js: `s = "</script>"`, want: "app.js contains"},
		"missing file":      {html: html, css: "a{}", want: "missing a file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"assets/index.html": {Data: []byte(tc.html)},
				"assets/style.css":  {Data: []byte(tc.css)},
			}
			if tc.js != "" {
				fsys["assets/app.js"] = &fstest.MapFile{Data: []byte(tc.js)}
			}
			if _, err := inline(fsys); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("inline: %v, want an error with %q", err, tc.want)
			}
		})
	}
	fsys := fstest.MapFS{
		"assets/index.html": {Data: []byte(html)},
		"assets/style.css":  {Data: []byte("a{}")},
		"assets/app.js":     {Data: []byte("x()")},
	}
	got, err := inline(fsys)
	if want := "<head><style>\na{}</style></head><body><script>\nx()</script>\n</body>"; err != nil || string(got) != want {
		t.Fatalf("inline: %q %v, want %q", got, err, want)
	}
}
