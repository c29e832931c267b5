package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// Reconnection of a broken watch.
const (
	// watchBackoffInitial is the pause before the first reconnection after a
	// break; it starts again from here once a stream delivers a map.
	watchBackoffInitial = 100 * time.Millisecond
	// watchBackoffMax caps the pause between reconnection attempts. Each
	// pause is drawn from [d/2, d], so that many watchers cut off by one
	// monitor restart do not all come back at the same instant.
	watchBackoffMax = 5 * time.Second
)

// errStop ends a watch that has printed the maps asked for (--count).
var errStop = errors.New("watch: enough maps")

// runWatch is `mgrctl watch [--since EPOCH] [--count N]`: one line (or one
// JSON object) per map, until interrupted or N maps were printed.
func runWatch(ctx context.Context, e *env, c *cmdline) error {
	since := uintFlag(c.fs, "since", 64, "start after this epoch (0: with the current map)")
	count := uintFlag(c.fs, "count", 64, "exit after printing this many maps (0: until interrupted)")
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	var printed uint64
	err := watchMaps(ctx, e.client, e.log.Named("watch"), *since, func(m *mgrv1.MgrMap) error {
		if e.format == formatJSON {
			if err := writeJSON(e.stdout, m, false); err != nil {
				return err
			}
		} else if _, err := fmt.Fprintln(e.stdout, watchLine(m)); err != nil {
			return err
		}
		printed++
		if *count > 0 && printed >= *count {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// watchMaps hands every map after since to emit, in order, each once. It
// returns nil when ctx ends (an interrupt is a normal end), emit's error when
// emit fails, and the monitor's error when the watch cannot go on.
//
// Before the first map arrives, each monitor is tried once: when none
// answers, the watch fails (a wrong address should not hang). Once maps
// flow, a stream that breaks with Unavailable (the monitor restarted or went
// away: the next monitor is tried) or ResourceExhausted (the monitor cut off
// a watcher too slow to keep up) is resumed with since_epoch = the last epoch
// seen, after a backoff, for as long as it takes: the monitor then sends from
// the next epoch on, so nothing is skipped and nothing printed twice.
func watchMaps(ctx context.Context, c *client, log hclog.Logger, since uint64, emit func(*mgrv1.MgrMap) error) error {
	last := since // the newest epoch handed to emit, or since
	seen := false // emit has been handed a map
	delay := watchBackoffInitial
	idx := c.current
	var failures []string // monitors that failed before the first map
	for {
		got, err := watchOnce(ctx, c.conns[idx], last, func(m *mgrv1.MgrMap) error {
			if (seen || since > 0) && m.GetEpoch() <= last {
				log.Debug("skipping a map already seen", "epoch", m.GetEpoch(), "last", last)
				return nil
			}
			if seen && m.GetEpoch() > last+1 {
				log.Warn("the monitor skipped epochs", "last", last, "got", m.GetEpoch())
			}
			last, seen = m.GetEpoch(), true
			return emit(m)
		})
		if ctx.Err() != nil {
			return nil
		}
		if got > 0 {
			c.current = idx
			delay = watchBackoffInitial
		}
		code := status.Code(err)
		if code != codes.Unavailable && code != codes.ResourceExhausted {
			return err
		}
		if !seen {
			failures = append(failures, c.addrs[idx]+": "+status.Convert(err).Message())
			if len(failures) == len(c.addrs) || code != codes.Unavailable {
				if len(c.addrs) == 1 {
					return err
				}
				return status.Errorf(code, "no monitor answered: %s", strings.Join(failures, "; "))
			}
			idx = (idx + 1) % len(c.addrs)
			continue
		}
		if code == codes.Unavailable {
			idx = (idx + 1) % len(c.addrs)
		}
		pause := delay/2 + rand.N(delay/2+1)
		log.Warn("watch broke; resuming", "monitor", c.addrs[idx], "since_epoch", last, "pause", pause, "error", err)
		if !sleep(ctx, pause) {
			return nil
		}
		delay = min(2*delay, watchBackoffMax)
	}
}

// watchOnce runs one WatchMap stream from since and hands each map to
// handle. It returns how many maps arrived and why the stream ended; a stream
// the monitor closed without error ends with Unavailable, to be resumed.
func watchOnce(ctx context.Context, cc grpc.ClientConnInterface, since uint64, handle func(*mgrv1.MgrMap) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := mgrv1.NewMonitorServiceClient(cc).WatchMap(ctx, &mgrv1.WatchMapRequest{SinceEpoch: since})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, status.Error(codes.Unavailable, "the monitor ended the watch")
		}
		if err != nil {
			return n, err
		}
		n++
		if resp.GetMap() == nil {
			continue
		}
		if err := handle(resp.GetMap()); err != nil {
			return n, err
		}
	}
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
