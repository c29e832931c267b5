package main

import (
	"context"
	"fmt"
	"io"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// runServices is `mgrctl services`.
func runServices(ctx context.Context, e *env, c *cmdline) error {
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.ListServicesResponse, error) {
		return a.ListServices(ctx, &mgrv1.ListServicesRequest{})
	})
	if err != nil {
		return err
	}
	return e.emit(resp, func(w io.Writer) { writeServices(w, resp.GetServices()) })
}

// runBeacons is `mgrctl beacons`: per manager the leader's last beacon and
// its age, the active first (the liveness the monitor judges by; Ceph shows
// it nowhere).
func runBeacons(ctx context.Context, e *env, c *cmdline) error {
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.ListBeaconsResponse, error) {
		return a.ListBeacons(ctx, &mgrv1.ListBeaconsRequest{})
	})
	if err != nil {
		return err
	}
	return e.emit(resp, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tGID\tROLE\tLAST BEACON\tAGE")
		for _, m := range resp.GetManagers() {
			role := "standby"
			if m.GetActive() {
				role = "active"
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", dash(m.GetName()), m.GetGid(), role,
				formatTime(m.GetLastBeacon()), m.GetAge().AsDuration().Round(time.Millisecond))
		}
	})
}

// runMetadata is `mgrctl metadata [NAME]`: per manager a heading line, then
// its metadata as indented key/value lines.
func runMetadata(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse(nil, []string{"NAME"})
	if err != nil {
		return err
	}
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.GetMetadataResponse, error) {
		return a.GetMetadata(ctx, &mgrv1.GetMetadataRequest{Name: name})
	})
	if err != nil {
		return err
	}
	return e.emit(resp, func(w io.Writer) {
		for i, m := range resp.GetManagers() {
			if i > 0 {
				fmt.Fprintln(w)
			}
			role := "standby"
			if m.GetActive() {
				role = "active"
			}
			// A line without a tab ends a tabwriter block: each manager's
			// keys are aligned on their own.
			fmt.Fprintf(w, "%s (gid %d, %s)\n", dash(m.GetName()), m.GetGid(), role)
			for _, k := range sortedKeys(m.GetMetadata()) {
				fmt.Fprintf(w, "  %s\t%s\n", k, dash(m.GetMetadata()[k]))
			}
		}
	})
}

// runCountMetadata is `mgrctl count-metadata PROPERTY`.
func runCountMetadata(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"PROPERTY"}, nil)
	if err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.CountMetadataResponse, error) {
		return a.CountMetadata(ctx, &mgrv1.CountMetadataRequest{Property: pos[0]})
	})
	if err != nil {
		return err
	}
	return e.emit(resp, func(w io.Writer) { writeCounts(w, "VALUE", resp.GetCounts()) })
}

// runVersions is `mgrctl versions`.
func runVersions(ctx context.Context, e *env, c *cmdline) error {
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.GetVersionsResponse, error) {
		return a.GetVersions(ctx, &mgrv1.GetVersionsRequest{})
	})
	if err != nil {
		return err
	}
	return e.emit(resp, func(w io.Writer) { writeCounts(w, "VERSION", resp.GetVersions()) })
}
