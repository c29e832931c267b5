// Package fence is the active manager's lease: how long it may go on serving
// as the active without hearing from the monitor again.
//
// The monitor answers a beacon from the active with a lease L. The manager may
// serve until the time it SENT that beacon plus L, measured on its own
// monotonic clock (time.Now carries a monotonic reading, and time.Time.Add
// and Before use it). The monitor starts its own count no earlier than it
// received the beacon, so the manager's lease always ends first, as long as
// the two clocks run at about the same rate; the monitor promotes no other
// manager until the lease has run out on its clock.
package fence

import (
	"sync"
	"time"
)

// Lease is one activation's lease. The zero value holds none. It is safe for
// concurrent use: the role extends it, the server's gates read it on every
// request.
type Lease struct {
	mu    sync.Mutex
	until time.Time
}

// Extend records a lease of d granted for a beacon sent at sent: the lease
// runs until sent + d, or until the later end it already had. It returns the
// end of the lease. A d of zero or less grants nothing.
func (l *Lease) Extend(sent time.Time, d time.Duration) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d <= 0 {
		return l.until
	}
	if end := sent.Add(d); end.After(l.until) {
		l.until = end
	}
	return l.until
}

// Until is when the lease ends; zero when none was granted.
func (l *Lease) Until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// Held reports whether the lease is valid at now: granted, and now is before
// its end.
func (l *Lease) Held(now time.Time) bool {
	until := l.Until()
	return !until.IsZero() && now.Before(until)
}
