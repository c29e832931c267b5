package mgrmap

import (
	"strconv"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// FuzzApply drives the state machine with random command sequences decoded
// from the fuzzer's bytes and checks the invariants after every step.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 1, 1, 1, 3, 0, 4, 1, 5, 2, 6, 1, 7, 0})
	f.Add([]byte{0, 1, 1, 0, 0, 2, 1, 1, 2, 1, 7, 1, 7, 0, 3, 1, 0, 1, 1, 3})
	f.Add([]byte{0, 0, 0, 1, 1, 0, 1, 1, 8, 0, 8, 1, 8, 2, 6, 3, 2, 0, 5, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		names := []string{"x", "y", "z", "w"}
		modules := []string{"status", "prometheus", "dashboard", "nosuch"}
		entities := []string{"client.admin", "mgr.x", "client.ro", "osd.1"}
		keys := []string{"AAAAAAAAAAAAAAAAAAAAAA==", "BBBBBBBBBBBBBBBBBBBBBB==", "", "short"}
		capSets := [][]string{{"admin"}, {"mgr"}, {"read"}, {"mgr", "read"}, {"root"}, nil}
		st, _, err := Apply(&mgrv1.State{}, &mgrv1.Command{
			Time: timestamppb.New(time.Unix(0, 0)),
			Op: &mgrv1.Command_Bootstrap{Bootstrap: &mgrv1.BootstrapOp{
				Fsid: fsid, AlwaysOnModules: []string{"status"}, HistoryLimit: 8,
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var issued []uint64
		gidName := map[uint64]string{}
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		pickGID := func() (uint64, string) {
			b := next()
			if len(issued) == 0 || b == 255 {
				return uint64(b), names[int(b)%len(names)]
			}
			g := issued[int(b)%len(issued)]
			if b%17 == 16 { // a forged pairing of gid and name
				return g, names[int(b)%len(names)]
			}
			return g, gidName[g]
		}
		for step := 0; len(data) > 0 && step < 200; step++ {
			cmd := &mgrv1.Command{Time: timestamppb.New(time.Unix(int64(step), 0))}
			switch next() % 12 {
			case 0:
				n := names[int(next())%len(names)]
				cmd.Op = &mgrv1.Command_Authenticate{Authenticate: &mgrv1.AuthenticateOp{Name: n, Entity: "mgr." + n}}
			case 10, 11:
				b := next()
				e := &mgrv1.AuthEntity{Name: entities[int(b>>3)%len(entities)], Key: keys[int(b>>5)%len(keys)],
					PendingKey: keys[int(b>>6)%len(keys)], Caps: capSets[int(next())%len(capSets)]}
				op := &mgrv1.AuthOp{Action: mgrv1.AuthAction(b % 8), Entity: e}
				if op.Action == mgrv1.AuthAction_AUTH_ACTION_SEED {
					op.Seed = []*mgrv1.AuthEntity{e}
				}
				cmd.Op = &mgrv1.Command_Auth{Auth: op}
			case 1, 2:
				gid, name := pickGID()
				flags := next()
				b := &mgrv1.BeaconRequest{Fsid: fsid, Gid: gid, Name: name, Available: flags&1 == 1}
				if flags&1 == 1 {
					b.ServerAddrs = []string{"127.0.0.1:" + strconv.Itoa(6800+int(flags>>4))}
					b.Services = map[string]string{"status": "http://127.0.0.1:6880/status/"}
				}
				if flags&2 == 2 {
					b.AvailableModules = []*mgrv1.ModuleInfo{{Name: "prometheus", CanRun: flags&4 == 4, Options: []*mgrv1.ModuleOption{
						{Name: "interval", Type: mgrv1.OptionType_OPTION_TYPE_DURATION, DefaultValue: "5s", Min: "1s", Max: "1m"},
					}}}
				}
				if flags&8 == 8 {
					b.Metadata = map[string]string{"os": "linux", "v": strconv.Itoa(int(flags >> 4))}
				}
				b.Priority = int32(flags>>5) - 2
				b.Zone = []string{"", "a", "b"}[int(flags>>6)%3]
				cmd.Op = &mgrv1.Command_Beacon{Beacon: b}
			case 3:
				gid, name := pickGID()
				cmd.Op = &mgrv1.Command_Leave{Leave: &mgrv1.LeaveOp{Fsid: fsid, Gid: gid, Name: name}}
			case 4:
				gid, _ := pickGID()
				g2, _ := pickGID()
				why := mgrv1.DropReason(next() % 4)
				cmd.Op = &mgrv1.Command_Drop{Drop: &mgrv1.DropOp{Gids: []*mgrv1.SilentGid{{Gid: gid, SilentMs: 7000, Reason: why}, {Gid: g2}}}}
			case 5:
				who := ""
				if b := next(); b%3 == 1 {
					who = names[int(b)%len(names)]
				} else if b%3 == 2 {
					gid, _ := pickGID()
					who = strconv.FormatUint(gid, 10)
				}
				cmd.Op = &mgrv1.Command_Fail{Fail: &mgrv1.FailOp{Who: who}}
			case 6, 7:
				b := next()
				cmd.Op = &mgrv1.Command_Module{Module: &mgrv1.ModuleOp{Name: modules[int(b)%len(modules)], Enable: b&4 == 4, Force: b&8 == 8}}
			case 8:
				cmd.Op = &mgrv1.Command_SetFlags{SetFlags: &mgrv1.SetFlagsOp{Down: next()%2 == 1}}
			case 9:
				b := next()
				cmd.Op = &mgrv1.Command_Config{Config: &mgrv1.ConfigOp{
					Module: modules[int(b)%len(modules)], Option: []string{"interval", "other"}[int(b>>3)%2],
					Value: []string{"2s", "0s", "90s", "x"}[int(b>>4)%4], Remove: b&64 == 64,
				}}
			}
			nst, r, err := Apply(st, cmd)
			if err != nil {
				if nst != st {
					t.Fatalf("step %d: refused command %v returned a new state", step, cmd)
				}
				continue
			}
			if ierr := CheckInvariants(st, nst, r); ierr != nil {
				t.Fatalf("step %d: %v: %v", step, cmd, ierr)
			}
			if perr := CheckPromotion(st, nst, cmd); perr != nil {
				t.Fatalf("step %d: %v", step, perr)
			}
			if r.GID != 0 {
				issued = append(issued, r.GID)
				gidName[r.GID] = cmd.GetAuthenticate().GetName()
			}
			st = nst
		}
	})
}
