package monsim

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
)

// adminHandler serves operators (mgrctl).
type adminHandler struct {
	mgrv1.UnimplementedAdminServiceServer
	s *Server
}

var _ mgrv1.AdminServiceServer = (*adminHandler)(nil)

func (h *adminHandler) current() (*mgrv1.State, error) {
	if !h.s.ready.Load() {
		return nil, toStatus(h.s.logger, errNotReady)
	}
	st := h.s.node.State()
	if st.GetMap().GetEpoch() == 0 {
		return nil, toStatus(h.s.logger, mgrmap.ErrNotBootstrapped)
	}
	return st, nil
}

// GetStat implements mgrv1.AdminServiceServer.
func (h *adminHandler) GetStat(context.Context, *mgrv1.GetStatRequest) (*mgrv1.GetStatResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	m := st.GetMap()
	return &mgrv1.GetStatResponse{
		Epoch: m.GetEpoch(), Available: m.GetAvailable(), ActiveName: m.GetActiveName(),
		ActiveGid: m.GetActiveGid(), NumStandbys: uint32(len(m.GetStandbys())), Fsid: m.GetFsid(), Down: m.GetDown(),
	}, nil
}

// GetMap implements mgrv1.AdminServiceServer.
func (h *adminHandler) GetMap(_ context.Context, req *mgrv1.GetMapRequest) (*mgrv1.GetMapResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	m, err := mgrmap.At(st, req.GetEpoch())
	if err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	return &mgrv1.GetMapResponse{Map: m}, nil
}

// ListHistory implements mgrv1.AdminServiceServer.
func (h *adminHandler) ListHistory(_ context.Context, req *mgrv1.ListHistoryRequest) (*mgrv1.ListHistoryResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	hist := st.GetHistory()
	resp := &mgrv1.ListHistoryResponse{OldestEpoch: hist[0].GetEpoch(), NewestEpoch: st.GetMap().GetEpoch()}
	for _, m := range hist {
		if m.GetEpoch() > req.GetSinceEpoch() {
			resp.Entries = append(resp.Entries, mgrmap.Entry(m))
		}
	}
	if l := int(req.GetLimit()); l > 0 && len(resp.Entries) > l {
		resp.Entries = resp.Entries[len(resp.Entries)-l:]
	}
	return resp, nil
}

// FailManager implements mgrv1.AdminServiceServer.
func (h *adminHandler) FailManager(ctx context.Context, req *mgrv1.FailManagerRequest) (*mgrv1.FailManagerResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).FailManager(forwardCtx(ctx), req)
	}
	r, err := h.s.propose(ctx, &mgrv1.Command{Op: &mgrv1.Command_Fail{Fail: &mgrv1.FailOp{Who: req.GetWho(), Actor: actorOf(ctx)}}}, false)
	if err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	h.s.logger.Info("manager failed by operator", "gid", r.FailedGID, "name", r.FailedName, "epoch", r.Epoch)
	return &mgrv1.FailManagerResponse{Epoch: r.Epoch, FailedGid: r.FailedGID, FailedName: r.FailedName}, nil
}

func (h *adminHandler) module(ctx context.Context, name string, enable, force bool) (uint64, error) {
	r, err := h.s.propose(ctx, &mgrv1.Command{Op: &mgrv1.Command_Module{Module: &mgrv1.ModuleOp{
		Name: name, Enable: enable, Force: force, Actor: actorOf(ctx),
	}}}, false)
	if err != nil {
		return 0, toStatus(h.s.logger, err)
	}
	return r.Epoch, nil
}

// EnableModule implements mgrv1.AdminServiceServer.
func (h *adminHandler) EnableModule(ctx context.Context, req *mgrv1.EnableModuleRequest) (*mgrv1.EnableModuleResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).EnableModule(forwardCtx(ctx), req)
	}
	e, err := h.module(ctx, req.GetName(), true, req.GetForce())
	if err != nil {
		return nil, err
	}
	return &mgrv1.EnableModuleResponse{Epoch: e}, nil
}

// DisableModule implements mgrv1.AdminServiceServer.
func (h *adminHandler) DisableModule(ctx context.Context, req *mgrv1.DisableModuleRequest) (*mgrv1.DisableModuleResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).DisableModule(forwardCtx(ctx), req)
	}
	e, err := h.module(ctx, req.GetName(), false, false)
	if err != nil {
		return nil, err
	}
	return &mgrv1.DisableModuleResponse{Epoch: e}, nil
}

// ListModules implements mgrv1.AdminServiceServer.
func (h *adminHandler) ListModules(context.Context, *mgrv1.ListModulesRequest) (*mgrv1.ListModulesResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	m := st.GetMap()
	// Every module any manager reports; the active's report wins.
	byName := map[string]*mgrv1.ModuleInfo{}
	for _, s := range m.GetStandbys() {
		for _, mi := range s.GetAvailableModules() {
			byName[mi.GetName()] = mi
		}
	}
	for _, mi := range m.GetAvailableModules() {
		byName[mi.GetName()] = mi
	}
	var avail []*mgrv1.ModuleInfo
	for _, mi := range byName {
		avail = append(avail, mi)
	}
	slices.SortFunc(avail, func(a, b *mgrv1.ModuleInfo) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return &mgrv1.ListModulesResponse{
		AlwaysOnModules: m.GetAlwaysOnModules(), EnabledModules: m.GetModules(), AvailableModules: avail, Epoch: m.GetEpoch(),
	}, nil
}

// SetFlags implements mgrv1.AdminServiceServer.
func (h *adminHandler) SetFlags(ctx context.Context, req *mgrv1.SetFlagsRequest) (*mgrv1.SetFlagsResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).SetFlags(forwardCtx(ctx), req)
	}
	r, err := h.s.propose(ctx, &mgrv1.Command{Op: &mgrv1.Command_SetFlags{SetFlags: &mgrv1.SetFlagsOp{Down: req.GetDown(), Actor: actorOf(ctx)}}}, false)
	if err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	return &mgrv1.SetFlagsResponse{Epoch: r.Epoch}, nil
}

// ListServices implements mgrv1.AdminServiceServer.
func (h *adminHandler) ListServices(context.Context, *mgrv1.ListServicesRequest) (*mgrv1.ListServicesResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	return &mgrv1.ListServicesResponse{Services: st.GetMap().GetServices(), Epoch: st.GetMap().GetEpoch()}, nil
}

// managers lists every manager in the map with its metadata, active first.
func managers(st *mgrv1.State) []*mgrv1.ManagerMetadata {
	m := st.GetMap()
	var out []*mgrv1.ManagerMetadata
	if m.GetActiveGid() != 0 {
		out = append(out, &mgrv1.ManagerMetadata{Name: m.GetActiveName(), Gid: m.GetActiveGid(), Active: true,
			Metadata: st.GetMetadata()[m.GetActiveGid()].GetValues()})
	}
	for _, s := range m.GetStandbys() {
		out = append(out, &mgrv1.ManagerMetadata{Name: s.GetName(), Gid: s.GetGid(), Metadata: st.GetMetadata()[s.GetGid()].GetValues()})
	}
	return out
}

// GetMetadata implements mgrv1.AdminServiceServer.
func (h *adminHandler) GetMetadata(_ context.Context, req *mgrv1.GetMetadataRequest) (*mgrv1.GetMetadataResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	all := managers(st)
	if req.GetName() == "" {
		return &mgrv1.GetMetadataResponse{Managers: all}, nil
	}
	if err := mgrmap.ValidateName("name", req.GetName()); err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	for _, mm := range all {
		if mm.GetName() == req.GetName() {
			return &mgrv1.GetMetadataResponse{Managers: []*mgrv1.ManagerMetadata{mm}}, nil
		}
	}
	return nil, toStatus(h.s.logger, fmt.Errorf("%w: no manager %q in the map (epoch %d)", mgrmap.ErrNotFound, req.GetName(), st.GetMap().GetEpoch()))
}

func countBy(st *mgrv1.State, key string) map[string]uint32 {
	counts := map[string]uint32{}
	for _, mm := range managers(st) {
		v, ok := mm.GetMetadata()[key]
		if !ok {
			v = "unknown"
		}
		counts[v]++
	}
	return counts
}

// CountMetadata implements mgrv1.AdminServiceServer.
func (h *adminHandler) CountMetadata(_ context.Context, req *mgrv1.CountMetadataRequest) (*mgrv1.CountMetadataResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	p := req.GetProperty()
	if p == "" || len(p) > mgrmap.MaxMetadataKeyLen {
		return nil, toStatus(h.s.logger, fmt.Errorf("%w: property: must be a metadata key of 1 to %d bytes", mgrmap.ErrInvalid, mgrmap.MaxMetadataKeyLen))
	}
	return &mgrv1.CountMetadataResponse{Counts: countBy(st, p)}, nil
}

// GetVersions implements mgrv1.AdminServiceServer.
func (h *adminHandler) GetVersions(context.Context, *mgrv1.GetVersionsRequest) (*mgrv1.GetVersionsResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	return &mgrv1.GetVersionsResponse{Versions: countBy(st, "mgrplane_version")}, nil
}

// GetQuorumStatus implements mgrv1.AdminServiceServer.
func (h *adminHandler) GetQuorumStatus(context.Context, *mgrv1.GetQuorumStatusRequest) (*mgrv1.GetQuorumStatusResponse, error) {
	members, err := h.s.node.Members()
	if err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	term, commit, applied := h.s.node.Stats()
	leaderID, _ := h.s.node.Leader()
	resp := &mgrv1.GetQuorumStatusResponse{
		LeaderId: leaderID, Term: term, CommitIndex: commit, AppliedIndex: applied,
		AnsweredBy: h.s.node.ID(), Epoch: h.s.node.State().GetMap().GetEpoch(),
	}
	for _, m := range members {
		resp.Members = append(resp.Members, &mgrv1.QuorumMember{Id: m.ID, Address: m.Addr, Voter: m.Voter, Leader: m.Leader})
	}
	return resp, nil
}

// AddMonitor implements mgrv1.AdminServiceServer.
func (h *adminHandler) AddMonitor(ctx context.Context, req *mgrv1.AddMonitorRequest) (*mgrv1.AddMonitorResponse, error) {
	if err := mgrmap.ValidateName("id", req.GetId()); err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	if _, _, err := net.SplitHostPort(req.GetAddress()); err != nil || len(req.GetAddress()) > mgrmap.MaxAddrLen {
		return nil, toStatus(h.s.logger, fmt.Errorf("%w: address %q: must be host:port of at most %d bytes", mgrmap.ErrInvalid, req.GetAddress(), mgrmap.MaxAddrLen))
	}
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).AddMonitor(forwardCtx(ctx), req)
	}
	if members, err := h.s.node.Members(); err == nil && len(members) >= MaxPeers {
		return nil, toStatus(h.s.logger, fmt.Errorf("%w: the quorum has %d monitors, at most %d", mgrmap.ErrInvalid, len(members), MaxPeers))
	}
	if err := h.s.node.AddVoter(req.GetId(), req.GetAddress()); err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	h.s.logger.Info("monitor added to the quorum", "id", req.GetId(), "addr", req.GetAddress())
	return &mgrv1.AddMonitorResponse{}, nil
}

// RemoveMonitor implements mgrv1.AdminServiceServer.
func (h *adminHandler) RemoveMonitor(ctx context.Context, req *mgrv1.RemoveMonitorRequest) (*mgrv1.RemoveMonitorResponse, error) {
	if err := mgrmap.ValidateName("id", req.GetId()); err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).RemoveMonitor(forwardCtx(ctx), req)
	}
	members, err := h.s.node.Members()
	if err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	found := false
	for _, m := range members {
		found = found || m.ID == req.GetId()
	}
	if !found {
		return nil, toStatus(h.s.logger, fmt.Errorf("%w: no monitor %q in the quorum", mgrmap.ErrNotFound, req.GetId()))
	}
	if len(members) == 1 {
		return nil, toStatus(h.s.logger, fmt.Errorf("%w: %q is the last monitor; a quorum cannot be emptied", errPrecondition, req.GetId()))
	}
	if err := h.s.node.RemoveServer(req.GetId()); err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	h.s.logger.Info("monitor removed from the quorum", "id", req.GetId())
	return &mgrv1.RemoveMonitorResponse{}, nil
}

// ListBeacons implements mgrv1.AdminServiceServer. Beacon times live in the
// leader's memory, so a follower forwards the call.
func (h *adminHandler) ListBeacons(ctx context.Context, req *mgrv1.ListBeaconsRequest) (*mgrv1.ListBeaconsResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).ListBeacons(forwardCtx(ctx), req)
	}
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	resp := &mgrv1.ListBeaconsResponse{Epoch: st.GetMap().GetEpoch()}
	for _, mm := range managers(st) {
		last := h.s.live.LastSeen(mm.GetGid())
		resp.Managers = append(resp.Managers, &mgrv1.ManagerBeacon{
			Gid: mm.GetGid(), Name: mm.GetName(), Active: mm.GetActive(),
			LastBeacon: timestamppb.New(last), Age: durationpb.New(max(now.Sub(last), 0)),
		})
	}
	return resp, nil
}

// config proposes one ConfigOp.
func (h *adminHandler) config(ctx context.Context, op *mgrv1.ConfigOp) (uint64, error) {
	op.Actor = actorOf(ctx)
	r, err := h.s.propose(ctx, &mgrv1.Command{Op: &mgrv1.Command_Config{Config: op}}, false)
	if err != nil {
		return 0, toStatus(h.s.logger, err)
	}
	return r.Epoch, nil
}

// SetModuleOption implements mgrv1.AdminServiceServer.
func (h *adminHandler) SetModuleOption(ctx context.Context, req *mgrv1.SetModuleOptionRequest) (*mgrv1.SetModuleOptionResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).SetModuleOption(forwardCtx(ctx), req)
	}
	e, err := h.config(ctx, &mgrv1.ConfigOp{Module: req.GetModule(), Option: req.GetOption(), Value: req.GetValue()})
	if err != nil {
		return nil, err
	}
	// The map at the answer's epoch (or a newer one) holds the value as
	// stored.
	st := h.s.node.State()
	v := st.GetMap().GetModuleConfig()[req.GetModule()].GetValues()[req.GetOption()]
	return &mgrv1.SetModuleOptionResponse{Epoch: e, Value: v}, nil
}

// RemoveModuleOption implements mgrv1.AdminServiceServer.
func (h *adminHandler) RemoveModuleOption(ctx context.Context, req *mgrv1.RemoveModuleOptionRequest) (*mgrv1.RemoveModuleOptionResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).RemoveModuleOption(forwardCtx(ctx), req)
	}
	e, err := h.config(ctx, &mgrv1.ConfigOp{Module: req.GetModule(), Option: req.GetOption(), Remove: true})
	if err != nil {
		return nil, err
	}
	return &mgrv1.RemoveModuleOptionResponse{Epoch: e}, nil
}

// GetModuleOption implements mgrv1.AdminServiceServer.
func (h *adminHandler) GetModuleOption(_ context.Context, req *mgrv1.GetModuleOptionRequest) (*mgrv1.GetModuleOptionResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	m := st.GetMap()
	if err := mgrmap.ValidateModuleName("module", req.GetModule()); err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	for _, ov := range mgrmap.OptionValues(m, req.GetModule()) {
		if ov.GetOption().GetName() == req.GetOption() {
			return &mgrv1.GetModuleOptionResponse{Option: ov, Epoch: m.GetEpoch()}, nil
		}
	}
	_, err = mgrmap.LookupOption(m, req.GetModule(), req.GetOption())
	return nil, toStatus(h.s.logger, err)
}

// ListModuleOptions implements mgrv1.AdminServiceServer.
func (h *adminHandler) ListModuleOptions(_ context.Context, req *mgrv1.ListModuleOptionsRequest) (*mgrv1.ListModuleOptionsResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	m := st.GetMap()
	if mod := req.GetModule(); mod != "" {
		if err := mgrmap.ValidateModuleName("module", mod); err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		if _, known := mgrmap.DeclaredOptions(m, mod); !known && m.GetModuleConfig()[mod] == nil {
			return nil, toStatus(h.s.logger, fmt.Errorf("%w: module %s is not reported by any manager", mgrmap.ErrNotFound, mod))
		}
	}
	return &mgrv1.ListModuleOptionsResponse{Options: mgrmap.OptionValues(m, req.GetModule()), Epoch: m.GetEpoch()}, nil
}
