package watch

import (
	"fmt"
	"sync"
	"testing"

	"github.com/mgrplane/mgrplane/internal/testlog"

	"go.uber.org/goleak"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeHistory keeps the last keep recorded maps in memory.
type fakeHistory struct {
	mu    sync.Mutex
	keep  int
	maps  []*mgrv1.MgrMap
	calls int
}

func newFakeHistory(keep int) *fakeHistory {
	return &fakeHistory{keep: keep}
}

// Record appends m, trimming to the last keep maps.
func (f *fakeHistory) Record(m *mgrv1.MgrMap) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maps = append(f.maps, m)
	if len(f.maps) > f.keep {
		f.maps = append([]*mgrv1.MgrMap(nil), f.maps[len(f.maps)-f.keep:]...)
	}
}

// Last returns the newest recorded epoch, 0 when none.
func (f *fakeHistory) Last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.maps) == 0 {
		return 0
	}
	return f.maps[len(f.maps)-1].GetEpoch()
}

// Calls returns how many times Since was called.
func (f *fakeHistory) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeHistory) Since(since uint64) ([]*mgrv1.MgrMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.maps) > 0 && since+1 < f.maps[0].GetEpoch() {
		return nil, fmt.Errorf("since %d: %w (oldest kept %d)", since, ErrTrimmed, f.maps[0].GetEpoch())
	}
	var out []*mgrv1.MgrMap
	for _, m := range f.maps {
		if m.GetEpoch() > since {
			out = append(out, m)
		}
	}
	return out, nil
}

// monitor records then publishes, as the real monitor does.
type monitor struct {
	hub  *Hub
	hist *fakeHistory
	next uint64
}

func (m *monitor) publish(n int) {
	for range n {
		m.next++
		mm := &mgrv1.MgrMap{Epoch: m.next, Fsid: "fsid"}
		m.hist.Record(mm)
		m.hub.Publish(mm)
	}
}

// newTestHub returns a hub with the given MaxLag over a history keeping
// keep maps, closed at the end of the test.
func newTestHub(t testing.TB, maxLag, keep int) *monitor {
	t.Helper()
	hist := newFakeHistory(keep)
	cfg := DefaultConfig()
	cfg.MaxLag = maxLag
	hub, err := New(cfg, hist, testlog.New(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(hub.Close)
	return &monitor{hub: hub, hist: hist}
}
