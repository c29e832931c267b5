package server

import (
	"context"
	"github.com/mgrplane/mgrplane/internal/testlog"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mgrplane/mgrplane/services/standby/internal/fence"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The gates read the lease before anything else: a request that arrives
// after the lease's end is refused whatever else holds (the server is not
// stopping, the module runs), with the epoch header still set.
func TestGateChecksTheLeaseFirst(t *testing.T) {
	tests := map[string]struct {
		lease    func(l *fence.Lease, now time.Time)
		stopped  bool
		wantMsg  string // "" for served
		wantHTTP int
	}{
		"lease held": {
			lease:    func(l *fence.Lease, now time.Time) { l.Extend(now, time.Second) },
			wantHTTP: http.StatusOK,
		},
		"no lease yet": {
			lease:    func(*fence.Lease, time.Time) {},
			wantMsg:  msgNoLease,
			wantHTTP: http.StatusServiceUnavailable,
		},
		"lease already in the past": {
			lease:    func(l *fence.Lease, now time.Time) { l.Extend(now.Add(-time.Minute), time.Second) },
			wantMsg:  msgLeaseExpired,
			wantHTTP: http.StatusServiceUnavailable,
		},
		"lease ends at this instant": {
			lease:    func(l *fence.Lease, now time.Time) { l.Extend(now.Add(-time.Second), time.Second) },
			wantMsg:  msgLeaseExpired,
			wantHTTP: http.StatusServiceUnavailable,
		},
		"expired and stopping": {
			lease:    func(l *fence.Lease, now time.Time) { l.Extend(now.Add(-time.Minute), time.Second) },
			stopped:  true,
			wantMsg:  msgLeaseExpired,
			wantHTTP: http.StatusServiceUnavailable,
		},
		"held but stopping": {
			lease:    func(l *fence.Lease, now time.Time) { l.Extend(now, time.Second) },
			stopped:  true,
			wantMsg:  msgStopped,
			wantHTTP: http.StatusServiceUnavailable,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			cfg := Config{Now: clock.Now, DrainTimeout: 100 * time.Millisecond}
			mod := &testModule{name: "alpha"}
			s, err := New(cfg, []Module{mod}, testlog.New(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Stop)
			term := s.Activate(9)
			tc.lease(term.Lease(), clock.Now())
			s.running["alpha"] = &runningModule{cancel: func() {}, done: make(chan struct{})}
			t.Cleanup(func() {
				s.mu.Lock()
				delete(s.running, "alpha")
				s.mu.Unlock()
			})
			term.fenced.Store(tc.stopped)

			var hdr metadata.MD
			served, err := s.gate("/grpc.health.v1.Health/Check", func(md metadata.MD) error { hdr = md; return nil })
			if served != nil {
				served.inflight.leave()
			}
			if tc.wantMsg == "" {
				if err != nil {
					t.Errorf("gate = %v, want nil", err)
				}
			} else if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != tc.wantMsg {
				t.Errorf("gate = %v, want Unavailable %q", err, tc.wantMsg)
			}
			if got := hdr.Get(ActiveEpochHeader); !slices.Equal(got, []string{"9"}) {
				t.Errorf("gRPC header %s = %v, want [9]", ActiveEpochHeader, got)
			}

			rec := httptest.NewRecorder()
			s.http.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/alpha/", nil))
			if rec.Code != tc.wantHTTP || !strings.Contains(rec.Body.String(), tc.wantMsg) {
				t.Errorf("HTTP = %d %q, want %d with %q", rec.Code, rec.Body.String(), tc.wantHTTP, tc.wantMsg)
			}
			if got := rec.Header().Get("Mgr-Active-Epoch"); got != "9" {
				t.Errorf("HTTP header Mgr-Active-Epoch = %q, want 9", got)
			}
		})
	}
}

// clockModule serves GET /<name>/late and the unary test.Clock/Late, each of
// which moves the clock past the lease before it answers, as a process
// paused mid-request would find it.
type clockModule struct {
	testModule
	clock *fakeClock
	by    time.Duration
}

func (m *clockModule) Register(r *Registrar) {
	r.HandleHTTP("GET /late", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		m.clock.Advance(m.by)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"late":true}`)
	}))
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, m.name) }))
	r.GRPC().RegisterService(&clockServiceDesc, m)
}

var clockServiceDesc = grpc.ServiceDesc{
	ServiceName: "test.Clock",
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Late", Handler: clockLate}},
}

func clockLate(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
	in := new(emptypb.Empty)
	if err := dec(in); err != nil {
		return nil, err
	}
	h := func(context.Context, any) (any, error) {
		m := srv.(*clockModule)
		m.clock.Advance(m.by)
		return &emptypb.Empty{}, nil
	}
	return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Clock/Late"}, h)
}

// Over the network: served while the lease is held; once the clock passes
// its end every request is refused, though nothing stopped the server; and
// an answer computed across the lease's end is refused too.
func TestLeaseLapseRefuses(t *testing.T) {
	clock := newFakeClock()
	mod := &clockModule{testModule: testModule{name: "alpha"}, clock: clock, by: 600 * time.Millisecond}
	s := startStandby(t, Config{Now: clock.Now}, mod)
	lease := s.Activate(42).Lease()
	lease.Extend(clock.Now(), time.Second)
	s.SetEnabled([]string{"alpha"})
	base := "http://" + s.HTTPAddr().String()
	conn, err := grpc.NewClient(s.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	hc := healthpb.NewHealthClient(conn)

	if code, body, _ := get(t, base+"/alpha/"); code != http.StatusOK || body != "alpha" {
		t.Fatalf("GET /alpha/ with the lease held = %d %q", code, body)
	}
	if resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health with the lease held = %v, %v", resp, err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	watch, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	// The handler finishes 600ms after it started, within the lease: served.
	if code, body, _ := get(t, base+"/alpha/late"); code != http.StatusOK || body != `{"late":true}` {
		t.Errorf("GET /alpha/late ending within the lease = %d %q", code, body)
	}
	// This one ends after the lease (1.2s): refused, though it began within.
	code, body, hdr := get(t, base+"/alpha/late")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, msgLeaseExpired) || hdr.Get("Content-Type") == "application/json" {
		t.Errorf("GET /alpha/late ending after the lease = %d %q (%s)", code, body, hdr.Get("Content-Type"))
	}
	if hdr.Get("Mgr-Active-Epoch") != "42" {
		t.Errorf("refusal without the epoch header: %v", hdr)
	}

	// Every later request is refused, over both protocols.
	code, body, hdr = get(t, base+"/alpha/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, msgLeaseExpired) || hdr.Get("Mgr-Active-Epoch") != "42" {
		t.Errorf("GET /alpha/ after the lease = %d %q epoch %q", code, body, hdr.Get("Mgr-Active-Epoch"))
	}
	var mdh metadata.MD
	_, err = hc.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Header(&mdh))
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != msgLeaseExpired {
		t.Errorf("health after the lease = %v, want Unavailable %q", err, msgLeaseExpired)
	}
	if got := mdh.Get(ActiveEpochHeader); !slices.Equal(got, []string{"42"}) {
		t.Errorf("gRPC refusal header = %v, want [42]", got)
	}
	// A stream opened within the lease sends nothing more (the health
	// service ends it when its send fails).
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r, err := watch.Recv(); err == nil {
		t.Errorf("health watch after the lease sent %v", r)
	}

	// A unary answer computed across the lease's end is refused.
	lease.Extend(clock.Now(), time.Second)
	if err := conn.Invoke(context.Background(), "/test.Clock/Late", &emptypb.Empty{}, new(emptypb.Empty)); err != nil {
		t.Errorf("Late within a new lease = %v", err)
	}
	err = conn.Invoke(context.Background(), "/test.Clock/Late", &emptypb.Empty{}, new(emptypb.Empty))
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != msgLeaseExpired {
		t.Errorf("Late across the lease's end = %v, want Unavailable %q", err, msgLeaseExpired)
	}
}
