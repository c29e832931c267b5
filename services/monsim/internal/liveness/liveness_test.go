package liveness

import (
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

func TestSilent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	grace := 6 * time.Second
	m := &mgrv1.MgrMap{ActiveGid: 1, Standbys: []*mgrv1.StandbyInfo{{Gid: 2}, {Gid: 3}}}
	tests := map[string]struct {
		seen map[uint64]time.Duration // offset from t0
		now  time.Duration
		want []uint64
	}{
		"new leader gives a full grace": {now: 6 * time.Second},
		"nobody heard past grace":       {now: 6*time.Second + time.Millisecond, want: []uint64{2, 3}},
		"active is judged elsewhere":    {seen: map[uint64]time.Duration{2: 5 * time.Second, 3: 5 * time.Second}, now: 7 * time.Second},
		"standby silent":                {seen: map[uint64]time.Duration{1: 5 * time.Second, 3: 5 * time.Second}, now: 7 * time.Second, want: []uint64{2}},
		"all fresh":                     {seen: map[uint64]time.Duration{1: 9 * time.Second, 2: 9 * time.Second, 3: 9 * time.Second}, now: 10 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tr := New(t0)
			for g, at := range tc.seen {
				tr.Seen(g, t0.Add(at))
			}
			got := tr.Silent(m, t0.Add(tc.now), grace)
			if len(got) != len(tc.want) {
				t.Fatalf("silent %v, want %v", got, tc.want)
			}
			for i, s := range got {
				if s.GetGid() != tc.want[i] || s.GetSilentMs() <= grace.Milliseconds() {
					t.Fatalf("silent[%d] = %v, want gid %d past grace", i, s, tc.want[i])
				}
			}
		})
	}
}

func TestResetGivesFullGraceAndForgets(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := New(t0)
	tr.Seen(1, t0)
	tr.Reset(t0.Add(10 * time.Second))
	if got := tr.LastSeen(1); !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("last seen after reset %v", got)
	}
	m := &mgrv1.MgrMap{ActiveGid: 1}
	if s := tr.Silent(m, t0.Add(15*time.Second), 6*time.Second); len(s) != 0 {
		t.Fatalf("silent within grace of the new leader: %v", s)
	}
	tr.Seen(9, t0.Add(11*time.Second))
	tr.Silent(m, t0.Add(30*time.Second), 6*time.Second)
	if got := tr.LastSeen(9); !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("gid 9 not in the map was kept: %v", got)
	}
}

func TestJudgeActive(t *testing.T) {
	t0 := time.Unix(1000, 0)
	grace, wait := 6*time.Second, 4500*time.Millisecond
	tests := map[string]struct {
		seen, granted time.Duration // offsets from t0; negative: never
		failing, lost bool
		now           time.Duration
		want          Verdict
	}{
		"fresh":                      {seen: 5 * time.Second, granted: 5 * time.Second, now: 6 * time.Second, want: Keep},
		"silent past grace":          {seen: 1 * time.Second, granted: 1 * time.Second, now: 7*time.Second + 1, want: Silent},
		"within grace, not failing":  {seen: 1 * time.Second, granted: 1 * time.Second, now: 6 * time.Second, want: Keep},
		"failing, lease running":     {seen: 5 * time.Second, granted: 2 * time.Second, failing: true, now: 6 * time.Second, want: Keep},
		"failing, lease run out":     {seen: 6 * time.Second, granted: 1 * time.Second, failing: true, now: 6 * time.Second, want: LeaseExpired},
		"lost, lease run out":        {seen: 1 * time.Second, granted: 1 * time.Second, lost: true, now: 5800 * time.Millisecond, want: LeaseExpired},
		"failing, never granted":     {seen: 1 * time.Second, granted: -1, failing: true, now: 4 * time.Second, want: Keep},
		"failing, never granted old": {seen: 4 * time.Second, granted: -1, failing: true, now: 5 * time.Second, want: LeaseExpired},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tr := New(t0)
			tr.Seen(1, t0.Add(tc.seen))
			if tc.granted >= 0 && !tr.Grant(1, t0.Add(tc.granted)) {
				t.Fatal("grant refused")
			}
			tr.Lost(1, tc.lost)
			got, _ := tr.JudgeActive(1, tc.failing, t0.Add(tc.now), grace, wait)
			if got != tc.want {
				t.Fatalf("verdict %v, want %v", got, tc.want)
			}
			if granted := tr.Grant(1, t0.Add(tc.now)); granted != (got == Keep) {
				t.Fatalf("grant after verdict %v: %v", got, granted)
			}
		})
	}
}

func TestRevokeStopsGrantsUntilUnrevoked(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := New(t0)
	tr.Revoke(7)
	if tr.Grant(7, t0) {
		t.Fatal("granted while revoked")
	}
	tr.Unrevoke(7)
	if !tr.Grant(7, t0) {
		t.Fatal("refused after unrevoke")
	}
	tr.Revoke(7)
	tr.Reset(t0.Add(time.Second))
	if !tr.Grant(7, t0.Add(time.Second)) {
		t.Fatal("a new leader kept an old revocation")
	}
}

// A crash probe that proves nothing lifts its own revocation, never a
// verdict reached while it ran: the term stays over.
func TestUnrevokeDoesNotReopenAJudgedTerm(t *testing.T) {
	t0 := time.Unix(1000, 0)
	grace, leaseWait := 6*time.Second, 4500*time.Millisecond
	tests := map[string]struct {
		failing bool
		at      time.Duration
		want    Verdict
	}{
		"silent past the grace":         {at: 7 * time.Second, want: Silent},
		"failing, its lease ran out":    {failing: true, at: 5 * time.Second, want: LeaseExpired},
		"still within its lease (keep)": {failing: true, at: 2 * time.Second, want: Keep},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tr := New(t0)
			tr.Seen(7, t0)
			if !tr.Grant(7, t0) {
				t.Fatal("first grant refused")
			}
			tr.Revoke(7) // a probe starts
			v, _ := tr.JudgeActive(7, tc.failing, t0.Add(tc.at), grace, leaseWait)
			if v != tc.want {
				t.Fatalf("verdict %v, want %v", v, tc.want)
			}
			tr.Unrevoke(7) // the probe proved nothing
			if got, want := tr.Grant(7, t0.Add(tc.at)), tc.want == Keep; got != want {
				t.Errorf("grant after the probe = %v, want %v", got, want)
			}
		})
	}
}
