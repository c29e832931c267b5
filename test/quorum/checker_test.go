package quorum

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// These tests check the checks on hand-made histories, so that the
// end-to-end test can fail. They run with -short too.

// seen makes an observation of a map with the given test modules.
func seen(watcher string, at int64, epoch uint64, mods ...string) observation {
	if mods == nil {
		mods = []string{}
	}
	return observation{watcher: watcher, at: at, epoch: epoch, mods: mods,
		line: fmt.Sprintf(`{"epoch":"%d","modules":[%s]}`, epoch, strings.Join(mods, ","))}
}

func TestCheckWatchers(t *testing.T) {
	tests := map[string]struct {
		obs   []observation
		kinds []string
	}{
		"in order":     {[]observation{seen("a", 1, 3), seen("b", 2, 5), seen("a", 3, 4), seen("b", 4, 6)}, nil},
		"gap":          {[]observation{seen("a", 1, 3), seen("a", 2, 5)}, []string{"gap"}},
		"duplicate":    {[]observation{seen("a", 1, 3), seen("a", 2, 3)}, []string{"duplicate"}},
		"out of order": {[]observation{seen("a", 1, 3), seen("a", 2, 4), seen("a", 3, 2)}, []string{"out of order"}},
		"not a map":    {[]observation{{watcher: "a", line: "mgrctl: oops", bad: "invalid character"}}, []string{"not a map"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, p := checkWatchers(tc.obs)
			checkKinds(t, p, tc.kinds)
		})
	}
}

func TestEpochViews(t *testing.T) {
	fork := seen("b", 5, 4, "qm_1")
	tests := map[string]struct {
		obs   []observation
		kinds []string
		first map[uint64]int64
	}{
		"agree": {[]observation{seen("a", 3, 4), seen("b", 2, 4), seen("c", 9, 5)}, nil, map[uint64]int64{4: 2, 5: 9}},
		"fork":  {[]observation{seen("a", 3, 4), fork}, []string{"fork"}, map[uint64]int64{4: 3}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			views, p := epochViews(tc.obs)
			checkKinds(t, p, tc.kinds)
			for e, at := range tc.first {
				if v := views[e]; v == nil || v.first != at {
					t.Errorf("epoch %d first seen %+v, want at %d", e, v, at)
				}
			}
		})
	}
}

// call makes an admin call of the writer.
func call(enable bool, name string, at, ret int64, epoch uint64) writeOp {
	return writeOp{enable: enable, name: name, call: at, ret: ret, ok: epoch != 0, epoch: epoch}
}

// linearizabilityCase is a history and what the checks must say of it.
type linearizabilityCase struct {
	writes []writeOp
	obs    []observation
	// direct are the kinds of problem the direct checks must find.
	direct []string
	// want is porcupine's verdict.
	want porcupine.CheckResult
}

func TestLinearizability(t *testing.T) {
	tests := map[string]linearizabilityCase{
		"enable then disable": {
			writes: []writeOp{call(true, "qm_1", 10, 20, 5), call(false, "qm_1", 30, 40, 7)},
			obs: []observation{seen("a", 5, 4), seen("a", 15, 5, "qm_1"), seen("a", 25, 6, "qm_1"), seen("a", 35, 7),
				seen("b", 50, 4), seen("b", 51, 5, "qm_1")}, // a follower far behind
			want: porcupine.Ok,
		},
		"failed call that took effect": {
			writes: []writeOp{call(true, "qm_1", 10, 20, 0), call(false, "qm_1", 30, 40, 0)},
			obs:    []observation{seen("a", 5, 4), seen("a", 25, 5, "qm_1"), seen("a", 45, 6)},
			want:   porcupine.Ok,
		},
		"failed call that did not": {
			writes: []writeOp{call(true, "qm_1", 10, 20, 0), call(true, "qm_2", 30, 40, 6)},
			obs:    []observation{seen("a", 5, 4), seen("a", 25, 5), seen("a", 35, 6, "qm_2")},
			want:   porcupine.Ok,
		},
		"acknowledged epoch lacks the change": {
			writes: []writeOp{call(true, "qm_1", 10, 20, 5)},
			obs:    []observation{seen("a", 5, 4), seen("a", 15, 5), seen("a", 25, 6, "qm_1")},
			direct: []string{"lost change"},
			want:   porcupine.Illegal,
		},
		"change in a map older than its answer": {
			writes: []writeOp{call(true, "qm_1", 10, 20, 5)},
			obs:    []observation{seen("a", 12, 3, "qm_1"), seen("a", 13, 4), seen("a", 15, 5, "qm_1")},
			direct: []string{"module vanished"},
			want:   porcupine.Illegal,
		},
		"answer goes back": {
			writes: []writeOp{call(true, "qm_1", 10, 20, 5), call(false, "qm_1", 30, 40, 4)},
			obs:    []observation{seen("a", 15, 5, "qm_1")},
			direct: []string{"epoch went back", "unseen epoch"},
			want:   porcupine.Illegal,
		},
		"change lost after its answer": {
			writes: []writeOp{call(true, "qm_1", 10, 20, 5)},
			obs:    []observation{seen("a", 15, 5, "qm_1"), seen("a", 30, 6)},
			direct: []string{"module vanished"},
			want:   porcupine.Illegal,
		},
		"map before the call that made it": {
			writes: []writeOp{call(true, "qm_1", 10, 20, 5)},
			obs:    []observation{seen("a", 8, 5, "qm_1")},
			direct: []string{"map before its call"},
			want:   porcupine.Ok, // that read is left out: the direct check reports it
		},
	}
	// An outage: every call fails, none takes effect. Kept, each would
	// double the orders porcupine tries; left out, the check is instant.
	var outage []writeOp
	for i := range 40 {
		outage = append(outage, call(i%2 == 0, fmt.Sprintf("qm_%d", i/2+2), int64(30+i), int64(31+i), 0))
	}
	tests["an outage of failed calls"] = linearizabilityCase{
		writes: append(append([]writeOp{call(true, "qm_1", 10, 20, 5)}, outage...), call(false, "qm_1", 100, 110, 6)),
		obs:    []observation{seen("a", 15, 5, "qm_1"), seen("a", 105, 6)},
		want:   porcupine.Ok,
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			views, vp := epochViews(tc.obs)
			ap := checkAcknowledged(tc.writes, views)
			ops, op := operations(tc.writes, views)
			var all problems
			for _, p := range []problems{vp, ap, op} {
				for _, l := range p.list {
					kind, rest, _ := strings.Cut(l, ": ")
					all.add(kind, "%s", rest)
				}
			}
			checkKinds(t, all, tc.direct)
			if got := porcupine.CheckOperationsTimeout(modulesModel, ops, 10*time.Second); got != tc.want {
				t.Errorf("porcupine says %s, want %s; operations:", got, tc.want)
				for _, o := range ops {
					t.Logf("  [%d, %d] %s", o.Call, o.Return, modulesModel.DescribeOperation(o.Input, o.Output))
				}
			}
		})
	}
}

// checkKinds checks that p found exactly the problems of the kinds given.
func checkKinds(t *testing.T, p problems, kinds []string) {
	t.Helper()
	for _, k := range kinds {
		if p.count[k] == 0 {
			t.Errorf("no %q problem found; found:\n%s", k, p.String())
		}
	}
	for k := range p.count {
		want := false
		for _, w := range kinds {
			want = want || w == k
		}
		if !want {
			t.Errorf("unexpected %q problem:\n%s", k, p.String())
		}
	}
}

func TestSetModule(t *testing.T) {
	tests := map[string]struct {
		mods, name string
		enable     bool
		want       string
	}{
		"add to none":    {"", "qm_2", true, "qm_2"},
		"add sorted":     {"qm_1,qm_3", "qm_2", true, "qm_1,qm_2,qm_3"},
		"add again":      {"qm_1", "qm_1", true, "qm_1"},
		"remove":         {"qm_1,qm_2", "qm_1", false, "qm_2"},
		"remove last":    {"qm_1", "qm_1", false, ""},
		"remove missing": {"qm_1", "qm_9", false, "qm_1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := setModule(tc.mods, tc.name, tc.enable); got != tc.want {
				t.Errorf("setModule(%q, %q, %t) = %q, want %q", tc.mods, tc.name, tc.enable, got, tc.want)
			}
		})
	}
}
