package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/testlog"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testModule serves GET /<name>/slow (which blocks until the request ends)
// and GET /<name>/{$}; run decides how Run behaves.
type testModule struct {
	name      string
	run       func(ctx context.Context) error
	register  func(r *Registrar)
	runs      atomic.Int32
	onStandby bool
}

func (m *testModule) Name() string { return m.name }

func (m *testModule) Register(r *Registrar) {
	if m.register != nil {
		m.register(r)
		return
	}
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, m.name) }))
	r.HandleHTTP("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-req.Context().Done()
	}))
}

func (m *testModule) OnStandby() bool { return m.onStandby }

func (m *testModule) Run(ctx context.Context) error {
	m.runs.Add(1)
	if m.run != nil {
		return m.run(ctx)
	}
	<-ctx.Done()
	return nil
}

// startServer starts a server in a term at active epoch 42 whose lease
// holds for an hour.
func startServer(t *testing.T, mods ...Module) *Server {
	t.Helper()
	s := startStandby(t, Config{}, mods...)
	s.Activate(42).Lease().Extend(time.Now(), time.Hour)
	return s
}

// startStandby starts a server with cfg's Now, StandbyHTTPStatus, Active
// and GID and test values for the rest, outside any term.
func startStandby(t *testing.T, cfg Config, mods ...Module) *Server {
	t.Helper()
	s, err := New(Config{
		Now:               cfg.Now,
		GRPCAddr:          "127.0.0.1:0",
		HTTPAddr:          "127.0.0.1:0",
		DrainTimeout:      100 * time.Millisecond,
		ModuleStopWarn:    time.Second,
		StandbyHTTPStatus: cfg.StandbyHTTPStatus,
		Active:            cfg.Active,
		GID:               cfg.GID,
	}, mods, testlog.New(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHTTPGating(t *testing.T) {
	a := &testModule{name: "alpha"}
	s := startServer(t, a)
	base := "http://" + s.HTTPAddr().String()
	tests := map[string]struct {
		enabled  []string
		path     string
		wantCode int
		wantBody string
	}{
		"not enabled":      {path: "/alpha/", wantCode: http.StatusServiceUnavailable, wantBody: "module alpha is not enabled"},
		"enabled":          {enabled: []string{"alpha"}, path: "/alpha/", wantCode: http.StatusOK, wantBody: "alpha"},
		"no slash":         {enabled: []string{"alpha"}, path: "/alpha", wantCode: http.StatusOK, wantBody: "alpha"},
		"unknown module":   {enabled: []string{"alpha", "nope"}, path: "/nope/", wantCode: http.StatusNotFound},
		"unknown sub path": {enabled: []string{"alpha"}, path: "/alpha/x", wantCode: http.StatusNotFound},
		"disabled again":   {enabled: nil, path: "/alpha/", wantCode: http.StatusServiceUnavailable, wantBody: "not enabled"},
		"enabled again":    {enabled: []string{"alpha"}, path: "/alpha/", wantCode: http.StatusOK, wantBody: "alpha"},
	}
	for _, name := range []string{"not enabled", "enabled", "no slash", "unknown module", "unknown sub path", "disabled again", "enabled again"} {
		tc := tests[name]
		t.Run(name, func(t *testing.T) {
			s.SetEnabled(tc.enabled)
			code, body, hdr := get(t, base+tc.path)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Errorf("GET %s = %d %q, want %d with %q", tc.path, code, body, tc.wantCode, tc.wantBody)
			}
			if hdr.Get("Mgr-Active-Epoch") != "42" {
				t.Errorf("Mgr-Active-Epoch = %q, want 42", hdr.Get("Mgr-Active-Epoch"))
			}
		})
	}
	// Enabled in two spells: one Run per spell (the second starts in the
	// background).
	for deadline := time.Now().Add(10 * time.Second); a.runs.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	s.Stop()
	if n := a.runs.Load(); n != 2 {
		t.Errorf("alpha ran %d times, want 2", n)
	}
}

func TestModuleStoppingByItself(t *testing.T) {
	tests := map[string]func(ctx context.Context) error{
		"error":  func(context.Context) error { return errors.New("boom") },
		"panic":  func(context.Context) error { panic("boom") },
		"return": func(context.Context) error { return nil },
	}
	for name, run := range tests {
		t.Run(name, func(t *testing.T) {
			m := &testModule{name: "alpha", run: run}
			s := startServer(t, m)
			s.SetEnabled([]string{"alpha"})
			select {
			case <-s.Changed():
			case <-time.After(10 * time.Second):
				t.Fatal("no change signalled")
			}
			if r := s.Running(); len(r) != 0 {
				t.Errorf("Running = %v after the module stopped", r)
			}
			// Not restarted by the next map that still enables it...
			s.SetEnabled([]string{"alpha"})
			if n := m.runs.Load(); n != 1 || len(s.Running()) != 0 {
				t.Errorf("after SetEnabled again: %d runs, running %v; want 1 run, none running", n, s.Running())
			}
			// ...but after a disable and an enable.
			s.SetEnabled(nil)
			s.SetEnabled([]string{"alpha"})
			select {
			case <-s.Changed():
			case <-time.After(10 * time.Second):
				t.Fatal("no change signalled after enabling again")
			}
			s.Stop()
			if n := m.runs.Load(); n != 2 {
				t.Errorf("%d runs, want 2", n)
			}
		})
	}
}

func TestRegisterPanicIsAnError(t *testing.T) {
	bad := &testModule{name: "bad", register: func(r *Registrar) { r.HandleHTTP("not a pattern {", http.NotFoundHandler()) }}
	_, err := New(Config{}, []Module{bad}, testlog.New(t))
	if err == nil || !strings.Contains(err.Error(), `module "bad" failed to register`) {
		t.Fatalf("New = %v, want a register error", err)
	}
	if _, err := New(Config{}, []Module{&testModule{name: "a"}, &testModule{name: "a"}}, testlog.New(t)); err == nil {
		t.Fatal("New accepted a module twice")
	}
}

func TestStopFencesAndCloses(t *testing.T) {
	m := &testModule{name: "alpha"}
	s := startServer(t, m)
	s.SetEnabled([]string{"alpha"})
	httpAddr, grpcAddr := s.HTTPAddr().String(), s.GRPCAddr().String()

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	var hdr metadata.MD
	resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "mgr.v1.ManagerService"}, grpc.Header(&hdr))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
	if got := hdr.Get(ActiveEpochHeader); !slices.Equal(got, []string{"42"}) {
		t.Errorf("header = %v, want [42]", got)
	}

	// Reflection lists the services, so grpcurl needs no proto files.
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = rs.CloseSend()
	var names []string
	for _, svc := range rr.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	if !slices.Contains(names, "grpc.health.v1.Health") || !slices.Contains(names, "grpc.reflection.v1.ServerReflection") {
		t.Errorf("reflection lists %v", names)
	}

	// A request in flight that never ends by itself: Stop must not wait
	// for it past the drain timeout.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	slow, err := c.Get("http://" + httpAddr + "/alpha/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	// A health watch stream in flight: GracefulStop would wait for it.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	ws, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Recv(); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	if n := len(s.Running()); n != 0 {
		t.Errorf("%d modules running after Stop", n)
	}
	for _, a := range []string{httpAddr, grpcAddr} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			_ = c.Close()
			t.Errorf("%s still accepts connections after Stop", a)
		}
	}
	// The watch saw NOT_SERVING or the end of the stream.
	for {
		r, err := ws.Recv()
		if err != nil {
			if status.Code(err) == codes.OK {
				t.Errorf("watch ended with %v", err)
			}
			break
		}
		if r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
	}
}
