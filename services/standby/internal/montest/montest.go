// Package montest is a hand-written, in-memory fake of mgrv1.MonitorService
// for the standby's tests. It follows the monitor rules simply: Authenticate
// issues increasing gids; the first beaconer with no active becomes active;
// Beacon answers the standing, with a lease for the active (STALE and no
// lease once the active is failing); WatchMap streams maps; Leave drops.
// Test hooks make another gid active, fail or drop a gid, change the
// modules, pause or close the map streams, make beacons fail or hang, and
// record what managers sent. It also serves the AdminService reads modules
// use: ListHistory and ListBeacons.
package montest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// FSID is the fake cluster's fsid.
const FSID = "fake-fsid"

// Monitor is the fake monitor, serving on 127.0.0.1.
type Monitor struct {
	mgrv1.UnimplementedMonitorServiceServer

	srv  *grpc.Server
	lis  net.Listener
	done chan struct{}

	mu       sync.Mutex
	nextGID  uint64
	pending  map[uint64]string
	cur      *mgrv1.MgrMap
	history  []*mgrv1.MgrMap
	changed  chan struct{} // closed and replaced on every change
	closing  chan struct{} // closed and replaced by CloseStreams
	paused   bool
	failNext []codes.Code
	lease    time.Duration
	fault    BeaconFault
	onLeave  func(*mgrv1.LeaveRequest)
	auths    []*mgrv1.AuthenticateRequest
	beacons  []Beacon
	watches  []*mgrv1.WatchMapRequest
	open     int
	leaves   []*mgrv1.LeaveRequest
	// seen is when each gid's newest answered beacon arrived.
	seen map[uint64]time.Time
}

// BeaconFault is how the fake treats beacons, to play a monitor the manager
// cannot reach.
type BeaconFault int

// The faults.
const (
	// BeaconsAnswered: beacons are answered (the default).
	BeaconsAnswered BeaconFault = iota
	// BeaconsUnavailable: every beacon fails with Unavailable and changes
	// nothing.
	BeaconsUnavailable
	// BeaconsHang: every beacon hangs until its deadline and changes
	// nothing.
	BeaconsHang
)

// Beacon is one beacon the fake received, with its answer.
type Beacon struct {
	Req      *mgrv1.BeaconRequest
	Standing mgrv1.Standing
	Err      error
}

var _ mgrv1.MonitorServiceServer = (*Monitor)(nil)

// Start serves a fake monitor on 127.0.0.1:0 until the test ends.
func Start(t testing.TB) *Monitor {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	m := &Monitor{
		srv:     grpc.NewServer(),
		lis:     lis,
		done:    make(chan struct{}),
		nextGID: 100,
		lease:   DefaultLease,
		pending: map[uint64]string{},
		changed: make(chan struct{}),
		closing: make(chan struct{}),
		seen:    map[uint64]time.Time{},
	}
	m.cur = &mgrv1.MgrMap{Epoch: 1, Fsid: FSID, AlwaysOnModules: []string{"status"}, Cause: mgrv1.ChangeCause_CHANGE_CAUSE_BOOTSTRAP}
	m.history = []*mgrv1.MgrMap{m.cur}
	mgrv1.RegisterMonitorServiceServer(m.srv, m)
	mgrv1.RegisterAdminServiceServer(m.srv, admin{m: m})
	go func() {
		defer close(m.done)
		_ = m.srv.Serve(lis)
	}()
	t.Cleanup(m.Stop)
	return m
}

// Addr is the fake's address.
func (m *Monitor) Addr() string { return m.lis.Addr().String() }

// Stop stops serving; open streams end.
func (m *Monitor) Stop() {
	m.srv.Stop()
	<-m.done
}

// Period and Grace are what Authenticate answers.
const (
	Period = time.Second
	Grace  = 6 * time.Second
)

// DefaultLease is the lease granted to the active, and the fence timeout
// Authenticate answers, until SetLease changes it.
const DefaultLease = 2 * time.Second

// SetLease sets the lease granted from now on and the fence timeout
// Authenticate answers.
func (m *Monitor) SetLease(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lease = d
}

// SetBeaconFault sets how beacons are treated from now on.
func (m *Monitor) SetBeaconFault(f BeaconFault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

// OnLeave sets a function called with every Leave request before the fake
// applies it (nil: none). It runs without the fake's lock held.
func (m *Monitor) OnLeave(f func(*mgrv1.LeaveRequest)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onLeave = f
}

// Authenticate issues the next gid.
func (m *Monitor) Authenticate(_ context.Context, req *mgrv1.AuthenticateRequest) (*mgrv1.AuthenticateResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.auths = append(m.auths, proto.CloneOf(req))
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if req.GetFsid() != "" && req.GetFsid() != FSID {
		return nil, status.Errorf(codes.FailedPrecondition, "fsid %q is not this cluster's", req.GetFsid())
	}
	gid := m.nextGID
	m.nextGID++
	m.pending[gid] = req.GetName()
	return &mgrv1.AuthenticateResponse{
		Gid: gid, Fsid: FSID, BeaconPeriod: durationpb.New(Period), Grace: durationpb.New(Grace),
		FenceTimeout: durationpb.New(m.lease),
	}, nil
}

// Beacon applies the monitor rules to one beacon, or the fault set.
func (m *Monitor) Beacon(ctx context.Context, req *mgrv1.BeaconRequest) (*mgrv1.BeaconResponse, error) {
	m.mu.Lock()
	fault := m.fault
	m.mu.Unlock()
	var err error
	switch fault {
	case BeaconsUnavailable:
		err = status.Error(codes.Unavailable, "beacons failed by the test")
	case BeaconsHang:
		<-ctx.Done()
		err = status.FromContextError(ctx.Err()).Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.beacons = append(m.beacons, Beacon{Req: proto.CloneOf(req), Err: err})
		return nil, err
	}
	resp, err := m.beacon(req)
	b := Beacon{Req: proto.CloneOf(req), Err: err}
	if resp != nil {
		b.Standing = resp.GetStanding()
		m.seen[req.GetGid()] = time.Now()
	}
	m.beacons = append(m.beacons, b)
	return resp, err
}

func (m *Monitor) beacon(req *mgrv1.BeaconRequest) (*mgrv1.BeaconResponse, error) {
	if req.GetFsid() != FSID {
		return nil, status.Errorf(codes.FailedPrecondition, "fsid %q is not this cluster's", req.GetFsid())
	}
	gid := req.GetGid()
	next := proto.CloneOf(m.cur)
	switch {
	case gid != 0 && gid == m.cur.GetActiveGid():
		next.Available = req.GetAvailable()
		next.ActiveAddrs = slices.Clone(req.GetServerAddrs())
		next.Services = req.GetServices()
		next.AvailableModules = req.GetAvailableModules()
		if !req.GetAvailable() {
			next.ActiveAddrs, next.Services = nil, nil
		}
	case standbyIndex(m.cur, gid) >= 0:
		s := next.Standbys[standbyIndex(next, gid)]
		s.Priority, s.Zone = req.GetPriority(), req.GetZone()
	case m.pending[gid] != "":
		delete(m.pending, gid)
		next.Standbys = append(next.Standbys, &mgrv1.StandbyInfo{Gid: gid, Name: req.GetName(), Priority: req.GetPriority(), Zone: req.GetZone()})
		slices.SortFunc(next.Standbys, func(a, b *mgrv1.StandbyInfo) int { return int(a.GetGid()) - int(b.GetGid()) })
	case gid < m.nextGID:
		return nil, status.Errorf(codes.FailedPrecondition, "gid %d is no longer in the map; authenticate again", gid)
	default:
		return nil, status.Errorf(codes.NotFound, "gid %d was never issued", gid)
	}
	if next.GetActiveGid() == 0 && !next.GetDown() && len(next.GetStandbys()) > 0 {
		promote(next, next.GetStandbys()[0].GetGid(), m.cur.GetEpoch()+1)
	}
	if !proto.Equal(next, m.cur) {
		m.commit(next)
	}
	resp := &mgrv1.BeaconResponse{Epoch: m.cur.GetEpoch(), ActiveEpoch: m.cur.GetActiveEpoch()}
	switch {
	case m.cur.GetActiveGid() == gid && m.cur.GetActiveFailing():
		resp.Standing = mgrv1.Standing_STANDING_STALE
	case m.cur.GetActiveGid() == gid:
		resp.Standing = mgrv1.Standing_STANDING_ACTIVE
		resp.Lease = durationpb.New(m.lease)
	case req.GetAvailable():
		resp.Standing = mgrv1.Standing_STANDING_STALE
	default:
		resp.Standing = mgrv1.Standing_STANDING_STANDBY
	}
	return resp, nil
}

func standbyIndex(mm *mgrv1.MgrMap, gid uint64) int {
	return slices.IndexFunc(mm.GetStandbys(), func(s *mgrv1.StandbyInfo) bool { return s.GetGid() == gid })
}

// promote makes standby gid the active of next, at epoch.
func promote(next *mgrv1.MgrMap, gid, epoch uint64) {
	i := standbyIndex(next, gid)
	s := next.Standbys[i]
	next.Standbys = slices.Delete(next.Standbys, i, i+1)
	next.ActiveGid, next.ActiveName, next.ActiveEpoch = gid, s.GetName(), epoch
	next.ActivePriority, next.ActiveZone, next.ActiveFailing = s.GetPriority(), s.GetZone(), false
	next.Available, next.ActiveAddrs, next.Services = false, nil, nil
	next.ActiveChange = timestamppb.Now()
	next.Cause = mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED
}

// commit makes next the current map at the next epoch and wakes the streams.
// A cause copied from the current map, rather than set for this change, is
// cleared (a promotion is one only at a new active epoch).
func (m *Monitor) commit(next *mgrv1.MgrMap) {
	if next.GetCause() == m.cur.GetCause() &&
		(next.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED || next.GetActiveEpoch() == m.cur.GetActiveEpoch()) {
		next.Cause = mgrv1.ChangeCause_CHANGE_CAUSE_UNSPECIFIED
	}
	next.Epoch = m.cur.GetEpoch() + 1
	next.Modified = timestamppb.Now()
	m.cur = next
	m.history = append(m.history, next)
	close(m.changed)
	m.changed = make(chan struct{})
}

// Leave drops the gid at once.
func (m *Monitor) Leave(_ context.Context, req *mgrv1.LeaveRequest) (*mgrv1.LeaveResponse, error) {
	m.mu.Lock()
	hook := m.onLeave
	m.mu.Unlock()
	if hook != nil {
		hook(proto.CloneOf(req))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leaves = append(m.leaves, proto.CloneOf(req))
	if req.GetFsid() != FSID {
		return nil, status.Errorf(codes.FailedPrecondition, "fsid %q is not this cluster's", req.GetFsid())
	}
	delete(m.pending, req.GetGid())
	m.drop(req.GetGid())
	return &mgrv1.LeaveResponse{Epoch: m.cur.GetEpoch()}, nil
}

func (m *Monitor) drop(gid uint64) {
	next := proto.CloneOf(m.cur)
	if next.GetActiveGid() == gid {
		next.ActiveGid, next.ActiveName, next.ActiveEpoch = 0, "", 0
		next.ActivePriority, next.ActiveZone, next.ActiveFailing = 0, "", false
		next.Available, next.ActiveAddrs, next.Services = false, nil, nil
	}
	if i := standbyIndex(next, gid); i >= 0 {
		next.Standbys = slices.Delete(next.Standbys, i, i+1)
	}
	if !proto.Equal(next, m.cur) {
		m.commit(next)
	}
}

// WatchMap streams the maps after since_epoch (or the current one and the
// following ones for 0).
func (m *Monitor) WatchMap(req *mgrv1.WatchMapRequest, stream grpc.ServerStreamingServer[mgrv1.WatchMapResponse]) error {
	m.mu.Lock()
	m.watches = append(m.watches, proto.CloneOf(req))
	m.open++
	defer func() {
		m.mu.Lock()
		m.open--
		m.mu.Unlock()
	}()
	if len(m.failNext) > 0 {
		c := m.failNext[0]
		m.failNext = m.failNext[1:]
		m.mu.Unlock()
		return status.Errorf(c, "failed by the test (since %d)", req.GetSinceEpoch())
	}
	sent := req.GetSinceEpoch()
	if sent == 0 {
		sent = m.cur.GetEpoch() - 1
	}
	m.mu.Unlock()
	for {
		m.mu.Lock()
		var out []*mgrv1.MgrMap
		if !m.paused {
			for _, h := range m.history {
				if h.GetEpoch() > sent {
					out = append(out, h)
				}
			}
		}
		changed, closing := m.changed, m.closing
		m.mu.Unlock()
		for _, h := range out {
			if err := stream.Send(&mgrv1.WatchMapResponse{Map: h}); err != nil {
				return err
			}
			sent = h.GetEpoch()
		}
		select {
		case <-changed:
		case <-closing:
			return status.Error(codes.Unavailable, "stream closed by the test")
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// AddStandby issues a gid to name and puts it in the map as a standby, as if
// a manager had authenticated and beaconed; it returns the gid.
func (m *Monitor) AddStandby(name string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	gid := m.nextGID
	m.nextGID++
	next := proto.CloneOf(m.cur)
	next.Standbys = append(next.Standbys, &mgrv1.StandbyInfo{Gid: gid, Name: name})
	m.commit(next)
	return gid
}

// MakeActive makes standby gid the active; the old active becomes a standby
// (a real monitor would drop it). It returns the new epoch.
func (m *Monitor) MakeActive(gid uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if standbyIndex(m.cur, gid) < 0 {
		return 0, fmt.Errorf("gid %d is not a standby", gid)
	}
	next := proto.CloneOf(m.cur)
	if old := next.GetActiveGid(); old != 0 {
		next.Standbys = append(next.Standbys, &mgrv1.StandbyInfo{Gid: old, Name: next.GetActiveName()})
		slices.SortFunc(next.Standbys, func(a, b *mgrv1.StandbyInfo) int { return int(a.GetGid()) - int(b.GetGid()) })
	}
	promote(next, gid, m.cur.GetEpoch()+1)
	m.commit(next)
	return m.cur.GetEpoch(), nil
}

// Fail tells the active gid to stop, as `mgrctl fail` does: the map flags it
// active_failing, its beacons are answered STALE without a lease, and no
// other manager is promoted until it leaves (or the test drops it). It
// returns the new epoch.
func (m *Monitor) Fail(gid uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gid == 0 || m.cur.GetActiveGid() != gid {
		return 0, fmt.Errorf("gid %d is not the active", gid)
	}
	next := proto.CloneOf(m.cur)
	next.ActiveFailing = true
	next.Cause = mgrv1.ChangeCause_CHANGE_CAUSE_ADMIN_FAIL
	next.Reason = fmt.Sprintf("failed %s by the test", next.GetActiveName())
	m.commit(next)
	return m.cur.GetEpoch(), nil
}

// Drop removes gid from the map, as a monitor does with a silent or failed
// manager; its next beacon is refused with FailedPrecondition.
func (m *Monitor) Drop(gid uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.drop(gid)
}

// SetModules sets the enabled modules.
func (m *Monitor) SetModules(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := proto.CloneOf(m.cur)
	next.Modules = slices.Sorted(slices.Values(names))
	next.Cause = mgrv1.ChangeCause_CHANGE_CAUSE_MODULES
	m.commit(next)
}

// SetModuleOption sets (or, with remove, removes) one module option in the
// map, unchecked.
func (m *Monitor) SetModuleOption(module, option, value string, remove bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := proto.CloneOf(m.cur)
	if next.ModuleConfig == nil {
		next.ModuleConfig = map[string]*mgrv1.ModuleConfig{}
	}
	mc := next.ModuleConfig[module]
	if mc == nil {
		mc = &mgrv1.ModuleConfig{Values: map[string]string{}}
		next.ModuleConfig[module] = mc
	}
	if remove {
		delete(mc.Values, option)
	} else {
		mc.Values[option] = value
	}
	next.Cause = mgrv1.ChangeCause_CHANGE_CAUSE_CONFIG
	m.commit(next)
}

// SetDown sets the down flag (no promotion while set).
func (m *Monitor) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := proto.CloneOf(m.cur)
	next.Down = down
	m.commit(next)
}

// CloseStreams ends every open map stream with Unavailable.
func (m *Monitor) CloseStreams() {
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.closing)
	m.closing = make(chan struct{})
}

// PauseWatch holds new maps back from the streams while paused.
func (m *Monitor) PauseWatch(paused bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused = paused
	close(m.changed)
	m.changed = make(chan struct{})
}

// FailNextWatch makes the next WatchMap call fail with code.
func (m *Monitor) FailNextWatch(code codes.Code) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failNext = append(m.failNext, code)
}

// Map returns the current map.
func (m *Monitor) Map() *mgrv1.MgrMap {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// Auths returns the Authenticate requests received.
func (m *Monitor) Auths() []*mgrv1.AuthenticateRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.auths)
}

// Beacons returns the beacons received from gid (every beacon for gid 0).
func (m *Monitor) Beacons(gid uint64) []Beacon {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Beacon
	for _, b := range m.beacons {
		if gid == 0 || b.Req.GetGid() == gid {
			out = append(out, b)
		}
	}
	return out
}

// Watches returns the since_epoch of every WatchMap call, in order.
func (m *Monitor) Watches() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, len(m.watches))
	for i, w := range m.watches {
		out[i] = w.GetSinceEpoch()
	}
	return out
}

// WatchRequests returns every WatchMap request, in order.
func (m *Monitor) WatchRequests() []*mgrv1.WatchMapRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.watches)
}

// OpenStreams is the number of map streams being served.
func (m *Monitor) OpenStreams() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.open
}

// Leaves returns the Leave requests received.
func (m *Monitor) Leaves() []*mgrv1.LeaveRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.leaves)
}

// admin serves the two AdminService reads modules use: ListHistory (every
// map the fake made) and ListBeacons (when each answered beacon arrived).
// The other methods answer Unimplemented.
type admin struct {
	mgrv1.UnimplementedAdminServiceServer
	m *Monitor
}

func (a admin) ListHistory(_ context.Context, req *mgrv1.ListHistoryRequest) (*mgrv1.ListHistoryResponse, error) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	resp := &mgrv1.ListHistoryResponse{OldestEpoch: a.m.history[0].GetEpoch(), NewestEpoch: a.m.cur.GetEpoch()}
	for _, mm := range a.m.history {
		if mm.GetEpoch() > req.GetSinceEpoch() {
			resp.Entries = append(resp.Entries, &mgrv1.HistoryEntry{
				Epoch: mm.GetEpoch(), Time: mm.GetModified(), Cause: mm.GetCause(), Reason: mm.GetReason(),
				ActiveGid: mm.GetActiveGid(), ActiveName: mm.GetActiveName(), NumStandbys: uint32(len(mm.GetStandbys())),
			})
		}
	}
	if l := int(req.GetLimit()); l > 0 && len(resp.Entries) > l {
		resp.Entries = resp.Entries[len(resp.Entries)-l:]
	}
	return resp, nil
}

func (a admin) ListBeacons(context.Context, *mgrv1.ListBeaconsRequest) (*mgrv1.ListBeaconsResponse, error) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	now := time.Now()
	resp := &mgrv1.ListBeaconsResponse{Epoch: a.m.cur.GetEpoch()}
	add := func(gid uint64, name string, active bool) {
		last := a.m.seen[gid]
		resp.Managers = append(resp.Managers, &mgrv1.ManagerBeacon{Gid: gid, Name: name, Active: active,
			LastBeacon: timestamppb.New(last), Age: durationpb.New(now.Sub(last))})
	}
	if a.m.cur.GetActiveGid() != 0 {
		add(a.m.cur.GetActiveGid(), a.m.cur.GetActiveName(), true)
	}
	for _, s := range a.m.cur.GetStandbys() {
		add(s.GetGid(), s.GetName(), false)
	}
	return resp, nil
}
