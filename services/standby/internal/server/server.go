// Package server is the embedded manager server: the gRPC and HTTP listeners
// a manager serves on, the modules mounted on them, and the module
// goroutines. A manager has one Server for the life of its process: the
// listeners are bound when it starts, standbys included, and the modules
// register their handlers once. While the map names the manager active it
// serves a Term: Activate begins one, Deactivate ends it. Outside a term the
// server answers as a standby: HTTP requests are redirected to the active
// (or answered with a configured status), gRPC calls are refused naming the
// active, and the health service says NOT_SERVING for the manager service.
// Modules that run on standbys too serve and run outside terms as well.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/rpcserver"
	"github.com/mgrplane/mgrplane/services/standby/internal/fence"
)

// HTTP server timeouts.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 60 * time.Second
)

// ActiveEpochHeader is the gRPC header (and, canonicalised, the HTTP header)
// that carries the active epoch on every answer of a term.
const ActiveEpochHeader = "mgr-active-epoch"

// ManagerService is the health service name that is SERVING only while the
// server holds a term.
var ManagerService = mgrv1.ManagerService_ServiceDesc.ServiceName

// StandbyHTTPStatuses are the statuses a standby may answer HTTP requests
// with: a redirect to the same path on the active (303, 307), or 503.
var StandbyHTTPStatuses = []int{http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusServiceUnavailable}

// Module is what the server hosts: a named unit that mounts its handlers
// once per server and runs while enabled.
type Module interface {
	Name() string
	// Register mounts the module's handlers on r. It is called once, by New.
	Register(r *Registrar)
	// Run runs until ctx is done.
	Run(ctx context.Context) error
	// OnStandby reports whether the module also runs and serves outside
	// terms (on a standby).
	OnStandby() bool
}

// Active is where the active manager serves, for standby answers.
type Active struct {
	Name string
	GID  uint64
	// GRPCAddr is its gRPC host:port; HTTPURL its HTTP base URL
	// (scheme://host:port, no trailing slash). Empty when unknown.
	GRPCAddr string
	HTTPURL  string
}

// Config holds what the server needs.
type Config struct {
	// Now reads the clock for the lease checks; nil means time.Now. Tests
	// set it.
	Now func() time.Time
	// GRPCAddr and HTTPAddr are the listen addresses (host:port, port 0 for any).
	GRPCAddr string
	HTTPAddr string
	// TLS is the server TLS for the manager's gRPC and HTTP listeners; nil
	// means plaintext.
	TLS *tls.Config
	// HealthAddr, when set, is a third listener serving only gRPC health,
	// in plaintext, for probes that cannot speak TLS.
	HealthAddr string
	// DrainTimeout bounds how long the end of a term waits for its requests
	// in flight, and the final GracefulStop and HTTP Shutdown; then
	// connections are closed.
	DrainTimeout time.Duration
	// ModuleStopWarn is how long a stop waits for a module's Run to return
	// before it logs a warning (it goes on waiting).
	ModuleStopWarn time.Duration
	// StandbyHTTPStatus is how a standby answers HTTP requests: 303 or 307
	// redirect to the same path on the active, or 503. Zero means 303.
	StandbyHTTPStatus int
	// Active says where the active serves; nil means unknown.
	Active func() Active
	// GID is the gid this process holds now (0 before it has one), sent
	// in the rpcserver.GIDHeader of every gRPC answer; nil sends none.
	GID func() uint64
}

// Term is one activation: its lease, its active epoch, and its requests.
type Term struct {
	lease *fence.Lease
	epoch string
	// fenced is set first thing when the term ends: every later request
	// and write of the term is refused.
	fenced   atomic.Bool
	ctx      context.Context
	cancel   context.CancelFunc
	inflight inflight
}

// Lease is the term's lease: every request of the term is refused (gRPC
// Unavailable, HTTP 503) unless it is held at that instant. The owner
// extends it as the monitor acknowledges beacons.
func (t *Term) Lease() *fence.Lease { return t.lease }

// Server is a manager's gRPC and HTTP servers and module goroutines.
type Server struct {
	cfg     Config
	log     hclog.Logger
	grpc    *grpc.Server
	health  *health.Server
	http    *http.Server
	modules map[string]Module
	// standby names the modules that run outside terms too.
	standby map[string]bool
	// httpModules names the modules with HTTP handlers.
	httpModules map[string]bool
	// owner maps a gRPC service name to the module that registered it.
	owner map[string]string
	// term is the current term, nil outside one.
	term atomic.Pointer[Term]
	// changed has a value when a module stopped by itself.
	changed chan struct{}

	grpcLis, httpLis net.Listener
	// healthLis serves health alone; nil without Config.HealthAddr.
	healthLis *rpcserver.HealthListener
	serving   sync.WaitGroup
	stopOnce  sync.Once
	// termMu serialises Activate, Deactivate and Stop.
	termMu sync.Mutex

	// moduleWG counts the module goroutines, for Stop to join.
	moduleWG sync.WaitGroup

	mu      sync.Mutex
	running map[string]*runningModule
	// failed names the modules whose Run returned by itself; they stay
	// stopped until a SetEnabled leaves them out or the term ends.
	failed map[string]bool
	// stopped is set by Stop: no module starts again.
	stopped bool
}

type runningModule struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds the servers and mounts every module's handlers. It binds
// nothing: Start does.
func New(cfg Config, modules []Module, log hclog.Logger) (*Server, error) {
	if cfg.StandbyHTTPStatus == 0 {
		cfg.StandbyHTTPStatus = http.StatusSeeOther
	}
	if !slices.Contains(StandbyHTTPStatuses, cfg.StandbyHTTPStatus) {
		return nil, fmt.Errorf("standby HTTP status %d: must be one of %v", cfg.StandbyHTTPStatus, StandbyHTTPStatuses)
	}
	s := &Server{
		cfg:         cfg,
		log:         log,
		modules:     make(map[string]Module, len(modules)),
		standby:     make(map[string]bool),
		httpModules: make(map[string]bool),
		owner:       make(map[string]string),
		changed:     make(chan struct{}, 1),
		running:     make(map[string]*runningModule),
		failed:      make(map[string]bool),
	}
	opts := rpcserver.Options{
		Unary:  []grpc.UnaryServerInterceptor{s.unaryGate},
		Stream: []grpc.StreamServerInterceptor{s.streamGate},
	}
	if cfg.TLS != nil {
		opts.Extra = append(opts.Extra, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc, s.health = rpcserver.New(log.Named("grpc"), opts)

	mux := http.NewServeMux()
	for _, m := range modules {
		name := m.Name()
		if _, dup := s.modules[name]; dup {
			return nil, fmt.Errorf("module %q is listed twice", name)
		}
		s.modules[name] = m
		s.standby[name] = m.OnStandby()
		r := &Registrar{name: name, srv: s, mux: http.NewServeMux()}
		if err := r.register(m); err != nil {
			return nil, err
		}
		if r.hasHTTP {
			s.httpModules[name] = true
			mux.Handle("/"+name+"/", s.moduleGate(name, http.StripPrefix("/"+name, r.mux)))
		}
	}
	s.http = &http.Server{
		Handler:           s.httpFence(mux),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	if cfg.TLS != nil {
		s.http.TLSConfig = cfg.TLS.Clone()
	}
	return s, nil
}

// Registrar mounts one module's handlers; it is handed to Module.Register.
type Registrar struct {
	name    string
	srv     *Server
	mux     *http.ServeMux
	hasHTTP bool
}

// register calls m.Register, turning a panic (a bad pattern, a service
// registered twice) into an error.
func (r *Registrar) register(m Module) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("module %q failed to register its handlers: %v", r.name, p)
		}
	}()
	m.Register(r)
	return nil
}

// HandleHTTP mounts h at pattern under /<module>/. pattern is a net/http
// ServeMux pattern relative to the module's root: "GET /{$}" answers
// /<module>/, "/items/" answers /<module>/items/....
func (r *Registrar) HandleHTTP(pattern string, h http.Handler) {
	r.mux.Handle(pattern, h)
	r.hasHTTP = true
}

// GRPC returns where the module registers its gRPC services.
func (r *Registrar) GRPC() grpc.ServiceRegistrar {
	return moduleRegistrar{r: r}
}

type moduleRegistrar struct{ r *Registrar }

func (m moduleRegistrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	if prev, ok := m.r.srv.owner[desc.ServiceName]; ok {
		panic(fmt.Sprintf("gRPC service %s is already registered by module %q", desc.ServiceName, prev))
	}
	m.r.srv.owner[desc.ServiceName] = m.r.name
	m.r.srv.grpc.RegisterService(desc, impl)
}

// Start binds both listeners and serves on them, as a standby until
// Activate. On error nothing is left running.
func (s *Server) Start() error {
	gl, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("failed to listen for gRPC on %s: %w", s.cfg.GRPCAddr, err)
	}
	hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		_ = gl.Close()
		return fmt.Errorf("failed to listen for HTTP on %s: %w", s.cfg.HTTPAddr, err)
	}
	if s.cfg.HealthAddr != "" {
		if s.healthLis, err = rpcserver.ListenHealth(s.cfg.HealthAddr); err != nil {
			_, _ = gl.Close(), hl.Close()
			return err
		}
	}
	s.grpcLis, s.httpLis = gl, hl
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(ManagerService, healthpb.HealthCheckResponse_NOT_SERVING)
	if s.healthLis != nil {
		s.healthLis.Serve(s.health, s.log.Named("health"))
	}
	s.serving.Add(2)
	go func() {
		defer s.serving.Done()
		// Serve returns when Stop or GracefulStop closes the listener.
		if err := s.grpc.Serve(gl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("gRPC server failed", "addr", gl.Addr().String(), "error", err)
		}
	}()
	go func() {
		defer s.serving.Done()
		var err error
		if s.cfg.TLS != nil {
			err = s.http.ServeTLS(hl, "", "")
		} else {
			err = s.http.Serve(hl)
		}
		// Serve returns http.ErrServerClosed after Shutdown or Close.
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server failed", "addr", hl.Addr().String(), "error", err)
		}
	}()
	return nil
}

// GRPCAddr is the bound gRPC address, after Start.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr is the bound HTTP address, after Start.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

// HealthAddr is the bound address of the health-only listener after Start,
// "" without Config.HealthAddr.
func (s *Server) HealthAddr() string {
	if s.healthLis == nil {
		return ""
	}
	return s.healthLis.Addr()
}

// Scheme is the scheme of the HTTP listener's URLs: https with TLS, else
// http.
func (s *Server) Scheme() string {
	if s.cfg.TLS != nil {
		return "https"
	}
	return "http"
}

// Term is the current term, or nil outside one.
func (s *Server) Term() *Term { return s.term.Load() }

// HasHTTP reports whether module name mounted HTTP handlers.
func (s *Server) HasHTTP(name string) bool { return s.httpModules[name] }

// Changed has a value after a module's Run returned by itself.
func (s *Server) Changed() <-chan struct{} { return s.changed }

// Activate begins a term at activeEpoch, ending the current one first if
// any. The term's lease holds nothing yet: its requests are refused until
// the owner extends it. The health service says SERVING for the manager
// service from now on. Modules are not started: SetEnabled does.
func (s *Server) Activate(activeEpoch uint64) *Term {
	s.termMu.Lock()
	defer s.termMu.Unlock()
	s.deactivate()
	ctx, cancel := context.WithCancel(context.Background())
	t := &Term{lease: &fence.Lease{}, epoch: epochString(activeEpoch), ctx: ctx, cancel: cancel}
	s.term.Store(t)
	s.health.SetServingStatus(ManagerService, healthpb.HealthCheckResponse_SERVING)
	return t
}

// Deactivate ends the current term, if any: every request of the term is
// refused from now on, the health service says NOT_SERVING for the manager
// service, the term's requests in flight are cancelled and waited for (at
// most DrainTimeout), and the modules that run only in terms are stopped
// and waited for. The listeners stay open, answering as a standby.
func (s *Server) Deactivate() {
	s.termMu.Lock()
	defer s.termMu.Unlock()
	s.deactivate()
}

func (s *Server) deactivate() {
	t := s.term.Load()
	if t == nil {
		return
	}
	t.fenced.Store(true)
	s.term.Store(nil)
	s.health.SetServingStatus(ManagerService, healthpb.HealthCheckResponse_NOT_SERVING)
	t.cancel()

	s.mu.Lock()
	var stopping []*runningModule
	for n, rm := range s.running {
		if !s.standby[n] {
			rm.cancel()
			delete(s.running, n)
			stopping = append(stopping, rm)
			s.log.Info("module stopping", "module", n)
		}
	}
	for n := range s.failed {
		if !s.standby[n] {
			delete(s.failed, n)
		}
	}
	s.mu.Unlock()

	tm := time.NewTimer(s.cfg.DrainTimeout)
	select {
	case <-t.inflight.close():
	case <-tm.C:
		s.log.Debug("requests of the ended term still running after the drain timeout", "timeout", s.cfg.DrainTimeout)
	}
	tm.Stop()
	s.waitModules(stopping)
}

// Running returns the names of the running modules, sorted.
func (s *Server) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.running))
	for n := range s.running {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *Server) isRunning(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.running[name]
	return ok
}

// SetEnabled starts the named modules that may run now and are not
// running, and stops the running ones not named. In a term every named
// module may run; outside one only the modules that run on standbys. Names
// of modules the server does not host are ignored. A module whose Run
// returned by itself is not started again until a call leaves it out (or,
// for a module that runs only in terms, the term ends). SetEnabled waits for
// the stopped modules' Run to return.
func (s *Server) SetEnabled(names []string) {
	t := s.term.Load()
	inTerm := t != nil && !t.fenced.Load()
	want := make(map[string]bool, len(names))
	for _, n := range names {
		if _, ok := s.modules[n]; ok && (inTerm || s.standby[n]) {
			want[n] = true
		}
	}
	var stopping []*runningModule
	s.mu.Lock()
	for n := range s.failed {
		if !want[n] {
			delete(s.failed, n)
		}
	}
	for n, rm := range s.running {
		if !want[n] {
			rm.cancel()
			delete(s.running, n)
			stopping = append(stopping, rm)
			s.log.Info("module stopping", "module", n)
		}
	}
	s.mu.Unlock()
	s.waitModules(stopping)

	for _, n := range slices.Sorted(maps.Keys(want)) {
		s.startModule(n)
	}
}

func (s *Server) startModule(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.running[name]; ok || s.failed[name] || s.stopped {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	rm := &runningModule{cancel: cancel, done: make(chan struct{})}
	s.running[name] = rm
	m := s.modules[name]
	s.log.Info("module starting", "module", name)
	s.moduleWG.Add(1)
	go func() {
		defer s.moduleWG.Done()
		defer close(rm.done)
		err := runModule(ctx, m)
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				s.log.Warn("module stopped with an error", "module", name, "error", err)
			}
			return
		}
		// It stopped by itself: no longer running, and not started again
		// until it is disabled and enabled.
		s.log.Error("module stopped by itself", "module", name, "error", err)
		s.mu.Lock()
		if s.running[name] == rm {
			delete(s.running, name)
			s.failed[name] = true
		}
		s.mu.Unlock()
		cancel()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}()
}

// runModule runs m, turning a panic into an error.
func runModule(ctx context.Context, m Module) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("module panicked: %v", p)
		}
	}()
	return m.Run(ctx)
}

func (s *Server) waitModules(rms []*runningModule) {
	for _, rm := range rms {
		t := time.NewTimer(s.cfg.ModuleStopWarn)
		select {
		case <-rm.done:
		case <-t.C:
			s.log.Warn("a module is slow to stop; waiting for it", "waited", s.cfg.ModuleStopWarn)
			<-rm.done
		}
		t.Stop()
	}
}

// Stop ends the term, if any, stops every module, turns health
// NOT_SERVING, and closes both servers after draining them for at most
// DrainTimeout; it returns when every goroutine of the server has returned.
// Later calls do nothing.
func (s *Server) Stop() { s.stopOnce.Do(s.stop) }

func (s *Server) stop() {
	s.termMu.Lock()
	s.deactivate()
	s.termMu.Unlock()
	s.health.Shutdown()

	s.mu.Lock()
	s.stopped = true
	var stopping []*runningModule
	for n, rm := range s.running {
		rm.cancel()
		delete(s.running, n)
		stopping = append(stopping, rm)
	}
	s.mu.Unlock()

	if s.grpcLis != nil {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			rpcserver.Stop(s.grpc, s.cfg.DrainTimeout)
		}()
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
			defer cancel()
			if err := s.http.Shutdown(ctx); err != nil {
				s.log.Debug("HTTP drain timed out; closing connections", "timeout", s.cfg.DrainTimeout, "error", err)
				_ = s.http.Close()
			}
		}()
		wg.Wait()
		s.serving.Wait()
	}
	if s.healthLis != nil {
		s.healthLis.Stop()
	}
	s.waitModules(stopping)
	s.moduleWG.Wait()
}

// inflight counts a term's requests in flight; once closed it admits none.
type inflight struct {
	mu     sync.Mutex
	n      int
	closed bool
	zero   chan struct{}
}

// enter admits one request, unless the term ended.
func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.closed && f.n == 0 && f.zero != nil {
		close(f.zero)
		f.zero = nil
	}
}

// close admits no more requests and returns a channel closed once none is
// in flight.
func (f *inflight) close() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	ch := make(chan struct{})
	if f.n == 0 {
		close(ch)
	} else {
		f.zero = ch
	}
	return ch
}

// serviceOf returns the service part of a full gRPC method name
// ("/pkg.Service/Method").
func serviceOf(fullMethod string) string {
	svc, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return svc
}

// Port returns the port of a bound address.
func Port(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return strconv.Itoa(ta.Port)
	}
	_, p, _ := net.SplitHostPort(a.String())
	return p
}
