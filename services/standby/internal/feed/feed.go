// Package feed hands the newest of a series of values to any number of
// readers without ever blocking the writer: a reader that falls behind
// skips the values it missed and gets the newest one.
package feed

import (
	"context"
	"sync"
)

// Feed holds the newest value published. The zero Feed is not usable: make
// one with New. Its methods are safe for concurrent use.
type Feed[T any] struct {
	mu  sync.Mutex
	v   T
	set bool
	// next is closed, and replaced, on every Publish and on Close.
	next   chan struct{}
	closed bool
}

// New returns a Feed with no value yet.
func New[T any]() *Feed[T] {
	return &Feed[T]{next: make(chan struct{})}
}

// Publish makes v the newest value and wakes every reader. It never blocks
// on readers. After Close it does nothing.
func (f *Feed[T]) Publish(v T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.v, f.set = v, true
	close(f.next)
	f.next = make(chan struct{})
}

// Close ends the feed: every Watch channel is closed once its reader has
// taken the value it was handed. Close is idempotent.
func (f *Feed[T]) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.next)
	}
}

// Latest returns the newest value (ok is false before the first Publish), a
// channel closed at the next Publish or Close, and whether the feed is
// closed.
func (f *Feed[T]) Latest() (v T, ok bool, next <-chan struct{}, closed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v, f.set, f.next, f.closed
}

// Watch returns a channel that carries the newest value at once (or the
// first one published), then each newer value as it is published. A reader
// slower than the writer gets the newest value when it reads again; the
// values in between are dropped. The channel is closed when ctx is done or
// the feed is closed; the goroutine behind it ends then.
func (f *Feed[T]) Watch(ctx context.Context) <-chan T {
	out := make(chan T)
	go func() {
		defer close(out)
		for {
			v, ok, next, closed := f.Latest()
			if closed {
				return
			}
			if ok {
				select {
				case out <- v:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-next:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
