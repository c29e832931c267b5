// Package liveness keeps when each manager was last heard from, in the quorum
// leader's memory only (beacon timestamps never go through consensus, as in
// Ceph), and decides who has been silent past the grace.
package liveness

import (
	"sync"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// Tracker records last-seen times. Times come in as values, so a tracker can
// be driven by a test clock. It is safe for concurrent use.
type Tracker struct {
	mu sync.Mutex
	// since is when this monitor started judging (it became leader): a gid
	// it has not heard from yet counts as seen then, so every manager gets a
	// full grace from a new leader.
	since time.Time
	seen  map[uint64]time.Time
	// granted is when each gid's newest lease was granted (the receive time
	// of the beacon it answered: never before the manager sent it).
	granted map[uint64]time.Time
	// revoked gids get no more leases while the leader checks whether they
	// still serve (the crash probe); Unrevoke lifts it.
	revoked map[uint64]bool
	// ended gids get no more leases ever: the leader decided their term is
	// over (JudgeActive). Unrevoke does not lift it, so a probe that ends
	// after the verdict cannot reopen the term.
	ended map[uint64]bool
	// lost marks gids whose connection to the monitor broke without a
	// leave: their lease, not the grace, bounds how long they are kept.
	lost map[uint64]bool
}

// New returns a tracker that starts judging at now.
func New(now time.Time) *Tracker {
	return &Tracker{since: now, seen: map[uint64]time.Time{}, granted: map[uint64]time.Time{},
		revoked: map[uint64]bool{}, ended: map[uint64]bool{}, lost: map[uint64]bool{}}
}

// Reset forgets everything and starts judging at now: called when this
// monitor becomes leader.
func (t *Tracker) Reset(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.since = now
	clear(t.seen)
	clear(t.granted)
	clear(t.revoked)
	clear(t.ended)
	clear(t.lost)
}

// Grant records that gid was granted a lease for a beacon received at. It
// returns false, and the caller must not grant, when gid is revoked. The
// check and the record are one step, so a lease is never granted after the
// leader has decided the gid's term is over.
func (t *Tracker) Grant(gid uint64, at time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.revoked[gid] || t.ended[gid] {
		return false
	}
	if prev, ok := t.granted[gid]; !ok || at.After(prev) {
		t.granted[gid] = at
	}
	return true
}

// Revoke stops granting leases to gid (while the leader checks whether it
// is gone); Unrevoke undoes it when the check proves nothing.
func (t *Tracker) Revoke(gid uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.revoked[gid] = true
}

// Unrevoke lets gid be granted leases again, unless its term was judged
// over meanwhile.
func (t *Tracker) Unrevoke(gid uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.revoked, gid)
}

// Lost marks (or clears) that gid's connection to the monitor broke.
func (t *Tracker) Lost(gid uint64, lost bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if lost {
		t.lost[gid] = true
	} else {
		delete(t.lost, gid)
	}
}

// Verdict is why the leader ends the active's term.
type Verdict int

// The verdicts of JudgeActive.
const (
	// Keep: the active may still hold a lease.
	Keep Verdict = iota
	// Silent: no beacon for longer than the grace.
	Silent
	// LeaseExpired: told to stop, or its connection lost, and its last lease
	// (plus the margin) has run out.
	LeaseExpired
)

// JudgeActive decides whether the active gid's term is over at now: silent
// past grace, or (when failing or its connection is lost) no lease granted
// for longer than leaseWait (the fence timeout plus a margin). A term found
// over is revoked in the same step, so no lease can be granted after the
// verdict. It returns how long the deciding silence lasted.
func (t *Tracker) JudgeActive(gid uint64, failing bool, now time.Time, grace, leaseWait time.Duration) (Verdict, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := now.Sub(t.lastSeenLocked(gid)); d > grace {
		t.ended[gid] = true
		return Silent, d
	}
	if failing || t.lost[gid] {
		last := t.since
		if g, ok := t.granted[gid]; ok && g.After(last) {
			last = g
		}
		if d := now.Sub(last); d > leaseWait {
			t.ended[gid] = true
			return LeaseExpired, d
		}
	}
	return Keep, 0
}

// Seen records a beacon from gid at now.
func (t *Tracker) Seen(gid uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.seen[gid]; !ok || now.After(prev) {
		t.seen[gid] = now
	}
}

// LastSeen returns when gid was last heard from (or when judging began).
func (t *Tracker) LastSeen(gid uint64) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastSeenLocked(gid)
}

func (t *Tracker) lastSeenLocked(gid uint64) time.Time {
	if s, ok := t.seen[gid]; ok && s.After(t.since) {
		return s
	}
	return t.since
}

// Silent lists the standbys in m silent for longer than grace at now, and
// forgets gids that are no longer in the map. The active is judged by
// JudgeActive.
func (t *Tracker) Silent(m *mgrv1.MgrMap, now time.Time, grace time.Duration) []*mgrv1.SilentGid {
	t.mu.Lock()
	defer t.mu.Unlock()
	inMap := make(map[uint64]bool, len(m.GetStandbys())+1)
	var out []*mgrv1.SilentGid
	check := func(gid uint64) {
		inMap[gid] = true
		if d := now.Sub(t.lastSeenLocked(gid)); d > grace {
			out = append(out, &mgrv1.SilentGid{Gid: gid, SilentMs: d.Milliseconds()})
		}
	}
	if g := m.GetActiveGid(); g != 0 {
		inMap[g] = true // judged by JudgeActive
	}
	for _, s := range m.GetStandbys() {
		check(s.GetGid())
	}
	for gid, at := range t.seen {
		// Keep gids seen recently even if not yet in the map: their first
		// beacon may still be committing.
		if !inMap[gid] && now.Sub(at) > grace {
			delete(t.seen, gid)
			delete(t.granted, gid)
			delete(t.revoked, gid)
			delete(t.lost, gid)
		}
	}
	return out
}
