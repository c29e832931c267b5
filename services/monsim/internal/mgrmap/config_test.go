package mgrmap

import (
	"errors"
	"strings"
	"testing"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

func configCmd(mod, opt, value string, remove bool) *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_Config{Config: &mgrv1.ConfigOp{
		Module: mod, Option: opt, Value: value, Remove: remove, Actor: "client.admin",
	}}}
}

// counterModule declares one option of each kind the tests need.
func counterModule() *mgrv1.ModuleInfo {
	return &mgrv1.ModuleInfo{Name: "counter", CanRun: true, Options: []*mgrv1.ModuleOption{
		{Name: "step", Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "1", Min: "1", Max: "100"},
		{Name: "greeting", Type: mgrv1.OptionType_OPTION_TYPE_STRING, DefaultValue: "hello", AllowedValues: []string{"hello", "hi"}},
		{Name: "period", Type: mgrv1.OptionType_OPTION_TYPE_DURATION, DefaultValue: "1s", Min: "10ms"},
		{Name: "loud", Type: mgrv1.OptionType_OPTION_TYPE_BOOL, DefaultValue: "false"},
	}}
}

func TestConfig(t *testing.T) {
	c := newCluster(t, 0)
	x := c.auth("x")
	c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", AvailableModules: []*mgrv1.ModuleInfo{
		{Name: "status", CanRun: true}, counterModule(),
	}}))
	tests := []struct {
		name        string
		cmd         *mgrv1.Command
		wantErr     error
		errContains string
		wantChanged bool
		wantValue   string // the stored value of the option after the command
	}{
		{name: "set int", cmd: configCmd("counter", "step", " 07", false), wantChanged: true, wantValue: "7"},
		{name: "set same", cmd: configCmd("counter", "step", "7", false), wantValue: "7"},
		{name: "set duration", cmd: configCmd("counter", "period", "1500ms", false), wantChanged: true},
		{name: "set bool", cmd: configCmd("counter", "loud", "TRUE", false), wantChanged: true},
		{name: "set allowed", cmd: configCmd("counter", "greeting", "hi", false), wantChanged: true},
		{name: "unknown module", cmd: configCmd("nosuch", "step", "1", false), wantErr: ErrNotFound, errContains: "module nosuch is not reported by any manager"},
		{name: "unknown option", cmd: configCmd("counter", "speed", "1", false), wantErr: ErrNotFound, errContains: "its options: step, greeting, period, loud"},
		{name: "module without options", cmd: configCmd("status", "x", "1", false), wantErr: ErrNotFound, errContains: "declares no options"},
		{name: "wrong type", cmd: configCmd("counter", "step", "fast", false), wantErr: ErrInvalid, errContains: `"fast" is not an int`},
		{name: "above max", cmd: configCmd("counter", "step", "101", false), wantErr: ErrInvalid, errContains: "above the maximum 100"},
		{name: "below min", cmd: configCmd("counter", "step", "0", false), wantErr: ErrInvalid, errContains: "below the minimum 1"},
		{name: "below min duration", cmd: configCmd("counter", "period", "1ms", false), wantErr: ErrInvalid, errContains: "below the minimum 10ms"},
		{name: "not allowed", cmd: configCmd("counter", "greeting", "yo", false), wantErr: ErrInvalid, errContains: "not one of the allowed values hello, hi"},
		{name: "bad module name", cmd: configCmd("Bad", "step", "1", false), wantErr: ErrInvalid},
		{name: "bad option name", cmd: configCmd("counter", "a/b", "1", false), wantErr: ErrInvalid},
		{name: "remove set", cmd: configCmd("counter", "step", "", true), wantChanged: true, wantValue: ""},
		{name: "remove not set", cmd: configCmd("counter", "step", "", true), wantValue: ""},
		{name: "remove unknown", cmd: configCmd("counter", "speed", "", true), wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		before := c.st
		r, err := c.apply(tc.cmd)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) || c.st != before || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("%s: err %v, want %v containing %q", tc.name, err, tc.wantErr, tc.errContains)
			}
			continue
		}
		if err != nil || r.Changed != tc.wantChanged {
			t.Fatalf("%s: err %v changed %v", tc.name, err, r.Changed)
		}
		if tc.wantChanged && c.m().GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_CONFIG {
			t.Fatalf("%s: cause %v", tc.name, c.m().GetCause())
		}
		op := tc.cmd.GetConfig()
		if got := c.m().GetModuleConfig()[op.GetModule()].GetValues()[op.GetOption()]; tc.wantValue != "" || op.GetRemove() {
			if got != tc.wantValue {
				t.Fatalf("%s: stored %q, want %q", tc.name, got, tc.wantValue)
			}
		}
	}
	got := map[string]string{}
	for _, ov := range OptionValues(c.m(), "counter") {
		got[ov.GetOption().GetName()] = ov.GetValue()
	}
	want := map[string]string{"step": "1", "period": "1.5s", "loud": "true", "greeting": "hi"}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("OptionValues: %v, want %v", got, want)
		}
	}
	// The config outlives the manager that declared it, and an option set
	// for a module no manager reports can still be removed.
	c.must(leaveCmd(x, "x"))
	if _, err := c.apply(configCmd("counter", "loud", "false", false)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("set with no manager: %v", err)
	}
	if r := c.must(configCmd("counter", "loud", "", true)); !r.Changed {
		t.Fatal("removing an undeclared set option changed nothing")
	}
}

func TestBeaconRefusesBadOptionDeclarations(t *testing.T) {
	c := newCluster(t, 0)
	x := c.auth("x")
	tests := map[string]*mgrv1.ModuleOption{
		"no type":           {Name: "a"},
		"bad default":       {Name: "a", Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "x"},
		"default above max": {Name: "a", Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "5", Max: "4"},
		"min above max":     {Name: "a", Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "5", Min: "6", Max: "4"},
		"bounds on bool":    {Name: "a", Type: mgrv1.OptionType_OPTION_TYPE_BOOL, DefaultValue: "true", Min: "1"},
		"bad allowed":       {Name: "a", Type: mgrv1.OptionType_OPTION_TYPE_FLOAT, DefaultValue: "1", AllowedValues: []string{"1", "x"}},
	}
	for name, o := range tests {
		before := c.st
		_, err := c.apply(beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", AvailableModules: []*mgrv1.ModuleInfo{
			{Name: "m", CanRun: true, Options: []*mgrv1.ModuleOption{o}},
		}}))
		if !errors.Is(err, ErrInvalid) || c.st != before {
			t.Fatalf("%s: err %v", name, err)
		}
	}
}
