package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterComesUp: monsim and three standbys make one available active,
// which mgrctl, HTTP and grpcurl all see the same way.
func TestClusterComesUp(t *testing.T) {
	c := newCluster(t)
	st := c.start("x", "y", "z")
	if !slices.Contains([]string{"x", "y", "z"}, st.ActiveName) {
		t.Fatalf("active %q is none of x, y, z", st.ActiveName)
	}

	// The table says the same as the JSON.
	out := c.mustMgrctl("stat")
	re := regexp.MustCompile(`^epoch (\d+)  active (\S+) \(gid (\d+)\) available  standbys 2\n$`)
	mt := re.FindStringSubmatch(out)
	if mt == nil {
		t.Fatalf("mgrctl stat = %q, want it to match %s", out, re)
	}
	if mt[2] != st.ActiveName || mt[3] != strconv.FormatUint(uint64(st.ActiveGID), 10) {
		t.Errorf("mgrctl stat names %s (gid %s), mgrctl -o json stat names %s (gid %d)", mt[2], mt[3], st.ActiveName, st.ActiveGID)
	}
	if st.FSID == "" {
		t.Errorf("mgrctl -o json stat has no fsid: %+v", st)
	}

	// The status URL in `mgrctl services` is the active's, and it answers.
	m := c.dump()
	url := c.statusURL()
	if got := c.byHTTPPort(url); got != st.ActiveName {
		t.Fatalf("mgrctl services: status URL %q is served by %q, want the active %q", url, got, st.ActiveName)
	}
	a, err := getStatus(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if a.code != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200\n%s", url, a.code, a.raw)
	}
	if a.body.Name != st.ActiveName || a.body.GID != uint64(st.ActiveGID) {
		t.Errorf("GET %s names %s (gid %d), want the active %s (gid %d)", url, a.body.Name, a.body.GID, st.ActiveName, st.ActiveGID)
	}
	if want := strconv.FormatUint(uint64(m.ActiveEpoch), 10); m.ActiveEpoch == 0 || a.activeEpoch != want {
		t.Errorf("GET %s: Mgr-Active-Epoch = %q, want the map's active_epoch %s", url, a.activeEpoch, want)
	}
	if !slices.Contains(a.body.Modules, "status") {
		t.Errorf("GET %s: modules %v, want status among them", url, a.body.Modules)
	}

	// GetStatus through reflection on the active's gRPC address.
	active := c.standbys[st.ActiveName]
	if !slices.Contains(m.ActiveAddrs, active.grpcAddr) {
		t.Errorf("map's active_addrs %v lack the active's gRPC address %s", m.ActiveAddrs, active.grpcAddr)
	}
	r := grpcurlAs(t, "", "-v", active.grpcAddr, "mgr.v1.ManagerService/GetStatus")
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%s", r)
	}
	var gs struct {
		GID  u64    `json:"gid"`
		Name string `json:"name"`
	}
	body := r.stdout[strings.Index(r.stdout, "Response contents:")+len("Response contents:"):]
	body = body[:strings.LastIndex(body, "}")+1]
	if err := json.Unmarshal([]byte(body), &gs); err != nil {
		t.Fatalf("GetStatus answer is not JSON: %v\n%s", err, r)
	}
	if gs.Name != st.ActiveName || gs.GID != st.ActiveGID {
		t.Errorf("GetStatus names %s (gid %d), want %s (gid %d)", gs.Name, gs.GID, st.ActiveName, st.ActiveGID)
	}
	if want := fmt.Sprintf("mgr-active-epoch: %d", m.ActiveEpoch); !strings.Contains(r.stdout, want) {
		t.Errorf("GetStatus headers lack %q:\n%s", want, r)
	}

	// Reflection lists the services on the monitor and on the active.
	listHas(t, c.monAddr, "mgr.v1.MonitorService", "mgr.v1.AdminService", "grpc.health.v1.Health")
	listHas(t, active.grpcAddr, "mgr.v1.ManagerService", "grpc.health.v1.Health")
}

// listHas checks that `grpcurl addr list` (over TLS, reflection needs no
// credentials) names every service.
func listHas(t *testing.T, addr string, services ...string) {
	t.Helper()
	r := grpcurlAs(t, "", addr, "list")
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%s", r)
	}
	got := strings.Fields(r.stdout)
	for _, s := range services {
		if !slices.Contains(got, s) {
			t.Errorf("grpcurl list %s = %v, want %s among them", addr, got, s)
		}
	}
}

// TestKillActive: after kill -9 of the active, another standby is promoted
// once the old one is silent, serves, and history says why.
func TestKillActive(t *testing.T) {
	c := newCluster(t)
	st := c.start("x", "y", "z")
	old := st.ActiveName
	c.waitServing(old)

	c.standbys[old].kill9(t)
	st2 := c.waitActive(old, 1)
	a := c.waitServing(st2.ActiveName)
	if a.body.GID != uint64(st2.ActiveGID) {
		t.Errorf("status of %s names gid %d, want %d", st2.ActiveName, a.body.GID, st2.ActiveGID)
	}
	if got := c.byHTTPPort(c.statusURL()); got != st2.ActiveName {
		t.Errorf("mgrctl services points at %q, want the new active %q", got, st2.ActiveName)
	}

	out := c.mustMgrctl("history")
	// kill -9 closes the active's connection and its ports: the monitor
	// proves it gone and promotes at once (the crash fast path).
	want := fmt.Sprintf("promoted %s: active %s is gone", st2.ActiveName, old)
	found := false
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "lost" && strings.Contains(line, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("mgrctl history has no row with cause lost and reason %q:\n%s", want, out)
	}
}

// TestMonitorRestart: kill -9 of monsim and a restart on the same data dir
// keep the cluster: same fsid, epochs go on, standbys come back, gids are
// never reused.
func TestMonitorRestart(t *testing.T) {
	c := newCluster(t)
	st := c.start("x", "y", "z")
	c.waitServing(st.ActiveName)
	before := c.dump()
	var maxGID uint64
	for _, e := range c.history().Entries {
		maxGID = max(maxGID, uint64(e.ActiveGID))
	}
	for _, g := range before.gids() {
		maxGID = max(maxGID, g)
	}

	// A user's `mgrctl watch` runs across the restart.
	w := c.startWatch("watch")
	waitFor(t, "watch to print the current map", func() (bool, string) {
		o := w.out()
		return strings.HasPrefix(o, "epoch "), o
	})

	c.mon.kill9(t)
	c.startMonitor()
	restarted := time.Now()

	after := c.stat()
	if after.FSID != before.FSID {
		t.Errorf("fsid after restart = %s, want %s", after.FSID, before.FSID)
	}
	if after.Epoch < before.Epoch {
		t.Errorf("epoch after restart = %d, want at least %d", after.Epoch, before.Epoch)
	}

	// A failover proves that a standby follows the map across the restart:
	// it learns that it is promoted and serves.
	c.waitActive("", 2)
	fail := c.mustMgrctl("fail")
	if !strings.HasPrefix(fail, "failed "+st.ActiveName+" ") {
		t.Errorf("mgrctl fail = %q, want it to fail %s", fail, st.ActiveName)
	}
	st2 := c.waitActive(st.ActiveName, 2)
	c.waitServing(st2.ActiveName)

	// A new standby gets a gid above every gid issued before the restart.
	c.startStandby("w")
	var wGID uint64
	waitFor(t, "w to join", func() (bool, string) {
		r := c.mgrctl("-o", "json", "metadata", "w")
		var md metadataJSON
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &md) != nil || len(md.Managers) != 1 {
			return false, r.String()
		}
		wGID = uint64(md.Managers[0].GID)
		return true, ""
	})
	if wGID <= maxGID {
		t.Errorf("w got gid %d after the restart, want more than %d (the highest gid before)", wGID, maxGID)
	}

	// The active's map stream goes on: its status shows the map where w joined.
	joined := c.dump()
	waitFor(t, "the active's status to show the map where w joined", func() (bool, string) {
		b, err := getStatus(c.statusURL())
		if err != nil {
			return false, err.Error()
		}
		return b.body.Epoch >= uint64(joined.Epoch), fmt.Sprintf("status epoch %d, map epoch %d", b.body.Epoch, joined.Epoch)
	})

	// Every manager beacons to the restarted monitor: several graces after
	// the restart, none has been dropped as silent.
	time.Sleep(time.Until(restarted.Add(4 * time.Second)))
	end := c.stat()
	if end.ActiveGID == 0 || !end.Available || end.NumStandbys != 3 {
		t.Errorf("four seconds after the restart: %+v, want an available active and 3 standbys (x, y, z and w)", end)
	}

	// Epochs run on without a gap across the restart: the first change after
	// the kill is the epoch before it + 1.
	h := c.history("--since", strconv.FormatUint(uint64(before.Epoch), 10))
	if len(h.Entries) == 0 || h.Entries[0].Epoch != before.Epoch+1 {
		t.Fatalf("history after epoch %d starts at %+v, want epoch %d", before.Epoch, h.Entries, before.Epoch+1)
	}
	for i, e := range h.Entries {
		if i > 0 && e.Epoch != h.Entries[i-1].Epoch+1 {
			t.Errorf("history skips from epoch %d to %d", h.Entries[i-1].Epoch, e.Epoch)
		}
		if e.Cause == "CHANGE_CAUSE_SILENT" {
			t.Errorf("epoch %d after the restart dropped a silent manager: %s", e.Epoch, e.Reason)
		}
	}

	// The watch resumed: every epoch from before the kill to now, in order,
	// each once; an interrupt ends it with exit 0.
	checkResumedWatch(t, c, w, uint64(before.Epoch))

	// SIGTERM stops the monitor cleanly.
	c.mon.signal(syscall.SIGTERM)
	if code := c.mon.wait(t); code != 0 {
		t.Errorf("monsim exited %d after SIGTERM, want 0", code)
	}
}

// checkResumedWatch checks that the watch w, started before the monitor's
// restart at epoch from, goes on: it prints every epoch up to the current
// one, in order, each once, and exits 0 on SIGINT.
func checkResumedWatch(t *testing.T, c *cluster, w *proc, from uint64) {
	t.Helper()
	last := uint64(c.stat().Epoch)
	ok := true
	waitFor(t, "watch to print the current epoch", func() (bool, string) {
		if w.exited() {
			ok = false
			return true, ""
		}
		o := w.out()
		return strings.Contains(o, fmt.Sprintf("epoch %d ", last)), o
	})
	if !ok {
		t.Errorf("mgrctl watch, started before the monitor's restart, exited %d instead of resuming:\nstdout:\n%s\nstderr:\n%s",
			w.cmd.ProcessState.ExitCode(), w.out(), w.log())
		return
	}
	w.signal(syscall.SIGINT)
	if code := w.wait(t); code != 0 {
		t.Errorf("mgrctl watch exited %d after SIGINT, want 0", code)
	}
	epochs := watchEpochs(t, w.out())
	if epochs[0] > from || epochs[len(epochs)-1] != last {
		t.Errorf("watch printed epochs %v, want from at most %d to %d", epochs, from, last)
	}
	for i := 1; i < len(epochs); i++ {
		if epochs[i] != epochs[i-1]+1 {
			t.Errorf("watch printed epoch %d after %d: want each epoch once, in order (all: %v)", epochs[i], epochs[i-1], epochs)
		}
	}
}

// TestTerminateActive: SIGTERM makes the active leave at once: it exits 0,
// the map says "left", another standby serves, the old port is closed.
func TestTerminateActive(t *testing.T) {
	c := newCluster(t)
	st := c.start("x", "y", "z")
	old := c.standbys[st.ActiveName]
	c.waitServing(st.ActiveName)
	e0 := c.stat().Epoch

	old.signal(syscall.SIGTERM)
	if code := old.wait(t); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", st.ActiveName, code)
	}
	st2 := c.waitActive(st.ActiveName, 1)
	c.waitServing(st2.ActiveName)

	h := c.history("--since", strconv.FormatUint(uint64(e0), 10))
	want := fmt.Sprintf("active %s (gid %d) left", st.ActiveName, st.ActiveGID)
	found := false
	for _, e := range h.Entries {
		if e.Cause == "CHANGE_CAUSE_LEFT" && strings.Contains(e.Reason, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("history after epoch %d has no cause LEFT with %q: %+v", e0, want, h.Entries)
	}
	for _, addr := range []string{old.httpAddr, old.grpcAddr} {
		if ok, why := refused(addr); !ok {
			t.Errorf("old active's address %s: want connection refused, got %s", addr, why)
		}
	}

	// A standby leaves the same way.
	st3 := c.stat()
	var sb string
	for n, s := range c.standbys {
		if n != st.ActiveName && n != st3.ActiveName {
			sb = n
			s.signal(syscall.SIGTERM)
			if code := s.wait(t); code != 0 {
				t.Errorf("standby %s exited %d after SIGTERM, want 0", n, code)
			}
		}
	}
	waitFor(t, "the standby to leave", func() (bool, string) {
		st := c.stat()
		return st.NumStandbys == 0 && st.ActiveName == st3.ActiveName, fmt.Sprintf("%+v", st)
	})
	if m := c.dump(); m.Cause != "CHANGE_CAUSE_LEFT" || !strings.Contains(m.Reason, "standby "+sb+" ") {
		t.Errorf("after SIGTERM of standby %s the map says %s: %q, want it left", sb, m.Cause, m.Reason)
	}
}

// TestStandbyBeforeMonitor: a standby started while no monitor runs keeps
// trying and joins once monsim starts.
func TestStandbyBeforeMonitor(t *testing.T) {
	c := newCluster(t)
	s := c.startStandby("early")
	waitFor(t, "early to report that the monitor is unreachable", func() (bool, string) {
		l := s.log()
		return strings.Contains(l, "connection refused"), l
	})
	// It goes on trying (reconnect-max is 500ms): still running a while later.
	time.Sleep(time.Second)
	if s.exited() {
		t.Fatalf("early exited while the monitor was down:\n%s", s.tail(logTail))
	}

	c.startMonitor()
	st := c.waitActive("", 0)
	if st.ActiveName != "early" {
		t.Fatalf("active is %q, want early", st.ActiveName)
	}
	c.waitServing("early")
}
