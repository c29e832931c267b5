package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mgrplane/mgrplane/internal/chaos"
	"github.com/mgrplane/mgrplane/internal/version"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestRunRefusesBadInput(t *testing.T) {
	tests := map[string]struct {
		args []string
		env  map[string]string
		want string // in the error
	}{
		"an unknown flag":        {args: []string{"--nope"}, want: "flag provided but not defined"},
		"an argument":            {args: []string{"extra"}, want: `unexpected argument "extra"`},
		"an unknown fault":       {args: []string{"--faults", "kill9,reboot"}, want: `--faults: unknown fault "reboot"`},
		"no rounds":              {args: []string{"--rounds", "0"}, want: "Rounds is 0"},
		"a bad log level":        {args: []string{"--log-level", "loud"}, want: "--log-level"},
		"a bad env value":        {env: map[string]string{"MGRPLANE_ROUNDS": "many"}, want: "MGRPLANE_ROUNDS"},
		"a fence above grace":    {args: []string{"--grace", "2s", "--fence-timeout", "3s"}, want: "FenceTimeout"},
		"an env-set bad fault":   {env: map[string]string{"MGRPLANE_FAULTS": "x"}, want: `unknown fault "x"`},
		"a bin dir without bins": {args: []string{"--bin", "/nonexistent"}, want: "missing binary"},
		"two monitors":           {args: []string{"--monitors", "2"}, want: "Monitors is 2"},
		"monkill on one monitor": {args: []string{"--faults", "kill9,monkill"}, want: "monitor faults need Monitors = 3"},
		"monstop by env":         {env: map[string]string{"MGRPLANE_FAULTS": "monstop"}, want: "monitor faults need Monitors = 3"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--out", t.TempDir()}, tc.args...)
			err := run(context.Background(), args, env(tc.env), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q (stderr: %s)", err, tc.want, stderr.String())
			}
		})
	}
}

func TestRunVersionAndHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, env(nil), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "chaos "+version.Version+"\n"; got != want {
		t.Errorf("--version printed %q, want %q", got, want)
	}
	stdout.Reset()
	err := run(context.Background(), []string{"-h"}, env(nil), &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: got %v, want flag.ErrHelp", err)
	}
	for _, f := range []string{"-rounds", "-seed", "-faults", "-beacon-period", "-grace", "-tick", "-fence-timeout", "-out", "-bin", "-ceph", "-monitors"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("-h does not list %s:\n%s", f, stderr.String())
		}
	}
}

// TestRunWritesArtifacts runs two rounds on the real programs and checks
// what a user finds: the table, timeline.svg and report.json.
func TestRunWritesArtifacts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := t.TempDir()
	if _, err := chaos.BuildBinaries(ctx, bin); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--bin", bin, "--out", out, "--rounds", "2", "--seed", "9", "--faults", "sigterm",
		"--beacon-period", "100ms", "--grace", "1500ms", "--tick", "100ms", "--fence-timeout", "700ms"}
	err := run(ctx, args, env(nil), &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	for _, want := range []string{"round 1/2 sigterm", "round 2/2 sigterm", "FAULT", "overlaps: 0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	svg, err := os.ReadFile(filepath.Join(out, "timeline.svg"))
	if err != nil || !bytes.HasPrefix(svg, []byte("<?xml")) {
		t.Errorf("timeline.svg: %v, starts %.40q", err, svg)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep chaos.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if rep.Seed != 9 || len(rep.Failovers) != 2 || len(rep.Overlaps) != 0 {
		t.Errorf("report: seed %d, %d failovers, %d overlaps; want 9, 2, 0", rep.Seed, len(rep.Failovers), len(rep.Overlaps))
	}
	if _, err := os.Stat(filepath.Join(out, "logs", "monsim.log")); err != nil {
		t.Errorf("no monsim log: %v", err)
	}
}
