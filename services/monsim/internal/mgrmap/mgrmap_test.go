package mgrmap

import (
	"errors"
	"strings"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const fsid = "4e2256d4-9ebf-441c-8c1a-000000000001"

// cluster drives Apply like the monitor does, checking the invariants after
// every command.
type cluster struct {
	t   *testing.T
	st  *mgrv1.State
	now time.Time
}

func newCluster(t *testing.T, limit uint32) *cluster {
	t.Helper()
	c := &cluster{t: t, st: &mgrv1.State{}, now: time.Unix(1700000000, 0)}
	r, err := c.apply(&mgrv1.Command{Op: &mgrv1.Command_Bootstrap{Bootstrap: &mgrv1.BootstrapOp{
		Fsid: fsid, AlwaysOnModules: []string{"status"}, HistoryLimit: limit,
	}}})
	if err != nil || r.Epoch != 1 {
		t.Fatalf("bootstrap: %v, epoch %d", err, r.Epoch)
	}
	return c
}

func (c *cluster) apply(cmd *mgrv1.Command) (Result, error) {
	c.t.Helper()
	c.now = c.now.Add(time.Second)
	cmd.Time = timestamppb.New(c.now)
	prev := c.st
	next, r, err := Apply(prev, cmd)
	if err != nil {
		if next != prev {
			c.t.Fatalf("failed command returned a new state: %v", err)
		}
		return r, err
	}
	if prev.GetMap().GetEpoch() != 0 {
		if ierr := CheckInvariants(prev, next, r); ierr != nil {
			c.t.Fatalf("invariants after %v: %v", cmd, ierr)
		}
		if perr := CheckPromotion(prev, next, cmd); perr != nil {
			c.t.Fatal(perr)
		}
	}
	c.st = next
	return r, nil
}

func (c *cluster) must(cmd *mgrv1.Command) Result {
	c.t.Helper()
	r, err := c.apply(cmd)
	if err != nil {
		c.t.Fatalf("%v: %v", cmd, err)
	}
	return r
}

func (c *cluster) auth(name string) uint64 {
	c.t.Helper()
	return c.must(authCmd(name)).GID
}

func (c *cluster) beacon(gid uint64, name string) Result {
	c.t.Helper()
	return c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: gid, Name: name}))
}

// join authenticates a name and sends its first beacon.
func (c *cluster) join(name string) uint64 {
	c.t.Helper()
	gid := c.auth(name)
	c.beacon(gid, name)
	return gid
}

func (c *cluster) m() *mgrv1.MgrMap { return c.st.GetMap() }

func authCmd(name string) *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_Authenticate{Authenticate: &mgrv1.AuthenticateOp{Name: name}}}
}

func beaconCmd(b *mgrv1.BeaconRequest) *mgrv1.Command {
	if b.Fsid == "" {
		b.Fsid = fsid
	}
	return &mgrv1.Command{Op: &mgrv1.Command_Beacon{Beacon: b}}
}

func leaveCmd(gid uint64, name string) *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_Leave{Leave: &mgrv1.LeaveOp{Fsid: fsid, Gid: gid, Name: name}}}
}

func dropCmd(gids ...uint64) *mgrv1.Command {
	op := &mgrv1.DropOp{}
	for _, g := range gids {
		op.Gids = append(op.Gids, &mgrv1.SilentGid{Gid: g, SilentMs: 6100})
	}
	return &mgrv1.Command{Op: &mgrv1.Command_Drop{Drop: op}}
}

func failCmd(who string) *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_Fail{Fail: &mgrv1.FailOp{Who: who, Actor: "client.admin"}}}
}

func moduleCmd(name string, enable, force bool) *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_Module{Module: &mgrv1.ModuleOp{Name: name, Enable: enable, Force: force, Actor: "client.admin"}}}
}

func downCmd(down bool) *mgrv1.Command {
	return &mgrv1.Command{Op: &mgrv1.Command_SetFlags{SetFlags: &mgrv1.SetFlagsOp{Down: down, Actor: "client.admin"}}}
}

func standbyNames(m *mgrv1.MgrMap) []string {
	var out []string
	for _, s := range m.GetStandbys() {
		out = append(out, s.GetName())
	}
	return out
}

func TestBootstrapOnce(t *testing.T) {
	c := newCluster(t, 0)
	if c.m().GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_BOOTSTRAP || c.st.GetHistoryLimit() != DefaultHistoryLimit {
		t.Fatalf("bootstrap map: %v limit %d", c.m(), c.st.GetHistoryLimit())
	}
	_, err := c.apply(&mgrv1.Command{Op: &mgrv1.Command_Bootstrap{Bootstrap: &mgrv1.BootstrapOp{Fsid: "other"}}})
	if !errors.Is(err, ErrBootstrapped) {
		t.Fatalf("second bootstrap: %v", err)
	}
	if _, _, err := Apply(&mgrv1.State{}, authCmd("x")); !errors.Is(err, ErrNotBootstrapped) {
		t.Fatalf("command before bootstrap: %v", err)
	}
}

func TestAuthenticateIssuesGidsWithoutNewEpoch(t *testing.T) {
	c := newCluster(t, 0)
	a, b := c.auth("x"), c.auth("x")
	if a != 1 || b != 2 || c.m().GetEpoch() != 1 {
		t.Fatalf("gids %d %d epoch %d", a, b, c.m().GetEpoch())
	}
}

func TestFirstBeaconPromotesAtOnce(t *testing.T) {
	c := newCluster(t, 0)
	x := c.auth("x")
	r := c.beacon(x, "x")
	m := c.m()
	if !r.Changed || r.Standing != mgrv1.Standing_STANDING_ACTIVE || m.GetActiveGid() != x || m.GetActiveEpoch() != m.GetEpoch() {
		t.Fatalf("result %+v map %v", r, m)
	}
	if m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED || !strings.Contains(m.GetReason(), "promoted x") {
		t.Fatalf("cause %v reason %q", m.GetCause(), m.GetReason())
	}
	y := c.auth("y")
	r = c.beacon(y, "y")
	if r.Standing != mgrv1.Standing_STANDING_STANDBY || c.m().GetActiveGid() != x || c.m().GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_STANDBY_ADDED {
		t.Fatalf("second manager: %+v %v", r, c.m())
	}
}

func TestBeaconChangesEpochOnlyOnChange(t *testing.T) {
	c := newCluster(t, 0)
	x := c.join("x")
	y := c.join("y")
	epoch := c.m().GetEpoch()
	for range 3 {
		if r := c.beacon(x, "x"); r.Changed {
			t.Fatal("repeated active beacon changed the map")
		}
		if r := c.beacon(y, "y"); r.Changed {
			t.Fatal("repeated standby beacon changed the map")
		}
	}
	if c.m().GetEpoch() != epoch {
		t.Fatalf("epoch moved to %d", c.m().GetEpoch())
	}
	r := c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: y, Name: "y", Metadata: map[string]string{"os": "linux"}}))
	if !r.Changed || c.m().GetStandbys()[0].GetMetadataDigest() == "" || c.st.GetMetadata()[y].GetValues()["os"] != "linux" {
		t.Fatalf("metadata change: %+v %v", r, c.m())
	}
}

func TestActiveReportsWhereItServes(t *testing.T) {
	c := newCluster(t, 0)
	x := c.join("x")
	b := &mgrv1.BeaconRequest{Gid: x, Name: "x", Available: true,
		ServerAddrs: []string{"127.0.0.1:6800"}, Services: map[string]string{"status": "http://127.0.0.1:6880/status/"},
		AvailableModules: []*mgrv1.ModuleInfo{{Name: "status", CanRun: true}}}
	r := c.must(beaconCmd(b))
	m := c.m()
	if !r.Changed || !m.GetAvailable() || m.GetActiveAddrs()[0] != "127.0.0.1:6800" || m.GetServices()["status"] == "" {
		t.Fatalf("map %v", m)
	}
	if m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_ACTIVE_UPDATED || m.GetActiveEpoch() != m.GetEpoch()-1 {
		t.Fatalf("cause %v active epoch %d epoch %d", m.GetCause(), m.GetActiveEpoch(), m.GetEpoch())
	}
	if r := c.must(beaconCmd(b)); r.Changed {
		t.Fatal("same available beacon changed the map")
	}
}

func TestStandbyClaimingAvailableIsStale(t *testing.T) {
	c := newCluster(t, 0)
	c.join("x")
	y := c.join("y")
	r := c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: y, Name: "y", Available: true, ServerAddrs: []string{"127.0.0.1:1"}}))
	if r.Standing != mgrv1.Standing_STANDING_STALE || r.Changed {
		t.Fatalf("result %+v", r)
	}
}

func TestSameNameNewGidReplaces(t *testing.T) {
	c := newCluster(t, 0)
	x := c.join("x")
	y := c.join("y")
	z := c.join("z")
	x2 := c.auth("x")
	c.beacon(x2, "x")
	m := c.m()
	// The old x may still serve: it is told to stop, not replaced at once.
	if m.GetActiveGid() != x || !m.GetActiveFailing() || m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_REPLACED {
		t.Fatalf("after active restart: %v", m)
	}
	if _, err := c.apply(beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x"})); !errors.Is(err, ErrStaleGID) {
		t.Fatalf("old gid beacon: %v", err)
	}
	c.must(leaveCmd(x, "x"))
	if m := c.m(); m.GetActiveGid() != y || m.GetActiveFailing() || !strings.Contains(m.GetReason(), "promoted y") {
		t.Fatalf("after the old active left: %v", m)
	}
	if got := standbyNames(c.m()); len(got) != 2 || got[0] != "z" || got[1] != "x" {
		t.Fatalf("standbys %v", got)
	}
	z2 := c.auth("z")
	c.beacon(z2, "z")
	if got := c.m().GetStandbys(); len(got) != 2 || got[1].GetGid() != z2 || got[0].GetGid() != x2 {
		t.Fatalf("standby restart: %v (old z %d)", got, z)
	}
}

func TestFailingActiveIsToldStale(t *testing.T) {
	c := newCluster(t, 0)
	x := c.join("x")
	c.join("y")
	c.must(failCmd("x"))
	r := c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", Available: true, ServerAddrs: []string{"127.0.0.1:9"}}))
	if r.Standing != mgrv1.Standing_STANDING_STALE || r.Changed {
		t.Fatalf("failing active's beacon: %+v", r)
	}
	if r := c.must(failCmd("x")); r.Changed {
		t.Fatal("failing an active twice made a new map")
	}
}

func TestPromotionPolicy(t *testing.T) {
	type sb struct {
		name     string
		priority int32
		zone     string
	}
	tests := map[string]struct {
		activeZone string
		standbys   []sb
		drop       mgrv1.DropReason
		want       string
		reason     string
	}{
		"lowest gid":              {standbys: []sb{{"a", 0, ""}, {"b", 0, ""}}, want: "a"},
		"highest priority":        {standbys: []sb{{"a", 0, ""}, {"b", 5, ""}, {"c", 3, ""}}, want: "b", reason: "priority 5"},
		"outside the failed zone": {activeZone: "z1", standbys: []sb{{"a", 0, "z1"}, {"b", 0, "z2"}}, want: "b", reason: `outside failed zone "z1"`},
		"priority beats zone":     {activeZone: "z1", standbys: []sb{{"a", 9, "z1"}, {"b", 0, "z2"}}, want: "a", reason: "priority 9"},
		"zone only on failure":    {activeZone: "z1", standbys: []sb{{"a", 0, "z1"}, {"b", 0, "z2"}}, drop: -1, want: "a"},
		"gone also avoids zone":   {activeZone: "z1", standbys: []sb{{"a", 0, "z1"}, {"b", 0, "z2"}}, drop: mgrv1.DropReason_DROP_REASON_GONE, want: "b", reason: "nothing listens"},
		"address taken: gone too": {activeZone: "z1", standbys: []sb{{"a", 0, "z1"}, {"b", 0, "z2"}}, drop: mgrv1.DropReason_DROP_REASON_ADDRESS_TAKEN, want: "b", reason: "another gid answers at its address"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 0)
			x := c.auth("x")
			c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", Zone: tc.activeZone}))
			c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", Zone: tc.activeZone, Available: true, ServerAddrs: []string{"127.0.0.1:1"}}))
			for _, s := range tc.standbys {
				g := c.auth(s.name)
				c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: g, Name: s.name, Priority: s.priority, Zone: s.zone}))
			}
			if tc.drop < 0 {
				c.must(leaveCmd(x, "x"))
			} else {
				c.must(&mgrv1.Command{Op: &mgrv1.Command_Drop{Drop: &mgrv1.DropOp{Gids: []*mgrv1.SilentGid{{Gid: x, SilentMs: 6500, Reason: tc.drop}}}}})
			}
			if got := c.m().GetActiveName(); got != tc.want || !strings.Contains(c.m().GetReason(), tc.reason) {
				t.Fatalf("promoted %s (reason %q), want %s with %q", got, c.m().GetReason(), tc.want, tc.reason)
			}
		})
	}
}

func TestSilentActiveIsReplacedByLowestGid(t *testing.T) {
	c := newCluster(t, 0)
	x := c.join("x")
	y := c.join("y")
	z := c.join("z")
	r := c.must(dropCmd(x, z))
	m := c.m()
	if !r.Changed || m.GetActiveGid() != y || m.GetActiveEpoch() != m.GetEpoch() || len(m.GetStandbys()) != 0 {
		t.Fatalf("map %v", m)
	}
	want := "promoted y: active x silent for 6.1 s"
	if m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_SILENT || !strings.HasPrefix(m.GetReason(), want) || !strings.Contains(m.GetReason(), "dropped standby z") {
		t.Fatalf("reason %q, want prefix %q", m.GetReason(), want)
	}
	if _, ok := c.st.GetMetadata()[x]; ok {
		t.Fatal("metadata of dropped gid kept")
	}
	if r := c.must(dropCmd(x)); r.Changed {
		t.Fatal("dropping an absent gid changed the map")
	}
	c.must(dropCmd(y))
	if c.m().GetActiveGid() != 0 || !strings.Contains(c.m().GetReason(), "no standby to promote") {
		t.Fatalf("last active dropped: %v", c.m())
	}
}

func TestLeave(t *testing.T) {
	c := newCluster(t, 0)
	x := c.join("x")
	y := c.join("y")
	z := c.join("z")
	c.must(leaveCmd(x, "x"))
	if m := c.m(); m.GetActiveGid() != y || m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_LEFT || !strings.Contains(m.GetReason(), "x (gid 1) left") {
		t.Fatalf("after active leave: %v", m)
	}
	c.must(leaveCmd(z, "z"))
	if len(c.m().GetStandbys()) != 0 {
		t.Fatalf("standby leave: %v", c.m())
	}
	p := c.auth("p")
	if r := c.must(leaveCmd(p, "p")); r.Changed {
		t.Fatal("pending leave changed the map")
	}
	if _, err := c.apply(beaconCmd(&mgrv1.BeaconRequest{Gid: p, Name: "p"})); !errors.Is(err, ErrStaleGID) {
		t.Fatalf("beacon after pending leave: %v", err)
	}
}

func TestFail(t *testing.T) {
	tests := map[string]struct {
		who        string
		wantErr    error
		wantFailed string
		wantActive string
	}{
		"the active":        {who: "", wantFailed: "x", wantActive: "x"},
		"active by name":    {who: "x", wantFailed: "x", wantActive: "x"},
		"active by gid":     {who: "1", wantFailed: "x", wantActive: "x"},
		"standby by name":   {who: "z", wantFailed: "z", wantActive: "x"},
		"standby by gid":    {who: "3", wantFailed: "z", wantActive: "x"},
		"unknown name":      {who: "nobody", wantErr: ErrNotFound},
		"unknown gid":       {who: "99", wantErr: ErrNotFound},
		"malformed name":    {who: "-x", wantErr: ErrInvalid},
		"oversize argument": {who: strings.Repeat("a", MaxWhoLen+1), wantErr: ErrInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 0)
			c.join("x")
			c.join("y")
			c.join("z")
			before := c.st
			r, err := c.apply(failCmd(tc.who))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || c.st != before {
					t.Fatalf("err %v, want %v; state changed: %v", err, tc.wantErr, c.st != before)
				}
				return
			}
			if err != nil || r.FailedName != tc.wantFailed || c.m().GetActiveName() != tc.wantActive {
				t.Fatalf("err %v failed %q active %q", err, r.FailedName, c.m().GetActiveName())
			}
			if c.m().GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_ADMIN_FAIL || !strings.Contains(c.m().GetReason(), "failed by client.admin") {
				t.Fatalf("reason %q", c.m().GetReason())
			}
			if tc.wantFailed == "x" {
				// The active is only told to stop; y follows when x leaves.
				if !c.m().GetActiveFailing() {
					t.Fatal("failed active not flagged failing")
				}
				c.must(leaveCmd(1, "x"))
				if c.m().GetActiveName() != "y" {
					t.Fatalf("after leave: %v", c.m())
				}
			}
		})
	}
	c := newCluster(t, 0)
	if _, err := c.apply(failCmd("")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fail with no active: %v", err)
	}
}

func TestModules(t *testing.T) {
	c := newCluster(t, 0)
	x := c.auth("x")
	c.must(beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", AvailableModules: []*mgrv1.ModuleInfo{
		{Name: "status", CanRun: true}, {Name: "prometheus", CanRun: true}, {Name: "broken", ErrorString: "needs a disk"},
	}}))
	tests := []struct {
		name          string
		cmd           *mgrv1.Command
		wantErr       error
		wantChanged   bool
		reasonContain string
	}{
		{"enable reported", moduleCmd("prometheus", true, false), nil, true, "module prometheus enabled by client.admin"},
		{"enable again", moduleCmd("prometheus", true, false), nil, false, ""},
		{"enable always-on", moduleCmd("status", true, false), nil, false, ""},
		{"enable unknown", moduleCmd("nosuch", true, false), ErrNotFound, false, ""},
		{"enable cannot run", moduleCmd("broken", true, false), ErrCannotRun, false, ""},
		{"force cannot run", moduleCmd("broken", true, true), nil, true, "module broken enabled"},
		{"force unknown", moduleCmd("nosuch", true, true), nil, true, "module nosuch enabled"},
		{"disable always-on", moduleCmd("status", false, false), ErrAlwaysOn, false, ""},
		{"disable enabled", moduleCmd("prometheus", false, false), nil, true, "module prometheus disabled"},
		{"disable reported but off", moduleCmd("prometheus", false, false), nil, false, ""},
		{"disable unknown", moduleCmd("other", false, false), ErrNotFound, false, ""},
		{"bad name", moduleCmd("Bad-Name", true, true), ErrInvalid, false, ""},
	}
	for _, tc := range tests {
		before := c.st
		r, err := c.apply(tc.cmd)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) || c.st != before {
				t.Fatalf("%s: err %v want %v", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || r.Changed != tc.wantChanged || !strings.Contains(c.m().GetReason(), tc.reasonContain) {
			t.Fatalf("%s: err %v changed %v reason %q", tc.name, err, r.Changed, c.m().GetReason())
		}
	}
	if got := c.m().GetModules(); len(got) != 2 || got[0] != "broken" || got[1] != "nosuch" {
		t.Fatalf("modules %v", got)
	}
}

func TestDownStopsPromotion(t *testing.T) {
	c := newCluster(t, 0)
	x := c.join("x")
	y := c.join("y")
	c.must(downCmd(true))
	m := c.m()
	if m.GetActiveGid() != x || !m.GetActiveFailing() || !m.GetDown() || m.GetCause() != mgrv1.ChangeCause_CHANGE_CAUSE_FLAGS {
		t.Fatalf("after down: %v", m)
	}
	c.must(leaveCmd(x, "x"))
	if c.m().GetActiveGid() != 0 {
		t.Fatalf("promoted while down after the active left: %v", c.m())
	}
	if r := c.beacon(y, "y"); r.Standing != mgrv1.Standing_STANDING_STANDBY || c.m().GetActiveGid() != 0 {
		t.Fatalf("beacon while down promoted: %v", c.m())
	}
	z := c.join("z")
	if c.m().GetActiveGid() != 0 {
		t.Fatalf("new manager promoted while down (gid %d)", z)
	}
	if r := c.must(downCmd(true)); r.Changed {
		t.Fatal("setting down twice changed the map")
	}
	c.must(downCmd(false))
	if c.m().GetActiveGid() != y || !strings.Contains(c.m().GetReason(), "down unset by client.admin; promoted y") {
		t.Fatalf("after unset: %v", c.m())
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	long := strings.Repeat("k", MaxMetadataKeyLen+1)
	bigMeta := map[string]string{}
	for i := range MaxMetadataKeys + 1 {
		bigMeta[strings.Repeat("k", i+1)] = "v"
	}
	tests := map[string]struct {
		cmd  func(x, y uint64) *mgrv1.Command
		want error
	}{
		"empty command":   {func(x, y uint64) *mgrv1.Command { return &mgrv1.Command{} }, ErrInvalid},
		"auth wrong fsid": {func(x, y uint64) *mgrv1.Command { c := authCmd("w"); c.GetAuthenticate().Fsid = "nope"; return c }, ErrWrongFSID},
		"auth empty name": {func(x, y uint64) *mgrv1.Command { return authCmd("") }, ErrInvalid},
		"auth bad name":   {func(x, y uint64) *mgrv1.Command { return authCmd("a b") }, ErrInvalid},
		"auth long name":  {func(x, y uint64) *mgrv1.Command { return authCmd(strings.Repeat("a", MaxNameLen+1)) }, ErrInvalid},
		"beacon no fsid": {func(x, y uint64) *mgrv1.Command {
			c := beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x"})
			c.GetBeacon().Fsid = ""
			return c
		}, ErrInvalid},
		"beacon wrong fsid": {func(x, y uint64) *mgrv1.Command { return beaconCmd(&mgrv1.BeaconRequest{Fsid: "f", Gid: x, Name: "x"}) }, ErrWrongFSID},
		"beacon gid 0":      {func(x, y uint64) *mgrv1.Command { return beaconCmd(&mgrv1.BeaconRequest{Name: "x"}) }, ErrInvalid},
		"never issued gid":  {func(x, y uint64) *mgrv1.Command { return beaconCmd(&mgrv1.BeaconRequest{Gid: 77, Name: "x"}) }, ErrNotFound},
		"another's gid":     {func(x, y uint64) *mgrv1.Command { return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "y"}) }, ErrNotOwner},
		"metadata key count": {func(x, y uint64) *mgrv1.Command {
			return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", Metadata: bigMeta})
		}, ErrInvalid},
		"metadata key len": {func(x, y uint64) *mgrv1.Command {
			return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", Metadata: map[string]string{long: "v"}})
		}, ErrInvalid},
		"metadata value len": {func(x, y uint64) *mgrv1.Command {
			return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", Metadata: map[string]string{"k": strings.Repeat("v", MaxMetadataValueLen+1)}})
		}, ErrInvalid},
		"metadata bad utf8": {func(x, y uint64) *mgrv1.Command {
			return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", Metadata: map[string]string{"k": "\xff"}})
		}, ErrInvalid},
		"bad addr": {func(x, y uint64) *mgrv1.Command {
			return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", ServerAddrs: []string{"nohost"}})
		}, ErrInvalid},
		"bad port": {func(x, y uint64) *mgrv1.Command {
			return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", ServerAddrs: []string{"h:99999"}})
		}, ErrInvalid},
		"bad service url": {func(x, y uint64) *mgrv1.Command {
			return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", Services: map[string]string{"status": "ftp://x"}})
		}, ErrInvalid},
		"dup module": {func(x, y uint64) *mgrv1.Command {
			return beaconCmd(&mgrv1.BeaconRequest{Gid: x, Name: "x", AvailableModules: []*mgrv1.ModuleInfo{{Name: "a"}, {Name: "a"}}})
		}, ErrInvalid},
		"leave another's gid": {func(x, y uint64) *mgrv1.Command { return leaveCmd(y, "x") }, ErrNotOwner},
		"leave wrong fsid": {func(x, y uint64) *mgrv1.Command {
			c := leaveCmd(x, "x")
			c.GetLeave().Fsid = "nope"
			return c
		}, ErrWrongFSID},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 0)
			x := c.join("x")
			y := c.join("y")
			before := c.st
			_, err := c.apply(tc.cmd(x, y))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if c.st != before || c.m().GetEpoch() != before.GetMap().GetEpoch() {
				t.Fatal("a refused command changed the state")
			}
			if err.Error() == tc.want.Error() {
				t.Fatalf("message %q does not say what was wrong", err)
			}
		})
	}
}

func TestHistoryIsTrimmedAndLookedUp(t *testing.T) {
	c := newCluster(t, 5)
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		c.join(n)
	}
	cur := c.m().GetEpoch()
	if cur != 8 || len(c.st.GetHistory()) != 5 {
		t.Fatalf("epoch %d, kept %d", cur, len(c.st.GetHistory()))
	}
	m, err := At(c.st, 6)
	if err != nil || m.GetEpoch() != 6 {
		t.Fatalf("At(6): %v %v", m.GetEpoch(), err)
	}
	if _, err := At(c.st, 3); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("At(3): %v", err)
	}
	if _, err := At(c.st, 9); !errors.Is(err, ErrFuture) {
		t.Fatalf("At(9): %v", err)
	}
	got, err := Since(c.st, 3)
	if err != nil || len(got) != 5 || got[0].GetEpoch() != 4 {
		t.Fatalf("Since(3): %d maps, %v", len(got), err)
	}
	if _, err := Since(c.st, 2); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("Since(2): %v", err)
	}
	if got, err := Since(c.st, cur); err != nil || len(got) != 0 {
		t.Fatalf("Since(cur): %v %v", got, err)
	}
	if e := Entry(c.m()); e.GetEpoch() != cur || e.GetNumStandbys() != 6 || e.GetReason() == "" {
		t.Fatalf("entry %v", e)
	}
}

func TestPendingGidsAreBounded(t *testing.T) {
	c := newCluster(t, 0)
	first := c.auth("p")
	for range MaxPending {
		c.auth("p")
	}
	if len(c.st.GetPending()) != MaxPending {
		t.Fatalf("%d pending", len(c.st.GetPending()))
	}
	if _, err := c.apply(beaconCmd(&mgrv1.BeaconRequest{Gid: first, Name: "p"})); !errors.Is(err, ErrStaleGID) {
		t.Fatalf("evicted gid: %v", err)
	}
}
