// Package role is the manager's state machine, Ceph's MgrStandby: it
// authenticates with the monitor, follows the map stream, beacons, and when
// the map names it active it starts the manager server and its modules; when
// the map (or a beacon answer) says it no longer is, it stops serving before
// anything else and goes on as a standby in the same process.
//
// The server answers requests only while it holds a lease (package fence):
// each beacon the monitor answers ACTIVE extends it to the beacon's send time
// plus the lease granted. A timer stops serving when the lease runs out
// unrenewed, and the server's gates refuse every request past its end even
// before the timer fires. An active the monitor tells to stop (the map says
// active_failing, or a beacon is answered STALE) stops serving, leaves, and
// joins again under a new gid.
package role

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/backoff"
	"github.com/mgrplane/mgrplane/services/standby/internal/beacon"
	"github.com/mgrplane/mgrplane/services/standby/internal/feed"
	"github.com/mgrplane/mgrplane/services/standby/internal/monclient"
	"github.com/mgrplane/mgrplane/services/standby/internal/server"
	"github.com/mgrplane/mgrplane/services/standby/internal/watch"
)

// State is where the manager stands.
type State int32

// The states. Standby → Activating when a map names this manager active (the
// server and modules are started, and a beacon goes out at once; requests
// are served once its answer grants a lease, and the next beacon says
// available=true); Activating →
// Active when a map says available; Activating or Active → Stopping when a
// map names another active or says this one is failing, a beacon is answered
// STALE or refused for the gid, the lease runs out, or on shutdown; Stopping
// → Standby once nothing serves any more.
const (
	StateStandby State = iota
	StateActivating
	StateActive
	StateStopping
)

// String names the state.
func (s State) String() string {
	switch s {
	case StateStandby:
		return "standby"
	case StateActivating:
		return "activating"
	case StateActive:
		return "active"
	case StateStopping:
		return "stopping"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Module is a module as the role runs it.
type Module interface {
	server.Module
	// CanRun returns nil if the module can run here. It may be called from
	// any goroutine.
	CanRun() error
	// Options declares the module's options, reported in every beacon.
	Options() []*mgrv1.ModuleOption
}

// Monitor is what the role needs of the monitors; monclient.Client is one.
// Its errors are classified with the monclient sentinels.
type Monitor interface {
	beacon.Sender
	watch.Streamer
	Authenticate(ctx context.Context, req *mgrv1.AuthenticateRequest) (*mgrv1.AuthenticateResponse, error)
	Leave(ctx context.Context, req *mgrv1.LeaveRequest) (*mgrv1.LeaveResponse, error)
}

// Observer is told what the role sees, for metrics. Its methods are called
// from the role's goroutine and must return at once.
type Observer interface {
	// StateChanged is called with every state the role moves to.
	StateChanged(s State)
	// MapReceived is called with every map received, in epoch order.
	MapReceived(m *mgrv1.MgrMap)
	// BeaconDone is called after every beacon with its round trip and its
	// error (nil when the monitor answered).
	BeaconDone(rtt time.Duration, err error)
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) StateChanged(State)              {}
func (nopObserver) MapReceived(*mgrv1.MgrMap)       {}
func (nopObserver) BeaconDone(time.Duration, error) {}

// MinLeaseMargin is the least time a lease must outlast a beacon period: the
// monitor's fence timeout must exceed BeaconPeriod plus
// max(BeaconPeriod/2, MinLeaseMargin), or the lease would lapse between two
// beacons (Run fails).
const MinLeaseMargin = 100 * time.Millisecond

// LeaseMargin is how much longer than period the monitor's fence timeout must
// be.
func LeaseMargin(period time.Duration) time.Duration {
	return max(period/2, MinLeaseMargin)
}

// Config holds the role's settings, already checked.
type Config struct {
	Name string
	// Priority and Zone are sent in every beacon: the monitor promotes the
	// highest priority first, then a standby outside the failed active's
	// zone.
	Priority int32
	Zone     string
	// FSID, when set, is the cluster this manager must join.
	FSID         string
	BeaconPeriod time.Duration
	// HealthAddr, when set, is the server's plaintext health-only listener.
	HealthAddr string
	// GRPCAddr and HTTPAddr are the server's listen addresses.
	GRPCAddr string
	HTTPAddr string
	// AdvertiseGRPC and AdvertiseHTTP are the hosts put in server_addrs and
	// service URLs for each listener.
	AdvertiseGRPC string
	AdvertiseHTTP string
	ReconnectMin  time.Duration
	ReconnectMax  time.Duration
	// Metadata is sent in every beacon.
	Metadata map[string]string
	// AlwaysRun names modules run whenever active, whatever the map says.
	AlwaysRun []string
	// DrainTimeout bounds the server's graceful stop.
	DrainTimeout time.Duration
	// LeaveTimeout bounds the Leave call on shutdown.
	LeaveTimeout time.Duration
	// Observer, when set, is told of state changes, maps and beacons.
	Observer Observer
	// TLS is the server TLS of the manager's listeners; nil means plaintext.
	TLS *tls.Config
	// StandbyHTTPStatus is how the server answers HTTP as a standby (303,
	// 307 or 503; 0 means 303).
	StandbyHTTPStatus int
	// ColdStart is the design before warm standbys, kept as the baseline of
	// the activation benchmarks: the server is built (modules registered)
	// and bound at each activation and closed at its end; a standby does
	// not listen.
	ColdStart bool
}

// Role runs one manager. Its accessors are safe for concurrent use; Run is
// called once.
type Role struct {
	cfg     Config
	modules []Module
	log     hclog.Logger

	// Published to other goroutines.
	gid     atomic.Uint64
	state   atomic.Int32
	current atomic.Pointer[mgrv1.MgrMap]
	// srv is the manager server while Run runs; term is its current term
	// while this manager is active (activating, serving, or waiting for a
	// lease), else nil.
	srv         atomic.Pointer[server.Server]
	term        atomic.Pointer[server.Term]
	activeSince atomic.Pointer[time.Time]
	// maps carries every map received to Watch; closed when Run returns.
	maps *feed.Feed[*mgrv1.MgrMap]

	// Owned by Run's goroutine.
	mon         Monitor
	beaconer    *beacon.Beaconer
	watcher     *watch.Watcher
	fsid        string
	activeEpoch uint64
	// activatedAt is when the server of this activation started.
	activatedAt time.Time
	// fenceTimeout is the monitor's, from Authenticate: the longest lease it
	// grants, and how long an activation may wait for its first lease.
	fenceTimeout time.Duration
	// fenceTimer fires when the server must stop unless its lease was
	// renewed: at the lease's end, or fenceTimeout after activation while
	// no lease was granted.
	fenceTimer *time.Timer
	lastReport *mgrv1.BeaconRequest
	// notActiveAt is the newest epoch at which a beacon answer said this
	// gid was not the active: an older map naming it active is out of date.
	notActiveAt uint64
	announced   bool
	failures    int
	cannotRun   map[string]string
}

// New returns a Role for modules, sorted by name.
func New(cfg Config, modules []Module, log hclog.Logger) *Role {
	mods := slices.Clone(modules)
	slices.SortFunc(mods, func(a, b Module) int {
		if a.Name() < b.Name() {
			return -1
		}
		if a.Name() > b.Name() {
			return 1
		}
		return 0
	})
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Role{cfg: cfg, modules: mods, log: log, fsid: cfg.FSID, cannotRun: map[string]string{},
		maps: feed.New[*mgrv1.MgrMap]()}
}

// GID is the gid the monitor issued, or 0 while there is none (before
// authentication, while authenticating again, and after Run returned).
func (r *Role) GID() uint64 { return r.gid.Load() }

// State is where the manager stands now.
func (r *Role) State() State { return State(r.state.Load()) }

// Serving reports whether the manager serves as the active now: its server
// is up, not stopping, and holds a lease.
func (r *Role) Serving() bool {
	t := r.term.Load()
	return t != nil && r.up() && t.Lease().Held(time.Now())
}

// up reports whether the state is one in which the server is up and not
// stopping (serving, or waiting for its first lease).
func (r *Role) up() bool {
	s := r.State()
	return s == StateActivating || s == StateActive
}

// Map is the newest map received, or nil.
func (r *Role) Map() *mgrv1.MgrMap { return r.current.Load() }

// Watch returns a channel carrying the newest map at once (or the first one
// received), then each newer map. A reader slower than the map stream gets
// the newest map when it reads again, the ones in between dropped: the role
// never waits for a reader. The channel is closed when ctx is done or Run
// returns.
func (r *Role) Watch(ctx context.Context) <-chan *mgrv1.MgrMap { return r.maps.Watch(ctx) }

// ActiveSince is when the current activation began; zero when not serving.
func (r *Role) ActiveSince() time.Time {
	if t := r.activeSince.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// LeaseUntil is when the lease of the current activation ends; zero while
// there is no server or no lease was granted yet.
func (r *Role) LeaseUntil() time.Time {
	if t := r.term.Load(); t != nil && r.up() {
		return t.Lease().Until()
	}
	return time.Time{}
}

// GRPCAddr is the bound gRPC address while Run runs (standbys listen
// too), else "".
func (r *Role) GRPCAddr() string {
	if s := r.srv.Load(); s != nil {
		return s.GRPCAddr().String()
	}
	return ""
}

// HTTPAddr is the bound HTTP address while Run runs, else "".
func (r *Role) HTTPAddr() string {
	if s := r.srv.Load(); s != nil {
		return s.HTTPAddr().String()
	}
	return ""
}

// HealthAddr is the bound health-only address while Run runs, else "".
func (r *Role) HealthAddr() string {
	if s := r.srv.Load(); s != nil {
		return s.HealthAddr()
	}
	return ""
}

// Running names the running modules, sorted: on a standby, only modules
// that run on standbys.
func (r *Role) Running() []string {
	if s := r.srv.Load(); s != nil {
		return s.Running()
	}
	return []string{}
}

// activeInfo says where the active serves, from the newest map, for the
// server's standby answers.
func (r *Role) activeInfo() server.Active {
	m := r.current.Load()
	a := server.Active{Name: m.GetActiveName(), GID: m.GetActiveGid()}
	if m.GetActiveGid() == 0 || m.GetActiveFailing() {
		return server.Active{}
	}
	if addrs := m.GetActiveAddrs(); len(addrs) >= 2 && m.GetAvailable() {
		a.GRPCAddr = addrs[0]
		if srv := r.srv.Load(); srv != nil {
			a.HTTPURL = srv.Scheme() + "://" + addrs[1]
		}
	}
	return a
}

func (r *Role) setState(s State) {
	if State(r.state.Swap(int32(s))) != s {
		r.cfg.Observer.StateChanged(s)
	}
}

// Run authenticates, then follows the map and beacons until ctx is done or a
// fatal error (the monitor refuses the name or the fsid, the server cannot
// listen). On return nothing serves, every goroutine it started has returned,
// and a manager that held a gid has told the monitor it leaves. It returns
// nil when ctx ends it.
func (r *Role) Run(ctx context.Context, mon Monitor) error {
	r.mon = mon
	defer r.maps.Close()
	r.beaconer = beacon.New(mon, r.cfg.BeaconPeriod, r.moduleInfo, r.log.Named("beacon"))
	r.fenceTimer = time.NewTimer(time.Hour)
	r.fenceTimer.Stop()
	defer r.fenceTimer.Stop()
	// The server listens from the start, standbys included; modules
	// register once, so that an activation is a switch.
	if !r.cfg.ColdStart {
		srv, err := r.startServer()
		if err != nil {
			return err
		}
		r.srv.Store(srv)
	}
	defer func() {
		if srv := r.srv.Load(); srv != nil {
			srv.Stop()
		}
	}()
	if err := r.authenticate(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	maps := make(chan *mgrv1.MgrMap)
	results := make(chan beacon.Result)
	// The helpers outlive ctx until the Leave is sent: the map stream must
	// not end before it, or the monitor would take the end for a crash.
	hctx, stopHelpers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHelpers()
	g, gctx := errgroup.WithContext(hctx)
	r.watcher = watch.New(mon, r.identity, r.cfg.ReconnectMin, r.cfg.ReconnectMax, r.log.Named("watch"))
	g.Go(func() error { return r.watcher.Run(gctx, maps) })
	g.Go(func() error { return r.beaconer.Run(gctx, results) })

	err := r.loop(ctx, gctx, maps, results)
	// Stop serving first: once the term is fenced and drained nothing is
	// answered as active. Then stop beaconing and leave at once, so the
	// monitor promotes the next manager while this one closes its
	// listeners (a graceful close waits for idle connections: milliseconds
	// the handover need not wait for). Then end the map stream.
	r.stopServing("shutting down")
	r.beaconer.Set(nil)
	r.leave(ctx)
	if srv := r.srv.Load(); srv != nil {
		srv.Stop()
	}
	stopHelpers()
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}

func (r *Role) loop(ctx, helpers context.Context, maps <-chan *mgrv1.MgrMap, results <-chan beacon.Result) error {
	for {
		var changed <-chan struct{}
		if s := r.srv.Load(); s != nil {
			changed = s.Changed()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-helpers.Done():
			return nil
		case m := <-maps:
			if err := r.handleMap(ctx, m); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		case res := <-results:
			if err := r.handleBeacon(ctx, res); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		case <-r.fenceTimer.C:
			r.checkFence()
		case <-changed:
			r.report(false)
		}
	}
}

// identity is what the map streams carry: the gid now (0 while there is
// none) and the name.
func (r *Role) identity() (uint64, string) { return r.gid.Load(), r.cfg.Name }

// handleMap is Ceph's MgrStandby::handle_mgr_map.
func (r *Role) handleMap(ctx context.Context, m *mgrv1.MgrMap) error {
	r.current.Store(m)
	r.maps.Publish(m)
	r.cfg.Observer.MapReceived(m)
	gid := r.gid.Load()
	named := gid != 0 && m.GetActiveGid() == gid
	serving := r.term.Load() != nil
	r.log.Debug("map received", "epoch", m.GetEpoch(), "active_gid", m.GetActiveGid(), "gid", gid,
		"active_failing", m.GetActiveFailing())
	switch {
	case named && m.GetActiveFailing():
		reason := fmt.Sprintf("map epoch %d says this active must stop", m.GetEpoch())
		if m.GetReason() != "" {
			reason += ": " + m.GetReason()
		}
		return r.rejoin(ctx, reason)
	case named && serving && m.GetActiveEpoch() != r.activeEpoch:
		// Promoted again at a new epoch: another may have served in between.
		r.stopServing(fmt.Sprintf("map epoch %d promoted this manager again at active epoch %d", m.GetEpoch(), m.GetActiveEpoch()))
		return r.activate(m)
	case named && serving:
		r.applyModules(m)
		if m.GetAvailable() && r.State() == StateActivating {
			r.setState(StateActive)
			r.log.Debug("map says this manager is available", "gid", gid, "epoch", m.GetEpoch())
		}
		return nil
	case named && m.GetEpoch() < r.notActiveAt:
		r.log.Debug("map names this manager active, but the monitor since said otherwise; waiting for a newer map",
			"epoch", m.GetEpoch(), "not_active_at", r.notActiveAt)
	case named:
		return r.activate(m)
	case serving:
		r.stopServing(fmt.Sprintf("map epoch %d names %q (gid %d) active", m.GetEpoch(), m.GetActiveName(), m.GetActiveGid()))
	case !r.announced && gid != 0:
		r.announced = true
		r.log.Info("running as standby", "gid", gid, "epoch", m.GetEpoch(), "active", m.GetActiveName(), "active_gid", m.GetActiveGid())
	}
	// Standby modules follow the map on a standby too.
	r.applyModules(m)
	return nil
}

// startServer builds the manager server with every module and binds its
// listeners.
func (r *Role) startServer() (*server.Server, error) {
	mods := make([]server.Module, len(r.modules))
	for i, mod := range r.modules {
		mods[i] = mod
	}
	srv, err := server.New(server.Config{
		GRPCAddr:          r.cfg.GRPCAddr,
		HTTPAddr:          r.cfg.HTTPAddr,
		HealthAddr:        r.cfg.HealthAddr,
		TLS:               r.cfg.TLS,
		DrainTimeout:      r.cfg.DrainTimeout,
		ModuleStopWarn:    r.cfg.DrainTimeout,
		StandbyHTTPStatus: r.cfg.StandbyHTTPStatus,
		Active:            r.activeInfo,
		GID:               r.gid.Load,
	}, mods, r.log.Named("server"))
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("failed to start the manager server: %w", err)
	}
	r.log.Info("listening", "grpc_addr", srv.GRPCAddr().String(), "http_addr", srv.HTTPAddr().String(), "health_addr", srv.HealthAddr())
	return srv, nil
}

// activate begins a term on the server (already listening, its modules
// registered) and starts the enabled modules, then beacons at once to claim
// a lease. The term refuses every request until an answer to a beacon
// grants one; it ends if none does within the fence timeout.
func (r *Role) activate(m *mgrv1.MgrMap) error {
	r.setState(StateActivating)
	r.activeEpoch = m.GetActiveEpoch()
	srv := r.srv.Load()
	if r.cfg.ColdStart {
		var err error
		if srv, err = r.startServer(); err != nil {
			r.setState(StateStandby)
			return fmt.Errorf("failed to activate: %w", err)
		}
		r.srv.Store(srv)
	}
	t := srv.Activate(m.GetActiveEpoch())
	now := time.Now()
	r.activatedAt = now
	r.activeSince.Store(&now)
	r.term.Store(t)
	r.armFence()
	// A beacon goes out at once to claim the lease. It reports what the
	// standby reported (available=false), which the map already holds, so
	// the monitor answers it without a raft commit; available=true follows
	// once the lease is held (grant).
	r.lastReport = nil
	r.applyModules(m)
	if m.GetAvailable() {
		r.setState(StateActive)
	}
	r.log.Info("became active", "gid", r.gid.Load(), "epoch", m.GetEpoch(), "active_epoch", m.GetActiveEpoch(),
		"grpc_addr", srv.GRPCAddr().String(), "http_addr", srv.HTTPAddr().String(), "modules", srv.Running())
	return nil
}

// grant applies a beacon answered ACTIVE: its lease extends the server's to
// the beacon's send time plus the lease. An answer for another activation
// (another active epoch) grants nothing; one that arrives while nothing
// serves activates the manager again when the map it holds names it active
// at that epoch (after its lease had run out, say).
func (r *Role) grant(res beacon.Result) error {
	resp := res.Resp
	d := resp.GetLease().AsDuration()
	if resp.GetLease() == nil || d <= 0 {
		r.log.Debug("the monitor answered active without a lease", "epoch", resp.GetEpoch())
		return nil
	}
	now := time.Now()
	if end := res.Sent.Add(d); !now.Before(end) {
		r.log.Warn("a lease had run out when its answer arrived", "lease", d, "waited", now.Sub(res.Sent))
		return nil
	}
	if r.term.Load() == nil {
		m := r.current.Load()
		if m.GetActiveGid() != res.GID || m.GetActiveEpoch() != resp.GetActiveEpoch() ||
			m.GetActiveFailing() || m.GetEpoch() < r.notActiveAt {
			return nil
		}
		r.log.Info("the monitor holds this manager active; activating again", "epoch", m.GetEpoch(), "active_epoch", m.GetActiveEpoch())
		if err := r.activate(m); err != nil {
			return err
		}
	}
	if resp.GetActiveEpoch() != r.activeEpoch {
		r.log.Debug("lease for another activation ignored", "answer_active_epoch", resp.GetActiveEpoch(), "active_epoch", r.activeEpoch)
		return nil
	}
	lease := r.term.Load().Lease()
	held := lease.Held(now)
	until := lease.Extend(res.Sent, d)
	r.armFence()
	if !held {
		r.log.Info("lease granted; serving as active", "gid", res.GID, "active_epoch", r.activeEpoch, "lease", d, "for", until.Sub(now))
		// Serving now: tell the monitor where (available=true).
		r.report(false)
	}
	return nil
}

// armFence sets the fence timer to the instant the server must stop unless
// its lease is renewed, or stops it when nothing serves.
func (r *Role) armFence() {
	t := r.term.Load()
	if t == nil {
		r.fenceTimer.Stop()
		return
	}
	r.fenceTimer.Reset(time.Until(r.fenceDeadline(t.Lease().Until())))
}

// fenceDeadline is when the server must stop: the lease's end, or, before
// the first lease, fenceTimeout after activation.
func (r *Role) fenceDeadline(until time.Time) time.Time {
	if until.IsZero() {
		return r.activatedAt.Add(r.fenceTimeout)
	}
	return until
}

// checkFence stops serving when the lease ran out (or never came); the
// fence timer calls it.
func (r *Role) checkFence() {
	t := r.term.Load()
	if t == nil {
		return
	}
	now := time.Now()
	until := t.Lease().Until()
	if now.Before(r.fenceDeadline(until)) {
		r.armFence() // renewed meanwhile
		return
	}
	var reason string
	if until.IsZero() {
		reason = fmt.Sprintf("no lease granted within the fence timeout (%v) of activation", r.fenceTimeout)
	} else {
		reason = fmt.Sprintf("lease expired %v ago without renewal", now.Sub(until).Round(time.Millisecond))
	}
	r.log.Warn("no valid lease; stopping serving", "gid", r.gid.Load(), "active_epoch", r.activeEpoch, "reason", reason)
	r.stopServing(reason)
}

// stopServing ends the term, if any, before anything else, then beacons
// available=false at once. The server goes on listening as a standby.
func (r *Role) stopServing(reason string) {
	if r.term.Load() == nil {
		return
	}
	r.setState(StateStopping)
	r.log.Debug("stopping serving", "reason", reason)
	if r.cfg.ColdStart {
		r.srv.Load().Stop()
		r.srv.Store(nil)
	} else {
		r.srv.Load().Deactivate()
	}
	r.term.Store(nil)
	r.fenceTimer.Stop()
	r.activeSince.Store(nil)
	r.setState(StateStandby)
	r.announced = true
	epoch := r.current.Load().GetEpoch()
	r.log.Info("became standby", "gid", r.gid.Load(), "epoch", epoch, "reason", reason)
	r.report(true)
}

// applyModules starts the modules the map enables and stops the others: on
// a standby only the modules that run on standbys run.
func (r *Role) applyModules(m *mgrv1.MgrMap) {
	srv := r.srv.Load()
	if srv == nil {
		return
	}
	want := map[string]bool{}
	for _, n := range r.cfg.AlwaysRun {
		want[n] = true
	}
	for _, n := range m.GetModules() {
		want[n] = true
	}
	for _, n := range m.GetAlwaysOnModules() {
		want[n] = true
	}
	var names []string
	for _, mod := range r.modules {
		n := mod.Name()
		if !want[n] {
			continue
		}
		if err := mod.CanRun(); err != nil {
			if r.cannotRun[n] != err.Error() {
				r.cannotRun[n] = err.Error()
				r.log.Warn("module is enabled but cannot run here", "module", n, "error", err)
			}
			continue
		}
		delete(r.cannotRun, n)
		names = append(names, n)
	}
	srv.SetEnabled(names)
	r.report(false)
}

// handleBeacon acts on one beacon's outcome.
func (r *Role) handleBeacon(ctx context.Context, res beacon.Result) error {
	r.cfg.Observer.BeaconDone(res.RTT, res.Err)
	gid := r.gid.Load()
	if res.GID != gid {
		return nil // sent under an older gid
	}
	if res.Err != nil {
		if errors.Is(res.Err, monclient.ErrRefused) {
			r.stopServing("the monitor refused the beacon: " + res.Err.Error())
			r.log.Warn("the monitor no longer knows this gid; authenticating again", "gid", gid, "error", res.Err)
			return r.reauthenticate(ctx)
		}
		r.failures++
		if r.failures == 1 || r.failures%30 == 0 {
			r.log.Warn("beacon failed", "gid", gid, "failures", r.failures, "error", res.Err)
		}
		return nil
	}
	if r.failures > 0 {
		r.log.Info("beacon answered again", "gid", gid, "failures", r.failures)
		r.failures = 0
	}
	e := res.Resp.GetEpoch()
	switch st := res.Resp.GetStanding(); st {
	case mgrv1.Standing_STANDING_ACTIVE:
		return r.grant(res)
	case mgrv1.Standing_STANDING_STALE:
		if m := r.current.Load(); r.term.Load() == nil && m.GetActiveGid() != gid && m.GetEpoch() >= res.Resp.GetActiveEpoch() {
			// The answer to a beacon sent while this manager served, which
			// crossed the map that demoted it: it already stopped and goes
			// on as a standby under the same gid.
			r.notActiveAt = max(r.notActiveAt, e)
			return nil
		}
		// This gid must not serve again: the monitor waits for it to
		// leave (or for its lease to run out) before it promotes another.
		return r.rejoin(ctx, fmt.Sprintf("the monitor answered stale at epoch %d (active epoch %d)", e, res.Resp.GetActiveEpoch()))
	case mgrv1.Standing_STANDING_STANDBY:
		r.notActiveAt = max(r.notActiveAt, e)
		// An answer from before this activation says nothing about it.
		if r.term.Load() != nil && e >= r.activeEpoch {
			r.stopServing(fmt.Sprintf("the monitor answered %s at epoch %d (active epoch %d)", standingName(st), e, res.Resp.GetActiveEpoch()))
		}
	}
	return nil
}

// rejoin is what an active told to stop does: it stops serving, then leaves
// the map (so the monitor may promote another at once), then authenticates
// again and goes on as a standby under a new gid.
func (r *Role) rejoin(ctx context.Context, reason string) error {
	gid := r.gid.Load()
	r.stopServing(reason)
	r.beaconer.Set(nil)
	r.log.Info("leaving, to join again under a new gid", "gid", gid, "reason", reason)
	r.leave(ctx)
	return r.reauthenticate(ctx)
}

func standingName(s mgrv1.Standing) string {
	switch s {
	case mgrv1.Standing_STANDING_STALE:
		return "stale"
	case mgrv1.Standing_STANDING_STANDBY:
		return "standby"
	}
	return s.String()
}

// reauthenticate drops the gid and gets a new one; the map stream is opened
// again to carry it.
func (r *Role) reauthenticate(ctx context.Context) error {
	r.gid.Store(0)
	r.announced = false
	r.notActiveAt = 0
	r.beaconer.Set(nil)
	if err := r.authenticate(ctx); err != nil {
		return err
	}
	if r.watcher != nil {
		r.watcher.Reopen()
	}
	return nil
}

// authenticate gets a gid, retrying while the monitors are unreachable. It
// returns ctx.Err() when ctx ends it.
func (r *Role) authenticate(ctx context.Context) error {
	bo := backoff.New(r.cfg.ReconnectMin, r.cfg.ReconnectMax)
	timeout := max(2*r.cfg.BeaconPeriod, time.Second)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := r.mon.Authenticate(actx, &mgrv1.AuthenticateRequest{Fsid: r.fsid, Name: r.cfg.Name})
		cancel()
		if err == nil {
			if r.fsid != "" && resp.GetFsid() != r.fsid {
				return fmt.Errorf("failed to authenticate as %q: the monitor answered for cluster %q, not %q", r.cfg.Name, resp.GetFsid(), r.fsid)
			}
			if err := r.checkTimings(resp); err != nil {
				return err
			}
			r.fsid = resp.GetFsid()
			r.fenceTimeout = resp.GetFenceTimeout().AsDuration()
			r.gid.Store(resp.GetGid())
			r.log.Info("authenticated", "gid", resp.GetGid(), "fsid", resp.GetFsid(), "fence_timeout", r.fenceTimeout)
			r.report(true)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, monclient.ErrUnavailable) && !errors.Is(err, monclient.ErrSlow) {
			return fmt.Errorf("failed to authenticate as %q: %w", r.cfg.Name, err)
		}
		if attempt == 1 || attempt%30 == 0 {
			r.log.Warn("authenticate failed; retrying", "attempts", attempt, "error", err)
		}
		if !bo.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// checkTimings fails when the monitor's fence timeout leaves no room for a
// beacon period and a margin (the lease would lapse between beacons), and
// warns when its other timings do not fit ours.
func (r *Role) checkTimings(resp *mgrv1.AuthenticateResponse) error {
	ft := resp.GetFenceTimeout().AsDuration()
	if margin := LeaseMargin(r.cfg.BeaconPeriod); r.cfg.BeaconPeriod+margin >= ft {
		return fmt.Errorf("beacon period %v plus a margin of %v is not below the monitor's fence timeout %v: "+
			"the lease would lapse between beacons; lower the beacon period or raise the monitor's fence timeout",
			r.cfg.BeaconPeriod, margin, ft)
	}
	if p := resp.GetBeaconPeriod(); p != nil && p.AsDuration() > 0 && p.AsDuration() != r.cfg.BeaconPeriod {
		r.log.Warn("the monitor expects another beacon period", "monitor", p.AsDuration(), "ours", r.cfg.BeaconPeriod)
	}
	if g := resp.GetGrace(); g != nil && g.AsDuration() > 0 && g.AsDuration() <= 2*r.cfg.BeaconPeriod {
		r.log.Warn("the monitor's grace is at most two of our beacon periods; this manager may be dropped while alive",
			"grace", g.AsDuration(), "beacon_period", r.cfg.BeaconPeriod)
	}
	return nil
}

// report sets what the next beacons say; it beacons at once when forced or
// when the report changed.
func (r *Role) report(force bool) {
	req := &mgrv1.BeaconRequest{
		Fsid:     r.fsid,
		Gid:      r.gid.Load(),
		Name:     r.cfg.Name,
		Metadata: r.cfg.Metadata,
		Priority: r.cfg.Priority,
		Zone:     r.cfg.Zone,
	}
	// Available only while a lease is held: the map then says available
	// only of an active that serves.
	if srv := r.srv.Load(); srv != nil && r.Serving() {
		req.Available = true
		req.ServerAddrs = []string{
			net.JoinHostPort(r.cfg.AdvertiseGRPC, server.Port(srv.GRPCAddr())),
			net.JoinHostPort(r.cfg.AdvertiseHTTP, server.Port(srv.HTTPAddr())),
		}
		httpHost := net.JoinHostPort(r.cfg.AdvertiseHTTP, server.Port(srv.HTTPAddr()))
		for _, n := range srv.Running() {
			if srv.HasHTTP(n) {
				if req.Services == nil {
					req.Services = map[string]string{}
				}
				req.Services[n] = srv.Scheme() + "://" + httpHost + "/" + n + "/"
			}
		}
	}
	changed := !proto.Equal(req, r.lastReport)
	r.lastReport = req
	r.beaconer.Set(req)
	if force || changed {
		r.beaconer.Kick()
	}
}

// moduleInfo describes every module for a beacon.
func (r *Role) moduleInfo() []*mgrv1.ModuleInfo {
	infos := make([]*mgrv1.ModuleInfo, 0, len(r.modules))
	for _, m := range r.modules {
		info := &mgrv1.ModuleInfo{Name: m.Name(), CanRun: true, Options: m.Options()}
		if err := m.CanRun(); err != nil {
			info.CanRun, info.ErrorString = false, err.Error()
		}
		infos = append(infos, info)
	}
	return infos
}

// leave tells the monitor this manager goes, if it holds a gid.
func (r *Role) leave(ctx context.Context) {
	gid := r.gid.Load()
	if gid == 0 {
		return
	}
	defer r.gid.Store(0)
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LeaveTimeout)
	defer cancel()
	if _, err := r.mon.Leave(lctx, &mgrv1.LeaveRequest{Fsid: r.fsid, Gid: gid, Name: r.cfg.Name}); err != nil {
		r.log.Warn("failed to leave; the monitor will drop this manager after its grace", "gid", gid, "error", err)
		return
	}
	r.log.Info("left the map", "gid", gid)
}
