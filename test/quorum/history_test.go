package quorum

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the admin client loop.
const (
	// writerPause is the pause between two admin calls.
	writerPause = 50 * time.Millisecond
	// writerMaxOps bounds the calls one writer makes.
	writerMaxOps = 2000
	// testModulePrefix starts the name of every module the writer enables;
	// the checks look only at these.
	testModulePrefix = "qm_"
)

// history records what the clients saw, on one monotonic clock: every map
// each watcher printed and every admin call with its call and return times.
type history struct {
	start time.Time

	mu     sync.Mutex
	obs    []observation
	writes []writeOp
}

func newHistory() *history { return &history{start: time.Now()} }

// now is the time since the history began, on the monotonic clock.
func (h *history) now() int64 { return int64(time.Since(h.start)) }

// observation is one map one watcher printed.
type observation struct {
	watcher string
	// at is when the line was read: after the map was committed.
	at    int64
	epoch uint64
	// mods are the map's test modules, sorted.
	mods []string
	// line is the map as watch printed it: canonical JSON (sorted keys).
	line string
	// bad says why the line is not a map ("" when it is).
	bad string
}

// writeOp is one admin call: enable or disable one test module.
type writeOp struct {
	enable bool
	name   string
	call   int64
	ret    int64
	ok     bool
	// epoch is the epoch the monitor answered, when ok.
	epoch uint64
	out   string
}

func (w writeOp) String() string {
	verb := "disable"
	if w.enable {
		verb = "enable"
	}
	res := "failed: " + w.out
	if w.ok {
		res = fmt.Sprintf("ok, epoch %d", w.epoch)
	}
	return fmt.Sprintf("%s %s [%v, %v] %s", verb, w.name, time.Duration(w.call), time.Duration(w.ret), res)
}

// record parses one line of a watcher and keeps it.
func (h *history) record(watcher, line string) {
	o := observation{watcher: watcher, at: h.now(), line: line}
	var m mapJSON
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		o.bad = err.Error()
	} else {
		o.epoch = uint64(m.Epoch)
		o.mods = testModules(m.Modules)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.obs = append(h.obs, o)
}

// testModules are the test's modules among mods, sorted.
func testModules(mods []string) []string {
	out := []string{}
	for _, m := range mods {
		if strings.HasPrefix(m, testModulePrefix) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// observations returns a copy of what the watchers printed so far.
func (h *history) observations() []observation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.obs)
}

// lastEpoch is the newest epoch watcher printed, 0 before any.
func (h *history) lastEpoch(watcher string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.obs) - 1; i >= 0; i-- {
		if h.obs[i].watcher == watcher {
			return h.obs[i].epoch
		}
	}
	return 0
}

// addWrite keeps one admin call.
func (h *history) addWrite(w writeOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes = append(h.writes, w)
}

// writesSoFar returns a copy of the admin calls so far.
func (h *history) writesSoFar() []writeOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.writes)
}

// watcher is `mgrctl -o json watch` against one monitor, as a process.
type watcher struct {
	name string
	proc *proc
}

// startWatcher runs a watcher on monitor n; every line goes to h.
func (c *cluster) startWatcher(h *history, n int) *watcher {
	c.t.Helper()
	name := "watch-" + c.mons[n].id
	cmd := c.net.command(context.Background(), "c", bins.mgrctl, "--monitor", c.mons[n].addr, "-o", "json", "watch")
	p := spawn(c.t, c.dir, name, cmd, func(line string) { h.record(name, line) })
	return &watcher{name: name, proc: p}
}

// stop interrupts the watcher and waits for it; watch ends with exit 0.
func (w *watcher) stop(t *testing.T) {
	t.Helper()
	w.proc.signal(syscall.SIGTERM)
	if code := w.proc.wait(t); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0:\n%s", w.name, code, w.proc.tail(logTail))
	}
}

// writer is the admin client loop: it enables a new test module, disables
// it, enables the next, and so on, through every monitor in turn (a
// different one first for each call), recording each call in the history.
type writer struct {
	c *cluster
	h *history
	// hold is held during each call; pause takes it to stop the loop.
	hold sync.Mutex
	stop chan struct{}
	done chan struct{}
}

// startWriter starts the loop; it stops at cleanup at the latest.
func (c *cluster) startWriter(h *history) *writer {
	w := &writer{c: c, h: h, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	c.t.Cleanup(w.finish)
	return w
}

func (w *writer) run() {
	defer close(w.done)
	mons := strings.Split(w.c.monList(), ",")
	for i := range writerMaxOps {
		select {
		case <-w.stop:
			return
		default:
		}
		op := writeOp{enable: i%2 == 0, name: fmt.Sprintf("%s%d", testModulePrefix, i/2+1)}
		args := []string{"-o", "json", "module", "disable", op.name}
		if op.enable {
			args = []string{"-o", "json", "module", "enable", "--force", op.name}
		}
		k := i % len(mons)
		order := strings.Join(append(slices.Clone(mons[k:]), mons[:k]...), ",")
		w.hold.Lock()
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		op.call = w.h.now()
		r := runCmd(ctx, w.c.mgrctlCmd(ctx, order, args...))
		op.ret = w.h.now()
		cancel()
		w.hold.Unlock()
		op.out = strings.TrimSpace(r.stderr)
		if r.code == 0 {
			var resp struct {
				Epoch u64 `json:"epoch"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &resp); err == nil && resp.Epoch != 0 {
				op.ok, op.epoch = true, uint64(resp.Epoch)
			} else {
				op.out = fmt.Sprintf("exit 0 but stdout %q is not an answer with an epoch", r.stdout)
			}
		}
		w.h.addWrite(op)
		select {
		case <-w.stop:
			return
		case <-time.After(writerPause):
		}
	}
}

// pause waits for the current call to end and holds the loop; resume lets
// it go on.
func (w *writer) pause()  { w.hold.Lock() }
func (w *writer) resume() { w.hold.Unlock() }

// finish stops the loop and waits for it (idempotent).
func (w *writer) finish() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}
