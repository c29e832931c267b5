package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/mgrplane/mgrplane/internal/creds"
)

// browserCallTimeout bounds one call to the browser.
const browserCallTimeout = 30 * time.Second

// chromiumNames are the browser binaries looked for on PATH, Debian's first.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"}

// findChromium returns the path of a Chromium binary, or skips the test
// saying why (scripts/install-deps.sh installs Debian's chromium).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skipf("no Chromium on PATH (looked for %s); run `make deps` (scripts/install-deps.sh) to install Debian's chromium",
		strings.Join(chromiumNames, ", "))
	return ""
}

// artifactDir is where screenshots go: $MGRPLANE_ARTIFACTS when set, else
// a directory of the test (printed in the log).
func artifactDir(t *testing.T, fallback string) string {
	t.Helper()
	dir := os.Getenv("MGRPLANE_ARTIFACTS")
	if dir == "" {
		dir = fallback
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("failed to make the artifact directory: %v", err)
	}
	return dir
}

// mgrSPKI is the base64 SHA-256 of the managers' certificate's public key.
func mgrSPKI(t *testing.T) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(testCreds, creds.MgrCertFile), filepath.Join(testCreds, creds.MgrKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// newBrowser starts headless Chromium for the test; t.Cleanup stops it.
func newBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root
		chromedp.WindowSize(1280, 1000),
		// The managers serve HTTPS with a certificate of the test's own CA,
		// which Chromium does not know. Rather than ignore every
		// certificate error, it is told to accept exactly the key of the
		// managers' certificate (SPKI SHA-256), for this browser only.
		chromedp.Flag("ignore-certificate-errors-spki-list", mgrSPKI(t)),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// The first call starts the browser, which lives as long as its
	// context: no timeout on it (browser calls each get their own).
	ctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("failed to start %s: %v", chromium, err)
	}
	pl := &pageLog{}
	if err := chromedp.Listen(ctx, pl.record); err != nil {
		t.Fatalf("failed to listen to the page's events: %v", err)
	}
	return context.WithValue(ctx, pageLogKey{}, pl)
}

// pageLog keeps the page's uncaught exceptions and console errors, the
// newest maxPageLog, for the message of a failed wait.
type pageLog struct {
	mu    sync.Mutex
	lines []string
}

type pageLogKey struct{}

const maxPageLog = 20

// record runs in the browser's event loop: it only appends.
func (l *pageLog) record(ev any) {
	var line string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		line = fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, d.Text)
		if d.Exception != nil {
			line += " " + d.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeWarning {
			return
		}
		parts := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			parts = append(parts, string(a.Value)+a.Description)
		}
		line = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
	default:
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > maxPageLog {
		l.lines = l.lines[len(l.lines)-maxPageLog:]
	}
}

// pageLogOf returns what the page of ctx logged, or "(nothing)".
func pageLogOf(ctx context.Context) string {
	l, _ := ctx.Value(pageLogKey{}).(*pageLog)
	if l == nil {
		return "(not recorded)"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return "(nothing)"
	}
	return strings.Join(l.lines, "; ")
}

// browse runs one action on the browser with a bounded wait.
func browse[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, browserCallTimeout)
	defer cancel()
	return chromedp.Run(cctx, a)
}

// serviceURL is the URL `mgrctl services` lists for module, or "".
func (c *cluster) serviceURL(module string) string {
	c.t.Helper()
	for _, line := range strings.Split(c.mustMgrctl("services"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == module {
			return f[1]
		}
	}
	return ""
}

// waitDashboard waits until the map publishes the dashboard on the active
// named name and the URL answers 200; it returns the URL.
func (c *cluster) waitDashboard(name string) string {
	c.t.Helper()
	var url string
	waitFor(c.t, "the dashboard of "+name+" in mgrctl services", func() (bool, string) {
		url = c.serviceURL("dashboard")
		if url == "" || c.byHTTPPort(url) != name {
			return false, fmt.Sprintf("dashboard URL %q", url)
		}
		resp, err := httpsGet(c.t, url)
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("GET %s: %s", url, resp.Status)
	})
	return url
}

// pageState is what the test reads off the page.
type pageState struct {
	Active   string   `json:"active"`
	Epoch    uint64   `json:"epoch"`
	ServedBy string   `json:"servedBy"`
	Standbys []string `json:"standbys"`
	Ages     []string `json:"ages"`
	From     []string `json:"from"`
	To       []string `json:"to"`
	Link     string   `json:"link"`
	Marker   bool     `json:"marker"`
}

// readPage is JS returning a pageState from the rendered DOM (what a user
// sees), not from the data behind it.
const readPage = `(() => {
  const text = (id) => document.getElementById(id).textContent;
  const col = (id, i) => [...document.querySelectorAll('#' + id + ' tr')].map(r => r.children[i].textContent);
  return {
    active: text('active-name'),
    epoch: Number(text('epoch')) || 0,
    servedBy: text('served-by'),
    standbys: col('standbys', 0),
    ages: col('standbys', 4),
    from: col('failovers', 2),
    to: col('failovers', 3),
    link: text('link'),
    marker: window.mgrplaneMarker === true,
  };
})()`

// waitPage polls the page until cond holds, and returns what it read.
func waitPage(t *testing.T, ctx context.Context, what string, cond func(pageState) bool) pageState {
	t.Helper()
	var ps pageState
	waitForExplained(t, "the page to show "+what, func() (bool, string) {
		var err error
		if ps, err = browse(ctx, chromedp.Evaluate[pageState](readPage)); err != nil {
			return false, err.Error()
		}
		return cond(ps), fmt.Sprintf("%+v", ps)
	}, func() string { return browserReport(ctx) })
	return ps
}

// browserReport says what the page loaded, the state of its event stream,
// and what it logged: for the message of a wait that failed.
func browserReport(ctx context.Context) string {
	diag, err := browse(ctx, chromedp.Evaluate[string](pageDiagnostics))
	if err != nil {
		diag = "(" + err.Error() + ")"
	}
	return fmt.Sprintf("browser: %s; page log: %s", diag, pageLogOf(ctx))
}

// pageShows polls the page until cond holds or timeout passes.
func pageShows(ctx context.Context, cond func(pageState) bool, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ps, err := browse(ctx, chromedp.Evaluate[pageState](readPage)); err == nil && cond(ps) {
			return true
		}
	}
	return false
}

// pageDiagnostics is what the page loaded (resource, status, ms) and the
// state of its event stream (0 connecting, 1 open, 2 closed).
const pageDiagnostics = `JSON.stringify({
  resources: performance.getEntriesByType("resource").map(e => [e.name, e.responseStatus, Math.round(e.duration)]),
  stream: typeof source === "undefined" ? "no EventSource" : source.readyState,
  link: document.getElementById("link") ? document.getElementById("link").textContent : "no #link",
})`

func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	// Quality 100 makes a PNG.
	png, err := browse(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("failed to save the screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}

// The dashboard, enabled live, shows the active and the epoch in a real
// browser, follows a map change without a reload, and after the active is
// killed the page on the new active shows the new active at a newer epoch
// with the failover listed.
func TestDashboardInABrowserAcrossAFailover(t *testing.T) {
	c := newCluster(t)
	chromium := findChromium(t)
	art := artifactDir(t, filepath.Join(c.dir, "artifacts"))
	t.Logf("artifacts: %s", art)

	st := c.start("a", "b")
	first := st.ActiveName
	pid := c.standbys[first].cmd.Process.Pid
	out := c.mustMgrctl("module", "enable", "dashboard")
	if !strings.Contains(out, "enabled module dashboard") {
		t.Fatalf("module enable printed %q", out)
	}
	url := c.waitDashboard(first)

	ctx := newBrowser(t, chromium)
	if _, err := browse(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	epoch := uint64(c.stat().Epoch)
	ps := waitPage(t, ctx, fmt.Sprintf("active %s at epoch %d or later", first, epoch), func(p pageState) bool {
		return p.Active == first && p.Epoch >= epoch && strings.HasPrefix(p.ServedBy, first+" ") && len(p.Standbys) == 1 &&
			strings.HasSuffix(p.Ages[0], " ago") && p.Link == "live"
	})
	// Enabling did not restart the manager.
	if c.standbys[first].exited() || c.standbys[first].cmd.Process.Pid != pid {
		t.Fatalf("%s restarted when the dashboard was enabled", first)
	}

	// Live: a standby joins; the open page shows it without a reload (the
	// marker set on the page survives only if the page is not reloaded).
	if _, err := browse(ctx, chromedp.Evaluate[bool](`window.mgrplaneMarker = true`)); err != nil {
		t.Fatal(err)
	}
	c.startStandby("c")
	c.waitActive("", 2)
	before := ps.Epoch
	ps = waitPage(t, ctx, "standby c, without a reload", func(p pageState) bool {
		return p.Marker && p.Epoch > before && len(p.Standbys) == 2 && (p.Standbys[0] == "c" || p.Standbys[1] == "c")
	})
	screenshot(t, ctx, filepath.Join(art, "dashboard-before-failover.png"))

	// Failover: kill -9 the active; open the page on the new active.
	c.standbys[first].kill9(t)
	st = c.waitActive(first, 1)
	second := st.ActiveName
	url = c.waitDashboard(second)
	if _, err := browse(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	old := ps.Epoch
	afterFailover := func(p pageState) bool {
		if p.Active != second || p.Epoch <= old || !strings.HasPrefix(p.ServedBy, second+" ") || len(p.From) == 0 {
			return false
		}
		return p.From[0] == first && p.To[0] == second
	}
	what := fmt.Sprintf("active %s at an epoch after %d, and the failover from %s", second, old, first)
	if !pageShows(ctx, afterFailover, 10*time.Second) {
		// Seen once in CI under load: the page loaded but its event stream
		// never opened (the page makes it again after 5 s). Say what the
		// browser had, and give the page its chance.
		t.Logf("the page on %s is not live after 10 s; %s", second, browserReport(ctx))
	}
	ps = waitPage(t, ctx, what, afterFailover)
	screenshot(t, ctx, filepath.Join(art, "dashboard-after-failover.png"))
	t.Logf("the page on %s shows active %s at epoch %d (was %s at %d)", second, ps.Active, ps.Epoch, first, old)

	// Disabled live: the open page loses its stream, the URL answers 503,
	// and the manager did not restart.
	pid = c.standbys[second].cmd.Process.Pid
	c.mustMgrctl("module", "disable", "dashboard")
	waitPage(t, ctx, "its stream lost after the disable", func(p pageState) bool { return p.Link != "live" })
	waitFor(t, "the dashboard URL to answer 503", func() (bool, string) {
		resp, err := httpsGet(t, url)
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable, "GET " + url + ": " + resp.Status
	})
	if c.standbys[second].exited() || c.standbys[second].cmd.Process.Pid != pid {
		t.Fatalf("%s restarted when the dashboard was disabled", second)
	}
}
