package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/creds"
)

// Timings of the test harness. None is asserted: they bound waits.
const (
	// waitTimeout bounds every wait for a condition.
	waitTimeout = 20 * time.Second
	// pollInterval is the pause between two looks at a condition.
	pollInterval = 100 * time.Millisecond
	// cmdTimeout bounds one mgrctl or grpcurl invocation.
	cmdTimeout = 30 * time.Second
	// exitTimeout bounds the wait for a signalled process to exit.
	exitTimeout = 15 * time.Second
	// logTail is how many lines of a process's log a failed test shows.
	logTail = 40
)

// Short timings for the cluster under test; the defaults (beacon 1 s,
// grace 6 s, tick 1 s) would make every failover test slow.
var (
	monsimTimings  = []string{"--beacon-period", "100ms", "--fence-timeout", "600ms", "--grace", "1500ms", "--tick", "100ms"}
	standbyTimings = []string{"--beacon-period", "100ms", "--reconnect-min", "50ms", "--reconnect-max", "500ms"}
)

// requireE2E skips the test with -short (TestMain then built nothing).
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() || bins.monsim == "" {
		t.Skip("end-to-end test: skipped with -short")
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("failed to close the probe listener: %v", err)
	}
	return addr
}

// cleanEnv is the test's environment without MGRPLANE_* variables, so that
// only the flags the test passes configure the programs, except
// MGRPLANE_CREDS: every program uses the package's creds dir.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MGRPLANE_") {
			env = append(env, kv)
		}
	}
	return append(env, "MGRPLANE_CREDS="+testCreds)
}

// clientTLS trusts the package's CA, for HTTPS to the managers.
func clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	return testTLS.Clone()
}

// httpsGet GETs url trusting the package's CA, without keeping the connection.
func httpsGet(t *testing.T, url string) (*http.Response, error) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: clientTLS(t)}
	defer tr.CloseIdleConnections()
	return (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
}

// token signs a call token for entity with its key in the package's keyring.
func token(t *testing.T, entity string) string {
	t.Helper()
	es, err := creds.ReadKeyring(filepath.Join(testCreds, creds.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := creds.Find(es, entity)
	if !ok {
		t.Fatalf("entity %s is not in the test keyring", entity)
	}
	tok, err := creds.MakeToken(e.Name, e.Key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// grpcurlAs runs grpcurl over TLS (trusting the package's CA) with a token
// for entity ("" sends none).
func grpcurlAs(t *testing.T, entity string, args ...string) result {
	t.Helper()
	pre := []string{"-cacert", filepath.Join(testCreds, creds.CACertFile)}
	if entity != "" {
		pre = append(pre, "-H", creds.TokenMetadata+": "+token(t, entity))
	}
	return grpcurl(t, append(pre, args...)...)
}

// proc is one running program; its stderr (and, unless outPath is set, its
// stdout) goes to logPath.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	outPath string        // stdout, when kept apart from the log
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// startProc starts bin with args, its output in logDir/<name>.log. t.Cleanup kills it and, when the test
// failed, logs the tail of its output.
func startProc(t *testing.T, logDir, name, bin string, args ...string) *proc {
	t.Helper()
	return spawn(t, filepath.Join(logDir, name+".log"), "", name, bin, args...)
}

// spawn starts bin with args, stderr appended to logPath and stdout to
// outPath (or logPath when outPath is empty).
func spawn(t *testing.T, logPath, outPath, name, bin string, args ...string) *proc {
	t.Helper()
	open := func(path string) *os.File {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatalf("failed to open the output of %s: %v", name, err)
		}
		return f
	}
	logf := open(logPath)
	defer logf.Close() // the child holds its own descriptors
	fmt.Fprintf(logf, "=== %s %s\n", filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if outPath != "" {
		outf := open(outPath)
		defer outf.Close()
		cmd.Stdout = outf
	}
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, outPath: outPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(exitTimeout):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("last lines of %s's output (%s):\n%s", name, logPath, p.tail(logTail))
		}
	})
	return p
}

// signal sends sig unless the process has already exited.
func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its exit code (-1 when it
// was killed by a signal).
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		t.Fatalf("%s (pid %d) did not exit within %v", p.name, p.cmd.Process.Pid, exitTimeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	p.wait(t)
}

// log returns everything the process wrote to its log.
func (p *proc) log() string { return readFile(p.logPath) }

// out returns what the process wrote on stdout when it is kept apart.
func (p *proc) out() string { return readFile(p.outPath) }

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return string(b)
}

// tail returns the last n lines the process wrote.
func (p *proc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// result is what a command-line program printed and how it exited.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runCmd runs bin with args to completion (bounded by cmdTimeout).
func runCmd(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: append([]string{filepath.Base(bin)}, args...), stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("failed to run %s: %v", bin, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %v:\n%s", r.args, cmdTimeout, r)
	}
	return r
}

// grpcurl runs `go tool grpcurl` with args.
func grpcurl(t *testing.T, args ...string) result {
	t.Helper()
	r := runCmd(t, bins.grpcurl, args...)
	r.args[0] = "go tool grpcurl"
	return r
}

// waitFor polls cond until it holds; after waitTimeout the test fails with
// what and cond's last explanation.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	waitForExplained(t, what, cond, nil)
}

// waitForExplained is waitFor whose failure message also carries
// explain's text, when explain is not nil (it runs only then).
func waitForExplained(t *testing.T, what string, cond func() (bool, string), explain func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if explain != nil {
				detail += "; " + explain()
			}
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", waitTimeout, what, detail)
		}
		time.Sleep(pollInterval)
	}
}

// cluster is one monsim and its standbys, each a process of this test.
type cluster struct {
	t       *testing.T
	dir     string // logs and the monitor's data dir
	monAddr string
	monArgs []string
	mon     *proc
	starts  int // how many times monsim was started
	// standbys by name: the process and its listen addresses.
	standbys map[string]*standbyProc
}

// standbyProc is a standby daemon and where it serves when active.
type standbyProc struct {
	*proc
	grpcAddr, httpAddr string
}

// newCluster makes a cluster directory and a monitor address; nothing runs yet.
func newCluster(t *testing.T, monExtra ...string) *cluster {
	t.Helper()
	requireE2E(t)
	c := &cluster{t: t, dir: t.TempDir(), monAddr: freeAddr(t), standbys: map[string]*standbyProc{}}
	c.monArgs = append([]string{"--addr", c.monAddr, "--data-dir", filepath.Join(c.dir, "monsim")}, monsimTimings...)
	c.monArgs = append(c.monArgs, monExtra...)
	return c
}

// startMonitor starts (or restarts) monsim on the cluster's address and data
// dir and waits until `mgrctl stat` answers.
func (c *cluster) startMonitor() {
	c.t.Helper()
	c.starts++
	name := "monsim"
	if c.starts > 1 {
		name = fmt.Sprintf("monsim-%d", c.starts) // its own log
	}
	c.mon = startProc(c.t, c.dir, name, bins.monsim, c.monArgs...)
	waitFor(c.t, "monsim to answer mgrctl stat", func() (bool, string) {
		if c.mon.exited() {
			c.t.Fatalf("monsim exited:\n%s", c.mon.tail(logTail))
		}
		r := c.mgrctl("stat")
		return r.code == 0, r.String()
	})
}

// startStandby starts a standby daemon named name on fresh ports, with
// extra flags after the harness's.
func (c *cluster) startStandby(name string, extra ...string) *standbyProc {
	c.t.Helper()
	return c.startManager(bins.standby, name, extra...)
}

// startManager starts bin (the standby daemon, or a program embedding the
// library with its flags) as the manager name on fresh ports, with extra
// flags.
func (c *cluster) startManager(bin, name string, extra ...string) *standbyProc {
	c.t.Helper()
	return c.launchManager(bin, name, name, freeAddr(c.t), freeAddr(c.t), extra...)
}

// restartStandby starts the standby daemon name again on old's ports (its
// log under logName), as a supervisor restarts a crashed one.
func (c *cluster) restartStandby(name, logName string, old *standbyProc) *standbyProc {
	c.t.Helper()
	return c.launchManager(bins.standby, name, logName, old.grpcAddr, old.httpAddr)
}

func (c *cluster) launchManager(bin, name, logName, grpcAddr, httpAddr string, extra ...string) *standbyProc {
	c.t.Helper()
	s := &standbyProc{grpcAddr: grpcAddr, httpAddr: httpAddr}
	args := append([]string{"--name", name, "--monitor", c.monAddr, "--grpc-addr", s.grpcAddr, "--http-addr", s.httpAddr}, standbyTimings...)
	if bin == bins.counter {
		args = []string{"--name", name, "--monitor", c.monAddr, "--grpc-addr", s.grpcAddr, "--http-addr", s.httpAddr, "--beacon-period", "100ms"}
	}
	s.proc = startProc(c.t, c.dir, logName, bin, append(args, extra...)...)
	c.standbys[name] = s
	return s
}

// start starts the monitor and the named standbys and waits for an
// available active with every other one standing by.
func (c *cluster) start(names ...string) statJSON {
	c.t.Helper()
	c.startMonitor()
	for _, n := range names {
		c.startStandby(n)
	}
	return c.waitActive("", len(names)-1)
}

// waitActive waits for an available active that is not notName, with
// standbys standing by, and returns that stat.
func (c *cluster) waitActive(notName string, standbys int) statJSON {
	c.t.Helper()
	var st statJSON
	waitFor(c.t, fmt.Sprintf("an available active other than %q with %d standbys", notName, standbys), func() (bool, string) {
		var r result
		st, r = c.tryStat()
		return r.code == 0 && st.ActiveGID != 0 && st.Available && st.ActiveName != notName && st.NumStandbys == standbys, r.String()
	})
	return st
}

// startWatch starts `mgrctl watch args` in the background; its stdout is
// kept apart from its log.
func (c *cluster) startWatch(name string, args ...string) *proc {
	c.t.Helper()
	return spawn(c.t, filepath.Join(c.dir, name+".log"), filepath.Join(c.dir, name+".out"), name, bins.mgrctl,
		append([]string{"--monitor", c.monAddr, "watch"}, args...)...)
}

// watchEpochs parses the epochs of watch's table lines.
func watchEpochs(t *testing.T, out string) []uint64 {
	t.Helper()
	var epochs []uint64
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "epoch" {
			t.Fatalf("watch printed %q, want lines starting with \"epoch N\"", l)
		}
		e, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("watch printed %q: %v", l, err)
		}
		epochs = append(epochs, e)
	}
	return epochs
}

// mgrctl runs mgrctl against the cluster's monitor.
func (c *cluster) mgrctl(args ...string) result {
	c.t.Helper()
	return runCmd(c.t, bins.mgrctl, append([]string{"--monitor", c.monAddr, "--timeout", "5s"}, args...)...)
}

// mustMgrctl runs mgrctl and fails the test unless it exits 0.
func (c *cluster) mustMgrctl(args ...string) string {
	c.t.Helper()
	r := c.mgrctl(args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("want exit 0 and nothing on stderr:\n%s", r)
	}
	return r.stdout
}

// mgrctlJSON runs `mgrctl -o json args` and decodes its output into v.
func (c *cluster) mgrctlJSON(v any, args ...string) {
	c.t.Helper()
	out := c.mustMgrctl(append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("mgrctl -o json %s printed something that is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// tryStat runs `mgrctl -o json stat`; the stat is zero unless it exited 0.
func (c *cluster) tryStat() (statJSON, result) {
	c.t.Helper()
	r := c.mgrctl("-o", "json", "stat")
	var st statJSON
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			c.t.Fatalf("mgrctl -o json stat printed something that is not JSON: %v\n%s", err, r.stdout)
		}
	}
	return st, r
}

func (c *cluster) stat() statJSON {
	c.t.Helper()
	var st statJSON
	c.mgrctlJSON(&st, "stat")
	return st
}

func (c *cluster) dump(args ...string) mapJSON {
	c.t.Helper()
	var m mapJSON
	c.mgrctlJSON(&m, append([]string{"dump"}, args...)...)
	return m
}

func (c *cluster) history(args ...string) historyJSON {
	c.t.Helper()
	var h historyJSON
	c.mgrctlJSON(&h, append([]string{"history"}, args...)...)
	return h
}

func (c *cluster) metadata(args ...string) metadataJSON {
	c.t.Helper()
	var m metadataJSON
	c.mgrctlJSON(&m, append([]string{"metadata"}, args...)...)
	return m
}

// statusURL is the URL of the status service in the map (`mgrctl services`),
// read from the table a user sees.
func (c *cluster) statusURL() string {
	c.t.Helper()
	out := c.mustMgrctl("services")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "status" {
			return f[1]
		}
	}
	return ""
}

// byHTTPPort names the standby whose HTTP listen address has the port of url.
func (c *cluster) byHTTPPort(url string) string {
	for n, s := range c.standbys {
		if _, port, _ := net.SplitHostPort(s.httpAddr); port != "" && strings.Contains(url, ":"+port+"/") {
			return n
		}
	}
	return ""
}

// waitServing waits until the active's status URL in `mgrctl services`
// answers 200 with a body naming name, and returns the answer.
func (c *cluster) waitServing(name string) statusAnswer {
	c.t.Helper()
	var a statusAnswer
	waitFor(c.t, name+" to serve its status URL", func() (bool, string) {
		u := c.statusURL()
		if u == "" {
			return false, "no status service in the map"
		}
		var err error
		a, err = getStatus(u)
		if err != nil {
			return false, err.Error()
		}
		return a.code == http.StatusOK && a.body.Name == name, fmt.Sprintf("GET %s: %d %+v", u, a.code, a.body)
	})
	return a
}

// statusAnswer is an answer of GET /status/.
type statusAnswer struct {
	code        int
	activeEpoch string // the Mgr-Active-Epoch header
	body        statusBody
	raw         string
}

// statusBody is the JSON of GET /status/.
type statusBody struct {
	GID         uint64   `json:"gid"`
	Name        string   `json:"name"`
	Epoch       uint64   `json:"epoch"`
	ActiveEpoch uint64   `json:"active_epoch"`
	Modules     []string `json:"modules"`
	Map         struct {
		Epoch      u64    `json:"epoch"`
		ActiveName string `json:"activeName"`
	} `json:"map"`
}

// getStatus GETs url without keeping the connection.
func getStatus(url string) (statusAnswer, error) {
	tc, err := creds.ClientTLS(testCreds)
	if err != nil {
		return statusAnswer{}, err
	}
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tc}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return statusAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return statusAnswer{}, err
	}
	a := statusAnswer{code: resp.StatusCode, activeEpoch: resp.Header.Get("Mgr-Active-Epoch"), raw: string(raw)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			return a, fmt.Errorf("GET %s: body is not the status JSON: %w\n%s", url, err, raw)
		}
	}
	return a, nil
}

// u64 is a uint64 in protojson, which writes it as a string.
type u64 uint64

func (u *u64) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	if err != nil {
		return fmt.Errorf("not a uint64: %s", b)
	}
	*u = u64(n)
	return nil
}

// statJSON is `mgrctl -o json stat`.
type statJSON struct {
	Epoch       u64    `json:"epoch"`
	Available   bool   `json:"available"`
	ActiveName  string `json:"active_name"`
	ActiveGID   u64    `json:"active_gid"`
	NumStandbys int    `json:"num_standbys"`
	FSID        string `json:"fsid"`
	Down        bool   `json:"down"`
}

// mapJSON is `mgrctl -o json dump`.
type mapJSON struct {
	Epoch           u64               `json:"epoch"`
	FSID            string            `json:"fsid"`
	ActiveGID       u64               `json:"active_gid"`
	ActiveName      string            `json:"active_name"`
	ActiveAddrs     []string          `json:"active_addrs"`
	Available       bool              `json:"available"`
	ActiveEpoch     u64               `json:"active_epoch"`
	Standbys        []standbyJSON     `json:"standbys"`
	Modules         []string          `json:"modules"`
	AlwaysOnModules []string          `json:"always_on_modules"`
	Services        map[string]string `json:"services"`
	Down            bool              `json:"down"`
	Cause           string            `json:"cause"`
	Reason          string            `json:"reason"`
}

type standbyJSON struct {
	GID  u64    `json:"gid"`
	Name string `json:"name"`
}

// gids are every gid the map names.
func (m mapJSON) gids() []uint64 {
	var g []uint64
	if m.ActiveGID != 0 {
		g = append(g, uint64(m.ActiveGID))
	}
	for _, s := range m.Standbys {
		g = append(g, uint64(s.GID))
	}
	return g
}

// historyJSON is `mgrctl -o json history`.
type historyJSON struct {
	Entries []struct {
		Epoch      u64    `json:"epoch"`
		Cause      string `json:"cause"`
		Reason     string `json:"reason"`
		ActiveGID  u64    `json:"active_gid"`
		ActiveName string `json:"active_name"`
	} `json:"entries"`
	OldestEpoch u64 `json:"oldest_epoch"`
	NewestEpoch u64 `json:"newest_epoch"`
}

// metadataJSON is `mgrctl -o json metadata`.
type metadataJSON struct {
	Managers []struct {
		Name     string            `json:"name"`
		GID      u64               `json:"gid"`
		Active   bool              `json:"active"`
		Metadata map[string]string `json:"metadata"`
	} `json:"managers"`
}

// refused reports whether a TCP connection to addr is refused.
func refused(addr string) (bool, string) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = conn.Close()
		return false, addr + " accepted a connection"
	}
	return errors.Is(err, syscall.ECONNREFUSED), err.Error()
}

// answersAsStandby reports whether the manager whose HTTP listener is addr
// answers as a standby: GET /status/ is redirected (303 or 307) or refused
// (503), without the Mgr-Active-Epoch header an active's answers carry.
func answersAsStandby(addr string) (bool, string) {
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: testTLS.Clone()}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get("https://" + addr + "/status/")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	desc := fmt.Sprintf("GET /status/ on %s: %d Location %q Mgr-Active-Epoch %q %q", addr, resp.StatusCode,
		resp.Header.Get("Location"), resp.Header.Get("Mgr-Active-Epoch"), body)
	switch resp.StatusCode {
	case http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusServiceUnavailable:
		return resp.Header.Get("Mgr-Active-Epoch") == "", desc
	}
	return false, desc
}
