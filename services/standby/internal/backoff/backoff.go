// Package backoff computes bounded exponential delays with jitter for
// reconnect loops.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields delays that double from Min up to Max, each with up to 50%
// random jitter taken off, so that many managers reconnecting after one
// monitor failure spread out. It is not safe for concurrent use: each loop
// owns one.
type Backoff struct {
	// Min is the first delay.
	Min time.Duration
	// Max bounds every delay.
	Max time.Duration

	attempt int
}

// New returns a Backoff from min to max; max below min is raised to min.
func New(minDelay, maxDelay time.Duration) *Backoff {
	if maxDelay < minDelay {
		maxDelay = minDelay
	}
	return &Backoff{Min: minDelay, Max: maxDelay}
}

// Next returns the next delay and advances the sequence.
func (b *Backoff) Next() time.Duration {
	d := b.Min
	for i := 0; i < b.attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	b.attempt++
	if d <= 1 {
		return d
	}
	// Full jitter on the upper half: the delay is in [d/2, d].
	half := d / 2
	return half + rand.N(half+1)
}

// Reset starts the sequence again from Min, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for the next delay, or until ctx is done; it reports whether
// the full delay passed.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
