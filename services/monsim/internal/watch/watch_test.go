package watch

import (
	"context"
	"errors"
	"fmt"
	"github.com/mgrplane/mgrplane/internal/testlog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// safety bounds a test that would otherwise hang on a bug; it is not a
// timing assertion.
const safety = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), safety)
	t.Cleanup(cancel)
	return ctx
}

// readUntil reads from s until the map with epoch last and returns the
// epochs read.
func readUntil(ctx context.Context, t *testing.T, s *Subscription, last uint64) []uint64 {
	t.Helper()
	var got []uint64
	for {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %v: %v", got, err)
		}
		got = append(got, m.GetEpoch())
		if m.GetEpoch() >= last {
			return got
		}
	}
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for e := from; e <= to; e++ {
		out = append(out, e)
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func headEpoch(h *Hub) uint64 {
	if e := h.head.Load(); e != nil {
		return e.m.GetEpoch()
	}
	return 0
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		maxLag  int
		wantErr bool
	}{
		"default":       {maxLag: DefaultMaxLag},
		"one":           {maxLag: 1},
		"max":           {maxLag: MaxMaxLag},
		"zero":          {maxLag: 0, wantErr: true},
		"negative":      {maxLag: -1, wantErr: true},
		"above the max": {maxLag: MaxMaxLag + 1, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := Config{MaxLag: tc.maxLag}.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && (!strings.Contains(err.Error(), "MaxLag") || !strings.Contains(err.Error(), fmt.Sprint(MaxMaxLag))) {
				t.Errorf("error %q does not name the field and the bound", err)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
}

func TestNew(t *testing.T) {
	tests := map[string]struct {
		cfg     Config
		history History
		noLog   bool
		wantErr bool
	}{
		"ok":          {cfg: DefaultConfig(), history: newFakeHistory(1)},
		"bad config":  {cfg: Config{}, history: newFakeHistory(1), wantErr: true},
		"nil history": {cfg: DefaultConfig(), wantErr: true},
		"nil logger":  {cfg: DefaultConfig(), history: newFakeHistory(1), noLog: true, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			logger := testlog.New(t)
			if tc.noLog {
				logger = nil
			}
			h, err := New(tc.cfg, tc.history, logger)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New() error = %v, want error %v", err, tc.wantErr)
			}
			if h != nil {
				h.Close()
			}
		})
	}
}

func TestSubscribe(t *testing.T) {
	// MaxLag 8: the ring holds the last 8 maps, and is preferred when it
	// leaves 4 of headroom.
	const maxLag = 8
	tests := map[string]struct {
		published int // epochs 1..published before Subscribe
		keep      int // history length
		since     uint64
		wantErr   error
		wantFirst uint64
		wantCalls int // History.Since calls
	}{
		"empty hub, since 0 waits for the first map": {published: 0, keep: 20, since: 0, wantFirst: 1},
		"empty hub, since 5 is not ready":            {published: 0, keep: 20, since: 5, wantErr: ErrNotReady},
		"since 0 starts with the current map":        {published: 30, keep: 20, since: 0, wantFirst: 30},
		"since current waits for the next map":       {published: 30, keep: 20, since: 30, wantFirst: 31},
		"recent epoch from the ring":                 {published: 30, keep: 20, since: 27, wantFirst: 28},
		"older epoch from history":                   {published: 30, keep: 20, since: 12, wantFirst: 13, wantCalls: 1},
		"oldest kept epoch from history":             {published: 30, keep: 20, since: 10, wantFirst: 11, wantCalls: 1},
		"epoch after a trimmed one":                  {published: 30, keep: 20, since: 9, wantErr: ErrTrimmed, wantCalls: 1},
		"long trimmed epoch":                         {published: 30, keep: 20, since: 1, wantErr: ErrTrimmed, wantCalls: 1},
		"ring keeps more than history":               {published: 30, keep: 4, since: 25, wantFirst: 26, wantCalls: 1},
		"trimmed from history and ring":              {published: 30, keep: 4, since: 21, wantErr: ErrTrimmed, wantCalls: 1},
		"future epoch":                               {published: 30, keep: 20, since: 31, wantErr: ErrFuture},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			mon := newTestHub(t, maxLag, tc.keep)
			mon.publish(tc.published)
			s, err := mon.hub.Subscribe(tc.since)
			if calls := mon.hist.Calls(); calls != tc.wantCalls {
				t.Errorf("History.Since calls = %d, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Subscribe(%d) error = %v, want %v", tc.since, err, tc.wantErr)
				}
				if mon.hub.Subscribers() != 0 {
					t.Errorf("Subscribers() = %d after a failed Subscribe, want 0", mon.hub.Subscribers())
				}
				return
			}
			if err != nil {
				t.Fatalf("Subscribe(%d): %v", tc.since, err)
			}
			t.Cleanup(s.Close)
			if s.LastEpoch() != tc.since {
				t.Errorf("LastEpoch() = %d before any Next, want %d", s.LastEpoch(), tc.since)
			}
			mon.publish(3)
			last := uint64(tc.published) + 3
			got := readUntil(ctx, t, s, last)
			if want := seq(tc.wantFirst, last); !equal(got, want) {
				t.Errorf("epochs = %v, want %v", got, want)
			}
			if s.LastEpoch() != last {
				t.Errorf("LastEpoch() = %d, want %d", s.LastEpoch(), last)
			}
		})
	}
}

func TestSubscribeHistoryErrors(t *testing.T) {
	m := func(epochs ...uint64) []*mgrv1.MgrMap {
		var out []*mgrv1.MgrMap
		for _, e := range epochs {
			out = append(out, &mgrv1.MgrMap{Epoch: e})
		}
		return out
	}
	tests := map[string]struct {
		maps        []*mgrv1.MgrMap
		err         error
		wantErr     error // errors.Is target; nil means any error
		wantContent string
	}{
		"history fails":            {err: errors.New("disk on fire"), wantContent: "disk on fire"},
		"history starts too late":  {maps: m(12, 13, 14, 15, 16, 17, 18, 19, 20), wantErr: ErrTrimmed},
		"history empty":            {wantErr: ErrTrimmed},
		"history misses the head":  {maps: m(11, 12, 13), wantContent: "recorded before"},
		"history out of order":     {maps: m(11, 13, 12, 14), wantContent: "out of order"},
		"history returns old maps": {maps: m(10, 11, 12), wantContent: "out of order"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			hist := &stubHistory{maps: tc.maps, err: tc.err}
			h, err := New(Config{MaxLag: 2}, hist, testlog.New(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(h.Close)
			for e := uint64(1); e <= 20; e++ {
				h.Publish(&mgrv1.MgrMap{Epoch: e})
			}
			_, err = h.Subscribe(10)
			if err == nil {
				t.Fatal("Subscribe(10) succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Subscribe(10) error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantContent) {
				t.Errorf("Subscribe(10) error = %q, want it to contain %q", err, tc.wantContent)
			}
		})
	}
}

// stubHistory returns fixed answers.
type stubHistory struct {
	maps []*mgrv1.MgrMap
	err  error
}

func (s *stubHistory) Since(uint64) ([]*mgrv1.MgrMap, error) { return s.maps, s.err }

func TestPublishIgnoresStaleMaps(t *testing.T) {
	ctx := testContext(t)
	mon := newTestHub(t, 16, 16)
	s, err := mon.hub.Subscribe(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	first, second := &mgrv1.MgrMap{Epoch: 1}, &mgrv1.MgrMap{Epoch: 2}
	mon.hub.Publish(first)
	mon.hub.Publish(second)
	mon.hub.Publish(&mgrv1.MgrMap{Epoch: 2, Fsid: "duplicate"})
	mon.hub.Publish(&mgrv1.MgrMap{Epoch: 1, Fsid: "older"})
	mon.hub.Publish(nil)
	mon.hub.Publish(&mgrv1.MgrMap{})
	mon.hub.Publish(&mgrv1.MgrMap{Epoch: 3})
	var got []*mgrv1.MgrMap
	for range 3 {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if got[0] != first || got[1] != second || got[2].GetEpoch() != 3 {
		t.Errorf("got epochs %d %d %d (fsids %q %q), want the first maps 1, 2 and then 3",
			got[0].GetEpoch(), got[1].GetEpoch(), got[2].GetEpoch(), got[0].GetFsid(), got[1].GetFsid())
	}
}

func TestSlowSubscriberIsCutOff(t *testing.T) {
	const (
		maxLag = 8
		last   = 40
	)
	ctx := testContext(t)
	mon := newTestHub(t, maxLag, 100)
	mon.publish(1)

	slow, err := mon.hub.Subscribe(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	fast, err := mon.hub.Subscribe(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fast.Close)
	// Idle subscriptions that never read: Publish must not wait for them.
	for range 1000 {
		idle, err := mon.hub.Subscribe(1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(idle.Close)
	}

	// The fast subscriber reports each epoch; the publisher waits for it,
	// so it keeps up however slow the machine.
	seen := make(chan uint64)
	fastErr := make(chan error, 1)
	go func() {
		defer close(seen)
		for {
			m, err := fast.Next(ctx)
			if err != nil {
				fastErr <- err
				return
			}
			seen <- m.GetEpoch()
			if m.GetEpoch() == last {
				fastErr <- nil
				return
			}
		}
	}()
	var fastGot []uint64
	step := func() {
		mon.publish(1)
		e, ok := <-seen
		if !ok {
			t.Fatalf("fast subscriber stopped: %v", <-fastErr)
		}
		fastGot = append(fastGot, e)
	}
	step()
	step()
	if got := readUntil(ctx, t, slow, 3); !equal(got, []uint64{2, 3}) {
		t.Fatalf("slow read %v, want [2 3]", got)
	}
	for mon.next < last {
		step()
	}
	if err := <-fastErr; err != nil {
		t.Fatalf("fast subscriber: %v", err)
	}
	if want := seq(2, last); !equal(fastGot, want) {
		t.Errorf("fast subscriber got %v, want %v", fastGot, want)
	}

	for range 2 { // the cut-off is final
		_, err = slow.Next(ctx)
		if !errors.Is(err, ErrSlow) {
			t.Fatalf("slow Next error = %v, want ErrSlow", err)
		}
	}
	if !strings.Contains(err.Error(), "resume from epoch 3") {
		t.Errorf("ErrSlow message %q does not name the last delivered epoch 3", err)
	}
	if slow.LastEpoch() != 3 {
		t.Fatalf("LastEpoch() = %d, want 3", slow.LastEpoch())
	}

	resumed, err := mon.hub.Subscribe(slow.LastEpoch())
	if err != nil {
		t.Fatalf("resume from %d: %v", slow.LastEpoch(), err)
	}
	t.Cleanup(resumed.Close)
	if got, want := readUntil(ctx, t, resumed, last), seq(4, last); !equal(got, want) {
		t.Errorf("resumed subscriber got %v, want %v", got, want)
	}
}

// TestConcurrentDelivery publishes in order while subscribers join at random
// points with random since values. Each must see a contiguous sequence up to
// the last epoch, resuming after ErrSlow as a client would.
func TestConcurrentDelivery(t *testing.T) {
	const (
		maps = 10000
		subs = 50
	)
	tests := map[string]struct {
		maxLag    int
		mayBeSlow bool
	}{
		// Subscribers are cut off and resume, from the ring or history.
		"small MaxLag": {maxLag: 64, mayBeSlow: true},
		// Nobody can fall MaxLag behind: uninterrupted streams.
		"MaxLag above the maps published": {maxLag: maps},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			mon := newTestHub(t, tc.maxLag, maps) // history keeps everything
			rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))

			var wg sync.WaitGroup
			errs := make(chan error, subs)
			wg.Go(func() {
				for i := range maps {
					mon.publish(1)
					if i%16 == 0 {
						runtime.Gosched()
					}
				}
			})
			var resumes atomic.Int64
			for i := range subs {
				joinAt := rng.Uint64N(maps)
				sinceZero := rng.IntN(4) == 0
				pick := rng.Uint64()
				wg.Go(func() {
					for headEpoch(mon.hub) < joinAt {
						if ctx.Err() != nil {
							errs <- fmt.Errorf("sub %d: %w", i, ctx.Err())
							return
						}
						runtime.Gosched()
					}
					var since uint64
					if !sinceZero {
						since = pick % (headEpoch(mon.hub) + 1)
					}
					if err := follow(ctx, mon.hub, since, maps, func() { resumes.Add(1) }); err != nil {
						errs <- fmt.Errorf("sub %d (since %d): %w", i, since, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("%d resumes after ErrSlow, %d History.Since calls", resumes.Load(), mon.hist.Calls())
			if !tc.mayBeSlow && resumes.Load() != 0 {
				t.Errorf("%d resumes after ErrSlow, want none", resumes.Load())
			}
			if mon.hub.Subscribers() != 0 {
				t.Errorf("Subscribers() = %d after every subscription closed, want 0", mon.hub.Subscribers())
			}
		})
	}
}

// follow subscribes from since and reads until epoch last, checking that the
// epochs are contiguous and resuming after ErrSlow.
func follow(ctx context.Context, h *Hub, since, last uint64, resumed func()) error {
	s, err := h.Subscribe(since)
	if err != nil {
		return err
	}
	defer func() { s.Close() }()
	prev, first := since, since == 0
	for prev < last {
		m, err := s.Next(ctx)
		if errors.Is(err, ErrSlow) {
			if s.LastEpoch() != prev {
				return fmt.Errorf("LastEpoch() = %d after ErrSlow, last delivered %d", s.LastEpoch(), prev)
			}
			resumed()
			s.Close()
			if s, err = h.Subscribe(prev); err != nil {
				return fmt.Errorf("resume from %d: %w", prev, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("after epoch %d: %w", prev, err)
		}
		if !first && m.GetEpoch() != prev+1 {
			return fmt.Errorf("got epoch %d after %d", m.GetEpoch(), prev)
		}
		first = false
		prev = m.GetEpoch()
	}
	return nil
}

func TestClose(t *testing.T) {
	tests := map[string]struct {
		close   func(h *Hub, s *Subscription, cancel context.CancelFunc)
		wantErr error
	}{
		"subscription close": {
			close:   func(_ *Hub, s *Subscription, _ context.CancelFunc) { s.Close(); s.Close() },
			wantErr: ErrClosed,
		},
		"hub close": {
			close:   func(h *Hub, _ *Subscription, _ context.CancelFunc) { h.Close(); h.Close() },
			wantErr: ErrClosed,
		},
		"context cancel": {
			close:   func(_ *Hub, _ *Subscription, cancel context.CancelFunc) { cancel() },
			wantErr: context.Canceled,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := newTestHub(t, 8, 8)
			mon.publish(1)
			s, err := mon.hub.Subscribe(1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := s.Next(ctx)
				done <- err
			}()
			tc.close(mon.hub, s, cancel)
			if err := <-done; !errors.Is(err, tc.wantErr) {
				t.Fatalf("Next error = %v, want %v", err, tc.wantErr)
			}
			mon.publish(1)
			m, err := s.Next(testContext(t))
			if tc.wantErr == ErrClosed {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("Next after close = %v, %v, want ErrClosed", m.GetEpoch(), err)
				}
				return
			}
			if err != nil || m.GetEpoch() != 2 {
				t.Errorf("Next after a cancelled Next = %d, %v, want epoch 2", m.GetEpoch(), err)
			}
		})
	}
}

func TestHubCloseRefusesSubscribers(t *testing.T) {
	mon := newTestHub(t, 8, 8)
	mon.publish(1)
	mon.hub.Close()
	if _, err := mon.hub.Subscribe(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	mon.publish(1) // a no-op, must not panic
	if got := headEpoch(mon.hub); got != 1 {
		t.Errorf("head epoch after Publish on a closed hub = %d, want 1", got)
	}
}

func TestSubscribers(t *testing.T) {
	mon := newTestHub(t, 8, 8)
	mon.publish(1)
	var subs []*Subscription
	for range 3 {
		s, err := mon.hub.Subscribe(0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		subs = append(subs, s)
	}
	if got := mon.hub.Subscribers(); got != 3 {
		t.Errorf("Subscribers() = %d, want 3", got)
	}
	subs[0].Close()
	subs[0].Close()
	if got := mon.hub.Subscribers(); got != 2 {
		t.Errorf("Subscribers() after one Close = %d, want 2", got)
	}
}
