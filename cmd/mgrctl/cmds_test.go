package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/version"
)

// sameFields compares two texts line by line, ignoring how columns are padded.
func sameFields(t *testing.T, got, want string) {
	t.Helper()
	gl := strings.Split(strings.TrimRight(got, "\n"), "\n")
	wl := strings.Split(strings.TrimRight(want, "\n"), "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w []string
		if i < len(gl) {
			g = strings.Fields(gl[i])
		}
		if i < len(wl) {
			w = strings.Fields(wl[i])
		}
		if !slices.Equal(g, w) || i >= len(gl) || i >= len(wl) {
			t.Fatalf("line %d: got %q, want %q\ngot:\n%s\nwant:\n%s", i+1, g, w, got, want)
		}
	}
}

const dumpCurrent = `
epoch 4
fsid c0ffee00-fsid
active x(3)
active_addrs 10.0.0.1:6800
available true
active_epoch 2
active_change 2026-10-20T12:00:02.000Z
active_metadata_digest d3
down false
modules dashboard,prometheus
always_on_modules balancer
module_config mgr/dashboard/port=8080,mgr/dashboard/ssl=false
modified 2026-10-20T12:00:04.000Z
cause active-updated
reason x is available

STANDBY GID MODULES METADATA-DIGEST
y 4 balancer,dashboard d4
z 5 - -

MODULE STATE CAN-RUN ERROR
balancer always-on yes -
dashboard on yes -
prometheus on yes -
rook off no no orchestrator

SERVICE URL
dashboard https://10.0.0.1:8443/
prometheus http://10.0.0.1:9283/
`

const dumpFirst = `
epoch 1
fsid c0ffee00-fsid
active -
active_addrs -
available false
active_epoch 0
active_change -
active_metadata_digest -
down false
modules -
always_on_modules balancer
module_config -
modified 2026-10-20T12:00:01.000Z
cause bootstrap
reason cluster created

STANDBY GID MODULES METADATA-DIGEST

MODULE STATE CAN-RUN ERROR
balancer always-on - -

SERVICE URL
`

const moduleTable = `
MODULE STATE CAN-RUN ERROR
balancer always-on yes -
dashboard on yes -
prometheus on yes -
rook off no no orchestrator
`

func TestCommandsTable(t *testing.T) {
	tests := map[string]struct {
		args  []string
		want  string
		calls []string
	}{
		"stat":             {[]string{"stat"}, "epoch 4  active x (gid 3) available  standbys 2", []string{"GetStat "}},
		"dump":             {[]string{"dump"}, dumpCurrent, []string{"GetMap 0"}},
		"dump epoch":       {[]string{"dump", "--epoch", "1"}, dumpFirst, []string{"GetMap 1"}},
		"dump epoch equal": {[]string{"dump", "--epoch=1"}, dumpFirst, []string{"GetMap 1"}},
		"fail active":      {[]string{"fail"}, "failed x (gid 3); epoch 5", []string{"FailManager "}},
		"fail name":        {[]string{"fail", "y"}, "failed y (gid 4); epoch 5", []string{"FailManager y"}},
		"fail gid":         {[]string{"fail", "5"}, "failed z (gid 5); epoch 5", []string{"FailManager 5"}},
		"services": {[]string{"services"}, `
SERVICE URL
dashboard https://10.0.0.1:8443/
prometheus http://10.0.0.1:9283/`, []string{"ListServices "}},
		"metadata all": {[]string{"metadata"}, `
x (gid 3, active)
  arch amd64
  hostname host-a
  mgrplane_version 0.1.0
  os linux

y (gid 4, standby)
  arch arm64
  hostname host-b
  mgrplane_version 0.1.0
  os linux

z (gid 5, standby)
  hostname host-c
  mgrplane_version 0.2.0
  os linux`, []string{"GetMetadata "}},
		"metadata one": {[]string{"metadata", "z"}, `
z (gid 5, standby)
  hostname host-c
  mgrplane_version 0.2.0
  os linux`, []string{"GetMetadata z"}},
		"count-metadata": {[]string{"count-metadata", "arch"}, `
VALUE COUNT
amd64 1
arm64 1
unknown 1`, []string{"CountMetadata arch"}},
		"versions": {[]string{"versions"}, `
VERSION COUNT
0.1.0 2
0.2.0 1`, []string{"GetVersions "}},
		"beacons": {[]string{"beacons"}, `
NAME GID ROLE LAST BEACON AGE
x 3 active 2026-11-26T12:00:00.000Z 750ms
y 4 standby 2026-11-26T12:00:00.000Z 1s
z 5 standby 2026-11-26T12:00:00.000Z 1.25s`, []string{"ListBeacons "}},
		"module ls":            {[]string{"module", "ls"}, moduleTable, []string{"ListModules "}},
		"module enable":        {[]string{"module", "enable", "dashboard"}, "enabled module dashboard; epoch 5", []string{"EnableModule dashboard force=false"}},
		"module enable force":  {[]string{"module", "enable", "--force", "rook"}, "enabled module rook; epoch 5", []string{"EnableModule rook force=true"}},
		"module enable force2": {[]string{"module", "enable", "rook", "--force"}, "enabled module rook; epoch 5", []string{"EnableModule rook force=true"}},
		"module disable":       {[]string{"module", "disable", "prometheus"}, "disabled module prometheus; epoch 5", []string{"DisableModule prometheus"}},
		"config set":           {[]string{"config", "set", "mgr/dashboard/port", "08080"}, "set mgr/dashboard/port to 8080; epoch 5", []string{"SetModuleOption dashboard/port=08080"}},
		"config get":           {[]string{"config", "get", "mgr/dashboard/port"}, "8443", []string{"GetModuleOption dashboard/port"}},
		"config rm":            {[]string{"config", "rm", "mgr/dashboard/port"}, "removed mgr/dashboard/port; epoch 4", []string{"RemoveModuleOption dashboard/port"}},
		"config ls": {[]string{"config", "ls"}, `
KEY VALUE SET TYPE DEFAULT BOUNDS DESCRIPTION
mgr/dashboard/port 8443 no int 8443 [1..65535] listen port`, []string{"ListModuleOptions "}},
		"config ls module": {[]string{"config", "ls", "mgr/dashboard"}, `
KEY VALUE SET TYPE DEFAULT BOUNDS DESCRIPTION
mgr/dashboard/port 8443 no int 8443 [1..65535] listen port`, []string{"ListModuleOptions dashboard"}},
		"set down":   {[]string{"set", "down"}, "set down; epoch 5", []string{"SetFlags down=true"}},
		"unset down": {[]string{"unset", "down"}, "unset down; epoch 5", []string{"SetFlags down=false"}},
		"history": {[]string{"history"}, `
EPOCH TIME CAUSE ACTIVE STANDBYS REASON
1 2026-10-20T12:00:01.000Z bootstrap - 0 cluster created
2 2026-10-20T12:00:02.000Z promoted x(3) 0 promoted x: no active
3 2026-10-20T12:00:03.000Z standby-added x(3) 1 standby y joined
4 2026-10-20T12:00:04.000Z active-updated x(3) 2 x is available`, []string{"ListHistory since=0 limit=0"}},
		"history since limit": {[]string{"history", "--since", "2", "--limit", "1"}, `
EPOCH TIME CAUSE ACTIVE STANDBYS REASON
4 2026-10-20T12:00:04.000Z active-updated x(3) 2 x is available`, []string{"ListHistory since=2 limit=1"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			addr, _ := startFake(t, f, "")
			out, errOut, err := runCLI(t, append([]string{"--monitor", addr}, tc.args...)...)
			if err != nil {
				t.Fatalf("run: %v (stderr %q)", err, errOut)
			}
			if errOut != "" {
				t.Errorf("stderr = %q, want nothing", errOut)
			}
			sameFields(t, out, strings.TrimPrefix(tc.want, "\n"))
			if got := f.callLog(); !slices.Equal(got, tc.calls) {
				t.Errorf("calls = %q, want %q", got, tc.calls)
			}
		})
	}
}

// answer asks a separate fake (same canned data) what the served one answers.
type answer func(ctx context.Context, a *fakeAdmin) (proto.Message, error)

func TestCommandsJSON(t *testing.T) {
	tests := map[string]struct {
		args []string
		want answer
		// keys must be top-level keys of the output (proto names, unpopulated fields too).
		keys []string
	}{
		"stat": {[]string{"stat"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.GetStat(ctx, &mgrv1.GetStatRequest{})
		}, []string{"active_name", "active_gid", "num_standbys", "down", "fsid"}},
		"dump": {[]string{"dump"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			r, err := a.GetMap(ctx, &mgrv1.GetMapRequest{})
			return r.GetMap(), err
		}, []string{"epoch", "active_addrs", "always_on_modules", "available_modules", "services", "down", "cause"}},
		"dump epoch": {[]string{"dump", "--epoch", "1"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			r, err := a.GetMap(ctx, &mgrv1.GetMapRequest{Epoch: 1})
			return r.GetMap(), err
		}, []string{"active_addrs", "services", "standbys", "active_change"}},
		"fail": {[]string{"fail", "y"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.FailManager(ctx, &mgrv1.FailManagerRequest{Who: "y"})
		}, []string{"epoch", "failed_gid", "failed_name"}},
		"services": {[]string{"services"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.ListServices(ctx, &mgrv1.ListServicesRequest{})
		}, []string{"services", "epoch"}},
		"metadata": {[]string{"metadata"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.GetMetadata(ctx, &mgrv1.GetMetadataRequest{})
		}, []string{"managers"}},
		"count-metadata": {[]string{"count-metadata", "os"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.CountMetadata(ctx, &mgrv1.CountMetadataRequest{Property: "os"})
		}, []string{"counts"}},
		"versions": {[]string{"versions"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.GetVersions(ctx, &mgrv1.GetVersionsRequest{})
		}, []string{"versions"}},
		"beacons": {[]string{"beacons"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.ListBeacons(ctx, &mgrv1.ListBeaconsRequest{})
		}, []string{"managers", "epoch"}},
		"module ls": {[]string{"module", "ls"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.ListModules(ctx, &mgrv1.ListModulesRequest{})
		}, []string{"always_on_modules", "enabled_modules", "available_modules", "epoch"}},
		"module enable": {[]string{"module", "enable", "--force", "rook"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.EnableModule(ctx, &mgrv1.EnableModuleRequest{Name: "rook", Force: true})
		}, []string{"epoch"}},
		"module disable": {[]string{"module", "disable", "dashboard"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.DisableModule(ctx, &mgrv1.DisableModuleRequest{Name: "dashboard"})
		}, []string{"epoch"}},
		"config set": {[]string{"config", "set", "mgr/dashboard/port", "80"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.SetModuleOption(ctx, &mgrv1.SetModuleOptionRequest{Module: "dashboard", Option: "port", Value: "80"})
		}, []string{"epoch", "value"}},
		"config get": {[]string{"config", "get", "mgr/dashboard/port"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.GetModuleOption(ctx, &mgrv1.GetModuleOptionRequest{Module: "dashboard", Option: "port"})
		}, []string{"option", "epoch"}},
		"config ls": {[]string{"config", "ls"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.ListModuleOptions(ctx, &mgrv1.ListModuleOptionsRequest{})
		}, []string{"options", "epoch"}},
		"set down": {[]string{"set", "down"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.SetFlags(ctx, &mgrv1.SetFlagsRequest{Down: true})
		}, []string{"epoch"}},
		"unset down": {[]string{"unset", "down"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.SetFlags(ctx, &mgrv1.SetFlagsRequest{Down: false})
		}, []string{"epoch"}},
		"history": {[]string{"history", "--since", "1"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.ListHistory(ctx, &mgrv1.ListHistoryRequest{SinceEpoch: 1})
		}, []string{"entries", "oldest_epoch", "newest_epoch"}},
	}
	for name, tc := range tests {
		for _, flagForm := range [][]string{{"-o", "json"}, {"--output=json"}} {
			t.Run(name+" "+strings.Join(flagForm, " "), func(t *testing.T) {
				f := newFake(t)
				addr, _ := startFake(t, f, "")
				args := append(append([]string{"--monitor", addr}, flagForm...), tc.args...)
				out, errOut, err := runCLI(t, args...)
				if err != nil {
					t.Fatalf("run: %v (stderr %q)", err, errOut)
				}
				want, err := tc.want(t.Context(), &fakeAdmin{f: newFake(t)})
				if err != nil {
					t.Fatalf("expected answer: %v", err)
				}
				checkJSON(t, out, want, tc.keys)
			})
		}
	}
}

// checkJSON checks that out is want as indented JSON with sorted keys, proto
// field names and the unpopulated fields present.
func checkJSON(t *testing.T, out string, want proto.Message, keys []string) {
	t.Helper()
	got := want.ProtoReflect().New().Interface()
	if err := protojson.Unmarshal([]byte(out), got); err != nil {
		t.Fatalf("output is not a %s: %v\n%s", want.ProtoReflect().Descriptor().FullName(), err, out)
	}
	if !proto.Equal(got, want) {
		t.Errorf("output decodes to %v, want %v", got, want)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	for _, k := range keys {
		if _, ok := v[k]; !ok {
			t.Errorf("key %q missing from %s", k, out)
		}
	}
	var canon bytes.Buffer
	enc := json.NewEncoder(&canon)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if canon.String() != out {
		t.Errorf("output is not canonical (sorted keys, two-space indent):\ngot:\n%s\nwant:\n%s", out, canon.String())
	}
}

func TestJSONEmitsUnpopulated(t *testing.T) {
	f := newFake(t)
	addr, _ := startFake(t, f, "")
	out, _, err := runCLI(t, "--monitor", addr, "-o", "json", "dump", "--epoch", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"active_addrs": []`, `"services": {}`, `"available": false`, `"active_change": null`, `"cause": "CHANGE_CAUSE_BOOTSTRAP"`, `"epoch": "1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := map[string]struct {
		args []string
		env  map[string]string
		msg  string
	}{
		"no command":             {nil, nil, "mgrctl: missing command"},
		"unknown command":        {[]string{"frobnicate"}, nil, `mgrctl: unknown command "frobnicate"`},
		"unknown global flag":    {[]string{"--bogus", "stat"}, nil, "flag provided but not defined: --bogus"},
		"global flag after cmd":  {[]string{"stat", "--monitor", "x"}, nil, "stat: flag provided but not defined: --monitor"},
		"unknown cmd flag":       {[]string{"dump", "--force"}, nil, "dump: flag provided but not defined: --force"},
		"epoch not a number":     {[]string{"dump", "--epoch", "twelve"}, nil, `dump: invalid value "twelve" for flag --epoch: must be a non-negative integer`},
		"epoch negative":         {[]string{"dump", "--epoch", "-3"}, nil, `invalid value "-3" for flag --epoch`},
		"epoch missing value":    {[]string{"dump", "--epoch"}, nil, "dump: flag needs an argument: --epoch"},
		"dump extra arg":         {[]string{"dump", "4"}, nil, `dump: unexpected argument "4"`},
		"stat extra arg":         {[]string{"stat", "now"}, nil, `stat: unexpected argument "now"`},
		"fail two args":          {[]string{"fail", "x", "y"}, nil, `fail: unexpected argument "y"`},
		"fail empty":             {[]string{"fail", ""}, nil, "fail: NAME|GID must not be empty"},
		"count-metadata missing": {[]string{"count-metadata"}, nil, "count-metadata: missing PROPERTY"},
		"metadata two":           {[]string{"metadata", "x", "y"}, nil, `metadata: unexpected argument "y"`},
		"module alone":           {[]string{"module"}, nil, "module: missing ls, enable, disable"},
		"module unknown":         {[]string{"module", "reload"}, nil, `module: unknown "reload" (want ls, enable, disable)`},
		"module enable no name":  {[]string{"module", "enable", "--force"}, nil, "module enable: missing NAME"},
		"module disable force":   {[]string{"module", "disable", "--force", "x"}, nil, "module disable: flag provided but not defined: --force"},
		"module ls extra":        {[]string{"module", "ls", "all"}, nil, `module ls: unexpected argument "all"`},
		"config bad key":         {[]string{"config", "get", "dashboard/port"}, nil, `config get: KEY "dashboard/port": must be mgr/<module>/<option>`},
		"config set no value":    {[]string{"config", "set", "mgr/dashboard/port"}, nil, "config set: missing VALUE"},
		"set other flag":         {[]string{"set", "noout"}, nil, `set: unknown "noout" (want down)`},
		"unset nothing":          {[]string{"unset"}, nil, "unset: missing down"},
		"history limit too big":  {[]string{"history", "--limit", "4294967296"}, nil, "for flag --limit: must be an integer from 0 to 4294967295"},
		"history since text":     {[]string{"history", "--since", "yesterday"}, nil, `invalid value "yesterday" for flag --since`},
		"watch count text":       {[]string{"watch", "--count", "many"}, nil, `invalid value "many" for flag --count`},
		"watch extra":            {[]string{"watch", "4"}, nil, `watch: unexpected argument "4"`},
		"bad output":             {[]string{"-o", "yaml", "stat"}, nil, `output format must be table or json, got "yaml"`},
		"bad output env":         {[]string{"stat"}, map[string]string{"MGRPLANE_OUTPUT": "xml"}, "MGRPLANE_OUTPUT: output format must be table or json"},
		"bad timeout":            {[]string{"--timeout", "0s", "stat"}, nil, "--timeout must be greater than 0, got 0s"},
		"bad timeout env":        {[]string{"stat"}, map[string]string{"MGRPLANE_TIMEOUT": "soon"}, `MGRPLANE_TIMEOUT: "soon" is not a duration`},
		"empty monitor":          {[]string{"--monitor", " , ", "stat"}, nil, "--monitor must name at least one address"},
		"help extra":             {[]string{"help", "stat"}, nil, `help: unexpected argument "stat"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			addr, _ := startFake(t, f, "")
			env := map[string]string{"MGRPLANE_MONITOR": addr}
			for k, v := range tc.env {
				env[k] = v
			}
			out, errOut, err := runCLIEnv(t, env, tc.args...)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if got := exitCode(err); got != exitUsage {
				t.Errorf("exit code %d, want %d", got, exitUsage)
			}
			if !strings.Contains(errOut, tc.msg) {
				t.Errorf("stderr %q lacks %q", errOut, tc.msg)
			}
			if !strings.HasPrefix(errOut, "mgrctl: ") {
				t.Errorf("stderr %q does not start with mgrctl: ", errOut)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if calls := f.callLog(); len(calls) != 0 {
				t.Errorf("a usage error reached the monitor: %q", calls)
			}
		})
	}
}

func TestServerErrors(t *testing.T) {
	tests := map[string]struct {
		args []string
		errs map[string]error
		code codes.Code
		line string
	}{
		"fail unknown":     {[]string{"fail", "q"}, nil, codes.NotFound, `mgrctl: NotFound: no manager named or numbered "q"`},
		"metadata unknown": {[]string{"metadata", "q"}, nil, codes.NotFound, `mgrctl: NotFound: no manager named "q"`},
		"enable unknown":   {[]string{"module", "enable", "rook"}, nil, codes.NotFound, `mgrctl: NotFound: module "rook" is not reported runnable by the active (use --force)`},
		"disable always":   {[]string{"module", "disable", "balancer"}, nil, codes.FailedPrecondition, `mgrctl: FailedPrecondition: module "balancer" is always on`},
		"config out of range": {[]string{"config", "set", "mgr/dashboard/port", "70000"}, nil, codes.InvalidArgument,
			"mgrctl: InvalidArgument: mgr/dashboard/port: value 70000 is above the maximum 65535"},
		"config unknown option": {[]string{"config", "get", "mgr/dashboard/speed"}, nil, codes.NotFound, "mgrctl: NotFound: module dashboard has no option speed"},
		"dump trimmed":          {[]string{"dump", "--epoch", "99"}, nil, codes.OutOfRange, "mgrctl: OutOfRange: epoch 99 is not kept: kept epochs are 1 to 4"},
		"stat internal": {[]string{"stat"}, map[string]error{"GetStat": status.Error(codes.Internal, "internal error")},
			codes.Internal, "mgrctl: Internal: internal error"},
		"set down refused": {[]string{"set", "down"}, map[string]error{"SetFlags": status.Error(codes.PermissionDenied, "client.ro lacks the admin cap")},
			codes.PermissionDenied, "mgrctl: PermissionDenied: client.ro lacks the admin cap"},
		"history invalid": {[]string{"history"}, map[string]error{"ListHistory": status.Error(codes.InvalidArgument, "limit must be at most 500, got 1000")},
			codes.InvalidArgument, "mgrctl: InvalidArgument: limit must be at most 500, got 1000"},
	}
	for name, tc := range tests {
		for _, format := range []string{formatTable, formatJSON} {
			t.Run(name+" "+format, func(t *testing.T) {
				f := newFake(t)
				for k, v := range tc.errs {
					f.errs[k] = v
				}
				addr, _ := startFake(t, f, "")
				out, errOut, err := runCLI(t, append([]string{"--monitor", addr, "-o", format}, tc.args...)...)
				if got := status.Code(err); got != tc.code {
					t.Fatalf("status code %v, want %v (err %v)", got, tc.code, err)
				}
				if got := exitCode(err); got != exitFailure {
					t.Errorf("exit code %d, want %d", got, exitFailure)
				}
				if errOut != tc.line+"\n" {
					t.Errorf("stderr = %q, want %q", errOut, tc.line+"\n")
				}
				if out != "" {
					t.Errorf("stdout = %q, want nothing", out)
				}
			})
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	tests := map[string]struct {
		args []string
		want []string
	}{
		"--help":       {[]string{"--help"}, nil},
		"-h":           {[]string{"-h"}, nil},
		"help command": {[]string{"help"}, nil},
		"--version":    {[]string{"--version"}, []string{"mgrctl " + version.Version + "\n"}},
		"version wins": {[]string{"--version", "stat"}, []string{"mgrctl " + version.Version + "\n"}},
		"dump -h":      {[]string{"dump", "-h"}, []string{"usage: mgrctl dump [--epoch N]", "--epoch"}},
		"enable help":  {[]string{"module", "enable", "--help"}, []string{"usage: mgrctl module enable [--force] NAME", "--force"}},
		"watch -h":     {[]string{"watch", "-h"}, []string{"usage: mgrctl watch [--since EPOCH] [--count N]", "--since", "--count"}},
	}
	var names []string
	for _, c := range commands() {
		names = append(names, "  "+c.name)
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			addr, _ := startFake(t, f, "")
			out, errOut, err := runCLIEnv(t, map[string]string{"MGRPLANE_MONITOR": addr}, tc.args...)
			if err != nil || exitCode(err) != exitOK {
				t.Fatalf("run: %v", err)
			}
			if errOut != "" {
				t.Errorf("stderr = %q", errOut)
			}
			want := tc.want
			if want == nil {
				want = append([]string{"Usage: mgrctl", "--monitor", "MGRPLANE_MONITOR", "--output", "MGRPLANE_OUTPUT", "--timeout", "--version", "Exit status"}, names...)
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if calls := f.callLog(); len(calls) != 0 {
				t.Errorf("help reached the monitor: %q", calls)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	f := newFake(t)
	addr, _ := startFake(t, f, "")
	dead := deadAddr(t)

	// The environment names the monitor and the format.
	out, _, err := runCLIEnv(t, map[string]string{"MGRPLANE_MONITOR": addr, "MGRPLANE_OUTPUT": "json", "MGRPLANE_TIMEOUT": "5s"}, "stat")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "{") {
		t.Errorf("MGRPLANE_OUTPUT=json gave %q", out)
	}
	// Flags win over the environment.
	out, _, err = runCLIEnv(t, map[string]string{"MGRPLANE_MONITOR": dead, "MGRPLANE_OUTPUT": "json"}, "--monitor", addr, "-o", "table", "stat")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "epoch 4 ") {
		t.Errorf("flags did not override the environment: %q", out)
	}
}

func TestMonitorList(t *testing.T) {
	notLeader := status.Error(codes.Unavailable, "not the leader")

	t.Run("dead first", func(t *testing.T) {
		f := newFake(t)
		addr, _ := startFake(t, f, "")
		out, _, err := runCLI(t, "--monitor", deadAddr(t)+","+addr, "stat")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, "epoch 4 ") {
			t.Errorf("stdout = %q", out)
		}
	})

	t.Run("follower first", func(t *testing.T) {
		a, b := newFake(t), newFake(t)
		a.errs["FailManager"] = notLeader
		addrA, _ := startFake(t, a, "")
		addrB, _ := startFake(t, b, "")
		if _, _, err := runCLI(t, "--monitor", addrA+", "+addrB, "fail", "x"); err != nil {
			t.Fatal(err)
		}
		if got := a.callLog(); !slices.Equal(got, []string{"FailManager x"}) {
			t.Errorf("first monitor calls = %q", got)
		}
		if got := b.callLog(); !slices.Equal(got, []string{"FailManager x"}) {
			t.Errorf("second monitor calls = %q", got)
		}
	})

	t.Run("none answers", func(t *testing.T) {
		a := newFake(t)
		a.errs["GetStat"] = notLeader
		addrA, _ := startFake(t, a, "")
		dead := deadAddr(t)
		_, errOut, err := runCLI(t, "--monitor", addrA+","+dead, "stat")
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want Unavailable", err)
		}
		for _, w := range []string{"mgrctl: Unavailable: no monitor answered: ", addrA + ": not the leader", dead + ": "} {
			if !strings.Contains(errOut, w) {
				t.Errorf("stderr %q lacks %q", errOut, w)
			}
		}
		// Every monitor Unavailable: nothing was applied, so one more round.
		if got := a.callLog(); !slices.Equal(got, []string{"GetStat ", "GetStat "}) {
			t.Errorf("calls = %q, want two rounds", got)
		}
	})

	t.Run("hung monitor: reads move on, writes do not", func(t *testing.T) {
		a, b := newFake(t), newFake(t)
		a.errs["GetStat"] = errHang
		a.errs["SetFlags"] = errHang
		addrA, _ := startFake(t, a, "")
		addrB, _ := startFake(t, b, "")
		mons := addrA + "," + addrB
		if _, _, err := runCLI(t, "--monitor", mons, "--timeout", "200ms", "stat"); err != nil {
			t.Fatalf("stat: %v", err)
		}
		_, errOut, err := runCLI(t, "--monitor", mons, "--timeout", "200ms", "set", "down")
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("set down: err = %v, want DeadlineExceeded", err)
		}
		if !strings.HasPrefix(errOut, "mgrctl: DeadlineExceeded: ") {
			t.Errorf("stderr = %q", errOut)
		}
		if got := b.callLog(); !slices.Equal(got, []string{"GetStat "}) {
			t.Errorf("second monitor calls = %q, want only the read", got)
		}
	})
}

func TestNormalizeAddr(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"host port":    {"10.0.0.1:7000", "10.0.0.1:7000"},
		"no port":      {"mon-a", "mon-a:6789"},
		"ipv6 no port": {"[::1]", "[::1]:6789"},
		"ipv6 port":    {"[::1]:7000", "[::1]:7000"},
		"dns scheme":   {"dns:///mon-a:7000", "dns:///mon-a:7000"},
		"unix":         {"unix:/run/monsim.sock", "unix:/run/monsim.sock"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := normalizeAddr(tc.in); got != tc.want {
				t.Errorf("normalizeAddr(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCauseWord(t *testing.T) {
	tests := map[string]struct {
		in   mgrv1.ChangeCause
		want string
	}{
		"unspecified":   {mgrv1.ChangeCause_CHANGE_CAUSE_UNSPECIFIED, "-"},
		"promoted":      {mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED, "promoted"},
		"silent":        {mgrv1.ChangeCause_CHANGE_CAUSE_SILENT, "silent"},
		"two words":     {mgrv1.ChangeCause_CHANGE_CAUSE_STANDBY_ADDED, "standby-added"},
		"admin fail":    {mgrv1.ChangeCause_CHANGE_CAUSE_ADMIN_FAIL, "admin-fail"},
		"future values": {mgrv1.ChangeCause(99), "99"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := causeWord(tc.in); got != tc.want {
				t.Errorf("causeWord(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
