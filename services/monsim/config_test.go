package monsim

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// The module option RPCs: set, get, list and remove through the raft log,
// each refusal a clear status that changes nothing.
func TestModuleOptions(t *testing.T) {
	tm := startMonitor(t, testConfig(t))
	ctx := context.Background()
	x := tm.join(t, "x")
	fsid := tm.current(t).GetFsid()
	if _, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: x, Name: "x", AvailableModules: []*mgrv1.ModuleInfo{
		{Name: "counter", CanRun: true, Options: []*mgrv1.ModuleOption{
			{Name: "step", Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "1", Min: "1", Max: "1000", Description: "how far"},
		}},
	}}); err != nil {
		t.Fatal(err)
	}
	e0 := tm.current(t).GetEpoch()
	set, err := tm.admin.SetModuleOption(ctx, &mgrv1.SetModuleOptionRequest{Module: "counter", Option: "step", Value: "007"})
	if err != nil || set.GetValue() != "7" || set.GetEpoch() != e0+1 {
		t.Fatalf("SetModuleOption = %v, %v", set, err)
	}
	m := tm.current(t)
	if m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_CONFIG || m.GetModuleConfig()["counter"].GetValues()["step"] != "7" ||
		!strings.Contains(m.GetReason(), "mgr/counter/step set to 7 by client.admin") {
		t.Fatalf("map after set: cause %v reason %q config %v", m.GetCause(), m.GetReason(), m.GetModuleConfig())
	}
	get, err := tm.admin.GetModuleOption(ctx, &mgrv1.GetModuleOptionRequest{Module: "counter", Option: "step"})
	if err != nil || get.GetOption().GetValue() != "7" || !get.GetOption().GetSet() || get.GetOption().GetOption().GetMax() != "1000" {
		t.Fatalf("GetModuleOption = %v, %v", get, err)
	}
	ls, err := tm.admin.ListModuleOptions(ctx, &mgrv1.ListModuleOptionsRequest{})
	if err != nil || len(ls.GetOptions()) != 1 || ls.GetOptions()[0].GetModule() != "counter" {
		t.Fatalf("ListModuleOptions = %v, %v", ls, err)
	}

	bad := map[string]struct {
		call    func() error
		code    codes.Code
		mention string
	}{
		"unknown module": {func() error {
			_, err := tm.admin.SetModuleOption(ctx, &mgrv1.SetModuleOptionRequest{Module: "nosuch", Option: "step", Value: "1"})
			return err
		}, codes.NotFound, "module nosuch is not reported by any manager"},
		"unknown option": {func() error {
			_, err := tm.admin.SetModuleOption(ctx, &mgrv1.SetModuleOptionRequest{Module: "counter", Option: "speed", Value: "1"})
			return err
		}, codes.NotFound, "module counter has no option speed (its options: step)"},
		"wrong type": {func() error {
			_, err := tm.admin.SetModuleOption(ctx, &mgrv1.SetModuleOptionRequest{Module: "counter", Option: "step", Value: "x"})
			return err
		}, codes.InvalidArgument, `value "x" is not an int`},
		"out of range": {func() error {
			_, err := tm.admin.SetModuleOption(ctx, &mgrv1.SetModuleOptionRequest{Module: "counter", Option: "step", Value: "1001"})
			return err
		}, codes.InvalidArgument, "above the maximum 1000"},
		"get unknown": {func() error {
			_, err := tm.admin.GetModuleOption(ctx, &mgrv1.GetModuleOptionRequest{Module: "counter", Option: "speed"})
			return err
		}, codes.NotFound, "no option speed"},
		"list unknown module": {func() error {
			_, err := tm.admin.ListModuleOptions(ctx, &mgrv1.ListModuleOptionsRequest{Module: "nosuch"})
			return err
		}, codes.NotFound, "module nosuch"},
		"list bad module": {func() error {
			_, err := tm.admin.ListModuleOptions(ctx, &mgrv1.ListModuleOptionsRequest{Module: "No"})
			return err
		}, codes.InvalidArgument, "1 to 32 characters"},
		"remove unknown": {func() error {
			_, err := tm.admin.RemoveModuleOption(ctx, &mgrv1.RemoveModuleOptionRequest{Module: "counter", Option: "speed"})
			return err
		}, codes.NotFound, "no option speed"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			before := tm.current(t)
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.mention) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.code, tc.mention)
			}
			after := tm.current(t)
			if after.GetEpoch() != before.GetEpoch() || after.GetModuleConfig()["counter"].GetValues()["step"] != "7" {
				t.Fatalf("a refusal changed the map: epoch %d -> %d, config %v", before.GetEpoch(), after.GetEpoch(), after.GetModuleConfig())
			}
		})
	}

	rm, err := tm.admin.RemoveModuleOption(ctx, &mgrv1.RemoveModuleOptionRequest{Module: "counter", Option: "step"})
	if err != nil {
		t.Fatal(err)
	}
	get, err = tm.admin.GetModuleOption(ctx, &mgrv1.GetModuleOptionRequest{Module: "counter", Option: "step"})
	if err != nil || get.GetOption().GetValue() != "1" || get.GetOption().GetSet() || get.GetEpoch() != rm.GetEpoch() {
		t.Fatalf("after remove: %v, %v", get, err)
	}
	// Removing again changes nothing.
	again, err := tm.admin.RemoveModuleOption(ctx, &mgrv1.RemoveModuleOptionRequest{Module: "counter", Option: "step"})
	if err != nil || again.GetEpoch() != rm.GetEpoch() {
		t.Fatalf("second remove = %v, %v; want no new epoch", again, err)
	}
}
