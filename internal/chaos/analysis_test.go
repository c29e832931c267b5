package chaos

import (
	"slices"
	"testing"
	"time"
)

func TestFindOverlaps(t *testing.T) {
	stop := Fault{Kind: SigStop, Target: "x", TargetGID: 1, OldEpoch: 2, At: ms(100.5), Stopped: ms(101), Resumed: ms(204)}
	tests := map[string]struct {
		answers []Answer
		faults  []Fault // for ApplyStops
		want    []string
	}{
		"clean handover": {
			answers: concat(serve("x", 1, 2, 0, 100, 2), serve("y", 2, 5, 110, 200, 2)),
		},
		"an answer of the old active in flight at the handover": {
			// x's last call is sent before y's first answer arrives and
			// received after it: not a proof.
			answers: concat(serve("x", 1, 2, 0, 100, 2), []Answer{ans("x", 1, 2, 104, 115)}, serve("y", 2, 5, 106, 200, 2)),
		},
		"the new active's first answer in flight while the old one still answers": {
			// y's first call is sent before x's last answer arrives.
			answers: concat(serve("x", 1, 2, 0, 100, 2), []Answer{ans("y", 2, 5, 100.5, 140)}, serve("y", 2, 5, 141, 200, 2)),
		},
		"two actives at once": {
			answers: concat(serve("x", 1, 2, 0, 100, 2), serve("y", 2, 5, 50, 200, 2)),
			want:    []string{"concurrent 1/2 2/5"},
		},
		"one answer of B between two answers of A over different protocols": {
			answers: []Answer{
				ans("x", 1, 2, 0, 1),
				{Manager: "x", Proto: HTTP, Send: ms(100), Recv: ms(101), GID: 1, ActiveEpoch: 2},
				ans("y", 2, 5, 50, 51),
			},
			want: []string{"concurrent 1/2 2/5"},
		},
		"B's answer sent before A's first answer arrived": {
			answers: []Answer{ans("x", 1, 2, 0, 1), ans("x", 1, 2, 100, 101), ans("y", 2, 5, 0.5, 50)},
		},
		"B's answer received after A's last answer was sent": {
			answers: []Answer{ans("x", 1, 2, 0, 1), ans("x", 1, 2, 100, 101), ans("y", 2, 5, 50, 100.5)},
		},
		"a restarted manager's new gid overlapping its old one": {
			answers: concat(serve("x", 1, 2, 0, 100, 2), serve("x", 4, 9, 50, 60, 2)),
			want:    []string{"concurrent 1/2 4/9"},
		},
		"one gid in two terms is not two managers": {
			answers: concat(serve("x", 1, 2, 0, 100, 2), serve("x", 1, 7, 50, 60, 2)),
		},
		"one active epoch answered by two gids": {
			answers: concat(serve("x", 1, 2, 0, 50, 2), serve("z", 3, 2, 200, 250, 2)),
			want:    []string{"shared-epoch 1/2 3/2"},
		},
		"a call sent while A was stopped and answered after SIGCONT, B answering in between": {
			// Sent 120, received 205: without the stop it proves nothing
			// (y's answers all arrive after 120); A ran nothing before 204.
			answers: concat(serve("x", 1, 2, 0, 100, 2), serve("y", 2, 5, 150, 200, 2), []Answer{ans("x", 1, 2, 120, 205)}),
			faults:  []Fault{stop},
			want:    []string{"concurrent 1/2 2/5"},
		},
		"the same answers without the stop known": {
			answers: concat(serve("x", 1, 2, 0, 100, 2), serve("y", 2, 5, 150, 200, 2), []Answer{ans("x", 1, 2, 120, 205)}),
		},
		"a call sent just before the stop may have been handled before it": {
			answers: concat(serve("x", 1, 2, 0, 100, 2), serve("y", 2, 5, 150, 200, 2), []Answer{ans("x", 1, 2, 101.5, 205)}),
			faults:  []Fault{stop},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := FindOverlaps(ApplyStops(tc.answers, tc.faults))
			var keys []string
			for _, o := range got {
				keys = append(keys, o.Key())
			}
			if !slices.Equal(keys, tc.want) {
				t.Fatalf("overlaps %q, want %q:\n%+v", keys, tc.want, got)
			}
			for _, o := range got {
				if o.Kind != Concurrent {
					continue
				}
				// The proof holds: B's answer lies strictly between A's two.
				if !o.A1.Recv.Before(o.BFrom.handled()) || !o.BFrom.Recv.Before(o.A2.handled()) || o.A.GID == o.B.GID {
					t.Errorf("overlap does not prove itself: %+v", o)
				}
				if o.Describe(base) == "" {
					t.Errorf("empty description of %+v", o)
				}
			}
		})
	}
}

func TestFindOverlapsCountsEveryProvingAnswer(t *testing.T) {
	// y answers 5 times inside x's term: one overlap of 5 answers (or, seen
	// from y, x's answers inside y's term; one of the two stands).
	answers := concat(serve("x", 1, 2, 0, 100, 2), serve("y", 2, 5, 40, 48, 2))
	got := FindOverlaps(answers)
	if len(got) != 1 {
		t.Fatalf("got %d overlaps, want 1: %+v", len(got), got)
	}
	if o := got[0]; o.A.GID != 1 || o.Count != 5 || !o.BFrom.Send.Equal(ms(40)) {
		t.Errorf("got A gid %d, %d answers, first sent %v; want A gid 1, 5 answers, first sent at 40 ms", o.A.GID, o.Count, o.BFrom.Send.Sub(base))
	}
}

func TestApplyStopsLeavesItsInputAlone(t *testing.T) {
	in := []Answer{ans("x", 1, 2, 120, 205), ans("y", 2, 5, 120, 121)}
	f := Fault{Kind: SigStop, TargetGID: 1, Stopped: ms(101), Resumed: ms(204)}
	out := ApplyStops(in, []Fault{f})
	if !in[0].Earliest.IsZero() {
		t.Errorf("the input was changed: %+v", in[0])
	}
	if !out[0].Earliest.Equal(ms(204)) {
		t.Errorf("x's answer: earliest %v, want 204 ms", out[0].Earliest.Sub(base))
	}
	if !out[1].Earliest.IsZero() {
		t.Errorf("y's answer (another gid) got earliest %v", out[1].Earliest.Sub(base))
	}
}

func TestMeasureMonitorFault(t *testing.T) {
	kill := Fault{Round: 1, Kind: MonKill, Target: "x", TargetGID: 1, OldEpoch: 2, At: ms(100), Until: ms(1000),
		Monitor: "m1", NewLeader: "m3", LeaderAt: ms(400)}
	tests := map[string]struct {
		answers      []Answer
		wantReplaced bool
		wantNew      uint64
		wantUnavail  time.Duration
	}{
		"the active keeps serving": {
			answers:     serve("x", 1, 2, 0, 1100, 2),
			wantUnavail: 2 * time.Millisecond,
		},
		"the active pauses": {
			// x's answers arrive up to 301, then from 651.
			answers:     concat(serve("x", 1, 2, 0, 300, 2), serve("x", 1, 2, 650, 1100, 2)),
			wantUnavail: 350 * time.Millisecond,
		},
		"nobody answers after the fault": {
			// The last answer arrives at 99: the stretch runs to Until.
			answers:     serve("x", 1, 2, 0, 98, 2),
			wantUnavail: 901 * time.Millisecond,
		},
		"the active is replaced": {
			answers:      concat(serve("x", 1, 2, 0, 200, 2), serve("y", 2, 5, 500, 1100, 2)),
			wantReplaced: true, wantNew: 2,
			wantUnavail: 300 * time.Millisecond,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fo := MeasureFailover(tc.answers, kill)
			if fo.TimedOut {
				t.Errorf("a monitor fault timed out")
			}
			if fo.ActiveReplaced != tc.wantReplaced || fo.New.GID != tc.wantNew {
				t.Errorf("replaced %t by gid %d, want %t by %d", fo.ActiveReplaced, fo.New.GID, tc.wantReplaced, tc.wantNew)
			}
			if fo.Unavailable != tc.wantUnavail {
				t.Errorf("unavailable %v, want %v", fo.Unavailable, tc.wantUnavail)
			}
			if fo.TimeToLeader != 300*time.Millisecond {
				t.Errorf("time to leader %v, want 300ms", fo.TimeToLeader)
			}
		})
	}
}

func TestMeasureFailover(t *testing.T) {
	kill := Fault{Round: 1, Kind: Kill9, Target: "x", TargetGID: 1, OldEpoch: 2, At: ms(100), Until: ms(1000)}
	tests := map[string]struct {
		answers      []Answer
		fault        Fault
		wantTimedOut bool
		wantNew      uint64
		wantTTA      time.Duration
		wantUnavail  time.Duration
	}{
		"a new active": {
			// x's last answer arrives at 99; y's first at 141.
			answers:     concat(serve("x", 1, 2, 0, 98, 2), serve("y", 2, 5, 140, 200, 2)),
			fault:       kill,
			wantNew:     2,
			wantTTA:     41 * time.Millisecond,
			wantUnavail: 42 * time.Millisecond,
		},
		"the old active's answer arrives after the new one's": {
			answers: concat(serve("x", 1, 2, 0, 98, 2), []Answer{ans("x", 1, 2, 99, 150)}, serve("y", 2, 5, 140, 200, 2)),
			fault:   kill,
			wantNew: 2, wantTTA: 41 * time.Millisecond, wantUnavail: 0,
		},
		"the old term's answers after the fault do not count": {
			answers: concat(serve("x", 1, 2, 0, 300, 2), serve("y", 2, 5, 400, 500, 2)),
			fault:   kill,
			wantNew: 2, wantTTA: 301 * time.Millisecond, wantUnavail: 100 * time.Millisecond,
		},
		"a restart: the same name in a new term": {
			answers: concat(serve("x", 1, 2, 0, 98, 2), serve("x", 4, 9, 120, 200, 2)),
			fault:   kill,
			wantNew: 4, wantTTA: 21 * time.Millisecond, wantUnavail: 22 * time.Millisecond,
		},
		"no old answer: the window starts at the fault": {
			answers: serve("y", 2, 5, 140, 200, 2),
			fault:   kill,
			wantNew: 2, wantTTA: 41 * time.Millisecond, wantUnavail: 41 * time.Millisecond,
		},
		"nobody new": {
			answers:      serve("x", 1, 2, 0, 98, 2),
			fault:        kill,
			wantTimedOut: true,
		},
		"the new active answers only after the wait ended": {
			answers:      concat(serve("x", 1, 2, 0, 98, 2), serve("y", 2, 5, 1100, 1200, 2)),
			fault:        kill,
			wantTimedOut: true,
		},
		"answers before the fault do not count": {
			answers:      concat(serve("y", 2, 5, 0, 50, 2), serve("x", 1, 2, 60, 98, 2)),
			fault:        kill,
			wantTimedOut: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fo := MeasureFailover(tc.answers, tc.fault)
			if fo.TimedOut != tc.wantTimedOut {
				t.Fatalf("timed out %t, want %t: %+v", fo.TimedOut, tc.wantTimedOut, fo)
			}
			if tc.wantTimedOut {
				return
			}
			if fo.New.GID != tc.wantNew || fo.TimeToActive != tc.wantTTA || fo.Unavailable != tc.wantUnavail {
				t.Errorf("new gid %d, time to active %v, unavailable %v; want %d, %v, %v",
					fo.New.GID, fo.TimeToActive, fo.Unavailable, tc.wantNew, tc.wantTTA, tc.wantUnavail)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	var fos []Failover
	for i := 100; i >= 1; i-- { // out of order on purpose
		d := time.Duration(i) * time.Millisecond
		fos = append(fos, Failover{Fault: Fault{Kind: SigTerm}, TimeToActive: d, Unavailable: 2 * d})
	}
	fos = append(fos,
		Failover{Fault: Fault{Kind: SigTerm}, TimedOut: true, TimeToActive: time.Hour},
		Failover{Fault: Fault{Kind: Kill9}, TimeToActive: 7 * time.Millisecond, Unavailable: 8 * time.Millisecond},
	)
	got := Summarize(fos, AllFaults())
	want := []Stats{
		{Kind: Kill9, Count: 1,
			TimeToActive: Summary{7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
			Unavailable:  Summary{8 * time.Millisecond, 8 * time.Millisecond, 8 * time.Millisecond, 8 * time.Millisecond}},
		{Kind: SigTerm, Count: 101, TimedOut: 1,
			TimeToActive: Summary{time.Millisecond, 50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond},
			Unavailable:  Summary{2 * time.Millisecond, 100 * time.Millisecond, 198 * time.Millisecond, 200 * time.Millisecond}},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestAnalyze(t *testing.T) {
	answers := concat(serve("x", 1, 2, 0, 98, 2), serve("y", 2, 5, 140, 200, 2))
	an := Analyze(answers, []Fault{{Round: 1, Kind: Fail, Target: "x", TargetGID: 1, OldEpoch: 2, At: ms(100), Until: ms(300)}})
	if len(an.Overlaps) != 0 || len(an.Failovers) != 1 || len(an.Stats) != 1 {
		t.Fatalf("got %d overlaps, %d failovers, %d stats; want 0, 1, 1", len(an.Overlaps), len(an.Failovers), len(an.Stats))
	}
	if s := an.Stats[0]; s.Kind != Fail || s.TimeToActive.Median != 41*time.Millisecond {
		t.Errorf("stats %+v: want fail with median 41ms", s)
	}
}
