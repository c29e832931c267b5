// Package standby is the mgrplane manager daemon as a library: a manager
// authenticates with the monitors, follows the MgrMap, beacons, and while the
// map names it active it serves the embedded manager server (gRPC and HTTP)
// with its modules. When it loses the role it stops serving before anything
// else and goes on as a standby in the same process.
//
// Embedders build their own manager with their own modules:
//
//	cfg := standby.DefaultConfig()
//	cfg.Name = "x"
//	sb, err := standby.New(cfg, myModule{})
//	...
//	err = sb.Run(ctx) // until ctx is cancelled
//
// The built-in module "status" always runs on the active: GET /status/ and
// mgr.v1.ManagerService/GetStatus. Dashboard returns the dashboard module, a
// live web page of the cluster at /dashboard/. NewPrometheusModule returns
// the prometheus module, which serves the manager's metrics (Registry) at
// /prometheus/metrics.
package standby

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/internal/runtimemetrics"
	"github.com/mgrplane/mgrplane/services/standby/internal/metrics"
	"github.com/mgrplane/mgrplane/services/standby/internal/monclient"
	"github.com/mgrplane/mgrplane/services/standby/internal/role"
	"github.com/mgrplane/mgrplane/services/standby/internal/server"
	"github.com/mgrplane/mgrplane/services/standby/internal/sysinfo"
)

// StatusModule is the name of the built-in module that always runs on the
// active manager.
const StatusModule = "status"

// MaxModuleNameLen bounds a module's name.
const MaxModuleNameLen = 32

// Timings of the stop path.
const (
	// drainTimeout bounds the manager server's graceful stop; then its
	// connections are closed.
	drainTimeout = 500 * time.Millisecond
	// leaveTimeout bounds the Leave call on shutdown.
	leaveTimeout = 2 * time.Second
)

var (
	moduleRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	optionRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Standby is one manager. Make it with New and run it with Run; its other
// methods are safe for concurrent use.
type Standby struct {
	cfg     Config
	log     hclog.Logger
	role    *role.Role
	started time.Time
	reg     *prometheus.Registry
	// names are the modules' names, the built-in one first.
	names []string
	ran   atomic.Bool
	// mon is the monitor client while Run runs.
	mon atomic.Pointer[monclient.Client]
	// dial carries the TLS and per-call credentials to the monitors.
	dial []grpc.DialOption
}

// New checks cfg and the modules and returns a manager carrying them and the
// built-in status module. It opens nothing: Run does.
func New(cfg Config, modules ...Module) (*Standby, error) {
	return newStandby(cfg, false, modules)
}

// newStandby is New; coldStart builds the server at each activation instead
// (the benchmarks' baseline, see role.Config.ColdStart).
func newStandby(cfg Config, coldStart bool, modules []Module) (*Standby, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Standby{cfg: cfg, log: log, started: time.Now(), reg: cfg.Registry}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	serverTLS := cfg.TLS
	if !cfg.Insecure {
		entity := cfg.Entity
		if entity == "" {
			entity = "mgr." + cfg.Name
		}
		cc, err := creds.LoadClient(cfg.CredsDir, cfg.Keyring, entity)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		s.dial = cc.DialOptions()
		if serverTLS == nil {
			m, err := creds.LoadManager(cfg.CredsDir)
			if err != nil {
				return nil, fmt.Errorf("manager certificate: %w", err)
			}
			serverTLS = m.TLS
		}
	}

	all := append([]Module{statusModule{s: s}}, modules...)
	seen := map[string]bool{}
	rmods := make([]role.Module, 0, len(all))
	modLog := log.Named("module")
	for i, m := range all {
		if m == nil {
			return nil, fmt.Errorf("modules[%d]: nil module", i-1)
		}
		n := m.Name()
		if len(n) > MaxModuleNameLen || !moduleRE.MatchString(n) {
			return nil, fmt.Errorf("module %q: name must be 1 to %d characters of [a-z0-9_], starting with a lower-case letter", n, MaxModuleNameLen)
		}
		if seen[n] {
			if n == StatusModule {
				return nil, fmt.Errorf("module %q: the name is taken by the built-in module", n)
			}
			return nil, fmt.Errorf("module %q: listed twice", n)
		}
		seen[n] = true
		s.names = append(s.names, n)
		opts, err := moduleOptions(m)
		if err != nil {
			return nil, fmt.Errorf("module %q: %w", n, err)
		}
		onStandby := false
		if sm, ok := m.(StandbyModule); ok {
			onStandby = sm.RunOnStandby()
		}
		rmods = append(rmods, adapter{m: m, opts: opts, onStandby: onStandby,
			host: host{s: s, log: modLog.Named(n), name: n, opts: opts}})
	}

	if err := runtimemetrics.Register(s.reg); err != nil {
		return nil, err
	}
	met, err := metrics.New(s.reg, cfg.Name, metricsSource{s: s})
	if err != nil {
		return nil, err
	}

	advGRPC := advertise(cfg.AdvertiseHost, cfg.GRPCAddr, os.Hostname)
	advHTTP := advertise(cfg.AdvertiseHost, cfg.HTTPAddr, os.Hostname)
	s.role = role.New(role.Config{
		Name:          cfg.Name,
		Priority:      cfg.Priority,
		Zone:          cfg.Zone,
		FSID:          cfg.FSID,
		BeaconPeriod:  cfg.BeaconPeriod,
		GRPCAddr:      cfg.GRPCAddr,
		HTTPAddr:      cfg.HTTPAddr,
		HealthAddr:    cfg.HealthAddr,
		AdvertiseGRPC: advGRPC,
		AdvertiseHTTP: advHTTP,
		ReconnectMin:  cfg.ReconnectMin,
		ReconnectMax:  cfg.ReconnectMax,
		Metadata:      sysinfo.Host().Collect(advGRPC),
		AlwaysRun:     []string{StatusModule},
		DrainTimeout:  drainTimeout,
		LeaveTimeout:  leaveTimeout,
		Observer:      met,

		TLS:               serverTLS,
		StandbyHTTPStatus: cfg.StandbyHTTPStatus,
		ColdStart:         coldStart,
	}, rmods, log)
	return s, nil
}

// advertise returns the host to advertise for the listen address addr: the
// configured one, else the listen host, else (all addresses) the machine's
// hostname.
func advertise(configured, addr string, hostname func() (string, error)) string {
	if configured != "" {
		return configured
	}
	listen, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(listen); listen != "" && (ip == nil || !ip.IsUnspecified()) {
		return listen
	}
	if h, err := hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// Run runs the manager until ctx is done, then stops serving, leaves the map
// and returns nil; it returns an error when the manager cannot go on (the
// monitors refuse its name or fsid, their fence timeout is too short for
// BeaconPeriod, its server cannot listen). Run may be called once.
//
// While the map names it active the manager answers requests only as long
// as it holds a lease, renewed by every beacon the monitor acknowledges; it
// stops serving when the lease runs out. An active the monitor tells to stop
// (mgrctl fail, a restart under its name, `down`) stops serving, leaves, and
// goes on as a standby under a new gid.
func (s *Standby) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("standby: Run called twice")
	}
	mon, err := monclient.New(s.cfg.Monitors, s.log.Named("monclient"), s.dial...)
	if err != nil {
		return err
	}
	s.mon.Store(mon)
	defer func() {
		s.mon.Store(nil)
		_ = mon.Close()
	}()
	return s.role.Run(ctx, mon)
}

// GID is the gid the monitor issued to this manager, or 0 while it has none
// (before authentication, while authenticating again, after Run returned).
func (s *Standby) GID() uint64 { return s.role.GID() }

// Active reports whether this manager serves as the active now: the map
// named it active and it holds a lease.
func (s *Standby) Active() bool { return s.role.Serving() }

// Map is the newest map this manager received, or nil before the first.
func (s *Standby) Map() *mgrv1.MgrMap { return s.role.Map() }

// Registry is the registry holding the manager's metrics (Config.Registry,
// or the one New made): the prometheus module serves it, and an embedder
// may register its own metrics on it.
func (s *Standby) Registry() *prometheus.Registry { return s.reg }

// GRPCAddr is the address the manager's gRPC server is bound to while Run
// runs (a standby listens too, answering as a standby), else "".
func (s *Standby) GRPCAddr() string { return s.role.GRPCAddr() }

// HTTPAddr is the address the manager's HTTP server is bound to while Run
// runs, else "".
func (s *Standby) HTTPAddr() string { return s.role.HTTPAddr() }

// HealthAddr is the address of the plaintext health-only listener while
// Run runs, "" without Config.HealthAddr.
func (s *Standby) HealthAddr() string { return s.role.HealthAddr() }

// metricsSource answers the metrics' questions at scrape time.
type metricsSource struct{ s *Standby }

func (m metricsSource) GID() uint64   { return m.s.role.GID() }
func (m metricsSource) Serving() bool { return m.s.role.Serving() }

// Modules says for each module whether the map enables it (or it is always
// on) and whether it runs here.
func (m metricsSource) Modules() []metrics.ModuleState {
	mm := m.s.role.Map()
	enabled := map[string]bool{StatusModule: true}
	for _, n := range mm.GetModules() {
		enabled[n] = true
	}
	for _, n := range mm.GetAlwaysOnModules() {
		enabled[n] = true
	}
	running := map[string]bool{}
	for _, n := range m.s.role.Running() {
		running[n] = true
	}
	out := make([]metrics.ModuleState, len(m.s.names))
	for i, n := range m.s.names {
		out[i] = metrics.ModuleState{Name: n, Enabled: enabled[n], Running: running[n]}
	}
	return out
}

// adapter runs a Module as the role runs modules.
type adapter struct {
	m         Module
	host      host
	opts      []*mgrv1.ModuleOption
	onStandby bool
}

func (a adapter) Name() string                   { return a.m.Name() }
func (a adapter) CanRun() error                  { return a.m.CanRun() }
func (a adapter) OnStandby() bool                { return a.onStandby }
func (a adapter) Options() []*mgrv1.ModuleOption { return a.opts }
func (a adapter) Register(r *server.Registrar) {
	a.m.Register(registrar{Registrar: r, host: a.host})
}
func (a adapter) Run(ctx context.Context) error { return a.m.Run(ctx, a.host) }

// registrar adds the Host to the server's registrar.
type registrar struct {
	*server.Registrar
	host host
}

func (r registrar) Host() Host { return r.host }

// host is the Host a module sees.
type host struct {
	s    *Standby
	log  hclog.Logger
	name string
	opts []*mgrv1.ModuleOption
}

func (h host) Map() *mgrv1.MgrMap     { return h.s.role.Map() }
func (h host) GID() uint64            { return h.s.role.GID() }
func (h host) Name() string           { return h.s.cfg.Name }
func (h host) Logger() hclog.Logger   { return h.log }
func (h host) ActiveSince() time.Time { return h.s.role.ActiveSince() }
func (h host) Watch(ctx context.Context) <-chan *mgrv1.MgrMap {
	return h.s.role.Watch(ctx)
}
func (h host) Monitors() grpc.ClientConnInterface { return monConn{s: h.s} }
func (h host) Active() bool                       { return h.s.Active() }

// errNotRunning is what a call through Host.Monitors returns while Run is
// not running.
var errNotRunning = errors.New("standby: the manager is not running; no monitor connection")

// monConn calls the monitor in use through Run's client.
type monConn struct{ s *Standby }

func (c monConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	mon := c.s.mon.Load()
	if mon == nil {
		return errNotRunning
	}
	return mon.Conn().Invoke(ctx, method, args, reply, opts...)
}

func (c monConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	mon := c.s.mon.Load()
	if mon == nil {
		return nil, errNotRunning
	}
	return mon.Conn().NewStream(ctx, desc, method, opts...)
}
