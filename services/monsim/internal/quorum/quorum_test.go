package quorum

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/testlog"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder keeps every map handed to onMap.
type recorder struct {
	mu   sync.Mutex
	maps []*mgrv1.MgrMap
}

func (r *recorder) onMap(m *mgrv1.MgrMap) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maps = append(r.maps, m)
}

func (r *recorder) epochs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, m := range r.maps {
		out = append(out, m.GetEpoch())
	}
	return out
}

func openLeader(t *testing.T, cfg Config, rec *recorder) *Node {
	t.Helper()
	n, err := Open(cfg, nil, rec.onMap, testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			_ = n.Close()
			t.Fatal("single voter did not become leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := n.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	return cfg
}

func bootstrapCmd() *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_Bootstrap{Bootstrap: &mgrv1.BootstrapOp{Fsid: "f-1", AlwaysOnModules: []string{"status"}}}}
}

func join(t *testing.T, n *Node, name string) uint64 {
	t.Helper()
	ctx := context.Background()
	r, err := n.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Authenticate{Authenticate: &mgrv1.AuthenticateOp{Name: name}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Beacon{Beacon: &mgrv1.BeaconRequest{Fsid: "f-1", Gid: r.GID, Name: name}}}); err != nil {
		t.Fatal(err)
	}
	return r.GID
}

func TestApplyPublishesEveryChangeInOrder(t *testing.T) {
	rec := &recorder{}
	n := openLeader(t, testConfig(t), rec)
	defer n.Close()
	if _, err := n.Apply(context.Background(), bootstrapCmd()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x", "y", "z"} {
		join(t, n, name)
	}
	got := rec.epochs()
	want := []uint64{1, 2, 3, 4}
	if len(got) != len(want) {
		t.Fatalf("published epochs %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("published epochs %v, want %v", got, want)
		}
	}
	_, err := n.Apply(context.Background(), &mgrv1.Command{Op: &mgrv1.Command_Authenticate{Authenticate: &mgrv1.AuthenticateOp{Name: "bad name"}}})
	if !errors.Is(err, mgrmap.ErrInvalid) {
		t.Fatalf("refused command through the log: %v", err)
	}
}

func TestRestartReplaysLogAndSnapshot(t *testing.T) {
	tests := map[string]struct{ snapshot bool }{
		"log only":           {snapshot: false},
		"snapshot plus tail": {snapshot: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			n := openLeader(t, cfg, &recorder{})
			if _, err := n.Apply(context.Background(), bootstrapCmd()); err != nil {
				t.Fatal(err)
			}
			join(t, n, "x")
			if tc.snapshot {
				if err := n.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			last := join(t, n, "y")
			before := n.State()
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}

			rec := &recorder{}
			n2 := openLeader(t, cfg, rec)
			defer n2.Close()
			after := n2.State()
			if !proto.Equal(before, after) {
				t.Fatalf("state after restart differs:\nbefore %v\nafter  %v", before, after)
			}
			if e := rec.epochs(); len(e) == 0 || e[len(e)-1] != before.GetMap().GetEpoch() {
				t.Fatalf("replay published %v, want it to end at %d", e, before.GetMap().GetEpoch())
			}
			if g := join(t, n2, "z"); g <= last {
				t.Fatalf("gid %d after restart, last issued before %d", g, last)
			}
		})
	}
}

func TestApplyAfterCloseIsNotLeader(t *testing.T) {
	n := openLeader(t, testConfig(t), &recorder{})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := n.Apply(context.Background(), bootstrapCmd())
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("apply after close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		mut  func(*Config)
		want string
	}{
		"no data dir":        {func(c *Config) { c.DataDir = "" }, "data dir"},
		"no node id":         {func(c *Config) { c.NodeID = "" }, "node id"},
		"tiny apply timeout": {func(c *Config) { c.ApplyTimeout = time.Millisecond }, "apply timeout"},
		"tiny threshold":     {func(c *Config) { c.SnapshotThreshold = 1 }, "snapshot threshold"},
		"no snapshots kept":  {func(c *Config) { c.RetainSnapshots = 0 }, "retain snapshots"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = "d"
			tc.mut(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want mention of %q", err, tc.want)
			}
		})
	}
}

// dirSize sums the sizes of the files under dir.
func dirSize(t *testing.T, dir string) (int64, int) {
	t.Helper()
	var total int64
	files := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total, files
}

func TestSnapshotsKeepTheDataDirBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes thousands of log entries")
	}
	cfg := testConfig(t)
	cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 256, 64, 100*time.Millisecond
	n := openLeader(t, cfg, &recorder{})
	ctx := context.Background()
	if _, err := n.Apply(ctx, bootstrapCmd()); err != nil {
		t.Fatal(err)
	}
	gid := join(t, n, "x")
	// Every second beacon changes the metadata digest, so each is one log
	// entry and one new epoch.
	sizeAt := map[int]int64{}
	const entries = 4000
	for i := range entries {
		md := map[string]string{"flip": strconv.Itoa(i % 2), "pad": strings.Repeat("p", 200)}
		if _, err := n.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Beacon{Beacon: &mgrv1.BeaconRequest{Fsid: "f-1", Gid: gid, Name: "x", Metadata: md}}}); err != nil {
			t.Fatal(err)
		}
		if i == entries/2 || i == entries-1 {
			if err := n.Snapshot(); err != nil {
				t.Fatal(err)
			}
			sizeAt[i], _ = dirSize(t, cfg.DataDir)
		}
	}
	half, end := sizeAt[entries/2], sizeAt[entries-1]
	t.Logf("data dir after %d entries: %d bytes; after %d: %d bytes", entries/2, half, entries, end)
	// Twice the entries, not twice the bytes: compaction frees what the
	// snapshots cover and the log reuses those pages.
	if end > half+half/2 {
		t.Fatalf("data dir grew from %d to %d bytes over %d more entries", half, end, entries/2)
	}
	before := n.State()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := openLeader(t, cfg, &recorder{})
	defer n2.Close()
	if !proto.Equal(before, n2.State()) {
		t.Fatal("state restored from snapshot plus log differs")
	}
	if got := n2.State().GetMap().GetEpoch(); got != before.GetMap().GetEpoch() || len(n2.State().GetHistory()) != len(before.GetHistory()) {
		t.Fatalf("restored epoch %d with %d kept maps", got, len(n2.State().GetHistory()))
	}
}
