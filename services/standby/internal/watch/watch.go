// Package watch keeps a manager's map stream open: it resumes after every
// stream error from the last epoch seen, with a bounded, jittered backoff.
// Every stream names the manager (gid and name), so that the monitor, when
// the stream of its active breaks without a Leave, can check at once whether
// the active is gone.
package watch

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/backoff"
	"github.com/mgrplane/mgrplane/services/standby/internal/monclient"
)

// Streamer opens map streams; monclient.Client is one. Its errors, at open
// and from Recv, are classified with the monclient sentinels.
type Streamer interface {
	// WatchMap opens a stream on monitor i.
	WatchMap(ctx context.Context, req *mgrv1.WatchMapRequest) (int, grpc.ServerStreamingClient[mgrv1.WatchMapResponse], error)
	// Report says how a stream on monitor i ended.
	Report(i int, err error)
}

// Identity returns the gid (0 while there is none) and name that a new
// stream carries.
type Identity func() (gid uint64, name string)

// Watcher delivers every map newer than the last one it delivered.
type Watcher struct {
	src   Streamer
	ident Identity
	bo    *backoff.Backoff
	log   hclog.Logger
	// last is the newest epoch delivered; only Run touches it.
	last uint64

	mu sync.Mutex
	// cancel ends the open stream; nil between streams.
	cancel context.CancelFunc
	// reopen is set by Reopen: the stream ended to be opened again at once.
	reopen bool
}

// New returns a Watcher whose streams carry ident's gid and name, and that
// reconnects after a delay between minDelay and maxDelay.
func New(src Streamer, ident Identity, minDelay, maxDelay time.Duration, log hclog.Logger) *Watcher {
	return &Watcher{src: src, ident: ident, bo: backoff.New(minDelay, maxDelay), log: log}
}

// Reopen ends the open stream and opens another at once, from the last
// epoch delivered, carrying the identity as it is now (call it after the
// gid changed). Without an open stream it does nothing: the next one reads
// the identity anyway. Safe for concurrent use.
func (w *Watcher) Reopen() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
		w.reopen = true
	}
}

// reopening reports (and clears) whether the stream ended for Reopen.
func (w *Watcher) reopening() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.reopen
	w.reopen = false
	return r
}

// Run sends each new map to out, in epoch order, until ctx is done; then it
// returns nil. Maps at or below the last epoch sent are dropped.
func (w *Watcher) Run(ctx context.Context, out chan<- *mgrv1.MgrMap) error {
	since := w.last
	for {
		err := w.stream(ctx, since, out)
		if ctx.Err() != nil {
			return nil
		}
		since = w.last
		switch {
		case w.reopening():
			w.log.Debug("map stream reopened for a new identity", "last_epoch", w.last)
			continue
		case errors.Is(err, monclient.ErrTrimmed):
			// The epoch after ours was trimmed: start again from the current map.
			w.log.Warn("map history trimmed past the last epoch seen; resuming from the current map", "last_epoch", w.last, "error", err)
			since = 0
		case errors.Is(err, monclient.ErrSlow):
			w.log.Warn("map stream cut off as too slow; resuming", "last_epoch", w.last, "error", err)
		case errors.Is(err, io.EOF):
			w.log.Debug("map stream ended; resuming", "last_epoch", w.last)
		default:
			w.log.Warn("map stream failed; resuming", "last_epoch", w.last, "error", err)
		}
		if !w.bo.Wait(ctx) {
			return nil
		}
	}
}

// stream runs one stream from since until it fails.
func (w *Watcher) stream(ctx context.Context, since uint64, out chan<- *mgrv1.MgrMap) error {
	sctx, cancel := context.WithCancel(ctx)
	// The cancel func is published before the identity is read: a Reopen
	// from now on ends this stream, so none outlives an identity change.
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.cancel = nil
		w.mu.Unlock()
		cancel()
	}()
	gid, name := w.ident()
	i, s, err := w.src.WatchMap(sctx, &mgrv1.WatchMapRequest{SinceEpoch: since, Gid: gid, Name: name})
	if err != nil {
		return err
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			w.src.Report(i, err)
			return err
		}
		m := resp.GetMap()
		if m.GetEpoch() <= w.last {
			continue
		}
		select {
		case out <- m:
			w.last = m.GetEpoch()
			w.bo.Reset()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
