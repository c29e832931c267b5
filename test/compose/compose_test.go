package compose

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/chaos"
	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/internal/testlog"
)

// Bounds of the test's waits.
const (
	// dockerTimeout bounds one docker or compose command (up included).
	dockerTimeout = 90 * time.Second
	// settleTimeout bounds the wait for one active serving after a fault:
	// a silent active costs its 6 s grace plus a tick, a monitor leader
	// loss an election on top.
	settleTimeout = 30 * time.Second
	// ctlTimeout is mgrctl's --timeout for each call to a monitor.
	ctlTimeout = "3s"
	// quietWindow is how long, once settled, the prober must see answers
	// as active from the map's active alone.
	quietWindow = 400 * time.Millisecond
)

var (
	monitors = []string{"mon1", "mon2", "mon3"}
	managers = []string{"a", "b", "c"}
)

// cluster is one compose project of the test.
type cluster struct {
	t       *testing.T
	compose []string // the compose command: docker compose, or docker-compose
	root    string   // the repository: docker-compose.yml and scripts/
	project string
	env     []string // the environment of compose commands (ports, image)
	mgrctl  string
	// creds is the creds dir copied out of the creds volume, as a user
	// does for mgrctl on the host (docker cp).
	creds string
	// proxyURL is /status/ through the service mgr-proxy (mgrctl proxy).
	proxyURL string
	// proxyTLS trusts the cluster CA.
	proxyTLS *tls.Config
	monAddrs map[string]string // monitor service -> host address
	targets  []chaos.Target
	prober   *chaos.Prober
	changes  []string // modules enabled by acknowledged writes, in order
	cut      string   // the monitor cut off the network, tried last; "" when none
	watch    *watcher
}

func TestComposeClusterSurvivesFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("compose end-to-end test: skipped with -short")
	}
	composeCmd, reason := findCompose()
	if composeCmd == nil {
		t.Skip(reason)
	}
	c := newCluster(t, composeCmd)
	start := time.Now()
	c.up()
	c.settle("up", 3)
	c.startWatch("")
	c.write("up")

	// 1. docker kill the active manager's container: the monitor sees its
	// connection close and nothing listening, and promotes at once.
	active := c.stat(c.monList(c.cut)).GetActiveName()
	c.docker("kill", c.container("mgr-"+active))
	c.settle("kill the active "+active, 2)
	if got := c.stat(c.monList(c.cut)).GetActiveName(); got == active {
		t.Fatalf("after docker kill of %s's container it is still the active", active)
	}
	c.write("kill")
	c.composeRun("start", "mgr-"+active)
	c.settle("restart the killed "+active, 3)

	// 2. Cut the monitor leader off the network: the other two elect a
	// leader, the managers find them, and writes go on.
	leader := c.leader("")
	c.startWatch(leader)
	network := c.project + "_default"
	leaderCtr := c.container(leader)
	c.docker("network", "disconnect", network, leaderCtr)
	c.cut = leader
	c.waitLeaderOtherThan(leader)
	c.settle("disconnect the monitor leader "+leader, 3)
	c.write("disconnect")
	c.docker("network", "connect", "--alias", leader, network, leaderCtr)
	c.waitMonitorCaughtUp(leader)
	c.cut = ""

	// 3. Restart a monitor (the current leader): its data survives in its
	// volume, the epochs go on.
	leader = c.leader("")
	c.composeRun("restart", "--timeout", "5", leader)
	c.waitMonitorCaughtUp(leader)
	c.settle("restart the monitor leader "+leader, 3)
	c.write("restart")

	// 4. A rolling upgrade: recreate the standbys' containers one by one.
	for _, m := range managers {
		c.composeRun("up", "-d", "--no-deps", "--force-recreate", "mgr-"+m)
		c.settle("recreate mgr-"+m, 3)
		c.write("recreate-" + m)
	}
	c.checkHistory()
	t.Logf("compose cluster: four faults survived in %v", time.Since(start).Round(time.Millisecond))
}

// findCompose returns the compose command to use, or nil and why none.
func findCompose() ([]string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, "no docker on PATH: the compose test needs a Docker engine"
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("no Docker engine answers (docker version: %v: %s)", err, bytes.TrimSpace(out))
	}
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, ""
	}
	if p, err := exec.LookPath("docker-compose"); err == nil && exec.CommandContext(ctx, p, "version").Run() == nil {
		return []string{p}, ""
	}
	return nil, "neither `docker compose` (v2 plugin) nor docker-compose (v1) is installed"
}

func newCluster(t *testing.T, composeCmd []string) *cluster {
	t.Helper()
	ctx := context.Background()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	project := "mgrplanetest" + hex.EncodeToString(suffix)
	image := "mgrplane:" + project
	c := &cluster{t: t, compose: composeCmd, root: root, project: project, monAddrs: map[string]string{}}

	// The image of this tree, under a tag of this run, and mgrctl from the
	// same build.
	binDir := t.TempDir()
	build := exec.CommandContext(ctx, filepath.Join(root, "scripts", "images.sh"))
	build.Dir = root
	build.Env = append(os.Environ(), "IMAGE="+image, "BIN_OUT="+binDir)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/images.sh: %v\n%s", err, out)
	} else {
		t.Logf("built %s:\n%s", image, out)
	}
	bins, err := chaos.BinariesIn(binDir)
	if err != nil {
		t.Fatal(err)
	}
	c.mgrctl = bins.Mgrctl
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", image).Run() })

	ports := freePorts(t, 10)
	c.env = append(os.Environ(), "MGRPLANE_IMAGE="+image, fmt.Sprintf("MGRPLANE_PORT_PROXY=%d", ports[9]))
	c.proxyURL = fmt.Sprintf("https://127.0.0.1:%d/status/", ports[9])
	for i, mon := range monitors {
		c.env = append(c.env, fmt.Sprintf("MGRPLANE_PORT_%s=%d", strings.ToUpper(mon), ports[i]))
		c.monAddrs[mon] = fmt.Sprintf("127.0.0.1:%d", ports[i])
	}
	for i, m := range managers {
		g, h := ports[3+2*i], ports[4+2*i]
		c.env = append(c.env,
			fmt.Sprintf("MGRPLANE_PORT_MGR_%s_GRPC=%d", strings.ToUpper(m), g),
			fmt.Sprintf("MGRPLANE_PORT_MGR_%s_HTTP=%d", strings.ToUpper(m), h))
		c.targets = append(c.targets, chaos.Target{Name: m, GRPCAddr: fmt.Sprintf("127.0.0.1:%d", g), HTTPAddr: fmt.Sprintf("127.0.0.1:%d", h)})
	}
	t.Cleanup(c.down)
	return c
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

// up starts the project and the prober of the managers' host ports.
func (c *cluster) up() {
	c.composeRun("up", "-d")
	// The bootstrap service made the credentials in the creds volume; copy
	// them out as the README says, and trust its CA.
	out, err := c.composeOut("ps", "-aq", "creds")
	if err != nil || strings.TrimSpace(string(out)) == "" {
		c.t.Fatalf("compose ps -aq creds: %q, %v", out, err)
	}
	c.creds = filepath.Join(c.t.TempDir(), "creds")
	c.docker("cp", strings.TrimSpace(string(out))+":/etc/mgrplane/creds", c.creds)
	tc, err := creds.ClientTLS(c.creds)
	if err != nil {
		c.t.Fatalf("the creds copied out of the volume: %v", err)
	}
	for i := range c.targets {
		c.targets[i].TLS = tc
	}
	c.proxyTLS = tc
	ctx, cancel := context.WithCancel(context.Background())
	c.prober = chaos.NewProber(c.targets, 500*time.Millisecond, 20*time.Millisecond, testlog.New(c.t).Named("prober"))
	done := make(chan error, 1)
	go func() { done <- c.prober.Run(ctx) }()
	c.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			c.t.Errorf("prober: %v", err)
		}
		if o := chaos.FindOverlaps(c.prober.Answers(0)); len(o) > 0 {
			c.t.Errorf("%d overlaps: two managers answered as active at once: %+v", len(o), o)
		}
		c.t.Logf("prober: %+v", c.prober.Counts())
	})
}

// down removes the project, its volumes and network; on failure it first
// logs the containers' output.
func (c *cluster) down() {
	if c.t.Failed() {
		if out, err := c.composeOut("logs", "--no-color", "--tail", "60"); err == nil {
			c.t.Logf("compose logs:\n%s", out)
		}
		if os.Getenv("MGRPLANE_COMPOSE_KEEP") == "1" {
			c.t.Logf("MGRPLANE_COMPOSE_KEEP=1: project %s left up; remove it with: docker-compose -p %s down -v", c.project, c.project)
			return
		}
	}
	if out, err := c.composeOut("down", "-v", "--timeout", "5"); err != nil {
		c.t.Errorf("compose down: %v\n%s", err, out)
	}
}

func (c *cluster) composeOut(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	full := append(slices.Clone(c.compose[1:]), "-p", c.project, "-f", filepath.Join(c.root, "docker-compose.yml"))
	cmd := exec.CommandContext(ctx, c.compose[0], append(full, args...)...)
	cmd.Dir = c.root
	cmd.Env = c.env
	return cmd.CombinedOutput()
}

func (c *cluster) composeRun(args ...string) {
	c.t.Helper()
	if out, err := c.composeOut(args...); err != nil {
		c.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (c *cluster) docker(args ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
		c.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// container returns the id of a service's container.
func (c *cluster) container(service string) string {
	c.t.Helper()
	out, err := c.composeOut("ps", "-q", service)
	id := strings.TrimSpace(string(out))
	if err != nil || id == "" || strings.ContainsAny(id, " \n") {
		c.t.Fatalf("compose ps -q %s: %q, %v", service, out, err)
	}
	return id
}

// monList is every monitor's host address, the one named last (so that a
// monitor cut off is tried after the others).
func (c *cluster) monList(last string) []string {
	var out []string
	for _, m := range monitors {
		if m != last {
			out = append(out, c.monAddrs[m])
		}
	}
	if last != "" {
		out = append(out, c.monAddrs[last])
	}
	return out
}

// ctlEnv is mgrctl's environment: PATH, and the creds copied out of the
// volume as MGRPLANE_CREDS.
func (c *cluster) ctlEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "MGRPLANE_CREDS=" + c.creds}
}

// ctl runs mgrctl -o json against monitors and decodes its output into m.
func (c *cluster) ctl(monitors []string, m proto.Message, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	full := append([]string{"--monitor", strings.Join(monitors, ","), "--timeout", ctlTimeout, "-o", "json"}, args...)
	cmd := exec.CommandContext(ctx, c.mgrctl, full...)
	cmd.Env = c.ctlEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("mgrctl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := protojson.Unmarshal(out, m); err != nil {
		return fmt.Errorf("mgrctl %s: undecodable output %q: %v", strings.Join(args, " "), out, err)
	}
	return nil
}

func (c *cluster) stat(monitors []string) *mgrv1.GetStatResponse {
	c.t.Helper()
	var r mgrv1.GetStatResponse
	if err := c.ctl(monitors, &r, "stat"); err != nil {
		c.t.Fatal(err)
	}
	return &r
}

// leader returns the service name of the monitor leader, asking the
// monitors but skipping one (when not empty), until one knows a leader.
func (c *cluster) leader(skip string) string {
	c.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		var r mgrv1.GetQuorumStatusResponse
		err := c.ctl(c.monListWithout(skip), &r, "quorum", "status")
		if err == nil && slices.Contains(monitors, r.GetLeaderId()) && r.GetLeaderId() != skip {
			return r.GetLeaderId()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no monitor leader (other than %q) within %v: %v %v", skip, settleTimeout, &r, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *cluster) monListWithout(skip string) []string {
	l := c.monList(skip)
	if skip != "" {
		l = l[:len(l)-1]
	}
	return l
}

// waitLeaderOtherThan waits until the monitors other than old elect another.
func (c *cluster) waitLeaderOtherThan(old string) {
	c.t.Helper()
	start := time.Now()
	l := c.leader(old)
	c.t.Logf("monitors %v elected %s in %v after %s was cut off", c.monListWithout(old), l, time.Since(start).Round(time.Millisecond), old)
}

// waitMonitorCaughtUp waits until mon answers with the epoch the others have.
func (c *cluster) waitMonitorCaughtUp(mon string) {
	c.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		want := c.stat(c.monListWithout(mon)).GetEpoch()
		var r mgrv1.GetStatResponse
		err := c.ctl([]string{c.monAddrs[mon]}, &r, "stat")
		if err == nil && r.GetEpoch() >= want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("monitor %s did not catch up with epoch %d within %v: %v %v", mon, want, settleTimeout, &r, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settle waits until the map names an available active, with wantManagers
// managers in all, and the prober has seen that active answer with the
// map's gid and fencing token; then, for quietWindow, it checks that no
// other manager answers as active.
func (c *cluster) settle(step string, wantManagers int) {
	c.t.Helper()
	start := time.Now()
	from := c.prober.Len()
	deadline := start.Add(settleTimeout)
	var m *mgrv1.MgrMap
	for {
		var r mgrv1.MgrMap
		err := c.ctl(c.monList(c.cut), &r, "dump")
		m = &r
		if err == nil && m.GetAvailable() && m.GetActiveGid() != 0 && 1+len(m.GetStandbys()) == wantManagers &&
			slices.ContainsFunc(c.prober.Answers(from), func(a chaos.Answer) bool {
				return a.GID == m.GetActiveGid() && a.ActiveEpoch == m.GetActiveEpoch()
			}) {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no available active with %d managers serving within %v: map %v, error %v", step, wantManagers, settleTimeout, m, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	settled := time.Now()
	quietFrom := c.prober.Len()
	time.Sleep(quietWindow)
	for _, a := range c.prober.Answers(quietFrom) {
		if a.Send.After(settled) && (a.GID != m.GetActiveGid() || a.ActiveEpoch != m.GetActiveEpoch()) {
			c.t.Fatalf("%s: %s (gid %d, active epoch %d) answered as active at %v while the map names %s (gid %d, active epoch %d)",
				step, a.Manager, a.GID, a.ActiveEpoch, a.Send, m.GetActiveName(), m.GetActiveGid(), m.GetActiveEpoch())
		}
	}
	c.t.Logf("%s: %s (gid %d) serves at epoch %d, %d managers, after %v", step, m.GetActiveName(), m.GetActiveGid(), m.GetEpoch(), wantManagers, settled.Sub(start).Round(time.Millisecond))
	c.checkProxy(step, m.GetActiveName())
}

// checkProxy waits until the fixed address of mgr-proxy answers /status/ as
// the active named want.
func (c *cluster) checkProxy(step, want string) {
	c.t.Helper()
	tr := &http.Transport{TLSClientConfig: c.proxyTLS, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	start := time.Now()
	var last string
	for deadline := start.Add(settleTimeout); ; time.Sleep(100 * time.Millisecond) {
		resp, err := cl.Get(c.proxyURL)
		if err == nil {
			var st struct {
				Name string `json:"name"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&st)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && derr == nil && st.Name == want {
				c.t.Logf("%s: the proxy answers as %s after %v", step, want, time.Since(start).Round(time.Millisecond))
				return
			}
			last = fmt.Sprintf("%d %q %v", resp.StatusCode, st.Name, derr)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: GET %s never answered as %s: %s", step, c.proxyURL, want, last)
		}
	}
}

// write makes an acknowledged map change: enable a module named after the
// step (--force: no manager runs it). checkHistory finds every one.
func (c *cluster) write(step string) {
	c.t.Helper()
	name := "step_" + strings.ReplaceAll(step, "-", "_")
	var r mgrv1.EnableModuleResponse
	deadline := time.Now().Add(settleTimeout)
	for {
		err := c.ctl(c.monList(c.cut), &r, "module", "enable", "--force", name)
		if err == nil {
			break
		}
		// Retry only while the monitors cannot commit (an election).
		if !strings.Contains(err.Error(), "Unavailable") || time.Now().After(deadline) {
			c.t.Fatalf("%s: enable %s: %v", step, name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.changes = append(c.changes, name)
}

// startWatch (re)starts `mgrctl watch` on every monitor but avoid, resuming
// after the last epoch the previous watch printed.
func (c *cluster) startWatch(avoid string) {
	c.t.Helper()
	var since uint64
	var prev []uint64
	if c.watch != nil {
		prev = c.watch.stop()
		if len(prev) > 0 {
			since = prev[len(prev)-1]
		}
	}
	c.watch = startWatcher(c.t, c.mgrctl, c.ctlEnv(), c.monListWithout(avoid), since, prev)
}

// checkHistory checks what the run made: the watch saw every epoch once, in
// order; the kept history is continuous up to the current epoch; and the
// current map holds every acknowledged change.
func (c *cluster) checkHistory() {
	c.t.Helper()
	var r mgrv1.MgrMap
	if err := c.ctl(c.monList(c.cut), &r, "dump"); err != nil {
		c.t.Fatal(err)
	}
	now := r.GetEpoch()
	// The watch: wait until it has printed the current epoch.
	deadline := time.Now().Add(settleTimeout)
	for {
		seen := c.watch.epochs()
		if len(seen) > 0 && seen[len(seen)-1] >= now {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the watch never printed epoch %d (last %v)", now, seen[max(0, len(seen)-3):])
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := c.watch.stop()
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]+1 {
			c.t.Fatalf("watch: epoch %d followed by %d: not continuous (%d maps seen)", seen[i-1], seen[i], len(seen))
		}
	}
	var h mgrv1.ListHistoryResponse
	if err := c.ctl(c.monList(c.cut), &h, "history"); err != nil {
		c.t.Fatal(err)
	}
	for i, e := range h.GetEntries() {
		if i > 0 && e.GetEpoch() != h.GetEntries()[i-1].GetEpoch()+1 {
			c.t.Fatalf("history: epoch %d follows %d", e.GetEpoch(), h.GetEntries()[i-1].GetEpoch())
		}
	}
	if h.GetNewestEpoch() < now || h.GetOldestEpoch() > seen[0] {
		c.t.Fatalf("history keeps epochs %d..%d; the watch saw %d..%d", h.GetOldestEpoch(), h.GetNewestEpoch(), seen[0], seen[len(seen)-1])
	}
	for _, ch := range c.changes {
		if !slices.Contains(r.GetModules(), ch) {
			c.t.Errorf("acknowledged change lost: module %s is not enabled in the map of epoch %d (%v)", ch, now, r.GetModules())
		}
	}
	c.t.Logf("epochs %d..%d continuous in the watch and the history; %d acknowledged changes all kept", seen[0], seen[len(seen)-1], len(c.changes))
}

// watcher runs `mgrctl -o json watch` and keeps the epochs it prints.
type watcher struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   []uint64
	err    error
}

// startWatcher watches the monitors from after since, keeping prev (the
// epochs of an earlier watch) before the new ones.
func startWatcher(t *testing.T, mgrctl string, env, monitors []string, since uint64, prev []uint64) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"--monitor", strings.Join(monitors, ","), "-o", "json", "watch"}
	if since > 0 {
		args = append(args, "--since", fmt.Sprint(since))
	}
	cmd := exec.CommandContext(ctx, mgrctl, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, cancel: cancel, done: make(chan struct{}), seen: prev}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			var m mgrv1.MgrMap
			if err := protojson.Unmarshal(sc.Bytes(), &m); err != nil {
				w.mu.Lock()
				w.err = fmt.Errorf("watch printed %q: %v", sc.Text(), err)
				w.mu.Unlock()
				continue
			}
			w.mu.Lock()
			w.seen = append(w.seen, m.GetEpoch())
			w.mu.Unlock()
		}
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			w.mu.Lock()
			w.err = fmt.Errorf("mgrctl watch ended: %v: %s", err, stderr.String())
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *watcher) epochs() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// stop ends the watch and returns every epoch it printed; the test fails
// when the watch failed.
func (w *watcher) stop() []uint64 {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		w.t.Errorf("watch: %v", w.err)
		w.err = nil
	}
	return slices.Clone(w.seen)
}
