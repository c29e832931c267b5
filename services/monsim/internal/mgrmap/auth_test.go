package mgrmap

import (
	"errors"
	"testing"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

const (
	keyA = "AAAAAAAAAAAAAAAAAAAAAA=="
	keyB = "BBBBBBBBBBBBBBBBBBBBBB=="
)

func authOp(action mgrv1.AuthAction, name, key, pending string, caps ...string) *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_Auth{Auth: &mgrv1.AuthOp{Action: action,
		Entity: &mgrv1.AuthEntity{Name: name, Key: key, PendingKey: pending, Caps: caps}}}}
}

func seedCmd(es ...*mgrv1.AuthEntity) *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_Auth{Auth: &mgrv1.AuthOp{Action: mgrv1.AuthAction_AUTH_ACTION_SEED, Seed: es}}}
}

func TestKeyringOps(t *testing.T) {
	c := newCluster(t, 10)
	epoch := c.m().GetEpoch()
	c.must(seedCmd(&mgrv1.AuthEntity{Name: "client.admin", Key: keyA, Caps: []string{"admin"}}))
	c.must(authOp(mgrv1.AuthAction_AUTH_ACTION_ADD, "mgr.x", keyA, "", "read", "mgr"))
	if e := c.st.GetAuth()["mgr.x"]; e.GetKey() != keyA || len(e.GetCaps()) != 2 || e.GetCaps()[0] != "mgr" {
		t.Fatalf("added entity %v", e)
	}
	c.must(authOp(mgrv1.AuthAction_AUTH_ACTION_ROTATE, "mgr.x", "", keyB))
	if e := c.st.GetAuth()["mgr.x"]; e.GetKey() != keyA || e.GetPendingKey() != keyB {
		t.Fatalf("rotating entity %v", e)
	}
	c.must(authOp(mgrv1.AuthAction_AUTH_ACTION_FINISH_ROTATION, "mgr.x", "", ""))
	if e := c.st.GetAuth()["mgr.x"]; e.GetKey() != keyB || e.GetPendingKey() != "" {
		t.Fatalf("rotated entity %v", e)
	}
	c.must(authOp(mgrv1.AuthAction_AUTH_ACTION_SET_CAPS, "mgr.x", "", "", "mgr"))
	c.must(authOp(mgrv1.AuthAction_AUTH_ACTION_REMOVE, "mgr.x", "", ""))
	if _, ok := c.st.GetAuth()["mgr.x"]; ok {
		t.Fatal("removed entity still there")
	}
	if c.m().GetEpoch() != epoch {
		t.Fatalf("keyring changes moved the epoch from %d to %d", epoch, c.m().GetEpoch())
	}

	tests := map[string]struct {
		cmd  *mgrv1.Command
		want error
	}{
		"seed twice":          {seedCmd(&mgrv1.AuthEntity{Name: "client.b", Key: keyA, Caps: []string{"read"}}), ErrAuthState},
		"add existing":        {authOp(mgrv1.AuthAction_AUTH_ACTION_ADD, "client.admin", keyA, "", "admin"), ErrExists},
		"add bad name":        {authOp(mgrv1.AuthAction_AUTH_ACTION_ADD, "osd.1", keyA, "", "read"), ErrInvalid},
		"add bad key":         {authOp(mgrv1.AuthAction_AUTH_ACTION_ADD, "client.b", "short", "", "read"), ErrInvalid},
		"add no caps":         {authOp(mgrv1.AuthAction_AUTH_ACTION_ADD, "client.b", keyA, ""), ErrInvalid},
		"add unknown cap":     {authOp(mgrv1.AuthAction_AUTH_ACTION_ADD, "client.b", keyA, "", "root"), ErrInvalid},
		"remove unknown":      {authOp(mgrv1.AuthAction_AUTH_ACTION_REMOVE, "client.b", "", ""), ErrNotFound},
		"remove last admin":   {authOp(mgrv1.AuthAction_AUTH_ACTION_REMOVE, "client.admin", "", ""), ErrAuthState},
		"demote last admin":   {authOp(mgrv1.AuthAction_AUTH_ACTION_SET_CAPS, "client.admin", "", "", "read"), ErrAuthState},
		"rotate bad key":      {authOp(mgrv1.AuthAction_AUTH_ACTION_ROTATE, "client.admin", "", "nope"), ErrInvalid},
		"finish, no rotation": {authOp(mgrv1.AuthAction_AUTH_ACTION_FINISH_ROTATION, "client.admin", "", ""), ErrAuthState},
		"unspecified action":  {authOp(mgrv1.AuthAction_AUTH_ACTION_UNSPECIFIED, "client.admin", "", ""), ErrInvalid},
		"entity bad on gid":   {&mgrv1.Command{Op: &mgrv1.Command_Authenticate{Authenticate: &mgrv1.AuthenticateOp{Name: "x", Entity: "root"}}}, ErrInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := c.apply(tc.cmd); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestGidBoundToEntityUntilGone(t *testing.T) {
	c := newCluster(t, 10)
	gid := c.must(&mgrv1.Command{Op: &mgrv1.Command_Authenticate{Authenticate: &mgrv1.AuthenticateOp{Name: "x", Entity: "mgr.x"}}}).GID
	if c.st.GetGidEntities()[gid] != "mgr.x" {
		t.Fatalf("gid %d bound to %q", gid, c.st.GetGidEntities()[gid])
	}
	c.beacon(gid, "x")
	if c.st.GetGidEntities()[gid] != "mgr.x" {
		t.Fatal("the binding was lost when the gid joined the map")
	}
	c.must(leaveCmd(gid, "x"))
	if _, ok := c.st.GetGidEntities()[gid]; ok {
		t.Fatal("a gid that left is still bound")
	}
}
