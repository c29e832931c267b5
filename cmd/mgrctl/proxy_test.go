package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
)

// fakeManager is an HTTPS server with the managers' certificate that
// answers every path with its name, or redirects like a standby.
func fakeManager(t *testing.T, name string, redirectTo string) *httptest.Server {
	t.Helper()
	// httptest puts its own certificate first unless one is given.
	cert, err := tls.LoadX509KeyPair(filepath.Join(testCreds, creds.MgrCertFile), filepath.Join(testCreds, creds.MgrKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirectTo != "" {
			http.Redirect(w, r, redirectTo+r.URL.RequestURI(), http.StatusSeeOther)
			return
		}
		w.Header().Set("Mgr-Active-Epoch", "7")
		fmt.Fprintf(w, "%s %s %s", name, r.URL.RequestURI(), r.Header.Get("X-Forwarded-Host"))
	}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// withActive appends a map naming name (gid) active at base, available as asked.
func (f *fake) withActive(name string, gid uint64, base string, available bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.maps[len(f.maps)-1]
	m := nextMap(last, mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED, "promoted "+name)
	m.ActiveName, m.ActiveGid, m.Available = name, gid, available
	m.Services = map[string]string{"status": base + "/status/"}
	f.maps = append(f.maps, m)
}

// proxyGet GETs url through a client trusting the test CA, without
// following redirects.
func proxyGet(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	tc, err := creds.ClientTLS(testCreds)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// mgrctl proxy follows the map: it forwards to the active, moves to the
// next one after a failover (the watch resumed on a restarted monitor),
// answers 503 while no active is available, and points a standby's
// redirect back at itself.
func TestProxyFollowsTheActive(t *testing.T) {
	a, b := fakeManager(t, "a", ""), fakeManager(t, "b", "")
	f := newFake(t)
	f.withActive("a", 3, a.URL, true)
	addr, srv := startFake(t, f, "")
	listen := deadAddr(t)
	_, errOut, _, done := startWatch(t, "--monitor", addr, "proxy", "--listen", listen)
	base := "https://" + listen

	var code int
	var body string
	waitFor(t, "the proxy to forward to a", func() bool {
		code, _, body = proxyGet(t, base+"/status/?x=1")
		return code == http.StatusOK
	})
	if want := "a /status/?x=1 " + listen; body != want {
		t.Errorf("GET through the proxy = %q, want %q", body, want)
	}

	// Failover: the monitor restarts with b active; the watch resumes.
	srv.Stop()
	f.withActive("b", 4, b.URL, true)
	_, srv = startFake(t, f, addr)
	waitFor(t, "the proxy to forward to b", func() bool {
		_, _, body = proxyGet(t, base+"/dashboard/")
		return strings.HasPrefix(body, "b /dashboard/")
	})

	// No available active: 503, try again.
	srv.Stop()
	f.withActive("b", 4, b.URL, false)
	_, srv = startFake(t, f, addr)
	var hdr http.Header
	waitFor(t, "the proxy to answer 503", func() bool {
		code, hdr, body = proxyGet(t, base+"/status/")
		return code == http.StatusServiceUnavailable
	})
	if hdr.Get("Retry-After") != "1" || !strings.Contains(body, "no available active manager") {
		t.Errorf("503 with Retry-After %q and body %q", hdr.Get("Retry-After"), body)
	}

	// A manager demoted under the request redirects to the new active's
	// address; the proxy sends the client back to itself, same path.
	c := fakeManager(t, "c", "https://10.9.9.9:6880")
	srv.Stop()
	f.withActive("c", 5, c.URL, true)
	_, srv = startFake(t, f, addr)
	waitFor(t, "the proxy to forward to c", func() bool {
		code, hdr, _ = proxyGet(t, base+"/status/?q=2")
		return code == http.StatusSeeOther
	})
	if loc := hdr.Get("Location"); loc != "/status/?q=2" {
		t.Errorf("Location through the proxy = %q, want /status/?q=2", loc)
	}
	select {
	case err := <-done:
		t.Fatalf("proxy ended: %v\n%s", err, errOut.String())
	default:
	}
}

func TestProxyRefusals(t *testing.T) {
	f := newFake(t)
	addr, _ := startFake(t, f, "")
	tests := map[string]struct {
		args []string
		want string
	}{
		"listen without a port": {[]string{"--monitor", addr, "proxy", "--listen", "nowhere"}, `proxy: --listen "nowhere": must be host:port`},
		"extra argument":        {[]string{"--monitor", addr, "proxy", "x"}, `proxy: unexpected argument "x"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, errOut, err := runCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error()+errOut, tc.want) {
				t.Fatalf("mgrctl %v = %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
}

// A proxy started before any monitor answers 503 and keeps trying, then
// forwards once a monitor comes up.
func TestProxyWaitsForAMonitor(t *testing.T) {
	a := fakeManager(t, "a", "")
	addr := deadAddr(t)
	listen := deadAddr(t)
	startWatch(t, "--monitor", addr, "proxy", "--listen", listen)
	waitFor(t, "the proxy to answer 503", func() bool {
		code, _, _ := proxyGet(t, "https://"+listen+"/status/")
		return code == http.StatusServiceUnavailable
	})
	f := newFake(t)
	f.withActive("a", 3, a.URL, true)
	startFake(t, f, addr)
	waitFor(t, "the proxy to forward to a", func() bool {
		_, _, body := proxyGet(t, "https://"+listen+"/status/")
		return strings.HasPrefix(body, "a /status/")
	})
}
