package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"google.golang.org/protobuf/proto"
)

// The auth commands are `ceph auth ...`. get, add and rotate print keyring
// sections (with keys) that a manager or operator saves as its keyring; ls
// never prints keys.

// authName checks an entity name argument.
func authName(c *cmdline, name string) error {
	if err := creds.ValidateEntityName(name); err != nil {
		return c.usageErr("NAME: %v", strings.TrimPrefix(err.Error(), creds.ErrInvalid.Error()+": "))
	}
	return nil
}

// keyringSection prints e in keyring format; while a rotation is in
// progress the new key is printed (it is the one to hand out).
func keyringSection(e *mgrv1.AuthEntity) string {
	key := e.GetKey()
	if pk := e.GetPendingKey(); pk != "" {
		key = pk
	}
	return creds.FormatEntity(creds.Entity{Name: e.GetName(), Key: key, Caps: e.GetCaps()})
}

// runAuthLs is `mgrctl auth ls`.
func runAuthLs(ctx context.Context, e *env, c *cmdline) error {
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.ListAuthResponse, error) {
		return a.ListAuth(ctx, &mgrv1.ListAuthRequest{})
	})
	if err != nil {
		return err
	}
	return e.emit(resp, func(w io.Writer) {
		fmt.Fprintln(w, "ENTITY\tCAPS\tROTATING")
		for _, en := range resp.GetEntities() {
			fmt.Fprintf(w, "%s\t%s\t%s\n", en.GetName(), strings.Join(en.GetCaps(), ","), yesNo(en.GetRotating()))
		}
	})
}

// runAuthGet is `mgrctl auth get NAME`: a keyring section.
func runAuthGet(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"NAME"}, nil)
	if err != nil {
		return err
	}
	if err := authName(c, pos[0]); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.GetAuthResponse, error) {
		return a.GetAuth(ctx, &mgrv1.GetAuthRequest{Name: pos[0]})
	})
	if err != nil {
		return err
	}
	return e.keyring(resp, resp.GetEntity())
}

// keyring prints a keyring section (table format) or the response (json).
func (e *env) keyring(resp proto.Message, en *mgrv1.AuthEntity) error {
	if e.format == formatJSON {
		return writeJSON(e.stdout, resp, true)
	}
	_, err := io.WriteString(e.stdout, keyringSection(en))
	return err
}

// runAuthAdd is `mgrctl auth add NAME [--caps CAPS]`.
func runAuthAdd(ctx context.Context, e *env, c *cmdline) error {
	capsFlag := c.fs.String("caps", "", "caps: mgr, read, admin, comma-separated (default mgr,read for mgr.*, read otherwise)")
	pos, err := c.parse([]string{"NAME"}, nil)
	if err != nil {
		return err
	}
	if err := authName(c, pos[0]); err != nil {
		return err
	}
	v := *capsFlag
	if v == "" {
		v = creds.CapRead
		if creds.ManagerName(pos[0]) != "" {
			v = creds.CapMgr + "," + creds.CapRead
		}
	}
	caps, err := creds.ParseCaps(v)
	if err != nil {
		return c.usageErr("--caps: %v", strings.TrimPrefix(err.Error(), creds.ErrInvalid.Error()+": "))
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.AddAuthResponse, error) {
		return a.AddAuth(ctx, &mgrv1.AddAuthRequest{Name: pos[0], Caps: caps})
	})
	if err != nil {
		return err
	}
	return e.keyring(resp, resp.GetEntity())
}

// runAuthRm is `mgrctl auth rm NAME`.
func runAuthRm(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"NAME"}, nil)
	if err != nil {
		return err
	}
	if err := authName(c, pos[0]); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.RemoveAuthResponse, error) {
		return a.RemoveAuth(ctx, &mgrv1.RemoveAuthRequest{Name: pos[0]})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "removed %s\n", pos[0])
}

// runAuthCaps is `mgrctl auth caps NAME CAPS`.
func runAuthCaps(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"NAME", "CAPS"}, nil)
	if err != nil {
		return err
	}
	if err := authName(c, pos[0]); err != nil {
		return err
	}
	caps, err := creds.ParseCaps(pos[1])
	if err != nil {
		return c.usageErr("CAPS: %v", strings.TrimPrefix(err.Error(), creds.ErrInvalid.Error()+": "))
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.SetAuthCapsResponse, error) {
		return a.SetAuthCaps(ctx, &mgrv1.SetAuthCapsRequest{Name: pos[0], Caps: caps})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "%s caps %s\n", pos[0], strings.Join(resp.GetEntity().GetCaps(), ","))
}

// runAuthRotate is `mgrctl auth rotate NAME [--finish]`: without --finish
// it prints the keyring section with the new key, which works at once
// beside the old one; --finish makes the new key the only one.
func runAuthRotate(ctx context.Context, e *env, c *cmdline) error {
	finish := c.fs.Bool("finish", false, "finish the rotation: only the new key works afterwards")
	pos, err := c.parse([]string{"NAME"}, nil)
	if err != nil {
		return err
	}
	if err := authName(c, pos[0]); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.RotateAuthResponse, error) {
		return a.RotateAuth(ctx, &mgrv1.RotateAuthRequest{Name: pos[0], Finish: *finish})
	})
	if err != nil {
		return err
	}
	return e.keyring(resp, resp.GetEntity())
}
