package standby

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/montest"
	"github.com/mgrplane/mgrplane/services/standby/internal/role"
)

// The short lease of these tests, beside the 20ms beacon period of
// testConfig.
const testLease = 200 * time.Millisecond

// holdModule serves GET /hold/, which answers only once the test releases
// it: a request admitted while the lease was held and answered after.
type holdModule struct {
	entered chan struct{}
	release chan struct{}
}

func (holdModule) Name() string  { return "hold" }
func (holdModule) CanRun() error { return nil }

func (m holdModule) Register(r Registrar) {
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(m.entered)
		<-m.release
		_, _ = io.WriteString(w, "answered as active")
	}))
}

func (holdModule) Run(ctx context.Context, _ Host) error {
	<-ctx.Done()
	return nil
}

// An active that hears nothing from the monitor stops serving by itself when
// its lease runs out: its listeners close, it does not leave, it keeps its
// gid; a request admitted before and answered after the end is refused. When
// the monitor answers again, it serves again.
func TestLeaseExpiryStopsServing(t *testing.T) {
	tests := map[string]struct {
		fault montest.BeaconFault
	}{
		"beacons fail": {fault: montest.BeaconsUnavailable},
		"beacons hang": {fault: montest.BeaconsHang},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := montest.Start(t)
			mon.SetLease(testLease)
			mon.SetModules("hold")
			hold := holdModule{entered: make(chan struct{}), release: make(chan struct{})}
			r := start(t, testConfig(t, mon, "x"), hold)
			waitActive(t, mon, r)
			gid, httpAddr, grpcAddr := r.GID(), r.HTTPAddr(), r.GRPCAddr()
			if r.role.LeaseUntil().IsZero() {
				t.Fatal("active without a lease")
			}

			// A request admitted while the lease is held...
			type answer struct {
				code int
				body string
				err  error
			}
			answered := make(chan answer, 1)
			go func() {
				c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err := c.Get("http://" + httpAddr + "/hold/")
				if err != nil {
					answered <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				answered <- answer{code: resp.StatusCode, body: string(b)}
			}()
			select {
			case <-hold.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the request did not reach the module")
			}

			mon.SetBeaconFault(tc.fault)
			eventually(t, "the manager stops serving", func() bool { return !r.Active() })
			// ...and answered after the lease ran out is refused (or cut
			// off by the drain), never answered as active.
			close(hold.release)
			a := <-answered
			t.Logf("request admitted under the lease, answered after it: %d %q %v", a.code, a.body, a.err)
			if a.err == nil && (a.code != http.StatusServiceUnavailable || !strings.Contains(a.body, "lease expired")) {
				t.Errorf("request answered after the lease: %d %q, want 503 lease expired", a.code, a.body)
			}
			eventually(t, "the manager answers as a standby", func() bool { return standbyAnswers(grpcAddr, httpAddr) })
			if len(mon.Leaves()) != 0 || r.GID() != gid {
				t.Errorf("after the lease ran out: %d leaves, gid %d; want none and gid %d", len(mon.Leaves()), r.GID(), gid)
			}
			if m := mon.Map(); m.GetActiveGid() != gid {
				t.Fatalf("the fake named %d active; the test wants the manager to stop by itself", m.GetActiveGid())
			}

			// The monitor answers again (still naming it active): it serves again.
			mon.SetBeaconFault(montest.BeaconsAnswered)
			waitActive(t, mon, r)
			resp, body := httpGet(t, "http://"+r.HTTPAddr()+"/status/")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status after the monitor came back: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// Named active, the manager starts its server at once but answers nothing
// until a beacon's answer grants it a lease; without one within the fence
// timeout it stops.
func TestActivationWaitsForLease(t *testing.T) {
	tests := map[string]struct {
		lease time.Duration
		// granted: the monitor answers again while the server waits.
		granted bool
	}{
		"lease granted later":         {lease: time.Minute, granted: true},
		"no lease within the timeout": {lease: testLease},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := montest.Start(t)
			mon.SetLease(tc.lease)
			other := mon.AddStandby("other")
			if _, err := mon.MakeActive(other); err != nil {
				t.Fatal(err)
			}
			r := start(t, testConfig(t, mon, "x"))
			eventually(t, "the manager joins as standby", func() bool { return standbyIndex(mon.Map(), r.GID()) >= 0 })

			mon.SetBeaconFault(montest.BeaconsUnavailable)
			epoch, err := mon.MakeActive(r.GID())
			if err != nil {
				t.Fatal(err)
			}
			httpAddr, grpcAddr := r.HTTPAddr(), r.GRPCAddr()
			eventually(t, "the manager activates", func() bool { return r.role.State() == role.StateActivating })
			if !tc.granted {
				eventually(t, "the term ends without a lease", func() bool {
					return r.role.State() == role.StateStandby && standbyAnswers(grpcAddr, httpAddr)
				})
				if r.Active() {
					t.Error("Active without a lease")
				}
				return
			}

			if r.Active() {
				t.Error("Active before a lease was granted")
			}
			resp, body := httpGet(t, "http://"+httpAddr+"/status/")
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no lease yet") {
				t.Errorf("HTTP before the lease: %d %q, want 503 no lease yet", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Mgr-Active-Epoch"); got != itoa(epoch) {
				t.Errorf("Mgr-Active-Epoch = %q, want %d", got, epoch)
			}
			var hdr metadata.MD
			_, err = mgrv1.NewManagerServiceClient(dial(t, grpcAddr)).GetStatus(context.Background(), &mgrv1.GetStatusRequest{}, grpc.Header(&hdr))
			if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "no lease yet") {
				t.Errorf("GetStatus before the lease = %v, want Unavailable no lease yet", err)
			}
			if got := hdr.Get("mgr-active-epoch"); len(got) != 1 || got[0] != itoa(epoch) {
				t.Errorf("mgr-active-epoch = %v, want %d", got, epoch)
			}

			mon.SetBeaconFault(montest.BeaconsAnswered)
			waitActive(t, mon, r)
			if r.HTTPAddr() != httpAddr {
				t.Errorf("the server moved from %s to %s; want the one started on activation", httpAddr, r.HTTPAddr())
			}
			resp, body = httpGet(t, "http://"+httpAddr+"/status/")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("HTTP with the lease: %d %q", resp.StatusCode, body)
			}
		})
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// Run refuses a monitor whose fence timeout leaves no room for a beacon
// period and its margin: the lease would lapse between beacons.
func TestRunFailsOnShortFenceTimeout(t *testing.T) {
	tests := map[string]struct {
		period, fence time.Duration
		want          string
	}{
		"margin of 100ms": {period: 20 * time.Millisecond, fence: 120 * time.Millisecond,
			want: "beacon period 20ms plus a margin of 100ms is not below the monitor's fence timeout 120ms"},
		"margin of half the period": {period: time.Second, fence: 1400 * time.Millisecond,
			want: "beacon period 1s plus a margin of 500ms is not below the monitor's fence timeout 1.4s"},
		"no fence timeout": {period: 20 * time.Millisecond, fence: 0,
			want: "fence timeout 0s"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := montest.Start(t)
			mon.SetLease(tc.fence)
			cfg := testConfig(t, mon, "x")
			cfg.BeaconPeriod = tc.period
			sb, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = sb.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error with %q", err, tc.want)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("Run waited for the context")
			}
			if n := len(mon.Beacons(0)); n != 0 {
				t.Errorf("%d beacons sent, want none", n)
			}
		})
	}
}
