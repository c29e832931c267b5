package main

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

const quorumTable = `
leader mon-b
term 7
commit_index 120
applied_index 118
answered_by mon-c
epoch 4

ID ADDRESS VOTER LEADER
mon-a 10.0.0.11:6789 yes -
mon-b 10.0.0.12:6789 yes *
mon-c 10.0.0.13:6789 yes -
`

func TestQuorumTable(t *testing.T) {
	tests := map[string]struct {
		args []string
		// quorum replaces the fake's canned quorum when set.
		quorum  *mgrv1.GetQuorumStatusResponse
		want    string
		calls   []string
		members []string // the fake's membership afterwards, in raft's order
	}{
		"status": {
			args: []string{"quorum", "status"}, want: quorumTable, calls: []string{"GetQuorumStatus "},
			members: []string{"mon-c=10.0.0.13:6789", "mon-a=10.0.0.11:6789", "mon-b=10.0.0.12:6789"},
		},
		"status without leader": {
			args: []string{"quorum", "status"},
			quorum: &mgrv1.GetQuorumStatusResponse{
				Members:    []*mgrv1.QuorumMember{{Id: "m2", Address: "127.0.0.1:7002", Voter: true}, {Id: "m1", Address: "127.0.0.1:7001"}},
				Term:       3,
				AnsweredBy: "m2",
			},
			want: `
leader -
term 3
commit_index 0
applied_index 0
answered_by m2
epoch 0

ID ADDRESS VOTER LEADER
m1 127.0.0.1:7001 no -
m2 127.0.0.1:7002 yes -`,
			calls:   []string{"GetQuorumStatus "},
			members: []string{"m2=127.0.0.1:7002", "m1=127.0.0.1:7001"},
		},
		"add": {
			args: []string{"quorum", "add", "mon-d", "10.0.0.14:6789"}, want: "added monitor mon-d at 10.0.0.14:6789",
			calls:   []string{"AddMonitor mon-d 10.0.0.14:6789"},
			members: []string{"mon-c=10.0.0.13:6789", "mon-a=10.0.0.11:6789", "mon-b=10.0.0.12:6789", "mon-d=10.0.0.14:6789"},
		},
		"add ipv6": {
			args: []string{"quorum", "add", "mon-d", "[::1]:7004"}, want: "added monitor mon-d at [::1]:7004",
			calls:   []string{"AddMonitor mon-d [::1]:7004"},
			members: []string{"mon-c=10.0.0.13:6789", "mon-a=10.0.0.11:6789", "mon-b=10.0.0.12:6789", "mon-d=[::1]:7004"},
		},
		"remove": {
			args: []string{"quorum", "remove", "mon-a"}, want: "removed monitor mon-a",
			calls:   []string{"RemoveMonitor mon-a"},
			members: []string{"mon-c=10.0.0.13:6789", "mon-b=10.0.0.12:6789"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			if tc.quorum != nil {
				f.quorum = tc.quorum
			}
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
			if got := f.memberIDs(); !slices.Equal(got, tc.members) {
				t.Errorf("members afterwards = %q, want %q", got, tc.members)
			}
		})
	}
}

func TestQuorumJSON(t *testing.T) {
	tests := map[string]struct {
		args []string
		want answer
		keys []string
	}{
		"status": {[]string{"quorum", "status"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			r, err := a.GetQuorumStatus(ctx, &mgrv1.GetQuorumStatusRequest{})
			if err != nil {
				return nil, err
			}
			// -o json lists the members by id, as the table does.
			slices.SortFunc(r.Members, func(x, y *mgrv1.QuorumMember) int { return cmp.Compare(x.GetId(), y.GetId()) })
			return r, nil
		}, []string{"members", "leader_id", "term", "commit_index", "applied_index", "answered_by", "epoch"}},
		"add": {[]string{"quorum", "add", "mon-d", "10.0.0.14:6789"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.AddMonitor(ctx, &mgrv1.AddMonitorRequest{Id: "mon-d", Address: "10.0.0.14:6789"})
		}, nil},
		"remove": {[]string{"quorum", "remove", "mon-c"}, func(ctx context.Context, a *fakeAdmin) (proto.Message, error) {
			return a.RemoveMonitor(ctx, &mgrv1.RemoveMonitorRequest{Id: "mon-c"})
		}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			addr, _ := startFake(t, f, "")
			out, errOut, err := runCLI(t, append([]string{"--monitor", addr, "-o", "json"}, tc.args...)...)
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

// TestQuorumStatusJSONStable checks that the JSON of quorum status depends on
// the membership only, not on the order raft lists it in.
func TestQuorumStatusJSONStable(t *testing.T) {
	var outs []string
	for _, order := range [][]int{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}} {
		f := newFake(t)
		canned := cannedQuorum().GetMembers()
		f.quorum.Members = []*mgrv1.QuorumMember{canned[order[0]], canned[order[1]], canned[order[2]]}
		addr, _ := startFake(t, f, "")
		out, _, err := runCLI(t, "--monitor", addr, "-o", "json", "quorum", "status")
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	for i, o := range outs[1:] {
		if o != outs[0] {
			t.Errorf("order %d gave other JSON:\n%s\nwant:\n%s", i+1, o, outs[0])
		}
	}
	for _, w := range []string{`"id": "mon-a"`, `"leader": true`, `"leader_id": "mon-b"`, `"term": "7"`, `"answered_by": "mon-c"`} {
		if !strings.Contains(outs[0], w) {
			t.Errorf("output lacks %s:\n%s", w, outs[0])
		}
	}
	if a, b := strings.Index(outs[0], `"id": "mon-a"`), strings.Index(outs[0], `"id": "mon-c"`); a < 0 || b < 0 || a > b {
		t.Errorf("members are not in id order:\n%s", outs[0])
	}
}

func TestQuorumUsageErrors(t *testing.T) {
	tests := map[string]struct {
		args []string
		msg  string
	}{
		"quorum alone":           {[]string{"quorum"}, "quorum: missing status, add, remove"},
		"quorum unknown":         {[]string{"quorum", "elect"}, `quorum: unknown "elect" (want status, add, remove)`},
		"status extra":           {[]string{"quorum", "status", "now"}, `quorum status: unexpected argument "now"`},
		"status flag":            {[]string{"quorum", "status", "--force"}, "quorum status: flag provided but not defined: --force"},
		"add nothing":            {[]string{"quorum", "add"}, "quorum add: missing ID"},
		"add no address":         {[]string{"quorum", "add", "mon-d"}, "quorum add: missing ADDR"},
		"add extra":              {[]string{"quorum", "add", "mon-d", "10.0.0.14:6789", "x"}, `quorum add: unexpected argument "x"`},
		"add empty id":           {[]string{"quorum", "add", "", "10.0.0.14:6789"}, "quorum add: ID must not be empty"},
		"add address no port":    {[]string{"quorum", "add", "mon-d", "10.0.0.14"}, `quorum add: ADDR must be host:port, got "10.0.0.14"`},
		"add address empty host": {[]string{"quorum", "add", "mon-d", ":6789"}, `quorum add: ADDR must be host:port, got ":6789"`},
		"remove nothing":         {[]string{"quorum", "remove"}, "quorum remove: missing ID"},
		"remove two":             {[]string{"quorum", "remove", "a", "b"}, `quorum remove: unexpected argument "b"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			addr, _ := startFake(t, f, "")
			out, errOut, err := runCLIEnv(t, map[string]string{"MGRPLANE_MONITOR": addr}, tc.args...)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if got := exitCode(err); got != exitUsage {
				t.Errorf("exit code %d, want %d", got, exitUsage)
			}
			if !strings.HasPrefix(errOut, "mgrctl: "+tc.msg+"\n") {
				t.Errorf("stderr %q does not start with %q", errOut, "mgrctl: "+tc.msg)
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

func TestQuorumServerErrors(t *testing.T) {
	tests := map[string]struct {
		args []string
		errs map[string]error
		// quorum replaces the fake's canned quorum when set.
		quorum *mgrv1.GetQuorumStatusResponse
		code   codes.Code
		line   string
	}{
		"remove unknown": {args: []string{"quorum", "remove", "mon-z"}, code: codes.NotFound,
			line: `mgrctl: NotFound: no monitor "mon-z" in the quorum`},
		"remove last": {args: []string{"quorum", "remove", "m1"},
			quorum: &mgrv1.GetQuorumStatusResponse{Members: []*mgrv1.QuorumMember{{Id: "m1", Address: "127.0.0.1:7001", Voter: true, Leader: true}}},
			code:   codes.FailedPrecondition, line: `mgrctl: FailedPrecondition: "m1" is the last monitor; a quorum cannot be emptied`},
		"add bad id": {args: []string{"quorum", "add", "mon/d", "10.0.0.14:6789"}, code: codes.InvalidArgument,
			line: `mgrctl: InvalidArgument: id "mon/d": must be 1 to 64 of [A-Za-z0-9_.-]`},
		"add no quorum": {args: []string{"quorum", "add", "mon-d", "10.0.0.14:6789"},
			errs: map[string]error{"AddMonitor": status.Error(codes.Unavailable, "no quorum leader is known")},
			code: codes.Unavailable, line: "mgrctl: Unavailable: no quorum leader is known"},
		"status internal": {args: []string{"quorum", "status"},
			errs: map[string]error{"GetQuorumStatus": status.Error(codes.Internal, "internal error")},
			code: codes.Internal, line: "mgrctl: Internal: internal error"},
	}
	for name, tc := range tests {
		for _, format := range []string{formatTable, formatJSON} {
			t.Run(name+" "+format, func(t *testing.T) {
				f := newFake(t)
				for k, v := range tc.errs {
					f.errs[k] = v
				}
				if tc.quorum != nil {
					f.quorum = tc.quorum
				}
				before := f.memberIDs()
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
				if after := f.memberIDs(); !slices.Equal(after, before) {
					t.Errorf("a refused request changed the members: %q, was %q", after, before)
				}
			})
		}
	}
}

// TestQuorumThroughMonitorList checks that quorum changes go on to the next
// monitor when one answers Unavailable (no leader known), and that status is
// answered by the first monitor that answers.
func TestQuorumThroughMonitorList(t *testing.T) {
	noLeader := status.Error(codes.Unavailable, "no quorum leader is known")
	tests := map[string]struct {
		args []string
		// failing is the method the first monitor refuses.
		failing string
		// secondCalls is what the second monitor must have been asked.
		secondCalls []string
	}{
		"status":  {[]string{"quorum", "status"}, "GetQuorumStatus", []string{"GetQuorumStatus "}},
		"add":     {[]string{"quorum", "add", "mon-d", "10.0.0.14:6789"}, "AddMonitor", []string{"AddMonitor mon-d 10.0.0.14:6789"}},
		"remove":  {[]string{"quorum", "remove", "mon-a"}, "RemoveMonitor", []string{"RemoveMonitor mon-a"}},
		"healthy": {[]string{"quorum", "status"}, "", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, b := newFake(t), newFake(t)
			if tc.failing != "" {
				a.errs[tc.failing] = noLeader
			}
			b.quorum.AnsweredBy = "mon-b"
			addrA, _ := startFake(t, a, "")
			addrB, _ := startFake(t, b, "")
			_, errOut, err := runCLI(t, append([]string{"--monitor", addrA + "," + addrB, "-o", "json"}, tc.args...)...)
			if err != nil {
				t.Fatalf("run: %v (stderr %q)", err, errOut)
			}
			if got := a.callLog(); len(got) != 1 {
				t.Errorf("first monitor calls = %q, want one", got)
			}
			if got := b.callLog(); !slices.Equal(got, tc.secondCalls) {
				t.Errorf("second monitor calls = %q, want %q", got, tc.secondCalls)
			}
		})
	}
}
