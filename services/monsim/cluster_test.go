package monsim

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// freeAddrs reserves n loopback addresses (listen, note, close).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Addr().String())
		_ = l.Close()
	}
	return out
}

// startQuorum starts three monitors with the same peers list and waits
// until every one is ready.
func startQuorum(t *testing.T) ([]*testMonitor, []Config) {
	return startQuorumAdvertising(t, func(addr string) string { return addr })
}

// startQuorumAdvertising starts three monitors, each listening on a loopback
// address and known to its peers as advertise(listen address).
func startQuorumAdvertising(t *testing.T, advertise func(addr string) string) ([]*testMonitor, []Config) {
	t.Helper()
	addrs := freeAddrs(t, 3)
	var peers []string
	for i, a := range addrs {
		peers = append(peers, fmt.Sprintf("m%d=%s", i+1, advertise(a)))
	}
	// One creds dir for the quorum: raft and forwarded calls are mutual TLS
	// with its monitor certificate, callers are client.admin.
	secure := secureConfig(t)
	var cfgs []Config
	for i, a := range addrs {
		cfg := testConfig(t)
		cfg.Insecure, cfg.Creds = false, secure.Creds
		cfg.Addr, cfg.NodeID, cfg.Peers = a, fmt.Sprintf("m%d", i+1), peers
		if adv := advertise(a); adv != a {
			cfg.AdvertiseAddr = adv
		}
		cfg.Tick = 50 * time.Millisecond
		cfgs = append(cfgs, cfg)
	}
	mons := make([]*testMonitor, 3)
	done := make(chan struct{})
	for i := range cfgs {
		go func() {
			defer func() { done <- struct{}{} }()
			mons[i] = startMonitorAsync(t, cfgs[i])
		}()
	}
	for range cfgs {
		<-done
	}
	for _, m := range mons {
		m.waitReady(t)
	}
	return mons, cfgs
}

func TestQuorumServesFromAnyMonitorAndSurvivesLeaderLoss(t *testing.T) {
	mons, cfgs := startQuorum(t)
	ctx := context.Background()
	leader := leaderOf(t, mons)
	follower := mons[(leader+1)%3]
	// Writes through a follower are forwarded to the leader.
	x := follower.join(t, "x")
	y := follower.join(t, "y")
	st, err := follower.admin.GetQuorumStatus(ctx, &mgrv1.GetQuorumStatusRequest{})
	if err != nil || len(st.GetMembers()) != 3 || st.GetLeaderId() != mons[leader].srv.node.ID() {
		t.Fatalf("quorum status %v %v", st, err)
	}
	// Beacon times live in the leader's memory: a follower forwards.
	lb, err := follower.admin.ListBeacons(ctx, &mgrv1.ListBeaconsRequest{})
	if err != nil || len(lb.GetManagers()) != 2 || lb.GetManagers()[0].GetGid() != x || lb.GetManagers()[1].GetGid() != y ||
		lb.GetManagers()[1].GetLastBeacon().AsTime().IsZero() {
		t.Fatalf("beacons through a follower: %v %v", lb, err)
	}
	// A forwarded call keeps its caller: the leader checks the token again,
	// so mgr.y cannot use x's gid through a follower either.
	yc := dialAs(t, follower.srv.Addr(), clientOptions(t, cfgs[0], "mgr.y")...)
	fsid := follower.current(t).GetFsid()
	if _, err := yc.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: x, Name: "y"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("mgr.y beaconing with x's gid through a follower: %v, want PermissionDenied", err)
	}
	ya, err := yc.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "y"})
	if err != nil {
		t.Fatalf("mgr.y authenticating through a follower: %v", err)
	}
	if _, err := yc.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: ya.GetGid(), Name: "y"}); err != nil {
		t.Fatalf("mgr.y beaconing with its own gid through a follower: %v", err)
	}
	y = ya.GetGid()
	// Every monitor serves the same map once it has applied it.
	want := mons[leader].current(t)
	for i, m := range mons {
		waitEpoch(t, m, want.GetEpoch())
		got, err := m.admin.GetMap(ctx, &mgrv1.GetMapRequest{Epoch: want.GetEpoch()})
		if err != nil || !proto.Equal(got.GetMap(), want) {
			t.Fatalf("monitor %d has a different map at epoch %d: %v %v", i, want.GetEpoch(), got, err)
		}
	}
	// Lose the leader: another is elected; epochs and gids go on.
	mons[leader].stop(t)
	var alive []*testMonitor
	for i, m := range mons {
		if i != leader {
			alive = append(alive, m)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	var z uint64
	for z == 0 && time.Now().Before(deadline) {
		a, err := alive[0].mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "z"})
		if err == nil {
			z = a.GetGid()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if z <= y || z <= x {
		t.Fatalf("gid %d after leader loss (earlier %d, %d)", z, x, y)
	}
	if got := alive[1].current(t); got.GetEpoch() < want.GetEpoch() || got.GetFsid() != want.GetFsid() {
		t.Fatalf("after leader loss: %v, before %v", got, want)
	}
	// Rule 7: the new leader gives everyone a full grace, so x stays active.
	if got := alive[0].current(t); got.GetActiveGid() != x {
		t.Fatalf("active changed on leader loss: %v", got)
	}
}

// leaderOf returns the index of the monitor that leads.
func leaderOf(t *testing.T, mons []*testMonitor) int {
	t.Helper()
	for i, m := range mons {
		if m.srv.leading.Load() {
			return i
		}
	}
	t.Fatal("no leader")
	return -1
}

func waitEpoch(t *testing.T, m *testMonitor, epoch uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := m.admin.GetStat(context.Background(), &mgrv1.GetStatRequest{}); err == nil && r.GetEpoch() >= epoch {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("monitor never reached epoch %d", epoch)
}

// TestQuorumUsesTheAdvertisedAddress: followers learn the leader's address
// from raft's messages, and forward writes to it. It must be the leader's
// --advertise-addr, not its listen address (in a container that is
// 0.0.0.0:6789, which names the follower itself).
func TestQuorumUsesTheAdvertisedAddress(t *testing.T) {
	advertise := func(addr string) string {
		_, port, _ := net.SplitHostPort(addr)
		return net.JoinHostPort("localhost", port)
	}
	mons, cfgs := startQuorumAdvertising(t, advertise)
	leader := leaderOf(t, mons)
	want := advertise(cfgs[leader].Addr)
	for i, m := range mons {
		if i == leader {
			continue
		}
		id, addr := m.srv.node.Leader()
		if id != cfgs[leader].NodeID || addr != want {
			t.Errorf("monitor %s knows the leader as %s at %q; want %s at %q (its advertised address)", cfgs[i].NodeID, id, addr, cfgs[leader].NodeID, want)
		}
		// A write through the follower reaches the leader at that address.
		m.join(t, fmt.Sprintf("via-%s", cfgs[i].NodeID))
	}
	st, err := mons[leader].admin.GetQuorumStatus(context.Background(), &mgrv1.GetQuorumStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range st.GetMembers() {
		for i, c := range cfgs {
			if c.NodeID == mb.GetId() && mb.GetAddress() != advertise(cfgs[i].Addr) {
				t.Errorf("member %s listed at %q; want %q", mb.GetId(), mb.GetAddress(), advertise(cfgs[i].Addr))
			}
		}
	}
}

// TestQuorumCrashOnAFollowerIsProbedByTheLeader: the active's map stream is
// on a follower (watches spread over the quorum). When it closes without a
// leave, the follower tells the leader, which probes the active's addresses
// and promotes at once when nothing listens, instead of waiting out the
// grace.
func TestQuorumCrashOnAFollowerIsProbedByTheLeader(t *testing.T) {
	mons, _ := startQuorum(t)
	leader := leaderOf(t, mons)
	follower := mons[(leader+1)%3]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x := follower.join(t, "x")
	y := follower.join(t, "y")
	fsid := follower.current(t).GetFsid()
	dead := freeAddrs(t, 2) // nothing listens there
	if b, err := follower.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: x, Name: "x", Available: true, ServerAddrs: dead}); err != nil || b.GetLease() == nil {
		t.Fatalf("x's available beacon: %v %v", b, err)
	}
	follower.keepBeaconing(t, ctx, fsid, y, "y")
	crash := follower.managerStream(t, ctx, x, "x")
	crash() // x's stream on the follower closes without a leave
	// The map that made y active, not a later one (y's next beacon, with
	// other addresses, can follow it before the test looks).
	m := mons[leader].firstActive(t, "y", mons[leader].waitActive(t, "y").GetEpoch())
	if !strings.Contains(m.GetReason(), "nothing listens") {
		t.Fatalf("promotion reason %q, want the crash fast path's (the grace is %v)", m.GetReason(), DefaultConfig().Grace)
	}
}
