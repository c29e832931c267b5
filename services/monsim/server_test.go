package monsim

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/rpcserver"
	"github.com/mgrplane/mgrplane/internal/testlog"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testMonitor is one in-process monitor on a loopback port.
type testMonitor struct {
	srv    *Server
	mon    mgrv1.MonitorServiceClient
	admin  mgrv1.AdminServiceClient
	cancel context.CancelFunc
	done   chan error
	conn   *grpc.ClientConn
}

func startMonitor(t *testing.T, cfg Config) *testMonitor {
	t.Helper()
	tm := startMonitorAsync(t, cfg)
	tm.waitReady(t)
	return tm
}

// startMonitorAsync starts a monitor without waiting for it to serve.
func startMonitorAsync(t *testing.T, cfg Config) *testMonitor {
	t.Helper()
	srv, err := New(cfg, testlog.New(t))
	if err != nil {
		t.Error(err)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm := &testMonitor{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { tm.done <- srv.Run(ctx) }()
	conn, err := grpc.NewClient(srv.Addr(), clientOptions(t, cfg, "client.admin")...)
	if err != nil {
		t.Error(err)
	}
	tm.conn = conn
	tm.mon, tm.admin = mgrv1.NewMonitorServiceClient(conn), mgrv1.NewAdminServiceClient(conn)
	t.Cleanup(func() { tm.stop(t) })
	return tm
}

// waitReady waits until the monitor answers reads (leader or caught-up follower).
func (tm *testMonitor) waitReady(t *testing.T) {
	t.Helper()
	if tm == nil {
		t.FailNow()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := tm.admin.GetStat(context.Background(), &mgrv1.GetStatRequest{}); err == nil && tm.srv.ready.Load() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("monitor did not become ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (tm *testMonitor) stop(t *testing.T) {
	if tm.cancel == nil {
		return
	}
	tm.cancel()
	tm.cancel = nil
	_ = tm.conn.Close()
	if err := <-tm.done; err != nil {
		t.Errorf("monitor run: %v", err)
	}
}

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Insecure = true
	return cfg
}

func (tm *testMonitor) join(t *testing.T, name string) uint64 {
	t.Helper()
	ctx := context.Background()
	a, err := tm.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: a.GetFsid(), Gid: a.GetGid(), Name: name,
		Metadata: map[string]string{"os": "linux", "mgrplane_version": "0.1.0"}}); err != nil {
		t.Fatal(err)
	}
	return a.GetGid()
}

func (tm *testMonitor) current(t *testing.T) *mgrv1.MgrMap {
	t.Helper()
	r, err := tm.admin.GetMap(context.Background(), &mgrv1.GetMapRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetMap()
}

func TestBeaconPromotesAndAdminAnswers(t *testing.T) {
	tm := startMonitor(t, testConfig(t))
	ctx := context.Background()
	x := tm.join(t, "x")
	y := tm.join(t, "y")
	m := tm.current(t)
	if m.GetActiveGid() != x || len(m.GetStandbys()) != 1 || m.GetStandbys()[0].GetGid() != y {
		t.Fatalf("map %v", m)
	}
	b, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: m.GetFsid(), Gid: x, Name: "x", Available: true,
		ServerAddrs: []string{"127.0.0.1:6800"}, Services: map[string]string{"status": "http://127.0.0.1:6880/status/"},
		Metadata: map[string]string{"os": "linux", "mgrplane_version": "0.1.0"}})
	if err != nil || b.GetStanding() != mgrv1.Standing_STANDING_ACTIVE || b.GetEpoch() != m.GetEpoch()+1 ||
		b.GetLease().AsDuration() != DefaultConfig().FenceTimeout {
		t.Fatalf("available beacon: %v %v", b, err)
	}
	stat, err := tm.admin.GetStat(ctx, &mgrv1.GetStatRequest{})
	if err != nil || !stat.GetAvailable() || stat.GetActiveName() != "x" || stat.GetNumStandbys() != 1 {
		t.Fatalf("stat %v %v", stat, err)
	}
	svc, err := tm.admin.ListServices(ctx, &mgrv1.ListServicesRequest{})
	if err != nil || svc.GetServices()["status"] != "http://127.0.0.1:6880/status/" {
		t.Fatalf("services %v %v", svc, err)
	}
	md, err := tm.admin.GetMetadata(ctx, &mgrv1.GetMetadataRequest{Name: "y"})
	if err != nil || md.GetManagers()[0].GetMetadata()["os"] != "linux" {
		t.Fatalf("metadata %v %v", md, err)
	}
	v, err := tm.admin.GetVersions(ctx, &mgrv1.GetVersionsRequest{})
	if err != nil || v.GetVersions()["0.1.0"] != 2 {
		t.Fatalf("versions %v %v", v, err)
	}
	f, err := tm.admin.FailManager(ctx, &mgrv1.FailManagerRequest{})
	if err != nil || f.GetFailedName() != "x" {
		t.Fatalf("fail %v %v", f, err)
	}
	if m := tm.current(t); m.GetActiveName() != "x" || !m.GetActiveFailing() || !strings.Contains(m.GetReason(), "failed by client.admin") {
		t.Fatalf("after fail: %v", m)
	}
	// Told to stop: its beacons get STALE and no lease; y follows its leave.
	sb, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: m.GetFsid(), Gid: x, Name: "x", Available: true})
	if err != nil || sb.GetStanding() != mgrv1.Standing_STANDING_STALE || sb.GetLease() != nil {
		t.Fatalf("failed active's beacon: %v %v", sb, err)
	}
	if _, err := tm.mon.Leave(ctx, &mgrv1.LeaveRequest{Fsid: m.GetFsid(), Gid: x, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	promoted := tm.current(t)
	if promoted.GetActiveName() != "y" {
		t.Fatalf("after leave: %v", promoted)
	}
	// The successor claims its lease with what it reported as a standby:
	// that changes nothing, so it is granted without a new epoch (no raft
	// commit on the handover's critical path).
	cb, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: m.GetFsid(), Gid: y, Name: "y",
		Metadata: map[string]string{"os": "linux", "mgrplane_version": "0.1.0"}})
	if err != nil || cb.GetStanding() != mgrv1.Standing_STANDING_ACTIVE || cb.GetEpoch() != promoted.GetEpoch() ||
		cb.GetLease().AsDuration() != DefaultConfig().FenceTimeout {
		t.Fatalf("successor's claim beacon: %v %v (map epoch %d)", cb, err, promoted.GetEpoch())
	}
	h, err := tm.admin.ListHistory(ctx, &mgrv1.ListHistoryRequest{Limit: 2})
	if err != nil || len(h.GetEntries()) != 2 || h.GetEntries()[0].GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_ADMIN_FAIL ||
		h.GetEntries()[1].GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_LEFT {
		t.Fatalf("history %v %v", h, err)
	}
}

func TestListBeaconsSaysWhenEachManagerWasLastHeard(t *testing.T) {
	tm := startMonitor(t, testConfig(t))
	ctx := context.Background()
	before := time.Now()
	x := tm.join(t, "x")
	y := tm.join(t, "y")
	m := tm.current(t)
	mid := time.Now()
	if _, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: m.GetFsid(), Gid: y, Name: "y"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	lb, err := tm.admin.ListBeacons(ctx, &mgrv1.ListBeaconsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m = tm.current(t); lb.GetEpoch() != m.GetEpoch() || len(lb.GetManagers()) != 2 {
		t.Fatalf("beacons %v, map %v", lb, m)
	}
	ax, sy := lb.GetManagers()[0], lb.GetManagers()[1]
	if ax.GetGid() != x || ax.GetName() != "x" || !ax.GetActive() || sy.GetGid() != y || sy.GetName() != "y" || sy.GetActive() {
		t.Fatalf("managers %v", lb.GetManagers())
	}
	for name, c := range map[string]struct {
		got      *mgrv1.ManagerBeacon
		from, to time.Time
	}{
		"active x, heard once":        {got: ax, from: before, to: mid},
		"standby y, heard again last": {got: sy, from: mid, to: after},
	} {
		t.Run(name, func(t *testing.T) {
			if at := c.got.GetLastBeacon().AsTime(); at.Before(c.from) || at.After(c.to) {
				t.Errorf("last beacon at %v, sent between %v and %v", at, c.from, c.to)
			}
			if c.got.GetAge() == nil || c.got.GetAge().AsDuration() < 0 {
				t.Errorf("age %v", c.got.GetAge())
			}
		})
	}
}

func TestBadInputGetsClearStatusAndChangesNothing(t *testing.T) {
	tm := startMonitor(t, testConfig(t))
	ctx := context.Background()
	x := tm.join(t, "x")
	fsid := tm.current(t).GetFsid()
	tests := map[string]struct {
		call    func() error
		code    codes.Code
		mention string
	}{
		"wrong fsid": {func() error {
			_, err := tm.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Fsid: "nope", Name: "a"})
			return err
		}, codes.FailedPrecondition, "fsid"},
		"stream closed without a gid": {func() error {
			_, err := tm.mon.ReportStreamClosed(ctx, &mgrv1.ReportStreamClosedRequest{})
			return err
		}, codes.InvalidArgument, "gid is required"},
		"empty name": {func() error {
			_, err := tm.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{})
			return err
		}, codes.InvalidArgument, "1 to 64 characters"},
		"never issued gid": {func() error {
			_, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: 999, Name: "x"})
			return err
		}, codes.NotFound, "never issued"},
		"another's gid": {func() error {
			_, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: x, Name: "y"})
			return err
		}, codes.PermissionDenied, "issued to"},
		"oversize metadata": {func() error {
			_, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: x, Name: "x", Metadata: map[string]string{"k": strings.Repeat("v", 2000)}})
			return err
		}, codes.InvalidArgument, "at most 1024"},
		"unknown module": {func() error {
			_, err := tm.admin.EnableModule(ctx, &mgrv1.EnableModuleRequest{Name: "nosuch"})
			return err
		}, codes.NotFound, "--force"},
		"disable always-on": {func() error {
			_, err := tm.admin.DisableModule(ctx, &mgrv1.DisableModuleRequest{Name: "status"})
			return err
		}, codes.FailedPrecondition, "always on"},
		"fail unknown": {func() error {
			_, err := tm.admin.FailManager(ctx, &mgrv1.FailManagerRequest{Who: "nobody"})
			return err
		}, codes.NotFound, "nobody"},
		"dump future epoch": {func() error {
			_, err := tm.admin.GetMap(ctx, &mgrv1.GetMapRequest{Epoch: 1000})
			return err
		}, codes.OutOfRange, "current epoch"},
		"metadata unknown": {func() error {
			_, err := tm.admin.GetMetadata(ctx, &mgrv1.GetMetadataRequest{Name: "nobody"})
			return err
		}, codes.NotFound, "nobody"},
		"count-metadata empty": {func() error {
			_, err := tm.admin.CountMetadata(ctx, &mgrv1.CountMetadataRequest{})
			return err
		}, codes.InvalidArgument, "property"},
		"watch from the future": {func() error {
			s, err := tm.mon.WatchMap(ctx, &mgrv1.WatchMapRequest{SinceEpoch: 1000})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.OutOfRange, "1000"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := tm.current(t).GetEpoch()
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.mention) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.code, tc.mention)
			}
			if after := tm.current(t).GetEpoch(); after != before {
				t.Fatalf("epoch moved %d -> %d", before, after)
			}
		})
	}
}

func TestRestartKeepsEpochsAndGids(t *testing.T) {
	cfg := testConfig(t)
	tm := startMonitor(t, cfg)
	tm.join(t, "x")
	y := tm.join(t, "y")
	before := tm.current(t)
	tm.stop(t)

	tm2 := startMonitor(t, cfg)
	after := tm2.current(t)
	if after.GetEpoch() != before.GetEpoch() || after.GetFsid() != before.GetFsid() || after.GetActiveName() != "x" {
		t.Fatalf("after restart %v, before %v", after, before)
	}
	z := tm2.join(t, "z")
	if z <= y {
		t.Fatalf("gid %d reused after restart (last was %d)", z, y)
	}
	if got := tm2.current(t).GetEpoch(); got != before.GetEpoch()+1 {
		t.Fatalf("epoch %d after restart and one join, want %d", got, before.GetEpoch()+1)
	}
}

func TestSilentActiveIsDroppedAndStandbyPromoted(t *testing.T) {
	cfg := testConfig(t)
	cfg.BeaconPeriod, cfg.FenceTimeout, cfg.Grace, cfg.Tick = 20*time.Millisecond, 600*time.Millisecond, 1200*time.Millisecond, 20*time.Millisecond
	tm := startMonitor(t, cfg)
	tm.join(t, "x")
	y := tm.join(t, "y")
	fsid := tm.current(t).GetFsid()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: y, Name: "y", Metadata: map[string]string{"os": "linux", "mgrplane_version": "0.1.0"}})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetStanding() == mgrv1.Standing_STANDING_ACTIVE {
			m := tm.current(t)
			if m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_SILENT || !strings.HasPrefix(m.GetReason(), "promoted y: active x silent for") {
				t.Fatalf("promotion map %v", m)
			}
			return
		}
		time.Sleep(cfg.BeaconPeriod)
	}
	t.Fatal("y was never promoted")
}

func TestWatchIsOrderedAndResumable(t *testing.T) {
	tm := startMonitor(t, testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := tm.mon.WatchMap(ctx, &mgrv1.WatchMapRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetMap().GetEpoch() != 1 {
		t.Fatalf("first map %v %v", first, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, n := range []string{"a", "b", "c", "d"} {
			tm.join(t, n)
		}
	}()
	want := uint64(2)
	for want <= 5 {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetMap().GetEpoch() != want {
			t.Fatalf("got epoch %d, want %d", r.GetMap().GetEpoch(), want)
		}
		want++
	}
	wg.Wait()
	resumed, err := tm.mon.WatchMap(ctx, &mgrv1.WatchMapRequest{SinceEpoch: 3})
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(4); want <= 5; want++ {
		r, err := resumed.Recv()
		if err != nil || r.GetMap().GetEpoch() != want {
			t.Fatalf("resumed: epoch %d (%v), want %d", r.GetMap().GetEpoch(), err, want)
		}
	}
}

func TestWatchFromTrimmedEpochIsOutOfRange(t *testing.T) {
	cfg := testConfig(t)
	cfg.HistoryLimit = 2
	cfg.WatchMaxLag = 2
	tm := startMonitor(t, cfg)
	for _, n := range []string{"a", "b", "c", "d"} {
		tm.join(t, n)
	}
	s, err := tm.mon.WatchMap(context.Background(), &mgrv1.WatchMapRequest{SinceEpoch: 1})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.OutOfRange || !strings.Contains(status.Convert(err).Message(), "oldest kept epoch") {
		t.Fatalf("got %v", err)
	}
	if _, err := tm.admin.GetMap(context.Background(), &mgrv1.GetMapRequest{Epoch: 1}); status.Code(err) != codes.OutOfRange {
		t.Fatalf("dump of trimmed epoch: %v", err)
	}
}

func TestGarbageOnThePortLeavesTheServerServing(t *testing.T) {
	tm := startMonitor(t, testConfig(t))
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}, // a TLS record header
		[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\xff\xff\xff\xff"),
	} {
		c, err := net.Dial("tcp", tm.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(junk)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		_ = c.Close()
	}
	if _, err := tm.admin.GetStat(context.Background(), &mgrv1.GetStatRequest{}); err != nil {
		t.Fatalf("server stopped answering after garbage: %v", err)
	}
}

// fastConfig has short timings for fencing tests: leases of 600 ms.
func fastConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.BeaconPeriod, cfg.FenceTimeout, cfg.Grace, cfg.Tick = 20*time.Millisecond, 600*time.Millisecond, 5*time.Second, 20*time.Millisecond
	return cfg
}

// waitActive polls the map until name is active, or fails after 20 s.
func (tm *testMonitor) waitActive(t *testing.T, name string) *mgrv1.MgrMap {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := tm.current(t); m.GetActiveName() == name {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never became active: %v", name, tm.current(t))
	return nil
}

// beaconLoop beacons for name until ctx ends, as a live standby would.
// firstActive returns the earliest kept map up to epoch upTo whose active
// is name: the map that promoted it.
func (tm *testMonitor) firstActive(t *testing.T, name string, upTo uint64) *mgrv1.MgrMap {
	t.Helper()
	for e := uint64(1); e <= upTo; e++ {
		r, err := tm.admin.GetMap(context.Background(), &mgrv1.GetMapRequest{Epoch: e})
		if status.Code(err) == codes.OutOfRange {
			continue // trimmed
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.GetMap().GetActiveName() == name {
			return r.GetMap()
		}
	}
	t.Fatalf("no kept map up to epoch %d has %s active", upTo, name)
	return nil
}

func (tm *testMonitor) beaconLoop(ctx context.Context, fsid string, gid uint64, name string) {
	for ctx.Err() == nil {
		_, _ = tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: gid, Name: name})
		time.Sleep(20 * time.Millisecond)
	}
}

// keepBeaconing runs beaconLoop for gid until ctx ends or the test ends,
// and waits for it at cleanup.
func (tm *testMonitor) keepBeaconing(t *testing.T, ctx context.Context, fsid string, gid uint64, name string) {
	t.Helper()
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { tm.beaconLoop(lctx, fsid, gid, name) })
	t.Cleanup(func() {
		stop()
		wg.Wait()
	})
}

// managerStream opens gid's map stream as its manager does and reads the
// first map; crash closes the stream without a leave.
func (tm *testMonitor) managerStream(t *testing.T, ctx context.Context, gid uint64, name string) (crash func()) {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx)
	ws, err := tm.mon.WatchMap(wctx, &mgrv1.WatchMapRequest{Gid: gid, Name: name})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, err := ws.Recv(); err != nil {
		cancel()
		t.Fatal(err)
	}
	return cancel
}

func TestFailedActiveThatNeverLeavesIsReplacedAfterItsLease(t *testing.T) {
	tm := startMonitor(t, fastConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x := tm.join(t, "x")
	y := tm.join(t, "y")
	fsid := tm.current(t).GetFsid()
	tm.keepBeaconing(t, ctx, fsid, x, "x") // x keeps beaconing but never leaves
	tm.keepBeaconing(t, ctx, fsid, y, "y")
	if _, err := tm.admin.FailManager(ctx, &mgrv1.FailManagerRequest{Who: "x"}); err != nil {
		t.Fatal(err)
	}
	m := tm.waitActive(t, "y")
	if m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_LOST || !strings.Contains(m.GetReason(), "lease ran out") {
		t.Fatalf("promotion map %v", m)
	}
}

func TestCrashedActiveIsReplacedAtOnceWhenNothingListens(t *testing.T) {
	tests := map[string]struct {
		listening bool
		// gid, when set, is what a manager answering health checks on the
		// listener says it holds: "same" (x itself) or "other".
		gid string
		// host is the advertised host; "" means 127.0.0.1.
		host       string
		wantReason string
	}{
		"nothing listens: proved gone":      {wantReason: "nothing listens"},
		"something listens: lease runs out": {listening: true, wantReason: "lease ran out"},
		"a manager with another gid answers (a restart on the same ports): proved gone": {
			listening: true, gid: "other", wantReason: "another gid answers at its address"},
		"the suspect itself answers: lease runs out": {listening: true, gid: "same", wantReason: "lease ran out"},
		"another gid answers behind a name, which may lead elsewhere: lease runs out": {
			listening: true, gid: "other", host: "localhost", wantReason: "lease ran out"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tm := startMonitor(t, fastConfig(t))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer lis.Close()
			x := tm.join(t, "x")
			y := tm.join(t, "y")
			if tc.gid != "" {
				says := x
				if tc.gid == "other" {
					says = y + 1 // the gid a restarted x would get
				}
				serveGID(t, lis, says)
			}
			addr := lis.Addr().String()
			if tc.host != "" {
				_, port, _ := net.SplitHostPort(addr)
				addr = net.JoinHostPort(tc.host, port)
			}
			fsid := tm.current(t).GetFsid()
			b, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: x, Name: "x", Available: true, ServerAddrs: []string{addr}})
			if err != nil || b.GetLease() == nil {
				t.Fatalf("available beacon %v %v", b, err)
			}
			tm.keepBeaconing(t, ctx, fsid, y, "y")
			// x watches its map, then "crashes": its stream closes without a leave.
			crash := tm.managerStream(t, ctx, x, "x")
			// x beacons (keeping its lease fresh) until the moment it crashes.
			xctx, xstop := context.WithCancel(ctx)
			xdone := make(chan struct{})
			go func() {
				defer close(xdone)
				for xctx.Err() == nil {
					_, _ = tm.mon.Beacon(xctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: x, Name: "x", Available: true, ServerAddrs: []string{addr}})
					time.Sleep(20 * time.Millisecond)
				}
			}()
			time.Sleep(100 * time.Millisecond)
			xstop()
			<-xdone
			if !tc.listening {
				_ = lis.Close()
			}
			crash()
			m := tm.waitActive(t, "y")
			if !strings.Contains(m.GetReason(), tc.wantReason) {
				t.Fatalf("promotion reason %q, want %q", m.GetReason(), tc.wantReason)
			}
		})
	}
}

// serveGID serves gRPC health on lis as a manager's server does, saying in
// every answer that it holds gid.
func serveGID(t *testing.T, lis net.Listener, gid uint64) {
	t.Helper()
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		_ = grpc.SetHeader(ctx, metadata.Pairs(rpcserver.GIDHeader, strconv.FormatUint(gid, 10)))
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
}
