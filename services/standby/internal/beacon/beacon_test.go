package beacon

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/testlog"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSender answers from a function and records the requests.
type fakeSender struct {
	mu     sync.Mutex
	reqs   []*mgrv1.BeaconRequest
	answer func(ctx context.Context) (*mgrv1.BeaconResponse, error)
}

func (f *fakeSender) Beacon(ctx context.Context, req *mgrv1.BeaconRequest) (*mgrv1.BeaconResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	return f.answer(ctx)
}

func run(t *testing.T, b *Beaconer) chan Result {
	t.Helper()
	results := make(chan Result)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, results) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return results
}

func next(t *testing.T, results chan Result) Result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no beacon result")
		return Result{}
	}
}

func TestKickSendsTheLatestReport(t *testing.T) {
	snd := &fakeSender{answer: func(context.Context) (*mgrv1.BeaconResponse, error) {
		return &mgrv1.BeaconResponse{Epoch: 7, Standing: mgrv1.Standing_STANDING_ACTIVE}, nil
	}}
	mods := []*mgrv1.ModuleInfo{{Name: "status", CanRun: true}}
	// A period far beyond the test: only kicks send.
	b := New(snd, time.Hour, func() []*mgrv1.ModuleInfo { return mods }, testlog.New(t))
	results := run(t, b)

	// A report without a gid is never sent.
	b.Set(&mgrv1.BeaconRequest{Name: "x"})
	b.Kick()
	req := &mgrv1.BeaconRequest{Gid: 5, Name: "x", Available: true}
	before := time.Now()
	b.Set(req)
	b.Kick()
	r := next(t, results)
	if r.GID != 5 || r.Err != nil || r.Resp.GetEpoch() != 7 {
		t.Fatalf("result = %+v", r)
	}
	// The send time is read for this beacon, after its report was set.
	if r.Sent.Before(before) || r.Sent.After(time.Now()) {
		t.Errorf("Sent = %v, want between %v and now", r.Sent, before)
	}
	snd.mu.Lock()
	sent := snd.reqs
	snd.mu.Unlock()
	// Two kicks may make one or two beacons; each carries the gid 5 report.
	if len(sent) == 0 || len(sent) > 2 {
		t.Fatalf("sent %d beacons, want 1 or 2", len(sent))
	}
	for _, s := range sent {
		if s.GetGid() != 5 || !s.GetAvailable() || len(s.GetAvailableModules()) != 1 {
			t.Fatalf("sent %v, want the gid 5 report with modules", s)
		}
	}
	if len(req.GetAvailableModules()) != 0 {
		t.Error("the caller's report was changed")
	}
}

func TestSlowMonitorTimesOut(t *testing.T) {
	snd := &fakeSender{answer: func(ctx context.Context) (*mgrv1.BeaconResponse, error) {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}}
	b := New(snd, 10*time.Millisecond, func() []*mgrv1.ModuleInfo { return nil }, testlog.New(t))
	results := run(t, b)
	b.Set(&mgrv1.BeaconRequest{Gid: 1})
	if r := next(t, results); status.Code(r.Err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DeadlineExceeded", r.Err)
	}
}

func TestResultCarriesTheRoundTrip(t *testing.T) {
	const delay = 20 * time.Millisecond
	snd := &fakeSender{answer: func(context.Context) (*mgrv1.BeaconResponse, error) {
		time.Sleep(delay)
		return &mgrv1.BeaconResponse{Epoch: 1}, nil
	}}
	b := New(snd, time.Hour, func() []*mgrv1.ModuleInfo { return nil }, testlog.New(t))
	results := run(t, b)
	b.Set(&mgrv1.BeaconRequest{Gid: 1})
	before := time.Now()
	b.Kick()
	r := next(t, results)
	// The call took at least the sender's delay, and no longer than the
	// whole wait for its result.
	if r.RTT < delay || r.RTT > time.Since(before) {
		t.Fatalf("RTT = %v, want between %v and %v", r.RTT, delay, time.Since(before))
	}
}
