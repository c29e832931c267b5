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
}

// New returns a tracker that starts judging at now.
func New(now time.Time) *Tracker {
	return &Tracker{since: now, seen: map[uint64]time.Time{}}
}

// Reset forgets everything and starts judging at now: called when this
// monitor becomes leader.
func (t *Tracker) Reset(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.since = now
	clear(t.seen)
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

// Silent lists the managers in m silent for longer than grace at now (the
// active first), and forgets gids that are no longer in the map.
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
		check(g)
	}
	for _, s := range m.GetStandbys() {
		check(s.GetGid())
	}
	for gid, at := range t.seen {
		// Keep gids seen recently even if not yet in the map: their first
		// beacon may still be committing.
		if !inMap[gid] && now.Sub(at) > grace {
			delete(t.seen, gid)
		}
	}
	return out
}
