package quorum

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
)

// durations records the durations a hook is told.
type durations struct {
	mu sync.Mutex
	ds []time.Duration
}

func (d *durations) add(x time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ds = append(d.ds, x)
}

func (d *durations) get() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Duration(nil), d.ds...)
}

func TestCommitAndApplyHooks(t *testing.T) {
	var commits, applies durations
	cfg := testConfig(t)
	cfg.OnCommit, cfg.OnApply = commits.add, applies.add
	n := openLeader(t, cfg, &recorder{})
	t.Cleanup(func() { _ = n.Close() })
	ctx := context.Background()

	before := time.Now()
	if _, err := n.Apply(ctx, bootstrapCmd()); err != nil {
		t.Fatal(err)
	}
	join(t, n, "x") // two proposals
	// A command the state machine refuses is committed and applied too.
	_, err := n.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Leave{Leave: &mgrv1.LeaveOp{Fsid: "f-1", Gid: 999, Name: "nobody"}}})
	if !errors.Is(err, mgrmap.ErrNotFound) {
		t.Fatalf("leave of an unknown gid = %v, want ErrNotFound", err)
	}
	elapsed := time.Since(before)

	if got := commits.get(); len(got) != 4 {
		t.Fatalf("OnCommit called %d times for 4 proposals: %v", len(got), got)
	}
	// Each command entry is applied once here (the barrier's is no command).
	if got := applies.get(); len(got) != 4 {
		t.Fatalf("OnApply called %d times for 4 command entries: %v", len(got), got)
	}
	for _, d := range append(commits.get(), applies.get()...) {
		if d <= 0 || d > elapsed {
			t.Errorf("duration %v, want above 0 and at most the %v the proposals took", d, elapsed)
		}
	}
}
