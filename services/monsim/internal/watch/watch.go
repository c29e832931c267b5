// Package watch fans the monitor's MgrMaps out to many subscribers.
//
// The monitor publishes every new map to a Hub once it has recorded it in its
// History. Each Subscription receives every map in epoch order, without gaps
// or duplicates, starting after the epoch it resumes from. A subscription
// that falls more than Config.MaxLag maps behind is cut off with ErrSlow and
// resumes with Hub.Subscribe(sub.LastEpoch()); it never slows the monitor or
// the other subscribers.
//
// Publish is O(1) and takes no lock that a subscriber holds: published maps go
// into a ring of the last MaxLag maps, indexed by a publish sequence number,
// and a broadcast channel, closed and replaced on every publish, wakes the
// waiting subscribers. Each subscription keeps only its own cursor into the
// ring, so a subscriber that stops reading costs nothing until it reads again
// and learns that it was overrun.
package watch

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// Errors returned by the hub and its subscriptions; test with errors.Is.
var (
	// ErrTrimmed: the epoch after the one asked for is no longer kept, so
	// the subscriber cannot resume gap-free and must start again from the
	// current map (since 0).
	ErrTrimmed = errors.New("epoch trimmed from history")
	// ErrFuture: the epoch asked for is newer than the last published map.
	ErrFuture = errors.New("epoch not yet published")
	// ErrSlow: the subscriber fell more than Config.MaxLag maps behind and
	// was cut off; it resumes from Subscription.LastEpoch.
	ErrSlow = errors.New("subscriber too slow")
	// ErrNotReady: nothing has been published yet (the monitor is still
	// replaying its log); retry shortly.
	ErrNotReady = errors.New("no map published yet")
	// ErrClosed: the subscription or the hub was closed.
	ErrClosed = errors.New("watch closed")
)

// History is the monitor's record of recent maps.
//
// Contract: the monitor records a map in its History before it publishes it
// to the hub, so that the History holds every published map that has not been
// trimmed. The hub joins a resuming subscriber's backfill to the live maps on
// that promise.
type History interface {
	// Since returns the kept maps with epoch > since, oldest first. It
	// returns an error wrapping ErrTrimmed when since+1 is older than the
	// oldest kept map. The hub never modifies the slice or the maps.
	Since(since uint64) ([]*mgrv1.MgrMap, error)
}

// entry is one published map with its publish sequence number (1, 2, ...).
// Entries are immutable; the ring holds pointers to them.
type entry struct {
	seq uint64
	m   *mgrv1.MgrMap
}

// Hub fans published maps out to subscriptions. Its methods are safe for
// concurrent use.
type Hub struct {
	maxLag  uint64
	history History
	logger  hclog.Logger

	// ring[seq%maxLag] holds the entry published with seq, until it is
	// overwritten by seq+maxLag.
	ring []atomic.Pointer[entry]
	// head is the last published entry; nil until the first Publish.
	head atomic.Pointer[entry]
	// notify is closed and replaced after every publish and at Close.
	notify atomic.Pointer[chan struct{}]
	// done is closed by Close.
	done chan struct{}
	subs atomic.Int64

	// pubMu serialises Publish and Close; subscribers never take it.
	pubMu  sync.Mutex
	closed bool // guarded by pubMu
}

// New returns a hub that serves backfill from history. logger is named
// "watch" by New.
func New(cfg Config, history History, logger hclog.Logger) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid watch config: %w", err)
	}
	if history == nil {
		return nil, errors.New("watch history must not be nil")
	}
	if logger == nil {
		return nil, errors.New("watch logger must not be nil")
	}
	h := &Hub{
		maxLag:  uint64(cfg.MaxLag),
		history: history,
		logger:  logger.Named("watch"),
		ring:    make([]atomic.Pointer[entry], cfg.MaxLag),
		done:    make(chan struct{}),
	}
	ch := make(chan struct{})
	h.notify.Store(&ch)
	return h, nil
}

// Publish hands m to every subscription. The caller (the monitor's FSM apply
// goroutine) must have recorded m in the History first, and must not modify m
// afterwards: subscribers share it. Maps come in increasing epoch order; a nil
// map, epoch 0, or an epoch not above the last published one is logged and
// ignored, as is any map after Close. Publish never waits for subscribers.
func (h *Hub) Publish(m *mgrv1.MgrMap) {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	if h.closed {
		return
	}
	if m.GetEpoch() == 0 {
		h.logger.Warn("ignoring map without epoch")
		return
	}
	var seq uint64 = 1
	if head := h.head.Load(); head != nil {
		last := head.m.GetEpoch()
		if m.GetEpoch() <= last {
			h.logger.Warn("ignoring map not newer than the last published", "epoch", m.GetEpoch(), "last_epoch", last)
			return
		}
		if m.GetEpoch() != last+1 {
			h.logger.Warn("published epochs skip", "epoch", m.GetEpoch(), "last_epoch", last)
		}
		seq = head.seq + 1
	}
	e := &entry{seq: seq, m: m}
	// Order matters: slot, then head, then wake-up. A subscriber loads
	// notify before head, so it either sees the new head or holds the
	// channel closed below.
	h.ring[seq%h.maxLag].Store(e)
	h.head.Store(e)
	h.wake()
}

// wake closes the current notify channel and installs a fresh one.
func (h *Hub) wake() {
	ch := make(chan struct{})
	close(*h.notify.Swap(&ch))
}

// Subscribe starts a subscription after epoch since: its first map has epoch
// since+1, from history when it is not in the hub's memory. Since 0 starts
// with the current map (or, before the first Publish, the first map
// published). It returns an error wrapping ErrTrimmed when since+1 is no
// longer kept, ErrFuture when since is above the last published epoch
// (ErrNotReady for any since > 0 before the first Publish), and ErrClosed
// after Close.
// Subscribe does not block Publish. The caller must Close the subscription.
func (h *Hub) Subscribe(since uint64) (*Subscription, error) {
	select {
	case <-h.done:
		return nil, ErrClosed
	default:
	}
	s := &Subscription{hub: h, done: make(chan struct{})}
	s.last.Store(since)
	head := h.head.Load()
	switch {
	case head == nil && since == 0:
		s.cursor = 1
	case head == nil:
		return nil, fmt.Errorf("%w: cannot resume after epoch %d", ErrNotReady, since)
	case since == 0:
		s.cursor = head.seq
	case since > head.m.GetEpoch():
		return nil, fmt.Errorf("%w: since %d is above the current epoch %d", ErrFuture, since, head.m.GetEpoch())
	case since == head.m.GetEpoch():
		s.cursor = head.seq + 1
	default:
		// Prefer the ring when it leaves the subscriber at least half of
		// MaxLag of headroom.
		if seq, ok := h.ringSeq(head, since+1, h.maxLag/2); ok {
			s.cursor = seq
			break
		}
		// Every map up to head is in the history (recorded before
		// published); every map after head will be in the ring from
		// head.seq+1. Together: since+1 ... with no gap or duplicate.
		backlog, err := h.backfill(since, head.m.GetEpoch())
		if errors.Is(err, ErrTrimmed) {
			// The ring may keep more than the history.
			if seq, ok := h.ringSeq(head, since+1, h.maxLag); ok {
				s.cursor = seq
				break
			}
		}
		if err != nil {
			return nil, err
		}
		s.backlog = backlog
		s.cursor = head.seq + 1
	}
	h.subs.Add(1)
	return s, nil
}

// ringSeq returns the sequence number of the map with epoch when the ring
// holds it and fewer than maxBehind maps follow it up to head.
func (h *Hub) ringSeq(head *entry, epoch, maxBehind uint64) (uint64, bool) {
	behind := head.m.GetEpoch() - epoch // maps after epoch up to head
	if behind >= maxBehind || behind >= head.seq {
		return 0, false
	}
	seq := head.seq - behind
	e := h.ring[seq%h.maxLag].Load()
	// Seqs seq..head.seq carry strictly increasing epochs epoch..head's
	// epoch: equally many of each, so the epochs are contiguous too.
	if e == nil || e.seq != seq || e.m.GetEpoch() != epoch {
		return 0, false
	}
	return seq, true
}

// backfill returns the maps with since < epoch <= upto from history, checked
// to be exactly since+1 ... upto in order.
func (h *Hub) backfill(since, upto uint64) ([]*mgrv1.MgrMap, error) {
	maps, err := h.history.Since(since)
	if err != nil {
		if errors.Is(err, ErrTrimmed) {
			return nil, err
		}
		return nil, fmt.Errorf("failed to read history since epoch %d: %w", since, err)
	}
	if len(maps) == 0 || maps[0].GetEpoch() > since+1 {
		return nil, fmt.Errorf("%w: epoch %d is no longer kept", ErrTrimmed, since+1)
	}
	n := 0
	for n < len(maps) && maps[n].GetEpoch() <= upto {
		n++
	}
	maps = maps[:n]
	prev := since
	for _, m := range maps {
		if m.GetEpoch() <= prev {
			return nil, fmt.Errorf("history out of order: epoch %d after %d", m.GetEpoch(), prev)
		}
		prev = m.GetEpoch()
	}
	if maps[0].GetEpoch() != since+1 || prev != upto {
		return nil, fmt.Errorf("history holds epochs %d..%d, want %d..%d: maps must be recorded before they are published",
			maps[0].GetEpoch(), prev, since+1, upto)
	}
	return slices.Clone(maps), nil
}

// Close ends every subscription (their Next returns ErrClosed) and makes
// later Subscribe calls fail with ErrClosed and later Publish calls no-ops.
// It is idempotent.
func (h *Hub) Close() {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
}

// Subscribers returns the number of subscriptions not yet closed, including
// those cut off with ErrSlow whose holders have not closed them.
func (h *Hub) Subscribers() int {
	return int(h.subs.Load())
}
