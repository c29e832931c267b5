package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func testReport() Report {
	answers := concat(serve("x", 1, 2, 0, 98, 2), serve("y", 2, 5, 140, 400, 2))
	faults := []Fault{
		{Round: 1, Kind: SigTerm, Target: "x", TargetGID: 1, OldEpoch: 2, At: ms(100), Until: ms(300)},
		{Round: 2, Kind: Kill9, Target: "y", TargetGID: 2, OldEpoch: 5, At: ms(401), Until: ms(3401)},
	}
	an := Analyze(answers, faults)
	return Report{
		Seed: 42, Rounds: 2, Faults: []FaultKind{SigTerm, Kill9}, Managers: []string{"x", "y"},
		BeaconPeriod: 100 * time.Millisecond, Grace: time.Second, Tick: 100 * time.Millisecond, FenceFlag: true,
		Start: base, End: ms(3500), Failovers: an.Failovers, Stats: an.Stats, Overlaps: an.Overlaps, Answers: len(answers),
	}
}

func TestWriteTable(t *testing.T) {
	r := testReport()
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"failover over 2 rounds (seed 42): 1 monitor(s), beacon 100ms, grace 1s, tick 100ms, fence timeout monsim's default",
		"sigterm  1  0         new active   41.0ms (0.041)",
		"unavailable  42.0ms (0.042)",
		"kill9    1  1         new active   -",
		"overlaps: 0\n",
		"round 2 kill9 on y (gid 2): no new active within 3000.0ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteTableMonitorFaults(t *testing.T) {
	// x serves throughout but for a stretch 300..420; y takes over at 700.
	answers := concat(serve("x", 1, 2, 0, 300, 2), serve("x", 1, 2, 420, 600, 2), serve("y", 2, 5, 700, 900, 2))
	faults := []Fault{
		{Round: 1, Kind: MonKill, Target: "x", TargetGID: 1, OldEpoch: 2, At: ms(250), Until: ms(500),
			Monitor: "m1", NewLeader: "m2", LeaderAt: ms(350)},
		{Round: 2, Kind: MonStop, Target: "x", TargetGID: 1, OldEpoch: 2, At: ms(550), Until: ms(800), Monitor: "m2"},
	}
	an := Analyze(answers, faults)
	r := Report{Seed: 7, Rounds: 2, Faults: []FaultKind{MonKill, MonStop}, Managers: []string{"x", "y"}, Monitors: 3,
		BeaconPeriod: 100 * time.Millisecond, Grace: time.Second, Tick: 100 * time.Millisecond, FenceFlag: true,
		Start: base, End: ms(900), Failovers: an.Failovers, Stats: an.Stats}
	if err := r.Verdict(); err != nil {
		t.Errorf("verdict %v: monitor faults that keep the active are no timeouts", err)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Cells compared with runs of spaces as one.
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"3 monitor(s)",
		"monkill  1  -         new leader (1)          100.0ms (0.100)",
		"unavailable             120.0ms (0.120)",
		"replaced 0 - - - -",
		"monstop  1  -         new leader (0)          -",
		"unavailable             100.0ms (0.100)",
		"replaced 1: new active  151.0ms (0.151)",
		"overlaps: 0",
	} {
		if !strings.Contains(flat, strings.Join(strings.Fields(want), " ")) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "no new active within") {
		t.Errorf("a monitor fault is listed as timed out:\n%s", out)
	}
}

func TestVerdict(t *testing.T) {
	r := testReport()
	err := r.Verdict()
	if !errors.Is(err, ErrTimeouts) || errors.Is(err, ErrOverlaps) {
		t.Errorf("verdict %v: want timeouts only", err)
	}
	r.Overlaps = FindOverlaps(concat(serve("x", 1, 2, 0, 100, 2), serve("y", 2, 5, 50, 200, 2)))
	if err := r.Verdict(); !errors.Is(err, ErrOverlaps) {
		t.Errorf("verdict %v: want overlaps", err)
	}
	r.Overlaps, r.Failovers = nil, r.Failovers[:1]
	if err := r.Verdict(); err != nil {
		t.Errorf("verdict %v: want none", err)
	}
}

func TestWriteJSONAndAnswers(t *testing.T) {
	r := testReport()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("report.json does not decode: %v", err)
	}
	if back.Seed != r.Seed || len(back.Failovers) != 2 || back.Stats[0].TimeToActive != r.Stats[0].TimeToActive {
		t.Errorf("decoded %+v, want %+v", back, r)
	}

	answers := serve("x", 1, 2, 0, 10, 2)
	buf.Reset()
	if err := WriteAnswers(&buf, answers); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		var a Answer
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if !a.Send.Equal(answers[n].Send) || a.GID != 1 || !a.Earliest.IsZero() {
			t.Errorf("line %d: %+v, want %+v", n+1, a, answers[n])
		}
		n++
	}
	if n != len(answers) {
		t.Errorf("%d lines, want %d", n, len(answers))
	}
}
