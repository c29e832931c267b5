package monsim

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// startBenchQuorum starts n monitors as one quorum (n = 1 is the embedded
// default) and returns them, leader first.
func startBenchQuorum(b *testing.B, n int) []*testMonitor {
	b.Helper()
	addrs := freeAddrs(b, n)
	var peers []string
	for i, a := range addrs {
		peers = append(peers, fmt.Sprintf("m%d=%s", i+1, a))
	}
	mons := make([]*testMonitor, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := benchConfig(b)
		cfg.Grace = 10 * time.Minute
		cfg.Addr, cfg.NodeID = addrs[i], fmt.Sprintf("m%d", i+1)
		if n > 1 {
			cfg.Peers = peers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mons[i] = startBenchMonitor(b, cfg)
		}()
	}
	wg.Wait()
	for _, m := range mons {
		if m == nil {
			b.FailNow()
		}
	}
	sort.SliceStable(mons, func(i, j int) bool { return mons[i].srv.leading.Load() && !mons[j].srv.leading.Load() })
	if !mons[0].srv.leading.Load() {
		b.Fatal("no leader")
	}
	return mons
}

// BenchmarkCommit measures committing one map change (SetFlags toggling
// down, through the admin API of the leader) on one monitor and on a quorum
// of three, beside raft's own round for an empty entry (a Barrier) on the
// same leader in the same run: commit_us, raft_us and x_raft.
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			mons := startBenchQuorum(b, n)
			leader := mons[0]
			ctx := context.Background()
			var commit, raw time.Duration
			down := false
			for b.Loop() {
				t0 := time.Now()
				if err := leader.srv.node.Barrier(ctx); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				down = !down
				if _, err := leader.admin.SetFlags(ctx, &mgrv1.SetFlagsRequest{Down: down}); err != nil {
					b.Fatal(err)
				}
				commit += time.Since(t1)
				raw += t1.Sub(t0)
			}
			b.ReportMetric(float64(commit.Microseconds())/float64(b.N), "commit_us")
			b.ReportMetric(float64(raw.Microseconds())/float64(b.N), "raft_us")
			b.ReportMetric(float64(commit)/float64(raw), "x_raft")
		})
	}
}

// BenchmarkBeaconVia measures a standby's periodic beacon (changing
// nothing) sent to a follower, which forwards it to the leader, beside the
// same beacon sent to the leader in the same run: beacons per second each
// way and the follower/leader ratio of their rates.
func BenchmarkBeaconVia(b *testing.B) {
	mons := startBenchQuorum(b, 3)
	leader, follower := mons[0], mons[1]
	gid, fsid := benchJoin(b, leader, "x")
	ctx := context.Background()
	req := &mgrv1.BeaconRequest{Fsid: fsid, Gid: gid, Name: "x", AvailableModules: benchModules(), Metadata: benchMetadata("")}
	// The join's metadata differs from benchMetadata: settle it first.
	if _, err := leader.mon.Beacon(ctx, req); err != nil {
		b.Fatal(err)
	}
	var viaLeader, viaFollower time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := leader.mon.Beacon(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := follower.mon.Beacon(ctx, req); err != nil {
			b.Fatal(err)
		}
		viaLeader += t1.Sub(t0)
		viaFollower += time.Since(t1)
	}
	b.ReportMetric(float64(b.N)/viaLeader.Seconds(), "leader_beacons/s")
	b.ReportMetric(float64(b.N)/viaFollower.Seconds(), "follower_beacons/s")
	b.ReportMetric(viaLeader.Seconds()/viaFollower.Seconds(), "x_leader_rate")
}
