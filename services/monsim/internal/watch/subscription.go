package watch

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// Subscription is one subscriber's stream of maps. Next is called from one
// goroutine at a time; Close and LastEpoch may be called from any goroutine.
type Subscription struct {
	hub *Hub
	// backlog holds maps from history still to deliver, before the ring.
	backlog []*mgrv1.MgrMap
	// cursor is the sequence number of the next map to take from the ring.
	cursor uint64
	// err is the sticky ErrSlow once cut off.
	err error
	// last is the epoch of the last map delivered, or since.
	last atomic.Uint64

	done      chan struct{}
	closeOnce sync.Once
}

// Next returns the next map, waiting for it until ctx ends. The maps are
// shared with other subscribers and must not be modified. Next returns
// ctx.Err() when ctx ends, an error wrapping ErrSlow (naming the last
// delivered epoch, also given by LastEpoch) once the subscription fell more
// than Config.MaxLag maps behind, and ErrClosed after Close on the
// subscription or the hub. ErrSlow and ErrClosed are final.
func (s *Subscription) Next(ctx context.Context) (*mgrv1.MgrMap, error) {
	h := s.hub
	for {
		// Load notify before head: a publish after the head load closes
		// this channel (see Publish).
		notify := *h.notify.Load()
		select {
		case <-s.done:
			return nil, ErrClosed
		case <-h.done:
			return nil, ErrClosed
		default:
		}
		if s.err != nil {
			return nil, s.err
		}
		if len(s.backlog) > 0 {
			m := s.backlog[0]
			s.backlog[0] = nil
			s.backlog = s.backlog[1:]
			s.last.Store(m.GetEpoch())
			return m, nil
		}
		if head := h.head.Load(); head != nil && s.cursor <= head.seq {
			var e *entry
			if head.seq-s.cursor < h.maxLag {
				e = h.ring[s.cursor%h.maxLag].Load()
			}
			if e == nil || e.seq != s.cursor {
				s.err = fmt.Errorf("%w: more than %d maps behind; resume from epoch %d", ErrSlow, h.maxLag, s.last.Load())
				h.logger.Debug("subscriber cut off", "last_epoch", s.last.Load(), "head_epoch", head.m.GetEpoch())
				return nil, s.err
			}
			s.cursor++
			s.last.Store(e.m.GetEpoch())
			return e.m, nil
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			return nil, ErrClosed
		case <-h.done:
			return nil, ErrClosed
		}
	}
}

// LastEpoch returns the epoch of the last map Next delivered, or the since
// given to Subscribe when none was delivered yet: the epoch to resume from.
func (s *Subscription) LastEpoch() uint64 {
	return s.last.Load()
}

// Close ends the subscription; a waiting Next returns ErrClosed. It is
// idempotent.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.hub.subs.Add(-1)
	})
}
