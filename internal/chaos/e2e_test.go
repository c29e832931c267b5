package chaos

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/testlog"
)

// TestRunRealCluster runs the harness on the real programs for a few rounds
// of the faults every build must survive without an overlap.
func TestRunRealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := BuildBinaries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Rounds = 5
	cfg.Seed = 4 // draws each of the three faults
	cfg.Faults = []FaultKind{SigTerm, Fail, Kill9}
	cfg.BeaconPeriod = 100 * time.Millisecond
	// monsim wants fence ≥ beacon + 500 ms and grace > fence + beacon +
	// 500 ms; the fence timeout is passed only when monsim has the flag.
	cfg.Grace = 1500 * time.Millisecond
	cfg.Tick = 100 * time.Millisecond
	cfg.FenceTimeout = 700 * time.Millisecond
	cfg.Dir = t.TempDir()
	logTailsOnFailure(t, filepath.Join(cfg.Dir, "logs"))
	var progress bytes.Buffer
	r, err := New(cfg, bins, testlog.New(t), &progress)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	rep := res.Report
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	if len(rep.Failovers) != cfg.Rounds {
		t.Fatalf("%d rounds measured, want %d", len(rep.Failovers), cfg.Rounds)
	}
	for _, o := range rep.Overlaps {
		t.Errorf("overlap: %s", o.Describe(rep.Start))
	}
	drawn := map[FaultKind]bool{}
	for _, f := range rep.Failovers {
		drawn[f.Kind] = true
		if f.TimedOut {
			t.Errorf("round %d (%s on %s): no new active", f.Round, f.Kind, f.Target)
			continue
		}
		if f.New.GID == f.TargetGID && f.New.ActiveEpoch == f.OldEpoch {
			t.Errorf("round %d: the new active is the old term %+v", f.Round, f.New)
		}
	}
	for _, k := range cfg.Faults {
		if !drawn[k] {
			t.Errorf("seed %d drew no %s: pick a seed that draws every fault", cfg.Seed, k)
		}
	}
	if err := rep.Verdict(); err != nil {
		t.Errorf("verdict: %v", err)
	}
	if rep.Answers == 0 || rep.Maps == 0 {
		t.Errorf("%d answers and %d maps recorded, want some of each", rep.Answers, rep.Maps)
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, res.Timeline); err != nil {
		t.Fatal(err)
	}
	if counts, _ := svgCounts(t, svg.Bytes()); counts["line"] < cfg.Rounds {
		t.Errorf("the timeline has %d lines, want one per fault at least", counts["line"])
	}
}

// TestRunQuorum runs the harness on a quorum of three monitors for a few
// rounds of the monitor faults (and one manager fault), short timings.
func TestRunQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := BuildBinaries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Monitors = 3
	cfg.Rounds = 4
	cfg.Seed = 4 // monkill, kill9, monstop, kill9
	cfg.Faults = []FaultKind{Kill9, MonKill, MonStop}
	cfg.BeaconPeriod = 100 * time.Millisecond
	cfg.Grace = 1500 * time.Millisecond
	cfg.Tick = 100 * time.Millisecond
	cfg.FenceTimeout = 700 * time.Millisecond
	cfg.Dir = t.TempDir()
	var progress bytes.Buffer
	r, err := New(cfg, bins, testlog.New(t), &progress)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	rep := res.Report
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	if len(rep.Failovers) != cfg.Rounds {
		t.Fatalf("%d rounds measured, want %d", len(rep.Failovers), cfg.Rounds)
	}
	for _, o := range rep.Overlaps {
		t.Errorf("overlap: %s", o.Describe(rep.Start))
	}
	drawn := map[FaultKind]bool{}
	for _, f := range rep.Failovers {
		drawn[f.Kind] = true
		switch {
		case f.Kind.OnMonitor() && (f.Monitor == "" || f.Until.Before(f.At)):
			t.Errorf("round %d (%s): monitor %q, healed %v after the fault", f.Round, f.Kind, f.Monitor, f.Until.Sub(f.At))
		case f.Kind == MonKill && (f.NewLeader == "" || f.NewLeader == f.Monitor):
			t.Errorf("round %d: monkill of %s saw new leader %q", f.Round, f.Monitor, f.NewLeader)
		case f.TimedOut:
			t.Errorf("round %d (%s on %s): no new active", f.Round, f.Kind, f.Target)
		}
	}
	for _, k := range cfg.Faults {
		if !drawn[k] {
			t.Errorf("seed %d drew no %s: pick a seed that draws every fault", cfg.Seed, k)
		}
	}
	if err := rep.Verdict(); err != nil {
		t.Errorf("verdict: %v", err)
	}
}

// logTailsOnFailure logs the last lines of every daemon log in dir when the
// test fails, before its temporary dir is removed.
func logTailsOnFailure(t *testing.T, dir string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			b, err := os.ReadFile(l)
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			t.Logf("last lines of %s:\n%s", filepath.Base(l), strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	})
}
