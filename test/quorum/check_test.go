package quorum

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// checkTimeout bounds porcupine's search; a history it cannot decide in
// that time fails the test as undecided.
const checkTimeout = 60 * time.Second

// maxReported bounds how many problems of one kind a check lists.
const maxReported = 10

// epochView is one epoch's map as the watchers saw it.
type epochView struct {
	epoch uint64
	mods  []string
	line  string
	// first is when a watcher first printed it, by and who.
	first int64
	by    string
}

// problems collects what a check found, a few of each kind.
type problems struct {
	list  []string
	count map[string]int
}

func (p *problems) add(kind, format string, a ...any) {
	if p.count == nil {
		p.count = map[string]int{}
	}
	p.count[kind]++
	if p.count[kind] <= maxReported {
		p.list = append(p.list, kind+": "+fmt.Sprintf(format, a...))
	}
}

func (p *problems) String() string {
	s := strings.Join(p.list, "\n")
	for k, n := range p.count {
		if n > maxReported {
			s += fmt.Sprintf("\n(%d more %s)", n-maxReported, k)
		}
	}
	return s
}

// checkWatchers checks each watcher's own stream: ordered, gap-free and
// without duplicates (a watch that resumed went on at last+1). It returns the
// epochs each watcher printed first and last.
func checkWatchers(obs []observation) (first, last map[string]uint64, p problems) {
	first, last = map[string]uint64{}, map[string]uint64{}
	for _, o := range obs {
		if o.bad != "" {
			p.add("not a map", "%s printed %q: %s", o.watcher, o.line, o.bad)
			continue
		}
		prev, seen := last[o.watcher]
		switch {
		case !seen:
			first[o.watcher] = o.epoch
		case o.epoch == prev:
			p.add("duplicate", "%s printed epoch %d twice", o.watcher, o.epoch)
		case o.epoch < prev:
			p.add("out of order", "%s printed epoch %d after %d", o.watcher, o.epoch, prev)
		case o.epoch > prev+1:
			p.add("gap", "%s printed epoch %d after %d: epochs %d to %d missing", o.watcher, o.epoch, prev, prev+1, o.epoch-1)
		}
		if !seen || o.epoch > prev {
			last[o.watcher] = o.epoch
		}
	}
	return first, last, p
}

// epochViews merges what every watcher printed into one map per epoch, and
// reports an epoch printed as two different maps (a fork).
func epochViews(obs []observation) (map[uint64]*epochView, problems) {
	var p problems
	views := map[uint64]*epochView{}
	for _, o := range obs {
		if o.bad != "" {
			continue
		}
		v, ok := views[o.epoch]
		if !ok {
			views[o.epoch] = &epochView{epoch: o.epoch, mods: o.mods, line: o.line, first: o.at, by: o.watcher}
			continue
		}
		if o.line != v.line {
			p.add("fork", "epoch %d is two different maps:\n  %s printed %s\n  %s printed %s", o.epoch, v.by, v.line, o.watcher, o.line)
		}
		if o.at < v.first {
			v.first, v.by = o.at, o.watcher
		}
	}
	return views, p
}

// checkAcknowledged checks each acknowledged call against the maps: the
// epoch it answered holds its change, and the answers never go back.
func checkAcknowledged(writes []writeOp, views map[uint64]*epochView) problems {
	var p problems
	var prev *writeOp
	for i := range writes {
		w := &writes[i]
		if !w.ok {
			continue
		}
		if prev != nil && w.epoch < prev.epoch {
			p.add("epoch went back", "%v was answered after %v", w, prev)
		}
		prev = w
		v, ok := views[w.epoch]
		if !ok {
			p.add("unseen epoch", "%v: no watcher printed epoch %d", w, w.epoch)
			continue
		}
		if slices.Contains(v.mods, w.name) != w.enable {
			p.add("lost change", "%v, but the map of epoch %d has test modules %v", w, w.epoch, v.mods)
		}
	}
	return p
}

// The porcupine model. The state is the newest epoch linearized so far and
// the set of enabled test modules. An acknowledged write moves to the epoch
// it answered (never back) and sets its module; a write that failed may have
// happened or not, so it may be linearized anywhere after its call (its
// return is the end of the history) and keeps the epoch. A read is one
// epoch's map: it must be at or after the state's epoch and show the same
// modules, and it moves the state to its epoch. Maps are totally ordered by
// epoch, so a follower that serves an older map after a write was
// acknowledged is not a violation, but a map at or after the write's epoch
// without its change is, and so is a write answered with an older epoch than
// a map or answer that came before it.

type modelState struct {
	epoch uint64
	mods  string // sorted, comma-separated
}

type writeInput struct {
	enable bool
	name   string
}

type writeOutput struct {
	ok    bool
	epoch uint64
}

type readInput struct {
	epoch uint64
	mods  string
}

// setModule is mods with name enabled or disabled.
func setModule(mods, name string, enable bool) string {
	var set []string
	if mods != "" {
		set = strings.Split(mods, ",")
	}
	set = slices.DeleteFunc(set, func(s string) bool { return s == name })
	if enable {
		set = append(set, name)
	}
	slices.Sort(set)
	return strings.Join(set, ",")
}

var modulesModel = porcupine.Model{
	Init: func() any { return modelState{} },
	Step: func(state, input, output any) (bool, any) {
		st := state.(modelState)
		switch in := input.(type) {
		case writeInput:
			out := output.(writeOutput)
			next := setModule(st.mods, in.name, in.enable)
			if !out.ok {
				return true, modelState{epoch: st.epoch, mods: next}
			}
			if out.epoch < st.epoch || (out.epoch == st.epoch && next != st.mods) {
				return false, st
			}
			return true, modelState{epoch: out.epoch, mods: next}
		case readInput:
			if in.epoch < st.epoch || in.mods != st.mods {
				return false, st
			}
			return true, modelState{epoch: in.epoch, mods: in.mods}
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		switch in := input.(type) {
		case writeInput:
			out := output.(writeOutput)
			verb := "disable"
			if in.enable {
				verb = "enable"
			}
			if !out.ok {
				return fmt.Sprintf("%s(%s) -> failed", verb, in.name)
			}
			return fmt.Sprintf("%s(%s) -> epoch %d", verb, in.name, out.epoch)
		case readInput:
			return fmt.Sprintf("map(epoch %d) = {%s}", in.epoch, in.mods)
		}
		return fmt.Sprint(input)
	},
	DescribeState: func(state any) string {
		st := state.(modelState)
		return fmt.Sprintf("epoch %d {%s}", st.epoch, st.mods)
	},
}

// operations turns the history into porcupine operations: client 0 is the
// writer, client 1 the watchers. A failed call whose change no map shows is
// left out (see below). Each epoch is one read, returning when a
// watcher first printed it and called at a lower bound of when it was
// committed: after the call of every write whose effect it shows (a test
// module is only ever enabled by its one enable call, and only ever removed
// by its one disable call), and after every earlier epoch's bound.
func operations(writes []writeOp, views map[uint64]*epochView) ([]porcupine.Operation, problems) {
	var p problems
	enableCall, disableCall := map[string]int64{}, map[string]int64{}
	end := int64(0)
	for _, w := range writes {
		if w.enable {
			enableCall[w.name] = w.call
		} else {
			disableCall[w.name] = w.call
		}
		end = max(end, w.ret)
	}
	epochs := make([]uint64, 0, len(views))
	for e, v := range views {
		epochs = append(epochs, e)
		end = max(end, v.first)
	}
	slices.Sort(epochs)
	end++

	// Which test modules any map shows, and which it shows and a later map
	// no longer does.
	shown, removed := map[string]bool{}, map[string]bool{}
	for _, e := range epochs {
		for m := range shown {
			if !slices.Contains(views[e].mods, m) {
				removed[m] = true
			}
		}
		for _, m := range views[e].mods {
			shown[m] = true
		}
	}

	var ops []porcupine.Operation
	for _, w := range writes {
		ret := w.ret
		if !w.ok {
			// A failed call may have taken effect at any time after it
			// was made, or never. One whose effect no map shows is left
			// out: linearized last, it changes nothing any read sees,
			// and each such call kept would double the orders to try.
			if (w.enable && !shown[w.name]) || (!w.enable && !removed[w.name]) {
				continue
			}
			ret = end
		}
		ops = append(ops, porcupine.Operation{ClientId: 0, Input: writeInput{enable: w.enable, name: w.name},
			Call: w.call, Output: writeOutput{ok: w.ok, epoch: w.epoch}, Return: ret})
	}
	bound := int64(0)
	everOn := map[string]bool{}
	for _, e := range epochs {
		v := views[e]
		for _, m := range v.mods {
			c, ok := enableCall[m]
			if !ok {
				p.add("unknown module", "epoch %d has test module %s, which no call enabled", e, m)
				continue
			}
			bound = max(bound, c)
			everOn[m] = true
		}
		for m := range everOn {
			if !slices.Contains(v.mods, m) {
				if c, ok := disableCall[m]; ok {
					bound = max(bound, c)
				} else {
					p.add("module vanished", "epoch %d lacks test module %s, enabled before and never disabled", e, m)
				}
			}
		}
		if bound > v.first {
			p.add("map before its call", "epoch %d (test modules %v) was printed at %v by %s, before the call that made it (%v)",
				e, v.mods, time.Duration(v.first), v.by, time.Duration(bound))
			continue
		}
		ops = append(ops, porcupine.Operation{ClientId: 1, Input: readInput{epoch: e, mods: strings.Join(v.mods, ",")},
			Call: bound, Return: v.first})
	}
	return ops, p
}

// staleReads counts the maps a watcher printed after a change was
// acknowledged at a later epoch (a follower behind the leader: allowed, as
// followers serve their own applied state), and the longest such lag.
func staleReads(obs []observation, writes []writeOp) (n int, worst time.Duration) {
	for _, o := range obs {
		lag := int64(-1)
		for _, w := range writes {
			if w.ok && w.ret < o.at && w.epoch > o.epoch {
				lag = max(lag, o.at-w.ret)
			}
		}
		if lag >= 0 {
			n++
			worst = max(worst, time.Duration(lag))
		}
	}
	return n, worst
}

// checkLinearizable runs porcupine on the history; on a violation it writes
// the visualization into dir and names it.
func checkLinearizable(t *testing.T, writes []writeOp, views map[uint64]*epochView, dir string) {
	t.Helper()
	ops, p := operations(writes, views)
	if len(p.list) > 0 {
		t.Errorf("the history cannot be a linearizable one:\n%s", p.String())
	}
	res, info := porcupine.CheckOperationsVerbose(modulesModel, ops, checkTimeout)
	t.Logf("porcupine: %d operations (%d admin calls, %d epochs): %s", len(ops), len(writes), len(views), res)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := filepath.Join(dir, "linearizability.html")
		if err := porcupine.VisualizePath(modulesModel, info, path); err != nil {
			t.Logf("failed to write the visualization: %v", err)
		}
		t.Errorf("the history of admin calls and maps is not linearizable (visualization: %s)", path)
	default:
		t.Errorf("porcupine could not decide within %v whether the history is linearizable", checkTimeout)
	}
}

// writeHistory writes the history as text into dir, for a failed test.
func writeHistory(t *testing.T, dir string, obs []observation, writes []writeOp) {
	var b strings.Builder
	for _, w := range writes {
		fmt.Fprintf(&b, "call %v\n", w)
	}
	for _, o := range obs {
		fmt.Fprintf(&b, "seen %v %s epoch %d modules %v\n", time.Duration(o.at), o.watcher, o.epoch, o.mods)
	}
	path := filepath.Join(dir, "history.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Logf("failed to write the history: %v", err)
		return
	}
	t.Logf("history written to %s", path)
}
