package monsim

import (
	"context"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/monsim/internal/metrics"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"github.com/mgrplane/mgrplane/services/monsim/internal/quorum"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// monitorHandler serves the managers.
type monitorHandler struct {
	mgrv1.UnimplementedMonitorServiceServer
	s *Server
}

var _ mgrv1.MonitorServiceServer = (*monitorHandler)(nil)

// propose validates cmd against the applied state and commits it only when
// it would change something: a refused command never reaches the log, and a
// beacon that changes nothing costs no consensus round (rule 2).
func (s *Server) propose(ctx context.Context, cmd *mgrv1.Command, always bool) (mgrmap.Result, error) {
	if !s.leading.Load() {
		return mgrmap.Result{}, quorum.ErrNotLeader
	}
	cmd.Time = timestamppb.Now()
	_, r, err := mgrmap.Apply(s.node.State(), cmd)
	if err != nil || (!r.Changed && !always) {
		return r, err
	}
	r, err = s.node.Apply(ctx, cmd)
	if err == nil && r.Changed {
		s.commitNudge()
	}
	return r, err
}

// Authenticate implements mgrv1.MonitorServiceServer.
func (h *monitorHandler) Authenticate(ctx context.Context, req *mgrv1.AuthenticateRequest) (*mgrv1.AuthenticateResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewMonitorServiceClient(c).Authenticate(forwardCtx(ctx), req)
	}
	r, err := h.s.propose(ctx, &mgrv1.Command{Op: &mgrv1.Command_Authenticate{Authenticate: &mgrv1.AuthenticateOp{
		Fsid: req.GetFsid(), Name: req.GetName(), Entity: callerOf(ctx).entity,
	}}}, true)
	if err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	h.s.live.Seen(r.GID, time.Now())
	h.s.logger.Info("authenticated", "name", req.GetName(), "gid", r.GID, "entity", callerOf(ctx).entity)
	return &mgrv1.AuthenticateResponse{
		Gid:          r.GID,
		Fsid:         h.s.node.State().GetMap().GetFsid(),
		BeaconPeriod: durationpb.New(h.s.cfg.BeaconPeriod),
		Grace:        durationpb.New(h.s.cfg.Grace),
		FenceTimeout: durationpb.New(h.s.cfg.FenceTimeout),
	}, nil
}

// Beacon implements mgrv1.MonitorServiceServer.
func (h *monitorHandler) Beacon(ctx context.Context, req *mgrv1.BeaconRequest) (_ *mgrv1.BeaconResponse, err error) {
	result := metrics.BeaconAnswered
	defer func() {
		if err != nil {
			result = metrics.BeaconFailed
		}
		h.s.met.Beacon(result)
	}()
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		result = metrics.BeaconForwarded
		return mgrv1.NewMonitorServiceClient(c).Beacon(forwardCtx(ctx), req)
	}
	now := time.Now()
	r, err := h.s.propose(ctx, &mgrv1.Command{Op: &mgrv1.Command_Beacon{Beacon: req}}, false)
	if err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	h.s.live.Seen(req.GetGid(), now)
	resp := &mgrv1.BeaconResponse{Epoch: r.Epoch, Standing: r.Standing, ActiveEpoch: r.ActiveEpoch}
	// The lease runs from the beacon's send time on the manager's clock;
	// the monitor counts it from the receive time, which is later.
	if r.Standing == mgrv1.Standing_STANDING_ACTIVE {
		// Only a leader a majority still follows may grant: a deposed leader
		// that has not noticed yet (cut off, or stopped and resumed) must not
		// extend the active's term past what the new leader assumes.
		if err := h.s.node.VerifyLeader(); err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		if h.s.live.Grant(req.GetGid(), now) {
			resp.Lease = durationpb.New(h.s.cfg.FenceTimeout)
		}
	}
	return resp, nil
}

// Leave implements mgrv1.MonitorServiceServer.
func (h *monitorHandler) Leave(ctx context.Context, req *mgrv1.LeaveRequest) (*mgrv1.LeaveResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewMonitorServiceClient(c).Leave(forwardCtx(ctx), req)
	}
	r, err := h.s.propose(ctx, &mgrv1.Command{Op: &mgrv1.Command_Leave{Leave: &mgrv1.LeaveOp{
		Fsid: req.GetFsid(), Gid: req.GetGid(), Name: req.GetName(),
	}}}, false)
	if err != nil {
		return nil, toStatus(h.s.logger, err)
	}
	h.s.logger.Info("manager left", "name", req.GetName(), "gid", req.GetGid(), "epoch", r.Epoch)
	return &mgrv1.LeaveResponse{Epoch: r.Epoch}, nil
}

// ReportStreamClosed implements mgrv1.MonitorServiceServer: a follower
// reports that the active's last map stream on it closed without a leave.
// The leader probes the active (the crash fast path); on a follower the
// report goes on to the leader.
func (h *monitorHandler) ReportStreamClosed(ctx context.Context, req *mgrv1.ReportStreamClosedRequest) (*mgrv1.ReportStreamClosedResponse, error) {
	if req.GetGid() == 0 {
		return nil, status.Error(codes.InvalidArgument, "gid is required (the active's gid whose stream closed)")
	}
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewMonitorServiceClient(c).ReportStreamClosed(forwardCtx(ctx), req)
	}
	h.s.crash.suspectGID(req.GetGid())
	return &mgrv1.ReportStreamClosedResponse{}, nil
}

// WatchMap implements mgrv1.MonitorServiceServer.
func (h *monitorHandler) WatchMap(req *mgrv1.WatchMapRequest, stream mgrv1.MonitorService_WatchMapServer) error {
	if !h.s.ready.Load() {
		return toStatus(h.s.logger, errNotReady)
	}
	if req.GetName() != "" {
		if err := mgrmap.ValidateName("name", req.GetName()); err != nil {
			return toStatus(h.s.logger, err)
		}
	}
	sub, err := h.s.hub.Subscribe(req.GetSinceEpoch())
	if err != nil {
		return toStatus(h.s.logger, err)
	}
	defer sub.Close()
	ctx := stream.Context()
	if gid := req.GetGid(); gid != 0 {
		h.s.crash.opened(gid)
		defer func() { h.s.crash.closed(gid, !h.s.stopping.Load()) }()
	}
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return toStatus(h.s.logger, err)
		}
		e, err := h.s.enc.get(m)
		if err != nil {
			return toStatus(h.s.logger, err)
		}
		if err := stream.SendMsg(e); err != nil {
			return err
		}
	}
}
