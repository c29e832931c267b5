// Package watch keeps a manager's map stream open: it resumes after every
// stream error from the last epoch seen, with a bounded, jittered backoff.
package watch

import (
	"context"
	"errors"
	"io"
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

// Watcher delivers every map newer than the last one it delivered.
type Watcher struct {
	src Streamer
	bo  *backoff.Backoff
	log hclog.Logger
	// last is the newest epoch delivered; only Run touches it.
	last uint64
}

// New returns a Watcher that reconnects after a delay between minDelay and
// maxDelay.
func New(src Streamer, minDelay, maxDelay time.Duration, log hclog.Logger) *Watcher {
	return &Watcher{src: src, bo: backoff.New(minDelay, maxDelay), log: log}
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
	defer cancel()
	i, s, err := w.src.WatchMap(sctx, &mgrv1.WatchMapRequest{SinceEpoch: since})
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
