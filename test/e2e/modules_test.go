package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// counterAnswer is the JSON of GET /counter/ (examples/counter).
type counterAnswer struct {
	Manager  string `json:"manager"`
	Count    int64  `json:"count"`
	Step     int64  `json:"step"`
	Period   string `json:"period"`
	Greeting string `json:"greeting"`
	Pid      int    `json:"pid"`
}

// httpGet GETs url (following redirects) and returns the status and body.
func httpGet(url string) (int, string, error) {
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: testTLS.Clone()}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// activePid is the pid the active reports in its metadata.
func (c *cluster) activePid() string {
	c.t.Helper()
	for _, m := range c.metadata().Managers {
		if m.Active {
			return m.Metadata["pid"]
		}
	}
	c.t.Fatal("no active in mgrctl metadata")
	return ""
}

// waitCounter waits until GET /counter/ on the manager listening at
// httpAddr answers 200 and cond holds for its answer.
func waitCounter(t *testing.T, httpAddr, what string, cond func(counterAnswer) bool) counterAnswer {
	t.Helper()
	var a counterAnswer
	waitFor(t, what, func() (bool, string) {
		code, body, err := httpGet("https://" + httpAddr + "/counter/")
		if err != nil {
			return false, err.Error()
		}
		if code != http.StatusOK {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			return false, body
		}
		return cond(a), body
	})
	return a
}

// TestModulesLive: modules are enabled and disabled, and their options set,
// read and removed, with mgrctl; the active applies each change without a
// restart (its pid and gid stay), the other modules answering throughout.
// Bad inputs are refused with a clear error and change nothing.
func TestModulesLive(t *testing.T) {
	c := newCluster(t)
	c.startMonitor()
	first := c.startManager(bins.counter, "c1")
	st := c.waitActive("", 0)
	c.startManager(bins.counter, "c2")
	st = c.waitActive("", 1)
	if st.ActiveName != "c1" {
		t.Fatalf("active %s, want c1", st.ActiveName)
	}
	c.waitServing("c1")
	pid, gid := c.activePid(), st.ActiveGID

	// The example's module: enabled live, it counts and answers.
	out := c.mustMgrctl("module", "enable", "counter")
	if !regexp.MustCompile(`^enabled module counter; epoch \d+\n$`).MatchString(out) {
		t.Errorf("module enable counter = %q", out)
	}
	waitCounter(t, first.httpAddr, "the counter module to answer on the active", func(a counterAnswer) bool {
		return a.Manager == "c1" && a.Step == 1 && a.Greeting == "hello"
	})
	if u := c.serviceURL("counter"); !strings.HasSuffix(u, "/counter/") {
		t.Errorf("services lists counter at %q", u)
	}

	// Options: set, read, listed, applied live, removed.
	out = c.mustMgrctl("config", "set", "mgr/counter/step", "7")
	if !regexp.MustCompile(`^set mgr/counter/step to 7; epoch \d+\n$`).MatchString(out) {
		t.Errorf("config set = %q", out)
	}
	if out := c.mustMgrctl("config", "get", "mgr/counter/step"); out != "7\n" {
		t.Errorf("config get = %q, want 7", out)
	}
	c.mustMgrctl("config", "set", "mgr/counter/greeting", "hi")
	c.mustMgrctl("config", "set", "mgr/counter/period", "50ms")
	a := waitCounter(t, first.httpAddr, "the active to apply the options live", func(a counterAnswer) bool {
		return a.Step == 7 && a.Greeting == "hi" && a.Period == "50ms"
	})
	// The new period is in effect: the count moves by 7s, fast.
	waitCounter(t, first.httpAddr, "the count to move by the new step", func(b counterAnswer) bool {
		return b.Count >= a.Count+7*5 && b.Count%7 == a.Count%7
	})
	ls := c.mustMgrctl("config", "ls", "counter")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^mgr/counter/step\s+7\s+yes\s+int\s+1\s+\[1\.\.1000\]\s+added to the count every period$`),
		regexp.MustCompile(`(?m)^mgr/counter/greeting\s+hi\s+yes\s+string\s+hello\s+hello\|hi\|hey\s`),
		regexp.MustCompile(`(?m)^mgr/counter/period\s+50ms\s+yes\s+duration\s+1s\s+\[10ms\.\.1h\]\s`),
	} {
		if !want.MatchString(ls) {
			t.Errorf("config ls counter:\n%s\nwant a line matching %s", ls, want)
		}
	}
	if out := c.mustMgrctl("dump"); !regexp.MustCompile(`(?m)^module_config\s+mgr/counter/greeting=hi,mgr/counter/period=50ms,mgr/counter/step=7$`).MatchString(out) {
		t.Errorf("dump does not show the options set:\n%s", out)
	}
	var jsonOut struct {
		Options []struct {
			Module string `json:"module"`
			Value  string `json:"value"`
			Set    bool   `json:"set"`
		} `json:"options"`
	}
	c.mgrctlJSON(&jsonOut, "config", "ls")
	if len(jsonOut.Options) < 3 {
		t.Errorf("config ls -o json: %+v", jsonOut)
	}
	c.mustMgrctl("config", "rm", "mgr/counter/step")
	if out := c.mustMgrctl("config", "get", "mgr/counter/step"); out != "1\n" {
		t.Errorf("config get after rm = %q, want the default 1", out)
	}
	waitCounter(t, first.httpAddr, "the active to go back to the default step", func(a counterAnswer) bool { return a.Step == 1 })

	// Another module, enabled and disabled live while counter answers.
	c.mustMgrctl("module", "enable", "dashboard")
	waitFor(t, "the dashboard to answer on the active", func() (bool, string) {
		code, body, err := httpGet("https://" + first.httpAddr + "/dashboard/")
		return err == nil && code == http.StatusOK && strings.Contains(body, "<html"), fmt.Sprintf("%d %v", code, err)
	})
	c.mustMgrctl("module", "disable", "dashboard")
	waitFor(t, "the dashboard to be refused once disabled", func() (bool, string) {
		code, body, err := httpGet("https://" + first.httpAddr + "/dashboard/")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "module dashboard is not enabled"), body
	})
	waitCounter(t, first.httpAddr, "counter to answer still", func(counterAnswer) bool { return true })
	if u := c.serviceURL("dashboard"); u != "" {
		t.Errorf("services still lists the disabled dashboard at %s", u)
	}
	c.mustMgrctl("module", "disable", "counter")
	waitFor(t, "counter to be refused once disabled", func() (bool, string) {
		code, body, err := httpGet("https://" + first.httpAddr + "/counter/")
		return err == nil && code == http.StatusServiceUnavailable, body
	})
	// The always-on status module cannot be disabled.
	r := c.mgrctl("module", "disable", "status")
	if r.code != 1 || !strings.Contains(r.stderr, "FailedPrecondition") || !strings.Contains(r.stderr, "always on") {
		t.Errorf("module disable status: want exit 1 FailedPrecondition always on:\n%s", r)
	}

	// No restart: the same process, the same gid, all along.
	if got := c.activePid(); got != pid {
		t.Errorf("the active's pid changed from %s to %s", pid, got)
	}
	if st := c.stat(); st.ActiveGID != gid || st.ActiveName != "c1" {
		t.Errorf("the active changed from c1 (gid %d) to %s (gid %d)", gid, st.ActiveName, st.ActiveGID)
	}

	// Bad inputs: a clear error, and the epoch does not move.
	bad := map[string]struct {
		args   []string
		code   int
		status string // the gRPC code mgrctl names; "" for a usage error
		want   string
	}{
		"unknown module":  {[]string{"config", "set", "mgr/nosuch/step", "1"}, 1, "NotFound", "module nosuch is not reported by any manager"},
		"unknown option":  {[]string{"config", "set", "mgr/counter/speed", "1"}, 1, "NotFound", "module counter has no option speed (its options: step, period, greeting)"},
		"wrong type":      {[]string{"config", "set", "mgr/counter/step", "fast"}, 1, "InvalidArgument", `mgr/counter/step (int): value "fast" is not an int`},
		"out of range":    {[]string{"config", "set", "mgr/counter/step", "5000"}, 1, "InvalidArgument", "mgr/counter/step (int): value 5000 is above the maximum 1000"},
		"below minimum":   {[]string{"config", "set", "mgr/counter/period", "1ms"}, 1, "InvalidArgument", "value 1ms is below the minimum 10ms"},
		"not allowed":     {[]string{"config", "set", "mgr/counter/greeting", "yo"}, 1, "InvalidArgument", "is not one of the allowed values hello, hi, hey"},
		"get unknown":     {[]string{"config", "get", "mgr/counter/speed"}, 1, "NotFound", "module counter has no option speed"},
		"rm unknown":      {[]string{"config", "rm", "mgr/nosuch/x"}, 1, "NotFound", "module nosuch is not reported by any manager"},
		"enable unknown":  {[]string{"module", "enable", "nosuch"}, 1, "NotFound", "module nosuch is not reported by any manager"},
		"bad key":         {[]string{"config", "set", "counter/step", "1"}, 2, "", `KEY "counter/step": must be mgr/<module>/<option>`},
		"bad module name": {[]string{"config", "set", "mgr/Counter/step", "1"}, 1, "InvalidArgument", `module "Counter": must be 1 to 32 characters`},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			e0 := c.stat().Epoch
			r := c.mgrctl(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || !strings.HasPrefix(r.stderr, "mgrctl: "+tc.status) {
				t.Errorf("want exit %d, %s with %q:\n%s", tc.code, tc.status, tc.want, r)
			}
			if e := c.stat().Epoch; e != e0 {
				t.Errorf("a refused command moved the epoch from %d to %d", e0, e)
			}
		})
	}
}

// TestModuleCannotRun: a module whose managers report it cannot run is
// refused by `module enable` (saying why) unless --force; forced, it is in
// the map but does not run.
func TestModuleCannotRun(t *testing.T) {
	c := newCluster(t)
	c.startMonitor()
	m := c.startManager(bins.counter, "c1", "--counter-can-run=false")
	c.waitActive("", 0)
	c.waitServing("c1")
	waitFor(t, "module ls to show counter cannot run", func() (bool, string) {
		out := c.mustMgrctl("module", "ls")
		return regexp.MustCompile(`(?m)^counter\s+off\s+no\s+disabled on this host by --counter-can-run=false$`).MatchString(out), out
	})
	e0 := c.stat().Epoch
	r := c.mgrctl("module", "enable", "counter")
	if r.code != 1 || !strings.Contains(r.stderr, "FailedPrecondition: module cannot run: module counter reports it cannot run: disabled on this host by --counter-can-run=false (use --force to enable it anyway)") {
		t.Errorf("module enable of a module that cannot run: want exit 1 FailedPrecondition:\n%s", r)
	}
	if e := c.stat().Epoch; e != e0 {
		t.Errorf("the refused enable moved the epoch from %d to %d", e0, e)
	}
	c.mustMgrctl("module", "enable", "--force", "counter")
	if mods := c.dump().Modules; !containsStr(mods, "counter") {
		t.Errorf("forced, counter is not enabled in the map: %v", mods)
	}
	// Enabled but unable to run: its path is refused, not served.
	time.Sleep(300 * time.Millisecond)
	code, body, err := httpGet("https://" + m.httpAddr + "/counter/")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "module counter is not enabled") {
		t.Errorf("GET /counter/ of a module that cannot run = %d %q %v, want 503", code, body, err)
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestStandbyAnswers: a standby listens on its ports and answers HTTP with
// a 303 redirect to the same path on the active (or the 503 it is
// configured with), gRPC manager calls with Unavailable naming the active,
// and health NOT_SERVING for mgr.v1.ManagerService, which the active
// reports SERVING: a readiness probe routes to the active alone.
func TestStandbyAnswers(t *testing.T) {
	c := newCluster(t)
	c.startMonitor()
	a := c.startStandby("a")
	st := c.waitActive("", 0)
	b := c.startStandby("b")
	lb := c.startManager(bins.standby, "lb", "--standby-http-status", "503")
	st = c.waitActive("", 2)
	if st.ActiveName != "a" {
		t.Fatalf("active %s, want a", st.ActiveName)
	}
	c.waitServing("a")

	// 303 to the same path on the active, which answers it.
	waitFor(t, "b to redirect to a", func() (bool, string) {
		ok, desc := answersAsStandby(b.httpAddr)
		return ok && strings.Contains(desc, "303 Location \"https://"+a.httpAddr+"/status/\""), desc
	})
	code, body, err := httpGet("https://" + b.httpAddr + "/status/?x=1")
	if err != nil || code != http.StatusOK || !strings.Contains(body, `"name": "a"`) {
		t.Errorf("GET /status/ on b, following the redirect = %d %v\n%s", code, err, body)
	}
	// 503 for a load balancer, naming the active.
	waitFor(t, "lb to answer 503 naming a", func() (bool, string) {
		ok, desc := answersAsStandby(lb.httpAddr)
		return ok && strings.Contains(desc, ": 503 ") && strings.Contains(desc, "the active is a (gid "), desc
	})

	// gRPC: refused, naming the active and where it serves.
	r := grpcurlAs(t, "", b.grpcAddr, "mgr.v1.ManagerService/GetStatus")
	if r.code == 0 || !strings.Contains(r.stderr, "Unavailable") || !strings.Contains(r.stderr, "this manager is a standby; the active is a (gid") ||
		!strings.Contains(r.stderr, a.grpcAddr) {
		t.Errorf("GetStatus on a standby: want Unavailable naming a at %s:\n%s", a.grpcAddr, r)
	}
	health := func(addr string) string {
		r := grpcurlAs(t, "", "-d", `{"service":"mgr.v1.ManagerService"}`, addr, "grpc.health.v1.Health/Check")
		if r.code != 0 {
			t.Errorf("health check on %s:\n%s", addr, r)
		}
		return r.stdout
	}
	if out := health(b.grpcAddr); !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("standby health = %q, want NOT_SERVING", out)
	}
	if out := health(a.grpcAddr); !strings.Contains(out, `"SERVING"`) {
		t.Errorf("active health = %q, want SERVING", out)
	}

	// After a failover the roles swap on the same ports.
	c.mustMgrctl("fail", "a")
	next := c.waitActive("a", 2)
	c.waitServing(next.ActiveName)
	waitFor(t, "the old active to answer as a standby", func() (bool, string) { return answersAsStandby(a.httpAddr) })
	if out := health(a.grpcAddr); !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("old active's health after the failover = %q, want NOT_SERVING", out)
	}
	if out := health(c.standbys[next.ActiveName].grpcAddr); !strings.Contains(out, `"SERVING"`) {
		t.Errorf("new active's health = %q, want SERVING", out)
	}
}
