package quorum

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Timings of the test harness. None is asserted: they bound waits.
const (
	// waitTimeout bounds every wait for a condition.
	waitTimeout = 30 * time.Second
	// pollInterval is the pause between two looks at a condition.
	pollInterval = 100 * time.Millisecond
	// cmdTimeout bounds one mgrctl invocation.
	cmdTimeout = 20 * time.Second
	// callTimeout is mgrctl's --timeout: the deadline of each call it makes.
	callTimeout = "3s"
	// exitTimeout bounds the wait for a signalled process to exit.
	exitTimeout = 15 * time.Second
	// logTail is how many lines of a process's log a failed test shows.
	logTail = 30
	// maxLine is the longest line a watcher may print (one map as JSON).
	maxLine = 1 << 20
)

// envKeep, when set, keeps the logs, data dirs and history of a test that
// passed too.
const envKeep = "MGRPLANE_QUORUM_KEEP"

// Short timings for the cluster under test; the defaults (beacon 1 s,
// grace 6 s, tick 1 s) would make every failover slow.
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

// proc is one running program; its stderr (and its stdout, unless a line
// handler reads it) goes to logPath.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited and its output is read
}

// spawn starts cmd as name, its output appended to logDir/<name>.log. When
// onLine is set it gets every stdout line as it comes, in order, from one
// goroutine. t.Cleanup kills the process and, when the test failed, logs
// the tail of its output.
func spawn(t *testing.T, logDir, name string, cmd *exec.Cmd, onLine func(line string)) *proc {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("failed to open the log of %s: %v", name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	cmd.Stderr = logf
	cmd.Env = cleanEnv()
	var stdout *bufio.Scanner
	if onLine == nil {
		cmd.Stdout = logf
	} else {
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatalf("failed to make the stdout pipe of %s: %v", name, err)
		}
		stdout = bufio.NewScanner(pipe)
		stdout.Buffer(make([]byte, 64<<10), maxLine)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if stdout != nil {
			for stdout.Scan() {
				onLine(stdout.Text())
			}
			if err := stdout.Err(); err != nil {
				onLine("!read error: " + err.Error())
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT) // a stopped process cannot die
		p.signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(exitTimeout):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("last lines of %s's log (%s):\n%s", name, logPath, p.tail(logTail))
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

// wait waits for the process to exit and returns its exit code (-1 when a
// signal killed it).
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
func (p *proc) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	return string(b)
}

// tail returns the last n lines of the process's log.
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

// runCmd runs cmd to completion (bounded by cmdTimeout through its context).
// It is safe to call from any goroutine: it reports trouble in the result
// (code -1) rather than through t.
func runCmd(ctx context.Context, cmd *exec.Cmd) result {
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: cmd.Args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		r.code = -1
		r.stderr += "\n(harness: " + err.Error() + ")"
	}
	if ctx.Err() != nil {
		r.code = -1
		r.stderr += "\n(harness: " + ctx.Err().Error() + ")"
	}
	return r
}

// waitFor polls cond until it holds; after waitTimeout the test fails with
// what and cond's last explanation.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", waitTimeout, what, detail)
		}
		time.Sleep(pollInterval)
	}
}

// monitor is one monsim of the quorum.
type monitor struct {
	n       int // 1-based
	id      string
	addr    string
	dataDir string
	proc    *proc // nil before the first start
	starts  int
	// up is true from a start until the test stops the monitor on purpose.
	up bool
	// join lists the members it asks for admission instead of --peers.
	join string
}

// running reports whether the monitor's process is up.
func (m *monitor) running() bool { return m.proc != nil && !m.proc.exited() }

// cluster is a quorum of monitors, standbys and clients, each a process of
// this test.
type cluster struct {
	t   *testing.T
	dir string
	net network
	// mons are the monitors by number (mons[0] unused).
	mons     []*monitor
	standbys map[string]*standbyProc
}

// standbyProc is a standby daemon and its starts.
type standbyProc struct {
	*proc
	name   string
	starts int
}

// quorumSize is how many monitors the quorum is bootstrapped with; one more
// is made for `quorum add`.
const quorumSize = 3

// newCluster makes the network and the monitors' addresses; nothing runs yet.
// The log directory is kept when the test fails, and its path logged.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	requireE2E(t)
	dir, err := os.MkdirTemp("", "mgrplane-quorum-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv(envKeep) != "" {
			t.Logf("logs and data dirs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	c := &cluster{t: t, dir: dir, net: newNetwork(t, quorumSize+1), mons: make([]*monitor, quorumSize+2), standbys: map[string]*standbyProc{}}
	for n := 1; n <= quorumSize+1; n++ {
		c.mons[n] = &monitor{n: n, id: "m" + strconv.Itoa(n), addr: c.net.monAddr(n), dataDir: filepath.Join(dir, "m"+strconv.Itoa(n))}
	}
	c.mons[quorumSize+1].join = c.monList()
	return c
}

// monList is the bootstrapped monitors' addresses, comma-separated.
func (c *cluster) monList() string {
	var a []string
	for n := 1; n <= quorumSize; n++ {
		a = append(a, c.mons[n].addr)
	}
	return strings.Join(a, ",")
}

// peers is the --peers value: the bootstrapped monitors.
func (c *cluster) peers() string {
	var a []string
	for n := 1; n <= quorumSize; n++ {
		a = append(a, c.mons[n].id+"="+c.mons[n].addr)
	}
	return strings.Join(a, ",")
}

// startMonitor starts (or restarts) monitor n on its address and data dir.
func (c *cluster) startMonitor(n int) {
	c.t.Helper()
	m := c.mons[n]
	if m.running() {
		c.t.Fatalf("%s is already running", m.id)
	}
	m.starts++
	args := []string{"--id", m.id, "--addr", m.addr, "--data-dir", m.dataDir, "--log-level", "debug"}
	if m.join != "" {
		args = append(args, "--join", m.join)
	} else {
		args = append(args, "--peers", c.peers())
	}
	args = append(args, monsimTimings...)
	name := fmt.Sprintf("%s-%d", m.id, m.starts)
	m.up = true
	m.proc = spawn(c.t, c.dir, name, c.net.command(context.Background(), m.id, bins.monsim, args...), nil)
}

// killMonitor kill -9s monitor n and waits for it to be gone.
func (c *cluster) killMonitor(n int) {
	c.t.Helper()
	c.mons[n].up = false
	c.mons[n].proc.kill9(c.t)
}

// alive fails the test when a monitor the test did not stop has exited (a
// crash), showing the end of its log.
func (c *cluster) alive() {
	c.t.Helper()
	for _, m := range c.mons[1:] {
		if m.up && m.proc.exited() {
			c.t.Fatalf("%s exited (code %d) without being stopped; the end of its log:\n%s", m.id, m.proc.cmd.ProcessState.ExitCode(), m.proc.tail(logTail))
		}
	}
}

// startStandby starts (or restarts) the standby name, given every
// bootstrapped monitor.
func (c *cluster) startStandby(name string) {
	c.t.Helper()
	s := c.standbys[name]
	if s == nil {
		s = &standbyProc{name: name}
		c.standbys[name] = s
	}
	s.starts++
	args := append([]string{"--name", name, "--monitor", c.monList(),
		"--grpc-addr", c.net.clientAddr(c.t), "--http-addr", c.net.clientAddr(c.t)}, standbyTimings...)
	s.proc = spawn(c.t, c.dir, fmt.Sprintf("standby-%s-%d", name, s.starts), c.net.command(context.Background(), "c", bins.standby, args...), nil)
}

// mgrctlCmd makes an mgrctl command for the clients' place, against monitors
// (comma-separated addresses).
func (c *cluster) mgrctlCmd(ctx context.Context, monitors string, args ...string) *exec.Cmd {
	return c.net.command(ctx, "c", bins.mgrctl, append([]string{"--monitor", monitors, "--timeout", callTimeout}, args...)...)
}

// mgrctlAt runs mgrctl against monitors to completion.
func (c *cluster) mgrctlAt(monitors string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return runCmd(ctx, c.mgrctlCmd(ctx, monitors, args...))
}

// mgrctl runs mgrctl against every bootstrapped monitor.
func (c *cluster) mgrctl(args ...string) result { return c.mgrctlAt(c.monList(), args...) }

// mustJSON runs `mgrctl -o json args` against monitors and decodes its
// output into v; the test fails unless it exits 0 with nothing on stderr.
func (c *cluster) mustJSON(v any, monitors string, args ...string) {
	c.t.Helper()
	r := c.mgrctlAt(monitors, append([]string{"-o", "json"}, args...)...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("want exit 0 and nothing on stderr:\n%s", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		c.t.Fatalf("%v printed something that is not JSON: %v\n%s", r.args, err, r.stdout)
	}
}

// tryJSON is mustJSON that reports failure instead of failing the test.
func (c *cluster) tryJSON(v any, monitors string, args ...string) (bool, string) {
	r := c.mgrctlAt(monitors, append([]string{"-o", "json"}, args...)...)
	if r.code != 0 {
		return false, r.String()
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		return false, fmt.Sprintf("not JSON: %v\n%s", err, r)
	}
	return true, r.stdout
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
}

// mapJSON is one map: `mgrctl -o json dump`, or one line of watch.
type mapJSON struct {
	Epoch      u64      `json:"epoch"`
	FSID       string   `json:"fsid"`
	ActiveGID  u64      `json:"active_gid"`
	ActiveName string   `json:"active_name"`
	Available  bool     `json:"available"`
	Modules    []string `json:"modules"`
	Standbys   []struct {
		GID  u64    `json:"gid"`
		Name string `json:"name"`
	} `json:"standbys"`
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

// memberJSON and quorumJSON are `mgrctl -o json quorum status`.
type memberJSON struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

type quorumJSON struct {
	Members      []memberJSON `json:"members"`
	LeaderID     string       `json:"leader_id"`
	Term         u64          `json:"term"`
	CommitIndex  u64          `json:"commit_index"`
	AppliedIndex u64          `json:"applied_index"`
	AnsweredBy   string       `json:"answered_by"`
	Epoch        u64          `json:"epoch"`
}

// status asks monitor n alone for the quorum status.
func (c *cluster) status(n int) (quorumJSON, bool, string) {
	var q quorumJSON
	ok, detail := c.tryJSON(&q, c.mons[n].addr, "quorum", "status")
	return q, ok, detail
}

// live are the numbers of the running monitors.
func (c *cluster) live() []int {
	var l []int
	for n := 1; n < len(c.mons); n++ {
		if c.mons[n].running() {
			l = append(l, n)
		}
	}
	return l
}

// byID is the number of the monitor with raft id id, 0 when none.
func (c *cluster) byID(id string) int {
	for n := 1; n < len(c.mons); n++ {
		if c.mons[n].id == id {
			return n
		}
	}
	return 0
}

// agreedLeader waits until every monitor in among answers quorum status
// with the same leader, one of among, and the same members, and returns
// the leader's number and the statuses.
func (c *cluster) agreedLeader(what string, among []int) (int, map[int]quorumJSON) {
	c.t.Helper()
	var leader int
	var all map[int]quorumJSON
	waitFor(c.t, what, func() (bool, string) {
		c.alive()
		all = map[int]quorumJSON{}
		var first quorumJSON
		for i, n := range among {
			q, ok, detail := c.status(n)
			if !ok {
				return false, detail
			}
			if q.AnsweredBy != c.mons[n].id {
				c.t.Fatalf("quorum status through %s was answered by %q", c.mons[n].id, q.AnsweredBy)
			}
			all[n] = q
			if i == 0 {
				first = q
				continue
			}
			if q.LeaderID != first.LeaderID || !slices.Equal(q.Members, first.Members) {
				return false, fmt.Sprintf("%s says leader %q members %v; %s says leader %q members %v",
					c.mons[among[0]].id, first.LeaderID, first.Members, c.mons[n].id, q.LeaderID, q.Members)
			}
		}
		leader = c.byID(first.LeaderID)
		if !slices.Contains(among, leader) {
			return false, fmt.Sprintf("leader %q is not among the monitors asked", first.LeaderID)
		}
		return true, ""
	})
	return leader, all
}

// caughtUp waits until every monitor in among answers with one leader and
// the same epoch and applied index, the writer being paused.
func (c *cluster) caughtUp(what string, w *writer, among []int) {
	c.t.Helper()
	w.pause()
	defer w.resume()
	waitFor(c.t, what, func() (bool, string) {
		c.alive()
		var first quorumJSON
		for i, n := range among {
			q, ok, detail := c.status(n)
			if !ok {
				return false, detail
			}
			if i == 0 {
				first = q
				continue
			}
			if q.LeaderID == "" || q.LeaderID != first.LeaderID || q.Epoch != first.Epoch || q.AppliedIndex != first.AppliedIndex {
				return false, fmt.Sprintf("%s: leader %q epoch %d applied %d; %s: leader %q epoch %d applied %d",
					c.mons[among[0]].id, first.LeaderID, first.Epoch, first.AppliedIndex, c.mons[n].id, q.LeaderID, q.Epoch, q.AppliedIndex)
			}
		}
		return true, ""
	})
}

// waitActive waits for an available active with standbys standing by,
// through any monitor, and returns that stat.
func (c *cluster) waitActive(standbys int) statJSON {
	c.t.Helper()
	var st statJSON
	waitFor(c.t, fmt.Sprintf("an available active with %d standbys", standbys), func() (bool, string) {
		c.alive()
		st = statJSON{}
		ok, detail := c.tryJSON(&st, c.monList(), "stat")
		return ok && st.ActiveGID != 0 && st.Available && st.NumStandbys == standbys, detail
	})
	return st
}

// dump returns the current map through any monitor.
func (c *cluster) dump() mapJSON {
	c.t.Helper()
	var m mapJSON
	c.mustJSON(&m, c.monList(), "dump")
	return m
}

// others are the numbers in among except n.
func others(among []int, n int) []int {
	return slices.DeleteFunc(slices.Clone(among), func(x int) bool { return x == n })
}
