package watch

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/testlog"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/monclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// script is one WatchMap call's outcome: an error at open, or maps then an
// end (nil end: block until cancelled).
type script struct {
	openErr error
	epochs  []uint64
	end     error
}

// fakeStreamer plays scripts in order and records the since_epoch asked.
type fakeStreamer struct {
	mu      sync.Mutex
	scripts []script
	since   []uint64
	reqs    []*mgrv1.WatchMapRequest
	reports []codes.Code
}

func (f *fakeStreamer) WatchMap(ctx context.Context, req *mgrv1.WatchMapRequest) (int, grpc.ServerStreamingClient[mgrv1.WatchMapResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.since = append(f.since, req.GetSinceEpoch())
	f.reqs = append(f.reqs, req)
	var s script
	if len(f.scripts) > 0 {
		s, f.scripts = f.scripts[0], f.scripts[1:]
	}
	if s.openErr != nil {
		return 0, nil, monclient.Classify(s.openErr)
	}
	return 0, &fakeStream{ctx: ctx, epochs: s.epochs, end: s.end}, nil
}

func (f *fakeStreamer) Report(_ int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, status.Code(err))
}

type fakeStream struct {
	grpc.ClientStream
	ctx    context.Context
	epochs []uint64
	end    error
}

func (s *fakeStream) Recv() (*mgrv1.WatchMapResponse, error) {
	if len(s.epochs) > 0 {
		e := s.epochs[0]
		s.epochs = s.epochs[1:]
		return &mgrv1.WatchMapResponse{Map: &mgrv1.MgrMap{Epoch: e}}, nil
	}
	if s.end != nil {
		return nil, monclient.Classify(s.end)
	}
	<-s.ctx.Done()
	return nil, monclient.Classify(status.FromContextError(s.ctx.Err()).Err())
}

func fixedIdentity(gid uint64, name string) Identity {
	return func() (uint64, string) { return gid, name }
}

func TestRunResumes(t *testing.T) {
	src := &fakeStreamer{scripts: []script{
		{epochs: []uint64{1, 2, 3}, end: status.Error(codes.Unavailable, "monitor gone")},
		{epochs: []uint64{3, 4}, end: io.EOF},
		{openErr: status.Error(codes.OutOfRange, "epoch 5 trimmed")},
		{epochs: []uint64{2, 9}, end: status.Error(codes.ResourceExhausted, "too slow")},
		{epochs: []uint64{10}},
	}}
	w := New(src, fixedIdentity(3, "x"), time.Millisecond, 2*time.Millisecond, testlog.New(t))
	out := make(chan *mgrv1.MgrMap)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, out) }()

	var got []uint64
	for len(got) < 6 {
		select {
		case m := <-out:
			got = append(got, m.GetEpoch())
		case <-time.After(10 * time.Second):
			t.Fatalf("maps so far %v", got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if want := []uint64{1, 2, 3, 4, 9, 10}; !slices.Equal(got, want) {
		t.Errorf("maps = %v, want %v (in order, no duplicates)", got, want)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if want := []uint64{0, 3, 4, 0, 9}; !slices.Equal(src.since, want) {
		t.Errorf("since_epoch = %v, want %v", src.since, want)
	}
	for _, r := range src.reqs {
		if r.GetGid() != 3 || r.GetName() != "x" {
			t.Errorf("request %v does not name the manager (gid 3, x)", r)
		}
	}
	if !slices.Contains(src.reports, codes.Unavailable) {
		t.Errorf("reports = %v, want the Unavailable stream end reported", src.reports)
	}
}

func TestRunReturnsOnCancelWhileBlockedOnOut(t *testing.T) {
	src := &fakeStreamer{scripts: []script{{epochs: []uint64{1}}}}
	w := New(src, fixedIdentity(3, "x"), time.Millisecond, time.Millisecond, testlog.New(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, make(chan *mgrv1.MgrMap)) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// After Reopen the stream is opened again at once, from the last epoch,
// carrying the identity as it is then.
func TestReopenCarriesTheNewIdentity(t *testing.T) {
	src := &fakeStreamer{scripts: []script{{epochs: []uint64{1, 2}}, {epochs: []uint64{3}}}}
	var mu sync.Mutex
	gid := uint64(0)
	ident := func() (uint64, string) {
		mu.Lock()
		defer mu.Unlock()
		return gid, "x"
	}
	// A backoff far beyond the test: only Reopen may open the second
	// stream in time.
	w := New(src, ident, time.Hour, time.Hour, testlog.New(t))
	out := make(chan *mgrv1.MgrMap)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	recv := func() uint64 {
		t.Helper()
		select {
		case m := <-out:
			return m.GetEpoch()
		case <-time.After(10 * time.Second):
			t.Fatal("no map")
			return 0
		}
	}
	if e1, e2 := recv(), recv(); e1 != 1 || e2 != 2 {
		t.Fatalf("maps %d %d, want 1 2", e1, e2)
	}
	mu.Lock()
	gid = 7
	mu.Unlock()
	w.Reopen()
	if e := recv(); e != 3 {
		t.Fatalf("map %d after Reopen, want 3", e)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.reqs) != 2 {
		t.Fatalf("%d WatchMap calls, want 2", len(src.reqs))
	}
	if r := src.reqs[0]; r.GetGid() != 0 || r.GetName() != "x" || r.GetSinceEpoch() != 0 {
		t.Errorf("first request %v, want gid 0 (not yet authenticated), name x, since 0", r)
	}
	if r := src.reqs[1]; r.GetGid() != 7 || r.GetName() != "x" || r.GetSinceEpoch() != 2 {
		t.Errorf("second request %v, want gid 7, name x, since 2", r)
	}
}
