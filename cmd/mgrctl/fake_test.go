package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mgrplane/mgrplane/internal/creds"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/modopt"
)

// errHang makes a fake method wait until its caller gives up.
var errHang = errors.New("hang")

// watchStep scripts one WatchMap call of the fake: send maps, then end the
// stream with err.
type watchStep struct {
	send int
	err  error
}

// fake is an in-memory monitor: AdminService answers computed from a canned
// map history and metadata, WatchMap streams from that history. It records
// every call.
type fake struct {
	log hclog.Logger

	mu sync.Mutex
	// maps are the kept maps, oldest first; the last one is current.
	maps []*mgrv1.MgrMap
	// metadata is each manager's metadata, by name.
	metadata map[string]map[string]string
	// errs makes a method (by name) answer with an error; errHang makes it
	// wait for the caller's deadline.
	errs map[string]error
	// calls records "Method arg" for every call, in order.
	calls []string
	// watchSince records since_epoch of every WatchMap call.
	watchSince []uint64
	// watchSteps scripts the WatchMap calls in order; calls past the script
	// send every map after since_epoch and then wait for the caller to leave.
	watchSteps []watchStep
	// quorum is the raft view GetQuorumStatus answers (members in raft's
	// order, not sorted); AddMonitor and RemoveMonitor change its members.
	quorum *mgrv1.GetQuorumStatusResponse
}

// baseTime is when the canned cluster was made.
func baseTime() time.Time { return time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC) }

// newFake makes a fake holding the canned cluster: epochs 1 to 4, active
// x(3), standbys y(4) and z(5).
func newFake(t *testing.T) *fake {
	return &fake{
		log:      newTestLogger(t).Named("fake"),
		maps:     cannedMaps(),
		metadata: cannedMetadata(),
		errs:     map[string]error{},
		quorum:   cannedQuorum(),
	}
}

// cannedQuorum is three monitors, b leading, answered by c; raft lists them
// in the order they joined, not by id.
func cannedQuorum() *mgrv1.GetQuorumStatusResponse {
	return &mgrv1.GetQuorumStatusResponse{
		Members: []*mgrv1.QuorumMember{
			{Id: "mon-c", Address: "10.0.0.13:6789", Voter: true},
			{Id: "mon-a", Address: "10.0.0.11:6789", Voter: true},
			{Id: "mon-b", Address: "10.0.0.12:6789", Voter: true, Leader: true},
		},
		LeaderId: "mon-b", Term: 7, CommitIndex: 120, AppliedIndex: 118, AnsweredBy: "mon-c", Epoch: 4,
	}
}

func cannedMaps() []*mgrv1.MgrMap {
	mods := []*mgrv1.ModuleInfo{
		{Name: "balancer", CanRun: true},
		{Name: "dashboard", CanRun: true, Options: []*mgrv1.ModuleOption{{Name: "port", Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "8443", Min: "1", Max: "65535", Description: "listen port"}}},
		{Name: "prometheus", CanRun: true},
		{Name: "rook", CanRun: false, ErrorString: "no orchestrator"},
	}
	m1 := &mgrv1.MgrMap{
		Epoch: 1, Fsid: "c0ffee00-fsid", AlwaysOnModules: []string{"balancer"},
		Cause: mgrv1.ChangeCause_CHANGE_CAUSE_BOOTSTRAP, Reason: "cluster created",
		Modified: timestamppb.New(baseTime().Add(time.Second)),
	}
	m2 := nextMap(m1, mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED, "promoted x: no active")
	m2.ActiveGid, m2.ActiveName, m2.ActiveEpoch = 3, "x", 2
	m2.ActiveChange = timestamppb.New(baseTime().Add(2 * time.Second))
	m3 := nextMap(m2, mgrv1.ChangeCause_CHANGE_CAUSE_STANDBY_ADDED, "standby y joined")
	m3.Standbys = []*mgrv1.StandbyInfo{{Gid: 4, Name: "y", AvailableModules: mods[:2], MetadataDigest: "d4"}}
	m4 := nextMap(m3, mgrv1.ChangeCause_CHANGE_CAUSE_ACTIVE_UPDATED, "x is available")
	m4.Available = true
	m4.ActiveAddrs = []string{"10.0.0.1:6800"}
	m4.Modules = []string{"dashboard", "prometheus"}
	m4.AvailableModules = mods
	m4.Services = map[string]string{"dashboard": "https://10.0.0.1:8443/", "prometheus": "http://10.0.0.1:9283/"}
	m4.Standbys = append(m4.Standbys, &mgrv1.StandbyInfo{Gid: 5, Name: "z"})
	m4.ActiveMetadataDigest = "d3"
	m4.ModuleConfig = map[string]*mgrv1.ModuleConfig{"dashboard": {Values: map[string]string{"ssl": "false", "port": "8080"}}}
	return []*mgrv1.MgrMap{m1, m2, m3, m4}
}

// nextMap is a copy of prev one epoch on, made one second later.
func nextMap(prev *mgrv1.MgrMap, cause mgrv1.ChangeCause, reason string) *mgrv1.MgrMap {
	m := proto.Clone(prev).(*mgrv1.MgrMap)
	m.Epoch++
	m.Modified = timestamppb.New(baseTime().Add(time.Duration(m.Epoch) * time.Second))
	m.Cause, m.Reason = cause, reason
	return m
}

func cannedMetadata() map[string]map[string]string {
	return map[string]map[string]string{
		"x": {"arch": "amd64", "hostname": "host-a", "os": "linux", "mgrplane_version": "0.1.0"},
		"y": {"arch": "arm64", "hostname": "host-b", "os": "linux", "mgrplane_version": "0.1.0"},
		"z": {"hostname": "host-c", "os": "linux", "mgrplane_version": "0.2.0"},
	}
}

// addMaps appends n maps to the history (standby_updated, one per epoch).
func (f *fake) addMaps(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		last := f.maps[len(f.maps)-1]
		f.maps = append(f.maps, nextMap(last, mgrv1.ChangeCause_CHANGE_CAUSE_STANDBY_UPDATED, fmt.Sprintf("epoch %d", last.Epoch+1)))
	}
}

// begin records a call and returns the current map and the error to answer with.
func (f *fake) begin(ctx context.Context, method, arg string) (*mgrv1.MgrMap, error) {
	f.log.Debug("call", "method", method, "arg", arg)
	f.mu.Lock()
	f.calls = append(f.calls, method+" "+arg)
	err := f.errs[method]
	cur := f.maps[len(f.maps)-1]
	f.mu.Unlock()
	if errors.Is(err, errHang) {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return cur, err
}

// callLog returns the calls recorded so far.
func (f *fake) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// sinces returns since_epoch of every WatchMap call so far.
func (f *fake) sinces() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.watchSince)
}

// managers lists the active then the standbys of m.
func managers(m *mgrv1.MgrMap) []*mgrv1.ManagerMetadata {
	var out []*mgrv1.ManagerMetadata
	if m.GetActiveGid() != 0 {
		out = append(out, &mgrv1.ManagerMetadata{Name: m.GetActiveName(), Gid: m.GetActiveGid(), Active: true})
	}
	for _, s := range m.GetStandbys() {
		out = append(out, &mgrv1.ManagerMetadata{Name: s.GetName(), Gid: s.GetGid()})
	}
	return out
}

// fakeAdmin serves AdminService from a fake.
type fakeAdmin struct {
	mgrv1.UnimplementedAdminServiceServer
	f *fake
}

var _ mgrv1.AdminServiceServer = (*fakeAdmin)(nil)

func (a *fakeAdmin) GetStat(ctx context.Context, _ *mgrv1.GetStatRequest) (*mgrv1.GetStatResponse, error) {
	m, err := a.f.begin(ctx, "GetStat", "")
	if err != nil {
		return nil, err
	}
	return &mgrv1.GetStatResponse{
		Epoch: m.GetEpoch(), Available: m.GetAvailable(), ActiveName: m.GetActiveName(), ActiveGid: m.GetActiveGid(),
		NumStandbys: uint32(len(m.GetStandbys())), Fsid: m.GetFsid(), Down: m.GetDown(),
	}, nil
}

func (a *fakeAdmin) GetMap(ctx context.Context, req *mgrv1.GetMapRequest) (*mgrv1.GetMapResponse, error) {
	m, err := a.f.begin(ctx, "GetMap", strconv.FormatUint(req.GetEpoch(), 10))
	if err != nil {
		return nil, err
	}
	if req.GetEpoch() == 0 {
		return &mgrv1.GetMapResponse{Map: m}, nil
	}
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	for _, k := range a.f.maps {
		if k.GetEpoch() == req.GetEpoch() {
			return &mgrv1.GetMapResponse{Map: k}, nil
		}
	}
	return nil, status.Errorf(codes.OutOfRange, "epoch %d is not kept: kept epochs are %d to %d",
		req.GetEpoch(), a.f.maps[0].GetEpoch(), m.GetEpoch())
}

func (a *fakeAdmin) ListHistory(ctx context.Context, req *mgrv1.ListHistoryRequest) (*mgrv1.ListHistoryResponse, error) {
	if _, err := a.f.begin(ctx, "ListHistory", fmt.Sprintf("since=%d limit=%d", req.GetSinceEpoch(), req.GetLimit())); err != nil {
		return nil, err
	}
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	resp := &mgrv1.ListHistoryResponse{OldestEpoch: a.f.maps[0].GetEpoch(), NewestEpoch: a.f.maps[len(a.f.maps)-1].GetEpoch()}
	for _, m := range a.f.maps {
		if m.GetEpoch() > req.GetSinceEpoch() {
			resp.Entries = append(resp.Entries, &mgrv1.HistoryEntry{
				Epoch: m.GetEpoch(), Time: m.GetModified(), Cause: m.GetCause(), Reason: m.GetReason(),
				ActiveGid: m.GetActiveGid(), ActiveName: m.GetActiveName(), NumStandbys: uint32(len(m.GetStandbys())),
			})
		}
	}
	if l := int(req.GetLimit()); l > 0 && len(resp.Entries) > l {
		resp.Entries = resp.Entries[len(resp.Entries)-l:]
	}
	return resp, nil
}

// ListBeacons answers with a fixed last-beacon time and each manager's gid
// in seconds as its age, so tables can be checked exactly.
func (a *fakeAdmin) ListBeacons(ctx context.Context, _ *mgrv1.ListBeaconsRequest) (*mgrv1.ListBeaconsResponse, error) {
	m, err := a.f.begin(ctx, "ListBeacons", "")
	if err != nil {
		return nil, err
	}
	resp := &mgrv1.ListBeaconsResponse{Epoch: m.GetEpoch()}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, mm := range managers(m) {
		resp.Managers = append(resp.Managers, &mgrv1.ManagerBeacon{
			Gid: mm.GetGid(), Name: mm.GetName(), Active: mm.GetActive(),
			LastBeacon: timestamppb.New(at), Age: durationpb.New(time.Duration(mm.GetGid()) * 250 * time.Millisecond),
		})
	}
	return resp, nil
}

func (a *fakeAdmin) FailManager(ctx context.Context, req *mgrv1.FailManagerRequest) (*mgrv1.FailManagerResponse, error) {
	m, err := a.f.begin(ctx, "FailManager", req.GetWho())
	if err != nil {
		return nil, err
	}
	for _, mm := range managers(m) {
		if (req.GetWho() == "" && mm.GetActive()) || req.GetWho() == mm.GetName() || req.GetWho() == strconv.FormatUint(mm.GetGid(), 10) {
			return &mgrv1.FailManagerResponse{Epoch: m.GetEpoch() + 1, FailedGid: mm.GetGid(), FailedName: mm.GetName()}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no manager named or numbered %q", req.GetWho())
}

func (a *fakeAdmin) EnableModule(ctx context.Context, req *mgrv1.EnableModuleRequest) (*mgrv1.EnableModuleResponse, error) {
	m, err := a.f.begin(ctx, "EnableModule", fmt.Sprintf("%s force=%t", req.GetName(), req.GetForce()))
	if err != nil {
		return nil, err
	}
	for _, mi := range m.GetAvailableModules() {
		if mi.GetName() == req.GetName() && (mi.GetCanRun() || req.GetForce()) {
			return &mgrv1.EnableModuleResponse{Epoch: m.GetEpoch() + 1}, nil
		}
	}
	if req.GetForce() {
		return &mgrv1.EnableModuleResponse{Epoch: m.GetEpoch() + 1}, nil
	}
	return nil, status.Errorf(codes.NotFound, "module %q is not reported runnable by the active (use --force)", req.GetName())
}

func (a *fakeAdmin) DisableModule(ctx context.Context, req *mgrv1.DisableModuleRequest) (*mgrv1.DisableModuleResponse, error) {
	m, err := a.f.begin(ctx, "DisableModule", req.GetName())
	if err != nil {
		return nil, err
	}
	if slices.Contains(m.GetAlwaysOnModules(), req.GetName()) {
		return nil, status.Errorf(codes.FailedPrecondition, "module %q is always on", req.GetName())
	}
	if !slices.Contains(m.GetModules(), req.GetName()) {
		return nil, status.Errorf(codes.NotFound, "module %q is not enabled", req.GetName())
	}
	return &mgrv1.DisableModuleResponse{Epoch: m.GetEpoch() + 1}, nil
}

// option finds a declared option in the fake's current map.
func (a *fakeAdmin) option(m *mgrv1.MgrMap, module, option string) (*mgrv1.ModuleOption, error) {
	for _, mi := range m.GetAvailableModules() {
		if mi.GetName() != module {
			continue
		}
		for _, o := range mi.GetOptions() {
			if o.GetName() == option {
				return o, nil
			}
		}
		return nil, status.Errorf(codes.NotFound, "module %s has no option %s", module, option)
	}
	return nil, status.Errorf(codes.NotFound, "module %s is not reported by any manager", module)
}

func (a *fakeAdmin) SetModuleOption(ctx context.Context, req *mgrv1.SetModuleOptionRequest) (*mgrv1.SetModuleOptionResponse, error) {
	m, err := a.f.begin(ctx, "SetModuleOption", req.GetModule()+"/"+req.GetOption()+"="+req.GetValue())
	if err != nil {
		return nil, err
	}
	o, err := a.option(m, req.GetModule(), req.GetOption())
	if err != nil {
		return nil, err
	}
	v, err := modopt.Check(o, req.GetValue())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "mgr/%s/%s: %v", req.GetModule(), req.GetOption(), err)
	}
	return &mgrv1.SetModuleOptionResponse{Epoch: m.GetEpoch() + 1, Value: v}, nil
}

func (a *fakeAdmin) GetModuleOption(ctx context.Context, req *mgrv1.GetModuleOptionRequest) (*mgrv1.GetModuleOptionResponse, error) {
	m, err := a.f.begin(ctx, "GetModuleOption", req.GetModule()+"/"+req.GetOption())
	if err != nil {
		return nil, err
	}
	o, err := a.option(m, req.GetModule(), req.GetOption())
	if err != nil {
		return nil, err
	}
	return &mgrv1.GetModuleOptionResponse{Epoch: m.GetEpoch(), Option: &mgrv1.ModuleOptionValue{
		Module: req.GetModule(), Option: o, Value: o.GetDefaultValue(),
	}}, nil
}

func (a *fakeAdmin) RemoveModuleOption(ctx context.Context, req *mgrv1.RemoveModuleOptionRequest) (*mgrv1.RemoveModuleOptionResponse, error) {
	m, err := a.f.begin(ctx, "RemoveModuleOption", req.GetModule()+"/"+req.GetOption())
	if err != nil {
		return nil, err
	}
	if _, err := a.option(m, req.GetModule(), req.GetOption()); err != nil {
		return nil, err
	}
	return &mgrv1.RemoveModuleOptionResponse{Epoch: m.GetEpoch()}, nil
}

func (a *fakeAdmin) ListModuleOptions(ctx context.Context, req *mgrv1.ListModuleOptionsRequest) (*mgrv1.ListModuleOptionsResponse, error) {
	m, err := a.f.begin(ctx, "ListModuleOptions", req.GetModule())
	if err != nil {
		return nil, err
	}
	resp := &mgrv1.ListModuleOptionsResponse{Epoch: m.GetEpoch()}
	for _, mi := range m.GetAvailableModules() {
		if req.GetModule() != "" && mi.GetName() != req.GetModule() {
			continue
		}
		for _, o := range mi.GetOptions() {
			resp.Options = append(resp.Options, &mgrv1.ModuleOptionValue{Module: mi.GetName(), Option: o, Value: o.GetDefaultValue()})
		}
	}
	return resp, nil
}

func (a *fakeAdmin) ListModules(ctx context.Context, _ *mgrv1.ListModulesRequest) (*mgrv1.ListModulesResponse, error) {
	m, err := a.f.begin(ctx, "ListModules", "")
	if err != nil {
		return nil, err
	}
	return &mgrv1.ListModulesResponse{
		AlwaysOnModules: m.GetAlwaysOnModules(), EnabledModules: m.GetModules(),
		AvailableModules: m.GetAvailableModules(), Epoch: m.GetEpoch(),
	}, nil
}

func (a *fakeAdmin) SetFlags(ctx context.Context, req *mgrv1.SetFlagsRequest) (*mgrv1.SetFlagsResponse, error) {
	m, err := a.f.begin(ctx, "SetFlags", fmt.Sprintf("down=%t", req.GetDown()))
	if err != nil {
		return nil, err
	}
	return &mgrv1.SetFlagsResponse{Epoch: m.GetEpoch() + 1}, nil
}

func (a *fakeAdmin) ListServices(ctx context.Context, _ *mgrv1.ListServicesRequest) (*mgrv1.ListServicesResponse, error) {
	m, err := a.f.begin(ctx, "ListServices", "")
	if err != nil {
		return nil, err
	}
	return &mgrv1.ListServicesResponse{Services: m.GetServices(), Epoch: m.GetEpoch()}, nil
}

func (a *fakeAdmin) GetMetadata(ctx context.Context, req *mgrv1.GetMetadataRequest) (*mgrv1.GetMetadataResponse, error) {
	m, err := a.f.begin(ctx, "GetMetadata", req.GetName())
	if err != nil {
		return nil, err
	}
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	resp := &mgrv1.GetMetadataResponse{}
	for _, mm := range managers(m) {
		if req.GetName() == "" || req.GetName() == mm.GetName() {
			mm.Metadata = a.f.metadata[mm.GetName()]
			resp.Managers = append(resp.Managers, mm)
		}
	}
	if len(resp.Managers) == 0 && req.GetName() != "" {
		return nil, status.Errorf(codes.NotFound, "no manager named %q", req.GetName())
	}
	return resp, nil
}

// count counts the managers of m by the value of a metadata key.
func (a *fakeAdmin) count(m *mgrv1.MgrMap, key string) map[string]uint32 {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	counts := map[string]uint32{}
	for _, mm := range managers(m) {
		v, ok := a.f.metadata[mm.GetName()][key]
		if !ok {
			v = "unknown"
		}
		counts[v]++
	}
	return counts
}

func (a *fakeAdmin) CountMetadata(ctx context.Context, req *mgrv1.CountMetadataRequest) (*mgrv1.CountMetadataResponse, error) {
	m, err := a.f.begin(ctx, "CountMetadata", req.GetProperty())
	if err != nil {
		return nil, err
	}
	return &mgrv1.CountMetadataResponse{Counts: a.count(m, req.GetProperty())}, nil
}

func (a *fakeAdmin) GetVersions(ctx context.Context, _ *mgrv1.GetVersionsRequest) (*mgrv1.GetVersionsResponse, error) {
	m, err := a.f.begin(ctx, "GetVersions", "")
	if err != nil {
		return nil, err
	}
	return &mgrv1.GetVersionsResponse{Versions: a.count(m, "mgrplane_version")}, nil
}

func (a *fakeAdmin) GetQuorumStatus(ctx context.Context, _ *mgrv1.GetQuorumStatusRequest) (*mgrv1.GetQuorumStatusResponse, error) {
	if _, err := a.f.begin(ctx, "GetQuorumStatus", ""); err != nil {
		return nil, err
	}
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	return proto.CloneOf(a.f.quorum), nil
}

func (a *fakeAdmin) AddMonitor(ctx context.Context, req *mgrv1.AddMonitorRequest) (*mgrv1.AddMonitorResponse, error) {
	if _, err := a.f.begin(ctx, "AddMonitor", req.GetId()+" "+req.GetAddress()); err != nil {
		return nil, err
	}
	if req.GetId() == "" || strings.ContainsAny(req.GetId(), " /:") {
		return nil, status.Errorf(codes.InvalidArgument, "id %q: must be 1 to 64 of [A-Za-z0-9_.-]", req.GetId())
	}
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	for _, m := range a.f.quorum.GetMembers() {
		if m.GetId() == req.GetId() {
			return &mgrv1.AddMonitorResponse{}, nil // raft: adding a member again changes nothing
		}
	}
	if len(a.f.quorum.GetMembers()) >= 5 {
		return nil, status.Errorf(codes.InvalidArgument, "the quorum has %d monitors, at most 5", len(a.f.quorum.GetMembers()))
	}
	a.f.quorum.Members = append(a.f.quorum.Members, &mgrv1.QuorumMember{Id: req.GetId(), Address: req.GetAddress(), Voter: true})
	return &mgrv1.AddMonitorResponse{}, nil
}

func (a *fakeAdmin) RemoveMonitor(ctx context.Context, req *mgrv1.RemoveMonitorRequest) (*mgrv1.RemoveMonitorResponse, error) {
	if _, err := a.f.begin(ctx, "RemoveMonitor", req.GetId()); err != nil {
		return nil, err
	}
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	members := a.f.quorum.GetMembers()
	i := slices.IndexFunc(members, func(m *mgrv1.QuorumMember) bool { return m.GetId() == req.GetId() })
	switch {
	case i < 0:
		return nil, status.Errorf(codes.NotFound, "no monitor %q in the quorum", req.GetId())
	case len(members) == 1:
		return nil, status.Errorf(codes.FailedPrecondition, "%q is the last monitor; a quorum cannot be emptied", req.GetId())
	}
	a.f.quorum.Members = slices.Delete(slices.Clone(members), i, i+1)
	return &mgrv1.RemoveMonitorResponse{}, nil
}

// memberIDs lists the ids of the fake's quorum, in raft's order.
func (f *fake) memberIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, m := range f.quorum.GetMembers() {
		ids = append(ids, m.GetId()+"="+m.GetAddress())
	}
	return ids
}

// fakeMonitor serves MonitorService.WatchMap from a fake.
type fakeMonitor struct {
	mgrv1.UnimplementedMonitorServiceServer
	f *fake
}

var _ mgrv1.MonitorServiceServer = (*fakeMonitor)(nil)

func (w *fakeMonitor) WatchMap(req *mgrv1.WatchMapRequest, stream grpc.ServerStreamingServer[mgrv1.WatchMapResponse]) error {
	f := w.f
	f.log.Debug("call", "method", "WatchMap", "since_epoch", req.GetSinceEpoch())
	f.mu.Lock()
	call := len(f.watchSince)
	f.watchSince = append(f.watchSince, req.GetSinceEpoch())
	var step *watchStep
	if call < len(f.watchSteps) {
		step = &f.watchSteps[call]
	}
	var send []*mgrv1.MgrMap
	switch oldest := f.maps[0].GetEpoch(); {
	case req.GetSinceEpoch() == 0:
		send = f.maps[len(f.maps)-1:]
	case req.GetSinceEpoch()+1 < oldest:
		f.mu.Unlock()
		return status.Errorf(codes.OutOfRange, "since_epoch %d is trimmed: the oldest kept epoch is %d", req.GetSinceEpoch(), oldest)
	default:
		for _, m := range f.maps {
			if m.GetEpoch() > req.GetSinceEpoch() {
				send = append(send, m)
			}
		}
	}
	f.mu.Unlock()

	for i, m := range send {
		if step != nil && i == step.send {
			return step.err
		}
		if err := stream.Send(&mgrv1.WatchMapResponse{Map: m}); err != nil {
			return err
		}
	}
	if step != nil {
		return step.err
	}
	<-stream.Context().Done()
	return nil
}

// startFake serves f on 127.0.0.1:0 (or on addr, to restart a monitor) and
// returns the address and the server; the server is stopped at cleanup.
func startFake(t *testing.T, f *fake, addr string) (string, *grpc.Server) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	mon, err := creds.LoadMonitor(testCreds)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(mon.TLS)))
	mgrv1.RegisterAdminServiceServer(srv, &fakeAdmin{f: f})
	mgrv1.RegisterMonitorServiceServer(srv, &fakeMonitor{f: f})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), srv
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	return deadAddrTB(t)
}

func deadAddrTB(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}
