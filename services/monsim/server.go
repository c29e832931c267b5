// Package monsim is the monitor: it owns the MgrMap, takes beacons, detects
// dead managers, promotes standbys and streams every map to watchers. A
// single monitor is a raft group of one voter persisted in its data dir.
package monsim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/rpcserver"
	"github.com/mgrplane/mgrplane/internal/runtimemetrics"
	"github.com/mgrplane/mgrplane/services/monsim/internal/liveness"
	"github.com/mgrplane/mgrplane/services/monsim/internal/metrics"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"github.com/mgrplane/mgrplane/services/monsim/internal/quorum"
	"github.com/mgrplane/mgrplane/services/monsim/internal/watch"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// stopTimeout bounds the graceful part of shutdown before streams are cut.
const stopTimeout = 3 * time.Second

// Server is one monitor.
type Server struct {
	cfg    Config
	logger hclog.Logger
	lis    net.Listener
	mux    *quorum.Mux
	// advertise is this monitor's address in the quorum.
	advertise string
	fwd       *forwarder
	node      *quorum.Node
	hub       *watch.Hub
	live      *liveness.Tracker
	grpc      *grpc.Server
	enc       *encodeCache
	health    *health.Server
	// healthLis serves health alone in plaintext; nil when
	// Config.HealthAddr is empty.
	healthLis *rpcserver.HealthListener
	// leading is true while this monitor is leader and has caught up, so
	// its liveness view is its own to judge.
	leading atomic.Bool
	// nudge asks for an empty raft round after a map change, so followers
	// learn the new commit index at once instead of at the next heartbeat.
	nudge chan struct{}
	// stopping is set when shutdown begins: watch streams it ends are not
	// a manager's broken connection.
	stopping atomic.Bool
	crash    *crashWatch
	guard    *guard
	audit    io.Closer
	// ready is true once this monitor has applied everything committed
	// before it started, so its reads and watches are not behind.
	ready atomic.Bool
	reg   *prometheus.Registry
	met   *metrics.Monitor
	// metrics serves reg; nil when MetricsAddr is empty.
	metrics *metricsServer
}

// errNotReady answers reads while the monitor replays its log.
var errNotReady = errors.New("monitor is starting (replaying its log); retry shortly")

// historySource serves the watch hub's history from the applied state.
type historySource struct{ node atomic.Pointer[quorum.Node] }

func (h *historySource) Since(epoch uint64) ([]*mgrv1.MgrMap, error) {
	n := h.node.Load()
	if n == nil {
		return nil, mgrmap.ErrNotBootstrapped
	}
	return mgrmap.Since(n.State(), epoch)
}

// New opens the monitor's data dir and listener. Run serves it.
func New(cfg Config, logger hclog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hist := &historySource{}
	hub, err := watch.New(watch.Config{MaxLag: cfg.WatchMaxLag}, hist, logger)
	if err != nil {
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := runtimemetrics.Register(reg); err != nil {
		hub.Close()
		return nil, err
	}
	src := &metricsSource{}
	met, err := metrics.New(reg, cfg.NodeID, src)
	if err != nil {
		hub.Close()
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		hub.Close()
		return nil, fmt.Errorf("failed to listen on %s: %w", cfg.Addr, err)
	}
	var mlis net.Listener
	if cfg.MetricsAddr != "" {
		if mlis, err = listenMetrics(cfg.MetricsAddr, metricsTLS(cfg)); err != nil {
			hub.Close()
			_ = lis.Close()
			return nil, err
		}
		defer func() {
			if err != nil {
				_ = mlis.Close()
			}
		}()
	}
	var hlis *rpcserver.HealthListener
	if cfg.HealthAddr != "" {
		if hlis, err = rpcserver.ListenHealth(cfg.HealthAddr); err != nil {
			hub.Close()
			_ = lis.Close()
			return nil, err
		}
		defer func() {
			if err != nil {
				hlis.Stop()
			}
		}()
	}
	advertise := cfg.AdvertiseAddr
	if advertise == "" {
		advertise = lis.Addr().String()
		if ip := lis.Addr().(*net.TCPAddr).IP; ip.IsUnspecified() {
			hub.Close()
			_ = lis.Close()
			return nil, fmt.Errorf("listening on all addresses (%s): give the address peers should dial with --advertise-addr", cfg.Addr)
		}
	}
	peers, _ := cfg.peers() // validated
	var raftTLS, peerTLS *tls.Config
	if cfg.Creds != nil && !cfg.Insecure {
		raftTLS, peerTLS = cfg.Creds.RaftServerTLS, cfg.Creds.PeerTLS
	}
	audit, auditCloser, err := openAudit(cfg.AuditLog, logger)
	if err != nil {
		hub.Close()
		_ = lis.Close()
		return nil, err
	}
	mux := quorum.NewMux(lis, logger, raftTLS, peerTLS)
	qc := quorum.DefaultConfig()
	qc.DataDir, qc.NodeID, qc.Advertise, qc.Peers, qc.Join = cfg.DataDir, cfg.NodeID, advertise, peers, len(cfg.Join) > 0
	qc.OnCommit, qc.OnApply = met.Committed, met.Applied
	node, err := quorum.Open(qc, mux.Raft(), hub.Publish, logger)
	if err != nil {
		hub.Close()
		_ = lis.Close()
		_ = auditCloser.Close()
		return nil, err
	}
	hist.node.Store(node)
	s := &Server{
		cfg:       cfg,
		logger:    logger,
		lis:       lis,
		mux:       mux,
		advertise: advertise,
		fwd:       newForwarder(peerTLS),
		audit:     auditCloser,
		node:      node,
		hub:       hub,
		live:      liveness.New(time.Now()),
		enc:       newEncodeCache(),
		nudge:     make(chan struct{}, 1),
		reg:       reg,
		met:       met,
	}
	src.s.Store(s)
	if mlis != nil {
		s.metrics = newMetricsServer(mlis, reg, logger.Named("metrics"))
	}
	s.crash = newCrashWatch(func(gid uint64) bool { return s.node.State().GetMap().GetActiveGid() == gid }, s.live.Lost)
	s.guard = newGuard(s, audit)
	extra := []grpc.ServerOption{grpc.ForceServerCodecV2(newCodec())}
	if !cfg.Insecure {
		extra = append(extra, grpc.Creds(credentials.NewTLS(cfg.Creds.TLS)))
	}
	s.grpc, s.health = rpcserver.New(logger.Named("grpc"), rpcserver.Options{
		Unary:          []grpc.UnaryServerInterceptor{s.guard.Unary},
		Stream:         []grpc.StreamServerInterceptor{s.guard.Stream},
		Extra:          extra,
		MaxRecvMsgSize: cfg.MaxMsgSize,
	})
	mgrv1.RegisterMonitorServiceServer(s.grpc, &monitorHandler{s: s})
	mgrv1.RegisterAdminServiceServer(s.grpc, &adminHandler{s: s})
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.healthLis = hlis
	return s, nil
}

// HealthAddr is the address of the plaintext health-only listener, ""
// when Config.HealthAddr is empty.
func (s *Server) HealthAddr() string {
	if s.healthLis == nil {
		return ""
	}
	return s.healthLis.Addr()
}

// Addr is the address the monitor listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// MetricsAddr is the address the metrics server listens on, "" when
// Config.MetricsAddr is empty.
func (s *Server) MetricsAddr() string {
	if s.metrics == nil {
		return ""
	}
	return s.metrics.lis.Addr().String()
}

// MetricsURL is the URL the metrics server answers at, "" when
// Config.MetricsAddr is empty: https unless the monitor is Insecure.
func (s *Server) MetricsURL() string {
	a := s.MetricsAddr()
	if a == "" {
		return ""
	}
	scheme := "https"
	if metricsTLS(s.cfg) == nil {
		scheme = "http"
	}
	return scheme + "://" + a + MetricsPath
}

// Registry is the registry holding the monitor's metrics (Config.Registry,
// or the one New made).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Run serves until ctx is cancelled, then shuts down in order: health
// NOT_SERVING, watchers told to move on, gRPC drained, raft closed.
func (s *Server) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(s.mux.Serve)
	g.Go(func() error {
		if err := s.grpc.Serve(s.mux.GRPC()); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("failed to serve: %w", err)
		}
		return nil
	})
	if s.healthLis != nil {
		s.healthLis.Serve(s.health, s.logger.Named("health"))
	}
	g.Go(func() error { return s.lead(gctx) })
	g.Go(func() error { return s.runCrashProbes(gctx) })
	g.Go(func() error { return s.runNudges(gctx) })
	if s.metrics != nil {
		g.Go(func() error { return s.metrics.Run(gctx) })
	}
	if len(s.cfg.Join) > 0 {
		g.Go(func() error { return s.join(gctx) })
	}
	var closeErr error
	g.Go(func() error {
		<-gctx.Done()
		s.stopping.Store(true)
		s.health.Shutdown()
		s.hub.Close()
		rpcserver.Stop(s.grpc, stopTimeout)
		if s.healthLis != nil {
			s.healthLis.Stop()
		}
		s.fwd.close()
		closeErr = s.node.Close()
		_ = s.mux.Close()
		_ = s.audit.Close()
		return nil
	})
	err := g.Wait()
	if closeErr != nil && err == nil {
		err = fmt.Errorf("failed to close raft: %w", closeErr)
	}
	return err
}

// lead follows raft leadership: on gaining it, catch up, bootstrap the
// cluster if it is new, give every manager a full grace, and tick.
func (s *Server) lead(ctx context.Context) error {
	ticker := time.NewTicker(s.cfg.Tick)
	defer ticker.Stop()
	leaderCh := s.node.LeaderCh()
	if s.node.IsLeader() {
		s.becomeLeader(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case isLeader := <-leaderCh:
			if isLeader {
				s.becomeLeader(ctx)
			} else {
				s.leading.Store(false)
				s.logger.Info("lost leadership")
			}
		case <-ticker.C:
			if !s.leading.Load() {
				if s.node.IsLeader() {
					s.becomeLeader(ctx)
					continue
				}
				// A follower serves reads and watches once it has caught up.
				if s.node.CaughtUp() && s.node.State().GetMap().GetEpoch() != 0 && !s.ready.Load() {
					s.ready.Store(true)
					s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
					id, _ := s.node.Leader()
					s.logger.Info("following", "leader", id, "epoch", s.node.State().GetMap().GetEpoch())
				}
				continue
			}
			start := time.Now()
			s.tick(ctx, start)
			s.met.Tick(time.Since(start))
		}
	}
}

func (s *Server) becomeLeader(ctx context.Context) {
	if err := s.node.Barrier(ctx); err != nil {
		s.logger.Warn("leader could not catch up; retrying on the next tick", "error", err)
		return
	}
	if s.node.State().GetMap().GetEpoch() == 0 {
		if err := s.bootstrap(ctx); err != nil {
			s.logger.Error("bootstrap failed; retrying on the next tick", "error", err)
			return
		}
	}
	if err := s.seedKeyring(ctx); err != nil {
		s.logger.Error("seeding the keyring failed; retrying on the next tick", "error", err)
		return
	}
	// Rule 7: a new leader gives every daemon a full grace before judging it.
	s.live.Reset(time.Now())
	s.leading.Store(true)
	s.ready.Store(true)
	m := s.node.State().GetMap()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.logger.Info("leading", "fsid", m.GetFsid(), "epoch", m.GetEpoch(), "active", m.GetActiveName())
}

func (s *Server) bootstrap(ctx context.Context) error {
	fsid := s.cfg.FSID
	if fsid == "" {
		fsid = newFSID()
	}
	_, err := s.node.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Bootstrap{Bootstrap: &mgrv1.BootstrapOp{
		Fsid:            fsid,
		AlwaysOnModules: s.cfg.AlwaysOnModules,
		HistoryLimit:    uint32(s.cfg.HistoryLimit),
	}}})
	if err != nil && !errors.Is(err, mgrmap.ErrBootstrapped) {
		return err
	}
	s.logger.Info("bootstrapped a new cluster", "fsid", s.node.State().GetMap().GetFsid())
	return nil
}

// seedKeyring fills an empty replicated keyring from the creds dir's
// keyring, once: afterwards keys change only through the auth RPCs.
func (s *Server) seedKeyring(ctx context.Context) error {
	if s.cfg.Insecure || len(s.node.State().GetAuth()) > 0 {
		return nil
	}
	op := &mgrv1.AuthOp{Action: mgrv1.AuthAction_AUTH_ACTION_SEED, Actor: "mon." + s.cfg.NodeID}
	for _, e := range s.cfg.Creds.Keyring {
		op.Seed = append(op.Seed, &mgrv1.AuthEntity{Name: e.Name, Key: e.Key, Caps: e.Caps})
	}
	if _, err := s.node.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Auth{Auth: op}}); err != nil && !errors.Is(err, mgrmap.ErrAuthState) {
		return err
	}
	s.logger.Info("seeded the keyring", "entities", len(op.Seed))
	return nil
}

// tick ends the active's term when it is silent past the grace, or when it
// was told to stop (or lost its connection) and its lease has run out; and
// drops standbys silent past the grace. The state machine promotes.
func (s *Server) tick(ctx context.Context, now time.Time) {
	m := s.node.State().GetMap()
	drop := s.live.Silent(m, now, s.cfg.Grace)
	if gid := m.GetActiveGid(); gid != 0 {
		verdict, d := s.live.JudgeActive(gid, m.GetActiveFailing(), now, s.cfg.Grace, s.cfg.FenceTimeout+LeaseMargin)
		switch verdict {
		case liveness.Silent:
			drop = append([]*mgrv1.SilentGid{{Gid: gid, SilentMs: d.Milliseconds(), Reason: mgrv1.DropReason_DROP_REASON_SILENT}}, drop...)
		case liveness.LeaseExpired:
			drop = append([]*mgrv1.SilentGid{{Gid: gid, SilentMs: d.Milliseconds(), Reason: mgrv1.DropReason_DROP_REASON_LEASE_EXPIRED}}, drop...)
		}
	}
	if len(drop) == 0 {
		return
	}
	r, err := s.node.Apply(ctx, &mgrv1.Command{Op: &mgrv1.Command_Drop{Drop: &mgrv1.DropOp{Gids: drop}}})
	if err != nil {
		s.logger.Warn("failed to drop silent managers", "error", err)
		return
	}
	if r.Changed {
		s.commitNudge()
		m := s.node.State().GetMap()
		s.logger.Info("dropped managers", "epoch", m.GetEpoch(), "reason", m.GetReason())
	}
}

// commitNudge is called after this leader committed a map change.
func (s *Server) commitNudge() {
	select {
	case s.nudge <- struct{}{}:
	default: // one is pending; it covers this change too
	}
}

// runNudges follows each committed change with one empty raft round (a
// barrier), coalescing bursts. Followers apply an entry only once they learn
// it is committed, which raft tells them with the next append or heartbeat
// (every 50-100 ms); the barrier's append carries it at once, so watchers
// on followers get a new map about as soon as those on the leader.
func (s *Server) runNudges(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.nudge:
			if !s.leading.Load() {
				continue
			}
			if members, err := s.node.Members(); err != nil || len(members) < 2 {
				continue
			}
			if err := s.node.Barrier(ctx); err != nil && ctx.Err() == nil {
				s.logger.Debug("commit nudge failed", "error", err)
			}
		}
	}
}

// newFSID makes a random UUID (version 4) for a new cluster.
func newFSID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
