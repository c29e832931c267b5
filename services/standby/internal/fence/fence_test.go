package fence

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLease(t *testing.T) {
	base := time.Now()
	tests := map[string]struct {
		grants    []time.Duration // each for a beacon sent base + i ms
		at        time.Duration   // checked at base + at
		wantHeld  bool
		wantUntil time.Duration // from base; -1: zero time
	}{
		"none granted":            {at: 0, wantUntil: -1},
		"within the lease":        {grants: []time.Duration{100 * time.Millisecond}, at: 99 * time.Millisecond, wantHeld: true, wantUntil: 100 * time.Millisecond},
		"at its end":              {grants: []time.Duration{100 * time.Millisecond}, at: 100 * time.Millisecond, wantUntil: 100 * time.Millisecond},
		"after its end":           {grants: []time.Duration{100 * time.Millisecond}, at: time.Second, wantUntil: 100 * time.Millisecond},
		"later beacon extends":    {grants: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}, at: 100 * time.Millisecond, wantHeld: true, wantUntil: 101 * time.Millisecond},
		"shorter grant keeps end": {grants: []time.Duration{100 * time.Millisecond, 10 * time.Millisecond}, at: 50 * time.Millisecond, wantHeld: true, wantUntil: 100 * time.Millisecond},
		"zero grants nothing":     {grants: []time.Duration{0, -time.Second}, at: 0, wantUntil: -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var l Lease
			for i, d := range tc.grants {
				l.Extend(base.Add(time.Duration(i)*time.Millisecond), d)
			}
			if got := l.Held(base.Add(tc.at)); got != tc.wantHeld {
				t.Errorf("Held = %v, want %v", got, tc.wantHeld)
			}
			want := time.Time{}
			if tc.wantUntil >= 0 {
				want = base.Add(tc.wantUntil)
			}
			if got := l.Until(); !got.Equal(want) {
				t.Errorf("Until = %v, want %v", got, want)
			}
		})
	}
}

// A lease taken with time.Now (which carries the monotonic reading) is held
// at once and not at its end.
func TestLeaseFromNow(t *testing.T) {
	var l Lease
	sent := time.Now()
	l.Extend(sent, time.Hour)
	if !l.Held(time.Now()) {
		t.Fatal("a lease of an hour is not held right after it was granted")
	}
	if l.Held(sent.Add(time.Hour)) {
		t.Error("the lease is held at its end")
	}
}

func TestLeaseConcurrent(t *testing.T) {
	var l Lease
	base := time.Now()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				l.Extend(base.Add(time.Duration(i*100+j)*time.Microsecond), time.Second)
				_ = l.Held(time.Now())
			}
		}()
	}
	wg.Wait()
	if want := base.Add(799*time.Microsecond + time.Second); !l.Until().Equal(want) {
		t.Errorf("Until = %v, want %v (the latest end)", l.Until(), want)
	}
}
