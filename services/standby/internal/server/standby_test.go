package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mgrplane/mgrplane/internal/rpcserver"
)

// noRedirect GETs url without following redirects.
func noRedirect(t *testing.T, url string) *http.Response {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return resp
}

func managerHealth(t *testing.T, conn *grpc.ClientConn) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: ManagerService})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	return resp.GetStatus()
}

// A standby answers every module path with the configured status (a
// redirect to the same path on the active, or 503), refuses gRPC calls
// naming the active, and says NOT_SERVING for the manager service; none
// of its answers carries the active-epoch header. A term switches it to
// answering as the active on the same listeners, and its end switches it
// back.
func TestStandbyAnswers(t *testing.T) {
	active := Active{Name: "mgr-b", GID: 7, GRPCAddr: "10.0.0.2:6800", HTTPURL: "http://10.0.0.2:6880"}
	tests := map[string]struct {
		status   int
		active   Active
		wantCode int
		wantLoc  string
		wantGRPC string
	}{
		"303 redirect":   {status: 0, active: active, wantCode: http.StatusSeeOther, wantLoc: "http://10.0.0.2:6880/alpha/x?y=1", wantGRPC: "the active is mgr-b (gid 7) at 10.0.0.2:6800"},
		"307 redirect":   {status: 307, active: active, wantCode: http.StatusTemporaryRedirect, wantLoc: "http://10.0.0.2:6880/alpha/x?y=1", wantGRPC: "mgr-b"},
		"503 configured": {status: 503, active: active, wantCode: http.StatusServiceUnavailable, wantGRPC: "mgr-b"},
		"no active":      {status: 0, wantCode: http.StatusServiceUnavailable, wantGRPC: "no manager is active now"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := &clockModule{testModule: testModule{name: "alpha"}, clock: newFakeClock()}
			s := startStandby(t, Config{StandbyHTTPStatus: tc.status, Active: func() Active { return tc.active },
				GID: func() uint64 { return 3 }}, a)
			s.SetEnabled([]string{"alpha"})
			if r := s.Running(); len(r) != 0 {
				t.Fatalf("a standby runs %v", r)
			}
			base := "http://" + s.HTTPAddr().String()
			resp := noRedirect(t, base+"/alpha/x?y=1")
			if resp.StatusCode != tc.wantCode || resp.Header.Get("Location") != tc.wantLoc || resp.Header.Get("Mgr-Active-Epoch") != "" {
				t.Errorf("GET = %d Location %q epoch %q, want %d %q and no epoch", resp.StatusCode, resp.Header.Get("Location"),
					resp.Header.Get("Mgr-Active-Epoch"), tc.wantCode, tc.wantLoc)
			}
			conn, err := grpc.NewClient(s.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			var hdr metadata.MD
			err = conn.Invoke(context.Background(), "/test.Clock/Late", &emptypb.Empty{}, new(emptypb.Empty), grpc.Header(&hdr))
			if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), tc.wantGRPC) {
				t.Errorf("gRPC on a standby = %v, want Unavailable with %q", err, tc.wantGRPC)
			}
			if len(hdr.Get(ActiveEpochHeader)) != 0 {
				t.Errorf("standby gRPC answer carries %v", hdr)
			}
			// Every answer says which gid this process holds, refusals and
			// health checks included (a monitor's crash probe asks).
			if got := hdr.Get(rpcserver.GIDHeader); !slices.Equal(got, []string{"3"}) {
				t.Errorf("standby refusal's %s = %v, want [3]", rpcserver.GIDHeader, got)
			}
			var hhdr metadata.MD
			if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Header(&hhdr)); err != nil ||
				!slices.Equal(hhdr.Get(rpcserver.GIDHeader), []string{"3"}) {
				t.Errorf("health check: %v, %s = %v, want [3]", err, rpcserver.GIDHeader, hhdr.Get(rpcserver.GIDHeader))
			}
			if got := managerHealth(t, conn); got != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Errorf("standby health = %v, want NOT_SERVING", got)
			}

			// Activation is a switch on the same listeners.
			term := s.Activate(5)
			term.Lease().Extend(a.clock.Now(), time.Hour)
			s.SetEnabled([]string{"alpha"})
			if code, body, hdr := get(t, base+"/alpha/"); code != http.StatusOK || body != "alpha" || hdr.Get("Mgr-Active-Epoch") != "5" {
				t.Errorf("active GET = %d %q epoch %q", code, body, hdr.Get("Mgr-Active-Epoch"))
			}
			if err := conn.Invoke(context.Background(), "/test.Clock/Late", &emptypb.Empty{}, new(emptypb.Empty)); err != nil {
				t.Errorf("active gRPC = %v", err)
			}
			if got := managerHealth(t, conn); got != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("active health = %v, want SERVING", got)
			}

			s.Deactivate()
			if r := s.Running(); len(r) != 0 {
				t.Errorf("modules %v still run after the term", r)
			}
			if resp := noRedirect(t, base+"/alpha/x?y=1"); resp.StatusCode != tc.wantCode || resp.Header.Get("Mgr-Active-Epoch") != "" {
				t.Errorf("GET after the term = %d epoch %q", resp.StatusCode, resp.Header.Get("Mgr-Active-Epoch"))
			}
			if got := managerHealth(t, conn); got != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Errorf("health after the term = %v, want NOT_SERVING", got)
			}
		})
	}
}

// A module that runs on standbys runs and serves outside terms, without
// the epoch header, and keeps running through a term (no restart); the
// others run only in terms.
func TestStandbyModuleRunsThroughTerms(t *testing.T) {
	sm := &testModule{name: "side", onStandby: true}
	am := &testModule{name: "main"}
	s := startStandby(t, Config{}, sm, am)
	base := "http://" + s.HTTPAddr().String()
	s.SetEnabled([]string{"side", "main"})
	if r := s.Running(); !slices.Equal(r, []string{"side"}) {
		t.Fatalf("standby runs %v, want [side]", r)
	}
	if code, body, hdr := get(t, base+"/side/"); code != http.StatusOK || body != "side" || hdr.Get("Mgr-Active-Epoch") != "" {
		t.Errorf("standby module on a standby = %d %q epoch %q", code, body, hdr.Get("Mgr-Active-Epoch"))
	}
	term := s.Activate(3)
	term.Lease().Extend(time.Now(), time.Hour)
	s.SetEnabled([]string{"side", "main"})
	if r := s.Running(); !slices.Equal(r, []string{"main", "side"}) {
		t.Fatalf("active runs %v", r)
	}
	if _, _, hdr := get(t, base+"/side/"); hdr.Get("Mgr-Active-Epoch") != "3" {
		t.Errorf("standby module on the active answers without the epoch header")
	}
	s.Deactivate()
	if r := s.Running(); !slices.Equal(r, []string{"side"}) {
		t.Errorf("after the term runs %v, want [side]", r)
	}
	if n := sm.runs.Load(); n != 1 {
		t.Errorf("the standby module ran %d times, want once through the term", n)
	}
	s.SetEnabled(nil)
	if r := s.Running(); len(r) != 0 {
		t.Errorf("disabled, still runs %v", r)
	}
}

// The end of a term cancels its requests in flight: a handler waiting on
// its context returns, and Deactivate does not wait for the drain timeout.
func TestDeactivateCancelsRequests(t *testing.T) {
	a := &testModule{name: "alpha"}
	s := startServer(t, a)
	s.SetEnabled([]string{"alpha"})
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + s.HTTPAddr().String() + "/alpha/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	s.Deactivate()
	if d := time.Since(start); d >= s.cfg.DrainTimeout {
		t.Errorf("Deactivate took %v, the drain timeout: the request was not cancelled", d)
	}
}

func TestStandbyStatusRefused(t *testing.T) {
	if _, err := New(Config{StandbyHTTPStatus: 302}, nil, nil); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("New with 302 = %v", err)
	}
}
