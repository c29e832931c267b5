package main

import (
	"context"
	"io"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// runFail is `mgrctl fail [NAME|GID]`; with no argument it fails the active.
func runFail(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse(nil, []string{"NAME|GID"})
	if err != nil {
		return err
	}
	who := ""
	if len(pos) == 1 {
		who = pos[0]
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.FailManagerResponse, error) {
		return a.FailManager(ctx, &mgrv1.FailManagerRequest{Who: who})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "failed %s (gid %d); epoch %d\n", dash(resp.GetFailedName()), resp.GetFailedGid(), resp.GetEpoch())
}

// runModuleLs is `mgrctl module ls`.
func runModuleLs(ctx context.Context, e *env, c *cmdline) error {
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.ListModulesResponse, error) {
		return a.ListModules(ctx, &mgrv1.ListModulesRequest{})
	})
	if err != nil {
		return err
	}
	rows := moduleRows(resp.GetAlwaysOnModules(), resp.GetEnabledModules(), resp.GetAvailableModules())
	return e.emit(resp, func(w io.Writer) { writeModules(w, rows) })
}

// runModuleEnable is `mgrctl module enable [--force] NAME`.
func runModuleEnable(ctx context.Context, e *env, c *cmdline) error {
	force := c.fs.Bool("force", false, "enable even if the active does not report the module or cannot run it")
	pos, err := c.parse([]string{"NAME"}, nil)
	if err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.EnableModuleResponse, error) {
		return a.EnableModule(ctx, &mgrv1.EnableModuleRequest{Name: pos[0], Force: *force})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "enabled module %s; epoch %d\n", pos[0], resp.GetEpoch())
}

// runModuleDisable is `mgrctl module disable NAME`.
func runModuleDisable(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"NAME"}, nil)
	if err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.DisableModuleResponse, error) {
		return a.DisableModule(ctx, &mgrv1.DisableModuleRequest{Name: pos[0]})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "disabled module %s; epoch %d\n", pos[0], resp.GetEpoch())
}

// runSetDown is `mgrctl set down`.
func runSetDown(ctx context.Context, e *env, c *cmdline) error { return setDown(ctx, e, c, true) }

// runUnsetDown is `mgrctl unset down`.
func runUnsetDown(ctx context.Context, e *env, c *cmdline) error { return setDown(ctx, e, c, false) }

func setDown(ctx context.Context, e *env, c *cmdline, down bool) error {
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.SetFlagsResponse, error) {
		return a.SetFlags(ctx, &mgrv1.SetFlagsRequest{Down: down})
	})
	if err != nil {
		return err
	}
	verb := "unset"
	if down {
		verb = "set"
	}
	return e.say(resp, "%s down; epoch %d\n", verb, resp.GetEpoch())
}
