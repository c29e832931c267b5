package standby

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/montest"
)

// counterModule counts its Run starts and stops, serves GET /<name>/ and the
// gRPC service test.Counter.
type counterModule struct {
	name   string
	canRun error
	// noGRPC leaves test.Counter to another module.
	noGRPC bool
	starts atomic.Int32
	stops  atomic.Int32
}

func (c *counterModule) Name() string  { return c.name }
func (c *counterModule) CanRun() error { return c.canRun }

func (c *counterModule) Register(r Registrar) {
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s on %s", c.name, r.Host().Name())
	}))
	if !c.noGRPC {
		r.GRPC().RegisterService(&counterServiceDesc, c)
	}
}

func (c *counterModule) Run(ctx context.Context, h Host) error {
	c.starts.Add(1)
	defer c.stops.Add(1)
	if h.ActiveSince().IsZero() || h.GID() == 0 {
		return errors.New("run while not active")
	}
	<-ctx.Done()
	return nil
}

var counterServiceDesc = grpc.ServiceDesc{
	ServiceName: "test.Counter",
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Get", Handler: counterGet}},
}

func counterGet(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
	in := new(emptypb.Empty)
	if err := dec(in); err != nil {
		return nil, err
	}
	h := func(context.Context, any) (any, error) {
		return wrapperspb.Int32(srv.(*counterModule).starts.Load()), nil
	}
	if icpt == nil {
		return h(ctx, in)
	}
	return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Counter/Get"}, h)
}

// lastBeacon returns the newest beacon from gid.
func lastBeacon(mon *montest.Monitor, gid uint64) (montest.Beacon, bool) {
	bs := mon.Beacons(gid)
	if len(bs) == 0 {
		return montest.Beacon{}, false
	}
	return bs[len(bs)-1], true
}

// waitActive waits until r serves and the monitor's map says available.
func waitActive(t *testing.T, mon *montest.Monitor, r *running) {
	t.Helper()
	eventually(t, "the manager is active and available", func() bool {
		m := mon.Map()
		return r.Active() && m.GetActiveGid() == r.GID() && m.GetAvailable()
	})
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func httpGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp, string(b)
}

// refused reports whether nothing listens at addr any more.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	_ = c.Close()
	return false
}

// standbyAnswers reports whether the manager listening at grpcAddr and
// httpAddr answers as a standby: HTTP redirected or refused without the
// active-epoch header, ManagerService refused naming a standby, and health
// NOT_SERVING for it.
func standbyAnswers(grpcAddr, httpAddr string) bool {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("http://" + httpAddr + "/status/")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if resp.Header.Get("Mgr-Active-Epoch") != "" ||
		(resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusServiceUnavailable) {
		return false
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = mgrv1.NewManagerServiceClient(conn).GetStatus(ctx, &mgrv1.GetStatusRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "standby") {
		return false
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "mgr.v1.ManagerService"})
	return err == nil && h.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
}

func TestStandbyAuthenticatesAndBeacons(t *testing.T) {
	mon := montest.Start(t)
	other := mon.AddStandby("other")
	if _, err := mon.MakeActive(other); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, mon, "x")
	cfg.Priority, cfg.Zone = -7, "rack-1"
	r := start(t, cfg)

	eventually(t, "a gid is issued", func() bool { return r.GID() != 0 })
	gid := r.GID()
	eventually(t, "three beacons arrive", func() bool { return len(mon.Beacons(gid)) >= 3 })
	b, _ := lastBeacon(mon, gid)
	if b.Standing != mgrv1.Standing_STANDING_STANDBY {
		t.Errorf("standing = %v, want STANDBY", b.Standing)
	}
	for _, b := range mon.Beacons(gid) {
		if b.Req.GetPriority() != -7 || b.Req.GetZone() != "rack-1" {
			t.Fatalf("beacon priority %d zone %q, want -7 rack-1", b.Req.GetPriority(), b.Req.GetZone())
		}
	}
	if i := standbyIndex(mon.Map(), gid); i < 0 || mon.Map().GetStandbys()[i].GetZone() != "rack-1" {
		t.Errorf("standbys = %v, want gid %d in zone rack-1", mon.Map().GetStandbys(), gid)
	}
	// The map stream names the manager, for the monitor's crash check.
	eventually(t, "the map stream is open", func() bool { return len(mon.WatchRequests()) > 0 })
	if w := mon.WatchRequests()[0]; w.GetGid() != gid || w.GetName() != "x" {
		t.Errorf("WatchMap request %v, want gid %d name x", w, gid)
	}
	if b.Req.GetName() != "x" || b.Req.GetFsid() != montest.FSID || b.Req.GetAvailable() {
		t.Errorf("beacon = %v, want name x, fsid %s, not available", b.Req, montest.FSID)
	}
	if len(b.Req.GetServerAddrs()) != 0 || len(b.Req.GetServices()) != 0 {
		t.Errorf("standby beacon reports addrs %v services %v", b.Req.GetServerAddrs(), b.Req.GetServices())
	}
	for _, k := range []string{"hostname", "os", "arch", "cpus", "go_version", "mgrplane_version", "pid", "addr"} {
		if b.Req.GetMetadata()[k] == "" {
			t.Errorf("metadata %q missing in %v", k, b.Req.GetMetadata())
		}
	}
	if got := b.Req.GetMetadata()["addr"]; got != "127.0.0.1" {
		t.Errorf("metadata addr = %q, want 127.0.0.1", got)
	}
	mods := b.Req.GetAvailableModules()
	if len(mods) != 1 || mods[0].GetName() != "status" || !mods[0].GetCanRun() {
		t.Errorf("available_modules = %v, want status that can run", mods)
	}
	if r.Active() || r.GRPCAddr() == "" || r.HTTPAddr() == "" {
		t.Errorf("standby: Active %v GRPCAddr %q HTTPAddr %q", r.Active(), r.GRPCAddr(), r.HTTPAddr())
	}
	if !standbyAnswers(r.GRPCAddr(), r.HTTPAddr()) {
		t.Error("the standby does not answer as a standby")
	}
	eventually(t, "the manager holds the map naming it standby", func() bool {
		return standbyIndex(r.Map(), gid) >= 0
	})
}

func standbyIndex(m *mgrv1.MgrMap, gid uint64) int {
	return slices.IndexFunc(m.GetStandbys(), func(s *mgrv1.StandbyInfo) bool { return s.GetGid() == gid })
}

func TestPromotionServesStatus(t *testing.T) {
	mon := montest.Start(t)
	other := mon.AddStandby("other")
	if _, err := mon.MakeActive(other); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, mon, "x")
	// A period far beyond the test: every beacon seen is one sent at once
	// (on joining and on activation), not on the ticker; the lease must
	// outlast it.
	cfg.BeaconPeriod = time.Minute
	mon.SetLease(3 * time.Minute)
	r := start(t, cfg)
	eventually(t, "the manager joins as standby", func() bool { return standbyIndex(mon.Map(), r.GID()) >= 0 })

	epoch, err := mon.MakeActive(r.GID())
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, mon, r)
	m := mon.Map()
	if m.GetActiveEpoch() != epoch {
		t.Fatalf("active_epoch = %d, want %d", m.GetActiveEpoch(), epoch)
	}
	wantAddrs := []string{r.GRPCAddr(), r.HTTPAddr()}
	if !slices.Equal(m.GetActiveAddrs(), wantAddrs) {
		t.Errorf("active_addrs = %v, want %v", m.GetActiveAddrs(), wantAddrs)
	}
	wantURL := "http://" + r.HTTPAddr() + "/status/"
	if got := m.GetServices()["status"]; got != wantURL {
		t.Errorf("services[status] = %q, want %q", got, wantURL)
	}

	t.Run("HTTP", func(t *testing.T) {
		resp, body := httpGet(t, wantURL)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get("Mgr-Active-Epoch"); got != strconv.FormatUint(epoch, 10) {
			t.Errorf("Mgr-Active-Epoch = %q, want %d", got, epoch)
		}
		var st struct {
			GID              uint64          `json:"gid"`
			Name             string          `json:"name"`
			Epoch            uint64          `json:"epoch"`
			ActiveEpoch      uint64          `json:"active_epoch"`
			UptimeSeconds    float64         `json:"uptime_seconds"`
			ActiveForSeconds float64         `json:"active_for_seconds"`
			Modules          []string        `json:"modules"`
			Map              json.RawMessage `json:"map"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if st.GID != r.GID() || st.Name != "x" || st.ActiveEpoch != epoch || st.Epoch < epoch {
			t.Errorf("status = %+v, want gid %d name x active_epoch %d", st, r.GID(), epoch)
		}
		if !slices.Equal(st.Modules, []string{"status"}) {
			t.Errorf("modules = %v, want [status]", st.Modules)
		}
		if st.UptimeSeconds <= 0 || st.ActiveForSeconds <= 0 || st.ActiveForSeconds > st.UptimeSeconds {
			t.Errorf("uptime %v active_for %v", st.UptimeSeconds, st.ActiveForSeconds)
		}
		var mm struct {
			ActiveGID string `json:"activeGid"`
		}
		if err := json.Unmarshal(st.Map, &mm); err != nil || mm.ActiveGID != strconv.FormatUint(r.GID(), 10) {
			t.Errorf("map = %s (%v), want activeGid %d", st.Map, err, r.GID())
		}
		resp, _ = httpGet(t, "http://"+r.HTTPAddr()+"/nothing")
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Mgr-Active-Epoch") == "" {
			t.Errorf("unknown path: status %d, epoch header %q", resp.StatusCode, resp.Header.Get("Mgr-Active-Epoch"))
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		conn := dial(t, r.GRPCAddr())
		var hdr metadata.MD
		st, err := mgrv1.NewManagerServiceClient(conn).GetStatus(context.Background(), &mgrv1.GetStatusRequest{}, grpc.Header(&hdr))
		if err != nil {
			t.Fatalf("GetStatus: %v", err)
		}
		if got := hdr.Get("mgr-active-epoch"); !slices.Equal(got, []string{strconv.FormatUint(epoch, 10)}) {
			t.Errorf("mgr-active-epoch = %v, want %d", got, epoch)
		}
		if st.GetGid() != r.GID() || st.GetName() != "x" || st.GetActiveEpoch() != epoch || st.GetMap().GetActiveGid() != r.GID() {
			t.Errorf("GetStatus = %v", st)
		}
		if !slices.Equal(st.GetModules(), []string{"status"}) || st.GetActiveFor().AsDuration() <= 0 {
			t.Errorf("modules %v active_for %v", st.GetModules(), st.GetActiveFor())
		}
		hc := healthpb.NewHealthClient(conn)
		for _, svc := range []string{"", "mgr.v1.ManagerService"} {
			var hh metadata.MD
			resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc}, grpc.Header(&hh))
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health %q = %v, %v; want SERVING", svc, resp, err)
			}
			if len(hh.Get("mgr-active-epoch")) != 1 {
				t.Errorf("health %q: no mgr-active-epoch header", svc)
			}
		}
	})
}

func TestDemotionStopsServing(t *testing.T) {
	mon := montest.Start(t)
	cfg := testConfig(t, mon, "x")
	// Only the beacons sent at once (on joining, activation, demotion): no
	// beacon claiming available can reach the fake after the demotion and
	// be answered STALE, which would make the manager rejoin.
	cfg.BeaconPeriod = time.Minute
	mon.SetLease(3 * time.Minute)
	r := start(t, cfg)
	waitActive(t, mon, r)
	gid := r.GID()
	grpcAddr, httpAddr := r.GRPCAddr(), r.HTTPAddr()
	if refused(httpAddr) || refused(grpcAddr) {
		t.Fatal("the active does not listen")
	}

	other := mon.AddStandby("other")
	if _, err := mon.MakeActive(other); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the manager stops serving", func() bool { return !r.Active() })
	if r.GRPCAddr() != grpcAddr || r.HTTPAddr() != httpAddr {
		t.Errorf("addresses %q %q after demotion, want the same listeners %q %q", r.GRPCAddr(), r.HTTPAddr(), grpcAddr, httpAddr)
	}
	// It goes on as a standby under the same gid, in the same process. The
	// beacon saying available=false goes out at once, when nothing serves.
	eventually(t, "a standby beacon arrives", func() bool {
		b, _ := lastBeacon(mon, gid)
		return !b.Req.GetAvailable() && b.Standing == mgrv1.Standing_STANDING_STANDBY
	})
	if !standbyAnswers(grpcAddr, httpAddr) {
		t.Errorf("the demoted manager on %s and %s does not answer as a standby", httpAddr, grpcAddr)
	}
	if r.GID() != gid {
		t.Errorf("gid = %d after demotion, want %d", r.GID(), gid)
	}

	// Promoted again, it serves again.
	if _, err := mon.MakeActive(gid); err != nil {
		t.Fatal(err)
	}
	waitActive(t, mon, r)
	resp, _ := httpGet(t, "http://"+r.HTTPAddr()+"/status/")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status after re-promotion: %d", resp.StatusCode)
	}
}

// An active the monitor tells to stop (the map says it is failing, or a
// beacon is answered STALE) stops serving, then leaves, then joins again
// under a new gid, in the same process.
func TestToldToStopLeavesAndRejoins(t *testing.T) {
	tests := map[string]struct {
		// holdMaps holds the maps back: only the beacon answer can tell.
		holdMaps bool
		// fail makes the monitor tell the active gid to stop, with other a
		// standby.
		fail func(mon *montest.Monitor, gid, other uint64) error
	}{
		"map says failing": {
			fail: func(mon *montest.Monitor, gid, _ uint64) error { _, err := mon.Fail(gid); return err },
		},
		"beacon answered stale: failing": {
			holdMaps: true,
			fail:     func(mon *montest.Monitor, gid, _ uint64) error { _, err := mon.Fail(gid); return err },
		},
		"beacon answered stale: another active": {
			holdMaps: true,
			fail:     func(mon *montest.Monitor, _, other uint64) error { _, err := mon.MakeActive(other); return err },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := montest.Start(t)
			mon.SetModules("counter")
			ctr := &counterModule{name: "counter"}
			r := start(t, testConfig(t, mon, "x"), ctr)
			waitActive(t, mon, r)
			gid, httpAddr, grpcAddr := r.GID(), r.HTTPAddr(), r.GRPCAddr()
			other := mon.AddStandby("other")

			// What holds when the Leave arrives: the manager must have
			// stopped serving before.
			type atLeave struct {
				gid            uint64
				listening      bool
				active         bool
				counterStopped int32
			}
			leaves := make(chan atLeave, 4)
			mon.OnLeave(func(req *mgrv1.LeaveRequest) {
				leaves <- atLeave{
					gid:            req.GetGid(),
					listening:      !standbyAnswers(grpcAddr, httpAddr),
					active:         r.Active(),
					counterStopped: ctr.stops.Load(),
				}
			})
			mon.PauseWatch(tc.holdMaps)
			if err := tc.fail(mon, gid, other); err != nil {
				t.Fatal(err)
			}
			var at atLeave
			select {
			case at = <-leaves:
			case <-time.After(10 * time.Second):
				t.Fatal("the manager did not leave")
			}
			if at.gid != gid || at.listening || at.active || at.counterStopped != 1 {
				t.Errorf("at the Leave: %+v; want gid %d, answering as a standby, not active, the module stopped", at, gid)
			}
			eventually(t, "the manager takes a new gid", func() bool { return r.GID() != 0 && r.GID() != gid })
			if tc.holdMaps && r.Map().GetActiveGid() != gid {
				t.Fatalf("the manager holds a map naming %d active; the test wants only the beacon to tell it", r.Map().GetActiveGid())
			}
			if tc.holdMaps && !slices.ContainsFunc(mon.Beacons(gid), func(b montest.Beacon) bool { return b.Standing == mgrv1.Standing_STANDING_STALE }) {
				t.Error("no beacon was answered STALE")
			}
			newGID := r.GID()
			// The map stream is opened again, naming the new gid.
			eventually(t, "a map stream names the new gid", func() bool {
				return slices.ContainsFunc(mon.WatchRequests(), func(w *mgrv1.WatchMapRequest) bool {
					return w.GetGid() == newGID && w.GetName() == "x"
				})
			})
			mon.PauseWatch(false)
			eventually(t, "the manager is a standby under its new gid, other active", func() bool {
				m := r.Map()
				return m.GetActiveGid() == other && standbyIndex(m, newGID) >= 0
			})
			if r.Active() || r.GID() != newGID {
				t.Errorf("Active %v gid %d, want a standby with gid %d", r.Active(), r.GID(), newGID)
			}
			if n := len(mon.Auths()); n != 2 {
				t.Errorf("%d Authenticate calls, want 2", n)
			}
			if n := len(mon.Leaves()); n != 1 {
				t.Errorf("%d Leave calls, want 1", n)
			}
			// The held-back maps still naming the old gid active must not
			// activate it again.
			if n := ctr.starts.Load(); n != 1 {
				t.Errorf("counter started %d times; the manager served again after it was told to stop", n)
			}
		})
	}
}

func TestRefusedGIDReauthenticates(t *testing.T) {
	mon := montest.Start(t)
	r := start(t, testConfig(t, mon, "x"))
	waitActive(t, mon, r)
	old, httpAddr := r.GID(), r.HTTPAddr()

	mon.PauseWatch(true)
	mon.Drop(old)
	eventually(t, "the manager takes a new gid", func() bool { return r.GID() != 0 && r.GID() != old })
	if !slices.ContainsFunc(mon.Beacons(old), func(b montest.Beacon) bool { return status.Code(b.Err) == codes.FailedPrecondition }) {
		t.Error("no beacon was refused with FailedPrecondition")
	}
	if !standbyAnswers(r.GRPCAddr(), httpAddr) {
		t.Errorf("%s does not answer as a standby after the gid was refused", httpAddr)
	}
	if n := len(mon.Auths()); n != 2 {
		t.Errorf("%d Authenticate calls, want 2", n)
	}
	if got := mon.Auths()[1].GetFsid(); got != montest.FSID {
		t.Errorf("re-authentication fsid = %q, want the cluster's %q", got, montest.FSID)
	}
	// With no active, the new gid is promoted by its first beacon.
	mon.PauseWatch(false)
	waitActive(t, mon, r)
}

func TestWatchResumes(t *testing.T) {
	tests := map[string]struct {
		fail      codes.Code
		wantSince func(last uint64) []uint64
	}{
		"closed stream resumes from the last epoch": {
			fail:      codes.OK,
			wantSince: func(last uint64) []uint64 { return []uint64{0, last} },
		},
		"trimmed epoch resumes from the current map": {
			fail:      codes.OutOfRange,
			wantSince: func(last uint64) []uint64 { return []uint64{0, last, 0} },
		},
		"slow subscriber resumes": {
			fail:      codes.ResourceExhausted,
			wantSince: func(last uint64) []uint64 { return []uint64{0, last, last} },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := montest.Start(t)
			r := start(t, testConfig(t, mon, "x"))
			waitActive(t, mon, r)
			last := mon.Map().GetEpoch()
			eventually(t, "the manager holds the newest map", func() bool { return r.Map().GetEpoch() == last })

			if tc.fail != codes.OK {
				mon.FailNextWatch(tc.fail)
			}
			mon.CloseStreams()
			want := tc.wantSince(last)
			eventually(t, "the stream is opened again", func() bool { return len(mon.Watches()) >= len(want) })
			if got := mon.Watches()[:len(want)]; !slices.Equal(got, want) {
				t.Errorf("since_epoch = %v, want %v", got, want)
			}
			mon.SetModules("x1")
			eventually(t, "the manager gets the next map", func() bool { return slices.Contains(r.Map().GetModules(), "x1") })
			if !r.Active() {
				t.Error("the manager stopped serving over a stream error")
			}
		})
	}
}

func TestModulesStartAndStopLive(t *testing.T) {
	mon := montest.Start(t)
	ctr := &counterModule{name: "counter"}
	broken := &counterModule{name: "broken", canRun: errors.New("needs a GPU"), noGRPC: true}
	r := start(t, testConfig(t, mon, "x"), ctr, broken)
	waitActive(t, mon, r)
	gid, httpAddr, grpcAddr := r.GID(), r.HTTPAddr(), r.GRPCAddr()
	url := "http://" + httpAddr + "/counter/"
	conn := dial(t, grpcAddr)
	get := func() (int32, error) {
		out := new(wrapperspb.Int32Value)
		err := conn.Invoke(context.Background(), "/test.Counter/Get", &emptypb.Empty{}, out)
		return out.GetValue(), err
	}

	b, _ := lastBeacon(mon, gid)
	var infos []string
	for _, m := range b.Req.GetAvailableModules() {
		infos = append(infos, fmt.Sprintf("%s:%v:%s", m.GetName(), m.GetCanRun(), m.GetErrorString()))
	}
	if want := []string{"broken:false:needs a GPU", "counter:true:", "status:true:"}; !slices.Equal(infos, want) {
		t.Errorf("available_modules = %v, want %v", infos, want)
	}

	// Not enabled: registered but refused.
	if ctr.starts.Load() != 0 {
		t.Fatalf("counter started %d times before it was enabled", ctr.starts.Load())
	}
	resp, body := httpGet(t, url)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "module counter is not enabled") {
		t.Errorf("disabled module: %d %q", resp.StatusCode, body)
	}
	if _, err := get(); status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "module counter is not enabled") {
		t.Errorf("disabled module over gRPC: %v", err)
	}

	mon.SetModules("broken", "counter")
	eventually(t, "counter runs and is published", func() bool {
		return ctr.starts.Load() == 1 && mon.Map().GetServices()["counter"] == url
	})
	resp, body = httpGet(t, url)
	if resp.StatusCode != http.StatusOK || body != "counter on x" {
		t.Errorf("enabled module: %d %q", resp.StatusCode, body)
	}
	if n, err := get(); err != nil || n != 1 {
		t.Errorf("enabled module over gRPC: %d, %v", n, err)
	}
	if broken.starts.Load() != 0 {
		t.Error("a module that cannot run was started")
	}

	mon.SetModules()
	eventually(t, "counter stops and is unpublished", func() bool {
		_, published := mon.Map().GetServices()["counter"]
		return ctr.stops.Load() == 1 && !published
	})
	if _, err := get(); status.Code(err) != codes.Unavailable {
		t.Errorf("disabled again over gRPC: %v", err)
	}
	mon.SetModules("counter")
	eventually(t, "counter runs again", func() bool { return ctr.starts.Load() == 2 })

	// No restart: same process, gid and listeners all along.
	if r.GID() != gid || r.HTTPAddr() != httpAddr || r.GRPCAddr() != grpcAddr || !r.Active() {
		t.Errorf("the manager restarted: gid %d→%d http %s→%s", gid, r.GID(), httpAddr, r.HTTPAddr())
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctr.stops.Load() != 2 {
		t.Errorf("counter stopped %d times after shutdown, want 2", ctr.stops.Load())
	}
}

func TestShutdownLeaves(t *testing.T) {
	tests := map[string]struct {
		active bool
	}{
		"active":  {active: true},
		"standby": {active: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := montest.Start(t)
			if !tc.active {
				other := mon.AddStandby("other")
				if _, err := mon.MakeActive(other); err != nil {
					t.Fatal(err)
				}
			}
			r := start(t, testConfig(t, mon, "x"))
			var httpAddr, grpcAddr string
			if tc.active {
				waitActive(t, mon, r)
				httpAddr, grpcAddr = r.HTTPAddr(), r.GRPCAddr()
			} else {
				eventually(t, "the manager joins", func() bool { return standbyIndex(mon.Map(), r.GID()) >= 0 })
			}
			gid := r.GID()
			// Stop serving, then leave, then close the listeners and end
			// the map stream (STYLE.md: NOT_SERVING, leave, GracefulStop):
			// when the Leave arrives the manager answers as a standby, and
			// the stream is still open (the monitor takes a stream ended
			// without a Leave for a crash).
			type atLeave struct{ servesAsActive, streaming bool }
			leaving := make(chan atLeave, 1)
			mon.OnLeave(func(*mgrv1.LeaveRequest) {
				leaving <- atLeave{
					servesAsActive: tc.active && !standbyAnswers(grpcAddr, httpAddr),
					streaming:      mon.OpenStreams() > 0,
				}
			})
			if err := r.stop(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
			select {
			case at := <-leaving:
				if at.servesAsActive || !at.streaming {
					t.Errorf("when the Leave arrived: %+v; want it answering as a standby, the map stream open", at)
				}
			default:
				t.Error("no Leave arrived")
			}
			leaves := mon.Leaves()
			if len(leaves) != 1 || leaves[0].GetGid() != gid || leaves[0].GetName() != "x" || leaves[0].GetFsid() != montest.FSID {
				t.Fatalf("leaves = %v, want one for gid %d", leaves, gid)
			}
			if m := mon.Map(); m.GetActiveGid() == gid || standbyIndex(m, gid) >= 0 {
				t.Errorf("gid %d still in the map after leaving", gid)
			}
			if tc.active && !refused(httpAddr) {
				t.Errorf("still listening on %s after shutdown", httpAddr)
			}
			if r.Active() || r.GID() != 0 {
				t.Errorf("after shutdown: Active %v, GID %d; want false, 0", r.Active(), r.GID())
			}
		})
	}
}

func TestRunFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = taken.Close() })
	tests := map[string]struct {
		change   func(*Config)
		wantCode codes.Code
		wantMsg  string
		leaves   int
	}{
		"wrong fsid": {
			change:   func(c *Config) { c.FSID = "another-cluster" },
			wantCode: codes.FailedPrecondition,
			wantMsg:  "fsid",
		},
		"port taken": {
			// The listeners are bound before authenticating: no gid, no
			// leave.
			change:  func(c *Config) { c.HTTPAddr = taken.Addr().String() },
			wantMsg: "failed to listen for HTTP",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := montest.Start(t)
			cfg := testConfig(t, mon, "x")
			tc.change(&cfg)
			sb, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = sb.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Run = %v, want an error with %q", err, tc.wantMsg)
			}
			if tc.wantCode != codes.OK && status.Code(err) != tc.wantCode {
				t.Errorf("code = %v, want %v", status.Code(err), tc.wantCode)
			}
			if n := len(mon.Leaves()); n != tc.leaves {
				t.Errorf("%d leaves, want %d", n, tc.leaves)
			}
			if sb.Active() {
				t.Error("Active after Run failed")
			}
			if err := sb.Run(ctx); err == nil {
				t.Error("a second Run did not fail")
			}
		})
	}
}

func TestUsesTheNextMonitor(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	mon := montest.Start(t)
	cfg := testConfig(t, mon, "x")
	cfg.Monitors = []string{deadAddr, mon.Addr()}
	r := start(t, cfg)
	waitActive(t, mon, r)
}

func TestNewRejectsModules(t *testing.T) {
	tests := map[string]struct {
		modules []Module
		want    string
	}{
		"built-in name":  {modules: []Module{&counterModule{name: "status"}}, want: "taken by the built-in module"},
		"twice":          {modules: []Module{&counterModule{name: "a"}, &counterModule{name: "a"}}, want: "listed twice"},
		"upper case":     {modules: []Module{&counterModule{name: "Bad"}}, want: "name must be 1 to 32"},
		"empty name":     {modules: []Module{&counterModule{name: ""}}, want: "name must be 1 to 32"},
		"too long":       {modules: []Module{&counterModule{name: strings.Repeat("a", 33)}}, want: "name must be 1 to 32"},
		"path separator": {modules: []Module{&counterModule{name: "a/b"}}, want: "name must be 1 to 32"},
		"nil":            {modules: []Module{nil}, want: "modules[0]: nil module"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Name = "x"
			cfg.Insecure = true
			_, err := New(cfg, tc.modules...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}
	cfg := DefaultConfig()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Name") {
		t.Errorf("New with no name = %v, want a Name error", err)
	}
}

func TestAdvertise(t *testing.T) {
	hostname := func() (string, error) { return "node1", nil }
	tests := map[string]struct {
		configured, addr, want string
	}{
		"configured":   {configured: "mgr.example", addr: "0.0.0.0:6800", want: "mgr.example"},
		"listen host":  {addr: "10.0.0.5:6800", want: "10.0.0.5"},
		"listen name":  {addr: "localhost:6800", want: "localhost"},
		"IPv4 any":     {addr: "0.0.0.0:6800", want: "node1"},
		"IPv6 any":     {addr: "[::]:6800", want: "node1"},
		"no host":      {addr: ":6800", want: "node1"},
		"IPv6 literal": {addr: "[::1]:6800", want: "::1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := advertise(tc.configured, tc.addr, hostname); got != tc.want {
				t.Errorf("advertise = %q, want %q", got, tc.want)
			}
		})
	}
	if got := advertise("", ":1", func() (string, error) { return "", errTest }); got != "localhost" {
		t.Errorf("advertise without hostname = %q, want localhost", got)
	}
}
