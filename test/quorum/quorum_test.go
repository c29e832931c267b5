package quorum

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// minAcknowledged is how many admin calls must succeed for the history to
// mean something.
const minAcknowledged = 20

// removedSettle is how long a removed monitor is left running before the
// members are checked again.
const removedSettle = 2 * time.Second

// TestQuorum runs three monitors as one raft quorum with three standbys and
// a watcher on each monitor, while an admin client enables and disables
// modules, and goes through: kill -9 of the leader, kill -9 and restart of a
// follower, a partition of the leader, `mgrctl quorum status|add|remove`
// with a fourth monitor, and a stop and restart of all three. Then it checks
// every watch stream and the whole history (porcupine).
func TestQuorum(t *testing.T) {
	c := newCluster(t)
	h := newHistory()
	t.Cleanup(func() {
		if t.Failed() || os.Getenv(envKeep) != "" {
			writeHistory(t, c.dir, h.observations(), h.writesSoFar())
		}
	})
	all := []int{1, 2, 3}
	phase := func(name string) { t.Logf("=== %v: %s", time.Duration(h.now()).Round(time.Millisecond), name) }

	phase("start three monitors, three standbys, a watcher on each monitor and the admin client")
	for _, n := range all {
		c.startMonitor(n)
	}
	c.agreedLeader("three monitors to agree on a leader", all)
	for _, name := range []string{"a", "b", "c"} {
		c.startStandby(name)
	}
	c.waitActive(2)
	watchers := map[int]*watcher{}
	for _, n := range all {
		// A watch fails at once on a monitor that is still replaying
		// its log; start it once the monitor serves reads.
		waitFor(t, c.mons[n].id+" to serve reads", func() (bool, string) {
			r := c.mgrctlAt(c.mons[n].addr, "stat")
			return r.code == 0, r.String()
		})
		watchers[n] = c.startWatcher(h, n)
	}
	for _, w := range watchers {
		waitFor(t, w.name+" to print a map", func() (bool, string) { return h.lastEpoch(w.name) > 0, w.proc.tail(5) })
	}
	w := c.startWriter(h)
	c.waitAcknowledged(h, 4)

	phase("kill -9 the raft leader")
	leader, _ := c.agreedLeader("one leader", all)
	before := c.waitActive(2)
	c.killMonitor(leader)
	newLeader, _ := c.agreedLeader("a new leader among the two left", others(all, leader))
	after := c.waitActive(2)
	t.Logf("leader %s killed; %s leads; active %s(%d) before, %s(%d) after", c.mons[leader].id, c.mons[newLeader].id,
		before.ActiveName, before.ActiveGID, after.ActiveName, after.ActiveGID)
	if after.ActiveGID != before.ActiveGID {
		t.Errorf("the active changed from %s(%d) to %s(%d) across the monitor leader change (grace 1500ms, beacons every 100ms)",
			before.ActiveName, before.ActiveGID, after.ActiveName, after.ActiveGID)
	}
	c.waitAcknowledged(h, 4)
	c.startMonitor(leader)
	c.caughtUp("the killed leader to rejoin from its data dir and catch up", w, all)

	phase("kill -9 a follower and restart it")
	leader, _ = c.agreedLeader("one leader", all)
	follower := others(all, leader)[0]
	c.killMonitor(follower)
	c.waitAcknowledged(h, 10)
	c.startMonitor(follower)
	c.caughtUp("the killed follower to rejoin from its data dir and catch up", w, all)
	c.waitActive(2)

	c.partitionLeader(t, "partition the leader ("+c.net.describe()+")", h, w, c.net.isolate, c.net.heal)
	if _, ok := c.net.(*netns); ok {
		c.partitionLeader(t, "SIGSTOP the leader", h, w, freeze, thaw)
	}
	c.waitActive(2)

	phase("quorum status through each monitor, quorum add and remove of a fourth")
	c.quorumMembership(t, w)

	phase("stop all three monitors (kill -9) and start them again")
	beforeRestart := c.dump()
	maxGID := maxGIDSeen(h.observations())
	for _, n := range all {
		c.killMonitor(n)
	}
	for _, n := range all {
		c.startMonitor(n)
	}
	c.agreedLeader("the restarted monitors to agree on a leader", all)
	c.waitActive(2)
	c.caughtUp("the restarted monitors to catch up", w, all)
	afterRestart := c.dump()
	if afterRestart.FSID != beforeRestart.FSID {
		t.Errorf("fsid %q after the restart, %q before", afterRestart.FSID, beforeRestart.FSID)
	}
	if afterRestart.Epoch <= beforeRestart.Epoch {
		t.Errorf("epoch %d after the restart, not above %d before", afterRestart.Epoch, beforeRestart.Epoch)
	}
	c.waitAcknowledged(h, 4)

	phase("restart a standby: its new gid continues after every gid before the restart")
	m := c.dump()
	if len(m.Standbys) == 0 {
		t.Fatalf("no standby in the map: %+v", m)
	}
	name := m.Standbys[0].Name
	c.standbys[name].kill9(t)
	c.startStandby(name)
	waitFor(t, "the restarted standby "+name+" in the map with a new gid", func() (bool, string) {
		var m mapJSON
		ok, detail := c.tryJSON(&m, c.monList(), "dump")
		if !ok {
			return false, detail
		}
		for _, s := range m.Standbys {
			if s.Name == name && uint64(s.GID) > maxGID {
				return m.ActiveGID != 0 && len(m.Standbys) == 2, detail
			}
		}
		return false, detail
	})

	phase("stop the admin client, let the watchers catch up, check the history")
	w.finish()
	final := c.converge(h, watchers)
	phase(fmt.Sprintf("the monitors and watchers reached epoch %d", final))
	for _, wt := range watchers {
		wt.stop(t)
	}
	checkHistory(t, c, h, final)
}

// partitionLeader cuts the leader off with isolate, waits for a new leader
// on the other side, an active, and acknowledged changes, then heals and
// waits for the old leader to catch up.
func (c *cluster) partitionLeader(t *testing.T, name string, h *history, w *writer, isolate, heal func(*testing.T, int, *proc)) {
	t.Helper()
	all := []int{1, 2, 3}
	t.Logf("=== %v: %s", time.Duration(h.now()).Round(time.Millisecond), name)
	leader, _ := c.agreedLeader("one leader", all)
	isolate(t, leader, c.mons[leader].proc)
	healed := false
	defer func() {
		if !healed {
			heal(t, leader, c.mons[leader].proc)
		}
	}()
	newLeader, _ := c.agreedLeader("a new leader on the majority side", others(all, leader))
	c.waitActive(2)
	c.waitAcknowledged(h, 4)
	t.Logf("%s cut off; %s leads", c.mons[leader].id, c.mons[newLeader].id)
	heal(t, leader, c.mons[leader].proc)
	healed = true
	c.caughtUp("the cut-off leader to rejoin and catch up", w, all)
}

// quorumMembership checks quorum status through each monitor, then adds a
// fourth monitor with `quorum add` (through a follower) and starts it with
// --join, then removes it with `quorum remove` (through another follower).
func (c *cluster) quorumMembership(t *testing.T, w *writer) {
	t.Helper()
	all := []int{1, 2, 3}
	leader, statuses := c.agreedLeader("quorum status to agree through every monitor", all)
	want := c.wantMembers(all, leader)
	for n, q := range statuses {
		if !slices.Equal(q.Members, want) {
			t.Errorf("quorum status through %s lists %+v, want %+v", c.mons[n].id, q.Members, want)
		}
	}

	// The table a user reads: the leader marked, every member listed.
	follower := c.mons[others(all, leader)[0]]
	r := c.mgrctlAt(follower.addr, "quorum", "status")
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%s", r)
	}
	t.Logf("mgrctl quorum status through %s:\n%s", follower.id, r.stdout)
	for _, m := range want {
		row := fmt.Sprintf("%s %s yes -", m.ID, m.Address)
		if m.Leader {
			row = fmt.Sprintf("%s %s yes *", m.ID, m.Address)
		}
		if !containsFields(r.stdout, row) {
			t.Errorf("quorum status lacks the row %q:\n%s", row, r.stdout)
		}
	}
	if !containsFields(r.stdout, "leader "+c.mons[leader].id) {
		t.Errorf("quorum status does not name the leader %s:\n%s", c.mons[leader].id, r.stdout)
	}

	// Usage errors exit 2 and send nothing; an unknown member is NotFound.
	if r := c.mgrctl("quorum", "add", "m4"); r.code != 2 || !strings.Contains(r.stderr, "quorum add: missing ADDR") {
		t.Errorf("want exit 2 and a usage error:\n%s", r)
	}
	if r := c.mgrctl("quorum", "remove", "m9"); r.code != 1 || !strings.Contains(r.stderr, "mgrctl: NotFound: ") {
		t.Errorf("want exit 1 and NotFound:\n%s", r)
	}

	m4 := c.mons[quorumSize+1]
	via := others(all, leader)
	r = c.mgrctlAt(c.mons[via[0]].addr, "quorum", "add", m4.id, m4.addr)
	if r.code != 0 || strings.TrimSpace(r.stdout) != fmt.Sprintf("added monitor %s at %s", m4.id, m4.addr) {
		t.Fatalf("quorum add through the follower %s: want exit 0:\n%s", c.mons[via[0]].id, r)
	}
	_, statuses = c.agreedLeader("the three to list the fourth monitor", all)
	for n, q := range statuses {
		if !slices.ContainsFunc(q.Members, func(m memberJSON) bool { return m.ID == m4.id && m.Address == m4.addr && m.Voter }) {
			t.Errorf("after quorum add, %s lists %+v", c.mons[n].id, q.Members)
		}
	}
	c.startMonitor(m4.n)
	four := append(slices.Clone(all), m4.n)
	leader, statuses = c.agreedLeader("the four monitors to agree", four)
	if want := c.wantMembers(four, leader); !slices.Equal(statuses[m4.n].Members, want) {
		t.Errorf("quorum status through %s lists %+v, want %+v", m4.id, statuses[m4.n].Members, want)
	}
	c.caughtUp(m4.id+" to catch up", w, four)

	via = others(all, leader)
	r = c.mgrctlAt(c.mons[via[len(via)-1]].addr, "quorum", "remove", m4.id)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "removed monitor "+m4.id {
		t.Fatalf("quorum remove through %s: want exit 0:\n%s", c.mons[via[len(via)-1]].id, r)
	}
	// The removed monitor keeps running for a while: it must stay out (it
	// must not, for one, ask to join again).
	threeLeft := func(when string) {
		t.Helper()
		leader, statuses := c.agreedLeader("the three to agree "+when, all)
		want := c.wantMembers(all, leader)
		for n, q := range statuses {
			if !slices.Equal(q.Members, want) {
				t.Errorf("%s (%s still running), %s lists %+v, want %+v", when, m4.id, c.mons[n].id, q.Members, want)
			}
		}
	}
	threeLeft("after quorum remove")
	time.Sleep(removedSettle)
	threeLeft(fmt.Sprintf("%v after quorum remove", removedSettle))
	c.killMonitor(m4.n)
}

// wantMembers is the member list of monitors ns, by id, with leader marked.
func (c *cluster) wantMembers(ns []int, leader int) []memberJSON {
	var want []memberJSON
	for _, n := range ns {
		want = append(want, memberJSON{ID: c.mons[n].id, Address: c.mons[n].addr, Voter: true, Leader: n == leader})
	}
	slices.SortFunc(want, func(a, b memberJSON) int { return strings.Compare(a.ID, b.ID) })
	return want
}

// containsFields reports whether some line of text has exactly the fields
// of line, however its columns are padded.
func containsFields(text, line string) bool {
	want := strings.Fields(line)
	for _, l := range strings.Split(text, "\n") {
		if slices.Equal(strings.Fields(l), want) {
			return true
		}
	}
	return false
}

// waitAcknowledged waits until n more admin calls were acknowledged.
func (c *cluster) waitAcknowledged(h *history, n int) {
	c.t.Helper()
	count := func() int {
		k := 0
		for _, w := range h.writesSoFar() {
			if w.ok {
				k++
			}
		}
		return k
	}
	from := count()
	waitFor(c.t, fmt.Sprintf("%d more acknowledged admin calls", n), func() (bool, string) {
		ws := h.writesSoFar()
		last := "none yet"
		if len(ws) > 0 {
			last = ws[len(ws)-1].String()
		}
		return count() >= from+n, "last call: " + last
	})
}

// converge waits until the three monitors agree on one epoch and every
// watcher printed it, and returns it.
func (c *cluster) converge(h *history, watchers map[int]*watcher) uint64 {
	c.t.Helper()
	var epoch uint64
	waitFor(c.t, "the monitors and the watchers to reach one epoch", func() (bool, string) {
		var epochs []string
		epoch = 0
		for n, w := range watchers {
			q, ok, detail := c.status(n)
			if !ok {
				return false, detail
			}
			if epoch == 0 {
				epoch = uint64(q.Epoch)
			}
			last := h.lastEpoch(w.name)
			epochs = append(epochs, fmt.Sprintf("%s at %d, %s printed %d", c.mons[n].id, q.Epoch, w.name, last))
			if uint64(q.Epoch) != epoch || last != epoch {
				return false, strings.Join(epochs, "; ")
			}
		}
		return true, ""
	})
	return epoch
}

// maxGIDSeen is the highest gid in any map the watchers printed.
func maxGIDSeen(obs []observation) uint64 {
	var top uint64
	for _, o := range obs {
		var m mapJSON
		if o.bad != "" || json.Unmarshal([]byte(o.line), &m) != nil {
			continue
		}
		for _, g := range m.gids() {
			top = max(top, g)
		}
	}
	return top
}

// checkHistory runs every check on what the watchers printed and the admin
// calls' results.
func checkHistory(t *testing.T, c *cluster, h *history, final uint64) {
	t.Helper()
	obs, writes := h.observations(), h.writesSoFar()
	acked, failed := 0, 0
	for _, w := range writes {
		if w.ok {
			acked++
		} else {
			failed++
		}
	}
	t.Logf("history: %d maps printed by the watchers, %d admin calls (%d acknowledged, %d failed), final epoch %d",
		len(obs), len(writes), acked, failed, final)
	if acked < minAcknowledged {
		t.Errorf("only %d admin calls were acknowledged, want at least %d for a meaningful history", acked, minAcknowledged)
	}

	first, last, p := checkWatchers(obs)
	if len(p.list) > 0 {
		t.Errorf("watch streams are not ordered, gap-free and duplicate-free:\n%s", p.String())
	}
	for name, f := range first {
		t.Logf("%s printed epochs %d to %d", name, f, last[name])
		if last[name] != final {
			t.Errorf("%s's last epoch is %d, want the final %d", name, last[name], final)
		}
	}
	views, p := epochViews(obs)
	if len(p.list) > 0 {
		t.Errorf("two monitors served different maps under one epoch:\n%s", p.String())
	}
	if p := checkAcknowledged(writes, views); len(p.list) > 0 {
		t.Errorf("acknowledged changes are missing from the maps:\n%s", p.String())
	}
	n, worst := staleReads(obs, writes)
	t.Logf("%d maps were printed after a newer epoch had been acknowledged (followers behind), the longest %v after", n, worst)
	checkLinearizable(t, writes, views, c.dir)
}
