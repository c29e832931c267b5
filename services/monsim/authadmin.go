package monsim

import (
	"context"
	"fmt"
	"slices"
	"strings"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
)

// The auth RPCs are `ceph auth ...`. Changes go through raft like every
// other; reads come from the applied state. Keys are made here, by the
// monitor that proposes, and only GetAuth, AddAuth and RotateAuth return
// them (to an admin, over TLS).

func (h *adminHandler) authEntity(name string) (*mgrv1.AuthEntity, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	if err := creds.ValidateEntityName(name); err != nil {
		return nil, toStatus(h.s.logger, fmt.Errorf("%w: %v", mgrmap.ErrInvalid, err))
	}
	e, ok := st.GetAuth()[name]
	if !ok {
		return nil, toStatus(h.s.logger, fmt.Errorf("%w: entity %s", mgrmap.ErrNotFound, name))
	}
	return e, nil
}

func authInfo(e *mgrv1.AuthEntity) *mgrv1.AuthInfo {
	return &mgrv1.AuthInfo{Name: e.GetName(), Caps: e.GetCaps(), Rotating: e.GetPendingKey() != ""}
}

// authChange proposes an auth op through the leader's log.
func (h *adminHandler) authChange(ctx context.Context, op *mgrv1.AuthOp) error {
	op.Actor = actorOf(ctx)
	if _, err := h.s.propose(ctx, &mgrv1.Command{Op: &mgrv1.Command_Auth{Auth: op}}, true); err != nil {
		return toStatus(h.s.logger, err)
	}
	h.s.logger.Info("keyring changed", "action", op.GetAction().String(), "entity", op.GetEntity().GetName(), "by", op.GetActor())
	return nil
}

// ListAuth implements mgrv1.AdminServiceServer.
func (h *adminHandler) ListAuth(context.Context, *mgrv1.ListAuthRequest) (*mgrv1.ListAuthResponse, error) {
	st, err := h.current()
	if err != nil {
		return nil, err
	}
	resp := &mgrv1.ListAuthResponse{}
	for _, e := range st.GetAuth() {
		resp.Entities = append(resp.Entities, authInfo(e))
	}
	slices.SortFunc(resp.Entities, func(a, b *mgrv1.AuthInfo) int { return strings.Compare(a.GetName(), b.GetName()) })
	return resp, nil
}

// GetAuth implements mgrv1.AdminServiceServer.
func (h *adminHandler) GetAuth(_ context.Context, req *mgrv1.GetAuthRequest) (*mgrv1.GetAuthResponse, error) {
	e, err := h.authEntity(req.GetName())
	if err != nil {
		return nil, err
	}
	return &mgrv1.GetAuthResponse{Entity: e}, nil
}

// AddAuth implements mgrv1.AdminServiceServer.
func (h *adminHandler) AddAuth(ctx context.Context, req *mgrv1.AddAuthRequest) (*mgrv1.AddAuthResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).AddAuth(forwardCtx(ctx), req)
	}
	e := &mgrv1.AuthEntity{Name: req.GetName(), Key: creds.NewKey(), Caps: req.GetCaps()}
	if err := h.authChange(ctx, &mgrv1.AuthOp{Action: mgrv1.AuthAction_AUTH_ACTION_ADD, Entity: e}); err != nil {
		return nil, err
	}
	got, err := h.authEntity(req.GetName())
	if err != nil {
		return nil, err
	}
	return &mgrv1.AddAuthResponse{Entity: got}, nil
}

// RemoveAuth implements mgrv1.AdminServiceServer.
func (h *adminHandler) RemoveAuth(ctx context.Context, req *mgrv1.RemoveAuthRequest) (*mgrv1.RemoveAuthResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).RemoveAuth(forwardCtx(ctx), req)
	}
	op := &mgrv1.AuthOp{Action: mgrv1.AuthAction_AUTH_ACTION_REMOVE, Entity: &mgrv1.AuthEntity{Name: req.GetName()}}
	if err := h.authChange(ctx, op); err != nil {
		return nil, err
	}
	return &mgrv1.RemoveAuthResponse{}, nil
}

// SetAuthCaps implements mgrv1.AdminServiceServer.
func (h *adminHandler) SetAuthCaps(ctx context.Context, req *mgrv1.SetAuthCapsRequest) (*mgrv1.SetAuthCapsResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).SetAuthCaps(forwardCtx(ctx), req)
	}
	op := &mgrv1.AuthOp{Action: mgrv1.AuthAction_AUTH_ACTION_SET_CAPS, Entity: &mgrv1.AuthEntity{Name: req.GetName(), Caps: req.GetCaps()}}
	if err := h.authChange(ctx, op); err != nil {
		return nil, err
	}
	e, err := h.authEntity(req.GetName())
	if err != nil {
		return nil, err
	}
	return &mgrv1.SetAuthCapsResponse{Entity: authInfo(e)}, nil
}

// RotateAuth implements mgrv1.AdminServiceServer.
func (h *adminHandler) RotateAuth(ctx context.Context, req *mgrv1.RotateAuthRequest) (*mgrv1.RotateAuthResponse, error) {
	if c, err := h.s.leaderConn(); c != nil || err != nil {
		if err != nil {
			return nil, toStatus(h.s.logger, err)
		}
		return mgrv1.NewAdminServiceClient(c).RotateAuth(forwardCtx(ctx), req)
	}
	op := &mgrv1.AuthOp{Action: mgrv1.AuthAction_AUTH_ACTION_ROTATE, Entity: &mgrv1.AuthEntity{Name: req.GetName(), PendingKey: creds.NewKey()}}
	if req.GetFinish() {
		op = &mgrv1.AuthOp{Action: mgrv1.AuthAction_AUTH_ACTION_FINISH_ROTATION, Entity: &mgrv1.AuthEntity{Name: req.GetName()}}
	}
	if err := h.authChange(ctx, op); err != nil {
		return nil, err
	}
	e, err := h.authEntity(req.GetName())
	if err != nil {
		return nil, err
	}
	return &mgrv1.RotateAuthResponse{Entity: e}, nil
}
