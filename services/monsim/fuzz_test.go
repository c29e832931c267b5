package monsim

import (
	"context"
	"math"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// FuzzRequests sends fuzzed request messages of every type to a secure
// in-process monitor, as client.admin and as mgr.x, through the guard and
// the handlers (every RPC but quorum membership): no call may fail with Internal or Unknown (a panic or an
// unmapped error), epochs never go back, and the monitor keeps answering.
func FuzzRequests(f *testing.F) {
	seeds := []proto.Message{
		&mgrv1.AuthenticateRequest{Name: "x"},
		&mgrv1.BeaconRequest{Gid: 1, Name: "x", Available: true, ServerAddrs: []string{"127.0.0.1:1"}, Metadata: map[string]string{"os": "linux"}},
		&mgrv1.LeaveRequest{Gid: 1, Name: "x"},
		&mgrv1.GetMapRequest{Epoch: 1},
		&mgrv1.ListHistoryRequest{SinceEpoch: 1, Limit: 2},
		&mgrv1.FailManagerRequest{Who: "x"},
		&mgrv1.EnableModuleRequest{Name: "dashboard", Force: true},
		&mgrv1.DisableModuleRequest{Name: "status"},
		&mgrv1.SetFlagsRequest{Down: true},
		&mgrv1.GetMetadataRequest{Name: "x"},
		&mgrv1.CountMetadataRequest{Property: "os"},
		&mgrv1.AddAuthRequest{Name: "client.f", Caps: []string{"read"}},
		&mgrv1.SetAuthCapsRequest{Name: "client.f", Caps: []string{"admin"}},
		&mgrv1.RotateAuthRequest{Name: "client.f"},
		&mgrv1.RemoveAuthRequest{Name: "client.admin"},
		&mgrv1.GetAuthRequest{Name: "mgr.x"},
		&mgrv1.SetModuleOptionRequest{Module: "dashboard", Option: "refresh", Value: "5s"},
		&mgrv1.GetModuleOptionRequest{Module: "dashboard", Option: "refresh"},
		&mgrv1.RemoveModuleOptionRequest{Module: "dashboard", Option: "refresh"},
		&mgrv1.ListModuleOptionsRequest{Module: "dashboard"},
		&mgrv1.ListBeaconsRequest{},
		&mgrv1.ReportStreamClosedRequest{Gid: 1},
	}
	for i, m := range seeds {
		b, _ := proto.Marshal(m)
		f.Add(uint8(i), false, b)
		f.Add(uint8(i), true, b)
	}
	fm := startFuzzMonitor(f)
	f.Fuzz(func(t *testing.T, kind uint8, asMgr bool, payload []byte) {
		c := fm.admin
		if asMgr {
			c = fm.x
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		before := fm.epoch(t)
		err := fuzzCall(ctx, c, kind, payload)
		switch status.Code(err) {
		case codes.Internal, codes.Unknown:
			t.Fatalf("kind %d: %v", kind, err)
		}
		if after := fm.epoch(t); after < before {
			t.Fatalf("epoch went back from %d to %d", before, after)
		}
	})
}

// fuzzMon is the monitor every FuzzRequests input is sent to.
type fuzzMon struct {
	admin, x clients
}

// startFuzzMonitor starts a secure monitor (limits raised: the fuzzer calls
// as fast as it can) with mgr.x in the map, for the whole fuzz run.
func startFuzzMonitor(f *testing.F) *fuzzMon {
	f.Helper()
	cfg := secureConfig(f)
	cfg.AuthRate, cfg.AuthBurst, cfg.BeaconRate, cfg.BeaconBurst = maxRate, maxRate, maxRate, maxRate
	srv, err := New(cfg, hclog.NewNullLogger())
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	f.Cleanup(func() {
		cancel()
		<-done
	})
	m := &fuzzMon{admin: dialAs(f, srv.Addr(), clientOptions(f, cfg, "client.admin")...), x: dialAs(f, srv.Addr(), clientOptions(f, cfg, "mgr.x")...)}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		a, err := m.x.mon.Authenticate(context.Background(), &mgrv1.AuthenticateRequest{Name: "x"})
		if err == nil {
			if _, err := m.x.mon.Beacon(context.Background(), &mgrv1.BeaconRequest{Fsid: a.GetFsid(), Gid: a.GetGid(), Name: "x"}); err != nil {
				f.Fatal(err)
			}
			return m
		}
		if time.Now().After(deadline) {
			f.Fatalf("the monitor did not start: %v", err)
		}
	}
}

func (m *fuzzMon) epoch(t *testing.T) uint64 {
	t.Helper()
	r, err := m.admin.admin.GetStat(context.Background(), &mgrv1.GetStatRequest{})
	if err != nil {
		t.Fatalf("the monitor stopped answering: %v", err)
	}
	return r.GetEpoch()
}

// fuzzCaller: the fuzzer's own entities are not changed (a rotated or
// removed key would lock it out, and every later input would fail).
func fuzzCaller(name string) bool { return name == "client.admin" || name == "mgr.x" }

func fuzzCall(ctx context.Context, c clients, kind uint8, payload []byte) error {
	un := func(m proto.Message) bool { return proto.Unmarshal(payload, m) == nil }
	var err error
	// Quorum membership is left out: adding a voter that does not exist
	// takes the quorum away, by design, and every later input would fail.
	switch kind % 22 {
	case 0:
		if r := (&mgrv1.AuthenticateRequest{}); un(r) {
			_, err = c.mon.Authenticate(ctx, r)
		}
	case 1:
		if r := (&mgrv1.BeaconRequest{}); un(r) {
			_, err = c.mon.Beacon(ctx, r)
		}
	case 2:
		if r := (&mgrv1.LeaveRequest{}); un(r) {
			_, err = c.mon.Leave(ctx, r)
		}
	case 3:
		if r := (&mgrv1.GetMapRequest{}); un(r) {
			_, err = c.admin.GetMap(ctx, r)
		}
	case 4:
		if r := (&mgrv1.ListHistoryRequest{}); un(r) {
			_, err = c.admin.ListHistory(ctx, r)
		}
	case 5:
		if r := (&mgrv1.FailManagerRequest{}); un(r) {
			_, err = c.admin.FailManager(ctx, r)
		}
	case 6:
		if r := (&mgrv1.EnableModuleRequest{}); un(r) {
			_, err = c.admin.EnableModule(ctx, r)
		}
	case 7:
		if r := (&mgrv1.DisableModuleRequest{}); un(r) {
			_, err = c.admin.DisableModule(ctx, r)
		}
	case 8:
		if r := (&mgrv1.SetFlagsRequest{}); un(r) {
			_, err = c.admin.SetFlags(ctx, r)
		}
	case 9:
		if r := (&mgrv1.GetMetadataRequest{}); un(r) {
			_, err = c.admin.GetMetadata(ctx, r)
		}
	case 10:
		if r := (&mgrv1.CountMetadataRequest{}); un(r) {
			_, err = c.admin.CountMetadata(ctx, r)
		}
	case 11:
		if r := (&mgrv1.AddAuthRequest{}); un(r) {
			_, err = c.admin.AddAuth(ctx, r)
		}
	case 12:
		if r := (&mgrv1.SetAuthCapsRequest{}); un(r) && !fuzzCaller(r.GetName()) {
			_, err = c.admin.SetAuthCaps(ctx, r)
		}
	case 13:
		if r := (&mgrv1.RotateAuthRequest{}); un(r) && !fuzzCaller(r.GetName()) {
			_, err = c.admin.RotateAuth(ctx, r)
		}
	case 14:
		if r := (&mgrv1.RemoveAuthRequest{}); un(r) && !fuzzCaller(r.GetName()) {
			_, err = c.admin.RemoveAuth(ctx, r)
		}
	case 15:
		if r := (&mgrv1.GetAuthRequest{}); un(r) {
			_, err = c.admin.GetAuth(ctx, r)
		}
	case 16:
		if r := (&mgrv1.SetModuleOptionRequest{}); un(r) {
			_, err = c.admin.SetModuleOption(ctx, r)
		}
	case 17:
		if r := (&mgrv1.GetModuleOptionRequest{}); un(r) {
			_, err = c.admin.GetModuleOption(ctx, r)
		}
	case 18:
		if r := (&mgrv1.RemoveModuleOptionRequest{}); un(r) {
			_, err = c.admin.RemoveModuleOption(ctx, r)
		}
	case 19:
		if r := (&mgrv1.ListModuleOptionsRequest{}); un(r) {
			_, err = c.admin.ListModuleOptions(ctx, r)
		}
	case 20:
		if r := (&mgrv1.ListBeaconsRequest{}); un(r) {
			_, err = c.admin.ListBeacons(ctx, r)
		}
	case 21:
		if r := (&mgrv1.ReportStreamClosedRequest{}); un(r) {
			_, err = c.mon.ReportStreamClosed(ctx, r)
		}
	}
	return err
}

// FuzzConfig checks Config.Validate on fuzzed values: it never panics, and
// whatever it accepts keeps the bounds the monitor relies on.
func FuzzConfig(f *testing.F) {
	d := DefaultConfig()
	f.Add(d.Addr, d.NodeID, "", int64(d.BeaconPeriod), int64(d.Grace), int64(d.FenceTimeout), int64(d.Tick), d.HistoryLimit, d.MaxMsgSize, d.AuthRate, d.AuthBurst, d.MaxWatches, "")
	f.Add("nowhere", "-x", "f", int64(-1), int64(0), int64(math.MaxInt64), int64(1), -1, 1, math.NaN(), 0, 0, "m1=a:1,m1=a:1")
	f.Fuzz(func(t *testing.T, addr, id, fsid string, beacon, grace, fence, tick int64, history, maxMsg int, authRate float64, burst, watches int, peers string) {
		c := DefaultConfig()
		c.Insecure = true
		c.Addr, c.NodeID, c.FSID = addr, id, fsid
		c.BeaconPeriod, c.Grace, c.FenceTimeout, c.Tick = time.Duration(beacon), time.Duration(grace), time.Duration(fence), time.Duration(tick)
		c.HistoryLimit, c.MaxMsgSize, c.AuthRate, c.AuthBurst, c.MaxWatches = history, maxMsg, authRate, burst, watches
		if peers != "" {
			c.Peers = splitComma(peers)
		}
		if c.Validate() != nil {
			return
		}
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			t.Fatalf("accepted addr %q", c.Addr)
		}
		if c.Grace <= c.FenceTimeout+c.BeaconPeriod+LeaseMargin || c.FenceTimeout <= c.BeaconPeriod {
			t.Fatalf("accepted timings beacon %v fence %v grace %v", c.BeaconPeriod, c.FenceTimeout, c.Grace)
		}
		if c.MaxMsgSize < MinMaxMsgSize || c.MaxMsgSize > MaxMaxMsgSize || !(c.AuthRate > 0) || c.AuthBurst < 1 || c.MaxWatches < 1 {
			t.Fatalf("accepted limits %+v", c)
		}
	})
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
