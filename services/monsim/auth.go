package monsim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// access is what a method needs.
type access int

const (
	// accessPublic: health and reflection, for probes and grpcurl.
	accessPublic access = iota + 1
	// accessManager: authenticate, beacon, leave: caps mgr as its own
	// name (entity mgr.NAME), or admin.
	accessManager
	// accessWatch: caps mgr, read or admin.
	accessWatch
	// accessRead: caps read or admin.
	accessRead
	// accessAdmin: caps admin.
	accessAdmin
	// accessMonitor: another monitor (its verified certificate) only.
	accessMonitor
)

func (a access) String() string {
	switch a {
	case accessPublic:
		return "public"
	case accessManager:
		return "mgr (as its own name) or admin"
	case accessWatch:
		return "mgr, read or admin"
	case accessRead:
		return "read or admin"
	case accessAdmin:
		return "admin"
	case accessMonitor:
		return "a monitor's certificate"
	}
	return "unclassified"
}

// methodAccess classifies every method the monitor serves. A method missing
// here is refused (TestEveryMethodClassified fails first): adding an RPC
// means deciding who may call it.
var methodAccess = func() map[string]access {
	m := map[string]access{
		healthpb.Health_Check_FullMethodName:                             accessPublic,
		healthpb.Health_Watch_FullMethodName:                             accessPublic,
		healthpb.Health_List_FullMethodName:                              accessPublic,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      accessPublic,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": accessPublic,
		mgrv1.MonitorService_Authenticate_FullMethodName:                 accessManager,
		mgrv1.MonitorService_Beacon_FullMethodName:                       accessManager,
		mgrv1.MonitorService_Leave_FullMethodName:                        accessManager,
		mgrv1.MonitorService_WatchMap_FullMethodName:                     accessWatch,
		mgrv1.MonitorService_ReportStreamClosed_FullMethodName:           accessMonitor,
	}
	for _, n := range []string{"GetStat", "GetMap", "ListHistory", "ListModules", "ListServices", "GetMetadata",
		"CountMetadata", "GetVersions", "GetQuorumStatus", "ListBeacons", "GetModuleOption", "ListModuleOptions"} {
		m["/mgr.v1.AdminService/"+n] = accessRead
	}
	for _, n := range []string{"FailManager", "EnableModule", "DisableModule", "SetFlags", "AddMonitor", "RemoveMonitor",
		"SetModuleOption", "RemoveModuleOption", "ListAuth", "GetAuth", "AddAuth", "RemoveAuth", "SetAuthCaps", "RotateAuth"} {
		m["/mgr.v1.AdminService/"+n] = accessAdmin
	}
	return m
}()

// identity is who made a call.
type identity struct {
	entity string
	caps   []string
	// monitor: the call came from another monitor (verified certificate).
	monitor bool
}

type identityKey struct{}

// callerOf returns the caller the guard admitted.
func callerOf(ctx context.Context) identity {
	id, _ := ctx.Value(identityKey{}).(identity)
	return id
}

// actorOf names the caller in the map's reasons.
func actorOf(ctx context.Context) string {
	if e := callerOf(ctx).entity; e != "" {
		return e
	}
	return "unknown"
}

// forwardCtx carries the caller's token to the leader, which checks it again.
func forwardCtx(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(creds.TokenMetadata); len(v) == 1 {
		return metadata.AppendToOutgoingContext(ctx, creds.TokenMetadata, v[0])
	}
	return ctx
}

// peerLimiters are token buckets per peer IP.
type peerLimiters struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	m     map[string]*peerLimiter
}

type peerLimiter struct {
	lim  *rate.Limiter
	last time.Time
}

// maxPeers bounds the limiter table; idle peers are forgotten past it.
const maxLimitedPeers = 4096

func newPeerLimiters(r float64, burst int) *peerLimiters {
	return &peerLimiters{r: rate.Limit(r), burst: burst, m: map[string]*peerLimiter{}}
}

func (p *peerLimiters) allow(peerIP string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.m[peerIP]
	if !ok {
		if len(p.m) >= maxLimitedPeers {
			for k, v := range p.m {
				if now.Sub(v.last) > time.Minute {
					delete(p.m, k)
				}
			}
		}
		l = &peerLimiter{lim: rate.NewLimiter(p.r, p.burst)}
		p.m[peerIP] = l
	}
	l.last = now
	return l.lim.AllowN(now, 1)
}

// watchCount counts open watch streams per entity.
type watchCount struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

func (w *watchCount) acquire(entity string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n[entity] >= w.max {
		return false
	}
	w.n[entity]++
	return true
}

func (w *watchCount) release(entity string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n[entity]--; w.n[entity] <= 0 {
		delete(w.n, entity)
	}
}

// auditor writes admin commands and refusals: who, from where, what, result.
type auditor struct {
	mu     sync.Mutex
	w      io.Writer    // JSON lines, when set
	logger hclog.Logger // otherwise
}

// auditArgsMax bounds the request summary in an audit record.
const auditArgsMax = 256

func (a *auditor) record(ctx context.Context, id identity, method string, req any, err error) {
	args := ""
	if m, ok := req.(proto.Message); ok {
		b, _ := protojson.MarshalOptions{EmitUnpopulated: false}.Marshal(m)
		args = string(b)
		if len(args) > auditArgsMax {
			args = args[:auditArgsMax] + "..."
		}
	}
	entity := id.entity
	if entity == "" {
		entity = "-"
	}
	code := status.Code(err).String()
	if a.w == nil {
		a.logger.Info("audit", "entity", entity, "peer", peerAddr(ctx), "method", method, "args", args, "result", code, "from_monitor", id.monitor)
		return
	}
	b, _ := json.Marshal(struct {
		Time        time.Time `json:"time"`
		Entity      string    `json:"entity"`
		Peer        string    `json:"peer"`
		Method      string    `json:"method"`
		Args        string    `json:"args,omitempty"`
		Result      string    `json:"result"`
		FromMonitor bool      `json:"from_monitor,omitempty"`
	}{time.Now().UTC(), entity, peerAddr(ctx), method, args, code, id.monitor})
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = a.w.Write(append(b, '\n'))
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "-"
}

func peerIP(ctx context.Context) string {
	a := peerAddr(ctx)
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

// guard authenticates and authorizes every call, applies the per-peer rate
// limits and the watch cap, and writes the audit log: the one place that
// decides who may do what.
type guard struct {
	s        *Server
	insecure bool
	authLim  *peerLimiters
	beacLim  *peerLimiters
	watches  *watchCount
	audit    *auditor
	now      func() time.Time
}

func newGuard(s *Server, audit *auditor) *guard {
	c := s.cfg
	return &guard{
		s:        s,
		insecure: c.Insecure,
		authLim:  newPeerLimiters(c.AuthRate, c.AuthBurst),
		beacLim:  newPeerLimiters(c.BeaconRate, c.BeaconBurst),
		watches:  &watchCount{max: c.MaxWatches, n: map[string]int{}},
		audit:    audit,
		now:      time.Now,
	}
}

// audited: admin calls and the managers' joins and leaves are always
// written; beacons and watches only when refused.
func audited(method string, err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted:
		return true
	}
	return strings.HasPrefix(method, "/mgr.v1.AdminService/") ||
		method == mgrv1.MonitorService_Authenticate_FullMethodName || method == mgrv1.MonitorService_Leave_FullMethodName
}

// admit identifies the caller of method and checks its caps and limits.
func (g *guard) admit(ctx context.Context, method string) (identity, error) {
	acc, ok := methodAccess[method]
	if !ok {
		return identity{}, status.Errorf(codes.PermissionDenied, "method %s is not classified for access; refused", method)
	}
	if acc == accessPublic {
		return identity{}, nil
	}
	id, err := g.authenticate(ctx)
	if err != nil {
		return id, err
	}
	if !id.monitor { // forwarded calls were limited where they arrived
		now := g.now()
		switch method {
		case mgrv1.MonitorService_Authenticate_FullMethodName:
			if !g.authLim.allow(peerIP(ctx), now) {
				return id, status.Errorf(codes.ResourceExhausted, "authenticate rate limit: at most %v per second (burst %d) per peer (--auth-rate, --auth-burst)", float64(g.authLim.r), g.authLim.burst)
			}
		case mgrv1.MonitorService_Beacon_FullMethodName:
			if !g.beacLim.allow(peerIP(ctx), now) {
				return id, status.Errorf(codes.ResourceExhausted, "beacon rate limit: at most %v per second (burst %d) per peer (--beacon-rate, --beacon-burst)", float64(g.beacLim.r), g.beacLim.burst)
			}
		}
	}
	has := func(c string) bool { return creds.HasCap(id.caps, c) }
	allowed := has(creds.CapAdmin)
	switch acc {
	case accessMonitor:
		allowed = id.monitor || g.insecure
	case accessManager:
		allowed = allowed || has(creds.CapMgr) && creds.ManagerName(id.entity) != ""
	case accessWatch:
		allowed = allowed || has(creds.CapMgr) || has(creds.CapRead)
	case accessRead:
		allowed = allowed || has(creds.CapRead)
	}
	if !allowed {
		return id, status.Errorf(codes.PermissionDenied, "entity %s has caps [%s]; %s needs %s", id.entity, strings.Join(id.caps, ", "), method, acc)
	}
	return id, nil
}

// authenticate finds who is calling: a verified token, or another monitor's
// certificate.
func (g *guard) authenticate(ctx context.Context) (identity, error) {
	if g.insecure {
		return identity{entity: "client.admin", caps: []string{creds.CapAdmin}}, nil
	}
	monitor := false
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			monitor = creds.IsMonitor(tls.ConnectionState(ti.State))
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	toks := md.Get(creds.TokenMetadata)
	if len(toks) == 0 {
		if monitor {
			return identity{entity: "mon", caps: []string{creds.CapAdmin}, monitor: true}, nil
		}
		return identity{}, status.Error(codes.Unauthenticated, "no credentials: every call needs an entity's token (mgrctl --keyring/--entity, standby --keyring/--entity)")
	}
	if len(toks) > 1 {
		return identity{}, status.Errorf(codes.Unauthenticated, "%d tokens sent; send one", len(toks))
	}
	tok, err := creds.ParseToken(toks[0])
	if err != nil {
		return identity{}, status.Errorf(codes.Unauthenticated, "malformed token: %v", err)
	}
	// A refused caller is audited under the entity it claimed.
	claimed := identity{entity: tok.Entity}
	if err := tok.Fresh(g.now()); err != nil {
		return claimed, status.Error(codes.Unauthenticated, err.Error())
	}
	auth := g.s.node.State().GetAuth()
	if len(auth) == 0 {
		return claimed, status.Error(codes.Unavailable, "the monitor has no keyring yet (starting up); retry shortly")
	}
	e, ok := auth[tok.Entity]
	if !ok {
		return claimed, status.Errorf(codes.Unauthenticated, "unknown entity %s", tok.Entity)
	}
	if !tok.Verify(e.GetKey()) && (e.GetPendingKey() == "" || !tok.Verify(e.GetPendingKey())) {
		return claimed, status.Errorf(codes.Unauthenticated, "wrong key for entity %s", tok.Entity)
	}
	return identity{entity: e.GetName(), caps: e.GetCaps(), monitor: monitor}, nil
}

// checkRequest applies the rules that depend on the request: a manager
// entity acts only under its own name, and a gid is used only by the
// entity that authenticated it.
func (g *guard) checkRequest(id identity, req any) error {
	var name string
	var gid uint64
	switch r := req.(type) {
	case *mgrv1.AuthenticateRequest:
		name = r.GetName()
	case *mgrv1.BeaconRequest:
		name, gid = r.GetName(), r.GetGid()
	case *mgrv1.LeaveRequest:
		name, gid = r.GetName(), r.GetGid()
	case *mgrv1.WatchMapRequest:
		gid = r.GetGid()
	default:
		return nil
	}
	if _, isWatch := req.(*mgrv1.WatchMapRequest); !isWatch && !creds.HasCap(id.caps, creds.CapAdmin) {
		if own := creds.ManagerName(id.entity); own != name {
			return status.Errorf(codes.PermissionDenied, "entity %s may act only as manager %q, not %q", id.entity, own, name)
		}
	}
	if gid != 0 {
		if owner, ok := g.s.node.State().GetGidEntities()[gid]; ok && owner != id.entity {
			return status.Errorf(codes.PermissionDenied, "gid %d belongs to entity %s, not %s", gid, owner, id.entity)
		}
	}
	return nil
}

// Unary is the guard's unary interceptor.
func (g *guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id, err := g.admit(ctx, info.FullMethod)
	if err == nil {
		err = g.checkRequest(id, req)
	}
	var resp any
	if err == nil {
		resp, err = handler(context.WithValue(ctx, identityKey{}, id), req)
	}
	if audited(info.FullMethod, err) {
		g.audit.record(ctx, id, info.FullMethod, req, err)
	}
	return resp, err
}

// Stream is the guard's stream interceptor.
func (g *guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	id, err := g.admit(ctx, info.FullMethod)
	if err == nil && info.FullMethod == mgrv1.MonitorService_WatchMap_FullMethodName {
		if !g.watches.acquire(id.entity) {
			err = status.Errorf(codes.ResourceExhausted, "entity %s has %d watch streams open, at most %d (--max-watches)", id.entity, g.watches.max, g.watches.max)
		} else {
			defer g.watches.release(id.entity)
		}
	}
	if err == nil {
		err = handler(srv, &guardedStream{ServerStream: ss, ctx: context.WithValue(ctx, identityKey{}, id), g: g, id: id})
	}
	if audited(info.FullMethod, err) {
		g.audit.record(ctx, id, info.FullMethod, nil, err)
	}
	return err
}

// guardedStream carries the identity and checks each request received.
type guardedStream struct {
	grpc.ServerStream
	ctx context.Context
	g   *guard
	id  identity
}

func (s *guardedStream) Context() context.Context { return s.ctx }

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.g.checkRequest(s.id, m)
}

// openAudit opens the audit log: JSON lines appended to path, or the
// monitor's logger named audit when path is empty.
func openAudit(path string, logger hclog.Logger) (*auditor, io.Closer, error) {
	if path == "" {
		return &auditor{logger: logger.Named("audit")}, io.NopCloser(nil), nil
	}
	f, err := openAppend(path)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to open the audit log: %w", err)
	}
	return &auditor{w: f}, f, nil
}

func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
}
