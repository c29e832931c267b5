// Package server is the embedded manager server: the gRPC and HTTP listeners
// an active manager serves on, the modules mounted on them, and the module
// goroutines. A Server lives for one activation: it is built, started, and
// stopped once; the next activation builds a new one.
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
// that carries the active epoch on every answer.
const ActiveEpochHeader = "mgr-active-epoch"

// Module is what the server hosts: a named unit that mounts its handlers once
// per server and runs while enabled.
type Module interface {
	Name() string
	// Register mounts the module's handlers on r. It is called once, by New.
	Register(r *Registrar)
	// Run runs until ctx is done.
	Run(ctx context.Context) error
}

// Config holds what one activation's server needs.
type Config struct {
	// Lease is this activation's lease: every request is refused (gRPC
	// Unavailable, HTTP 503) unless it is held at that instant. The owner
	// extends it as the monitor acknowledges beacons. Nil refuses every
	// request.
	Lease *fence.Lease
	// Now reads the clock for the lease checks; nil means time.Now. Tests
	// set it.
	Now func() time.Time
	// GRPCAddr and HTTPAddr are the listen addresses (host:port, port 0 for any).
	GRPCAddr string
	HTTPAddr string
	// ActiveEpoch is sent on every answer (the fencing token).
	ActiveEpoch uint64
	// DrainTimeout bounds GracefulStop and HTTP Shutdown; then connections
	// are closed.
	DrainTimeout time.Duration
	// TLS is the server TLS for the gRPC and HTTP listeners; nil means
	// plaintext.
	TLS *tls.Config
	// ModuleStopWarn is how long Stop waits for a module's Run to return
	// before it logs a warning (it goes on waiting).
	ModuleStopWarn time.Duration
}

// Server is one activation's gRPC and HTTP servers and module goroutines.
type Server struct {
	cfg Config
	log hclog.Logger
	// epoch is cfg.ActiveEpoch for the headers.
	epoch   string
	grpc    *grpc.Server
	health  *health.Server
	http    *http.Server
	modules map[string]Module
	// httpModules names the modules with HTTP handlers.
	httpModules map[string]bool
	// owner maps a gRPC service name to the module that registered it.
	owner map[string]string
	// fenced is set first thing in Stop: every later request is refused.
	fenced atomic.Bool
	// changed has a value when a module stopped by itself.
	changed chan struct{}

	grpcLis, httpLis net.Listener
	serving          sync.WaitGroup
	stopOnce         sync.Once

	// modules counts the module goroutines, for Stop to join.
	moduleWG sync.WaitGroup

	mu      sync.Mutex
	running map[string]*runningModule
	// failed names the modules whose Run returned by itself; they stay
	// stopped until a SetEnabled leaves them out.
	failed map[string]bool
}

type runningModule struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds the servers and mounts every module's handlers. It binds
// nothing: Start does.
func New(cfg Config, modules []Module, log hclog.Logger) (*Server, error) {
	s := &Server{
		cfg:         cfg,
		log:         log,
		epoch:       epochString(cfg.ActiveEpoch),
		modules:     make(map[string]Module, len(modules)),
		httpModules: make(map[string]bool),
		owner:       make(map[string]string),
		changed:     make(chan struct{}, 1),
		running:     make(map[string]*runningModule),
		failed:      make(map[string]bool),
	}
	var extra []grpc.ServerOption
	if cfg.TLS != nil {
		extra = append(extra, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc, s.health = rpcserver.New(log.Named("grpc"), rpcserver.Options{
		Unary:  []grpc.UnaryServerInterceptor{s.unaryGate},
		Stream: []grpc.StreamServerInterceptor{s.streamGate},
		Extra:  extra,
	})

	mux := http.NewServeMux()
	for _, m := range modules {
		name := m.Name()
		if _, dup := s.modules[name]; dup {
			return nil, fmt.Errorf("module %q is listed twice", name)
		}
		s.modules[name] = m
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

// Start binds both listeners and serves on them. On error nothing is left
// running.
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
	s.grpcLis, s.httpLis = gl, hl
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(mgrv1.ManagerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
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
		// Serve returns http.ErrServerClosed after Shutdown or Close.
		serve := func() error { return s.http.Serve(hl) }
		if s.cfg.TLS != nil {
			s.http.TLSConfig = s.cfg.TLS
			serve = func() error { return s.http.ServeTLS(hl, "", "") }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server failed", "addr", hl.Addr().String(), "error", err)
		}
	}()
	return nil
}

// GRPCAddr is the bound gRPC address, after Start.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr is the bound HTTP address, after Start.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

// Lease is the lease the server checks.
func (s *Server) Lease() *fence.Lease { return s.cfg.Lease }

// HasHTTP reports whether module name mounted HTTP handlers.
func (s *Server) HasHTTP(name string) bool { return s.httpModules[name] }

// Changed has a value after a module's Run returned by itself.
func (s *Server) Changed() <-chan struct{} { return s.changed }

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

// SetEnabled starts the named modules that are not running and stops the
// running ones not named; names of modules the server does not host are
// ignored. A module whose Run returned by itself is not started again until
// a call leaves it out. SetEnabled waits for the stopped modules' Run to
// return.
func (s *Server) SetEnabled(names []string) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		if _, ok := s.modules[n]; ok {
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
	if _, ok := s.running[name]; ok || s.failed[name] || s.fenced.Load() {
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

// Stop stops serving: every request from now on is refused, health turns
// NOT_SERVING, the modules are cancelled, both servers drain for at most
// DrainTimeout and are then closed; Stop returns when every goroutine of the
// server has returned. Later calls do nothing.
func (s *Server) Stop() { s.stopOnce.Do(s.stop) }

func (s *Server) stop() {
	s.fenced.Store(true)
	s.health.Shutdown()

	s.mu.Lock()
	var stopping []*runningModule
	for n, rm := range s.running {
		rm.cancel()
		delete(s.running, n)
		stopping = append(stopping, rm)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.grpc.GracefulStop()
		}()
		t := time.NewTimer(s.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			s.log.Debug("gRPC drain timed out; closing connections", "timeout", s.cfg.DrainTimeout)
			s.grpc.Stop()
			<-done
		}
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
	s.waitModules(stopping)
	s.moduleWG.Wait()
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
