package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextStaysWithinBounds(t *testing.T) {
	tests := map[string]struct {
		min, max time.Duration
	}{
		"default":        {min: 50 * time.Millisecond, max: 2 * time.Second},
		"equal":          {min: time.Second, max: time.Second},
		"max below min":  {min: time.Second, max: time.Millisecond},
		"one nanosecond": {min: 1, max: 4},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := New(tc.min, tc.max)
			for i := range 40 {
				d := b.Next()
				if d > b.Max || d < b.Min/2 {
					t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, b.Min/2, b.Max)
				}
			}
			// After many attempts the ceiling is reached: the delay is at least half of Max.
			if d := b.Next(); d < b.Max/2 {
				t.Fatalf("delay %v after 40 attempts, want at least %v", d, b.Max/2)
			}
			b.Reset()
			if d := b.Next(); d > b.Min {
				t.Fatalf("delay %v after Reset, want at most %v", d, b.Min)
			}
		})
	}
}

func TestWaitStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if New(time.Hour, time.Hour).Wait(ctx) {
		t.Fatal("Wait reported a full delay on a cancelled context")
	}
	if !New(time.Nanosecond, time.Nanosecond).Wait(context.Background()) {
		t.Fatal("Wait did not report the full delay")
	}
}
