package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mgrplane/mgrplane/internal/rpcserver"
)

// The messages of the fence: every request of a term is refused with one
// of them (gRPC Unavailable, HTTP 503) unless the lease is held and the term
// goes on.
const (
	msgNoLease      = "no lease yet; this manager is not yet serving as active"
	msgLeaseExpired = "lease expired; this manager is no longer serving as active"
	msgStopped      = "this manager is no longer active"
)

// errWriteFenced is what a module's HTTP handler gets from Write once the
// lease has run out in the middle of its answer.
var errWriteFenced = errors.New(msgLeaseExpired)

func notEnabled(module string) string {
	return fmt.Sprintf("module %s is not enabled", module)
}

// fenceMessage reads the clock and the term's lease, before anything else,
// and returns why the server may not answer as active in term t at that
// instant, or "".
func (s *Server) fenceMessage(t *Term) string {
	now := s.now()
	if until := t.lease.Until(); !now.Before(until) {
		if until.IsZero() {
			return msgNoLease
		}
		return msgLeaseExpired
	}
	if t.fenced.Load() {
		return msgStopped
	}
	return ""
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// active says where the active serves, as far as this manager knows.
func (s *Server) active() Active {
	if s.cfg.Active == nil {
		return Active{}
	}
	return s.cfg.Active()
}

// standbyMessage says that this manager is a standby, and where the
// active is.
func (s *Server) standbyMessage() string {
	a := s.active()
	switch {
	case a.Name == "":
		return "this manager is a standby, and no manager is active now"
	case a.GRPCAddr == "":
		return fmt.Sprintf("this manager is a standby; the active is %s (gid %d), not yet serving", a.Name, a.GID)
	}
	return fmt.Sprintf("this manager is a standby; the active is %s (gid %d) at %s", a.Name, a.GID, a.GRPCAddr)
}

// ungated names the services a standby answers itself: health (so that a
// probe learns the manager service is NOT_SERVING) and reflection.
var ungated = map[string]bool{
	healthpb.Health_ServiceDesc.ServiceName:    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// gate decides how a call is served. In a term it checks the lease first,
// then sets the active-epoch header (every answer of a term carries it,
// refusals included), then refuses the call when the term ends or the
// service's module is not running; it returns the term, whose in-flight
// count it entered. Outside a term, health, reflection and the services of
// running standby modules are served (term nil), and every other call is
// refused Unavailable naming the active.
func (s *Server) gate(fullMethod string, setHeader func(metadata.MD) error) (*Term, error) {
	t := s.term.Load()
	svc := serviceOf(fullMethod)
	if t == nil {
		if ungated[svc] {
			return nil, nil
		}
		if m, ok := s.owner[svc]; ok && s.standby[m] {
			if !s.isRunning(m) {
				return nil, status.Error(codes.Unavailable, notEnabled(m))
			}
			return nil, nil
		}
		return nil, status.Error(codes.Unavailable, s.standbyMessage())
	}
	msg := s.fenceMessage(t)
	_ = setHeader(metadata.Pairs(ActiveEpochHeader, t.epoch))
	if msg != "" {
		return nil, status.Error(codes.Unavailable, msg)
	}
	if m, ok := s.owner[svc]; ok && !s.isRunning(m) {
		return nil, status.Error(codes.Unavailable, notEnabled(m))
	}
	if !t.inflight.enter() {
		return nil, status.Error(codes.Unavailable, msgStopped)
	}
	return t, nil
}

// sayGID sets the header naming the gid this process holds, on every
// answer, refusals included.
func (s *Server) sayGID(setHeader func(metadata.MD) error) {
	if s.cfg.GID != nil {
		_ = setHeader(metadata.Pairs(rpcserver.GIDHeader, strconv.FormatUint(s.cfg.GID(), 10)))
	}
}

// termContext returns ctx, cancelled too when term t ends.
func termContext(ctx context.Context, t *Term) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(t.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// unaryGate gates the call, and checks the lease again once the handler
// returns: an answer computed while the lease ran out (a slow handler, a
// process paused by SIGSTOP) is replaced by the refusal.
func (s *Server) unaryGate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	setHeader := func(md metadata.MD) error { return grpc.SetHeader(ctx, md) }
	s.sayGID(setHeader)
	t, err := s.gate(info.FullMethod, setHeader)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return h(ctx, req)
	}
	defer t.inflight.leave()
	ctx, done := termContext(ctx, t)
	defer done()
	resp, err := h(ctx, req)
	if msg := s.fenceMessage(t); msg != "" {
		return nil, status.Error(codes.Unavailable, msg)
	}
	return resp, err
}

// streamGate gates the call, and every message the handler sends.
func (s *Server) streamGate(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	s.sayGID(ss.SetHeader)
	t, err := s.gate(info.FullMethod, ss.SetHeader)
	if err != nil {
		return err
	}
	if t == nil {
		return h(srv, ss)
	}
	defer t.inflight.leave()
	ctx, done := termContext(ss.Context(), t)
	defer done()
	return h(srv, fencedStream{ServerStream: ss, s: s, t: t, ctx: ctx})
}

// fencedStream refuses to send once the lease is no longer held.
type fencedStream struct {
	grpc.ServerStream
	s   *Server
	t   *Term
	ctx context.Context
}

func (f fencedStream) Context() context.Context { return f.ctx }

func (f fencedStream) SendMsg(m any) error {
	if msg := f.s.fenceMessage(f.t); msg != "" {
		return status.Error(codes.Unavailable, msg)
	}
	return f.ServerStream.SendMsg(m)
}

// httpFence serves a request in the current term, or as a standby. In a
// term it checks the lease first, sets the active-epoch header on every
// answer, and refuses every request unless the lease is held and the term
// goes on; the handler's writes are checked again (fencedWriter).
func (s *Server) httpFence(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := s.term.Load()
		if t == nil {
			s.serveStandby(w, r, next)
			return
		}
		msg := s.fenceMessage(t)
		w.Header().Set(ActiveEpochHeader, t.epoch)
		if msg != "" {
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		if !t.inflight.enter() {
			http.Error(w, msgStopped, http.StatusServiceUnavailable)
			return
		}
		defer t.inflight.leave()
		ctx, done := termContext(r.Context(), t)
		defer done()
		next.ServeHTTP(&fencedWriter{ResponseWriter: w, s: s, t: t}, r.WithContext(ctx))
	})
}

// serveStandby answers a request outside a term: a running standby
// module's paths are served; every other path is redirected to the same
// path on the active (or answered with the configured status), or 503 when
// no active serves.
func (s *Server) serveStandby(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if m := s.moduleOf(r.URL.Path); m != "" && s.standby[m] {
		next.ServeHTTP(w, r)
		return
	}
	a := s.active()
	if a.HTTPURL == "" {
		w.Header().Set("Retry-After", "1")
		http.Error(w, s.standbyMessage(), http.StatusServiceUnavailable)
		return
	}
	if s.cfg.StandbyHTTPStatus == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("this manager is a standby; the active is %s (gid %d) at %s", a.Name, a.GID, a.HTTPURL),
			http.StatusServiceUnavailable)
		return
	}
	http.Redirect(w, r, a.HTTPURL+r.URL.RequestURI(), s.cfg.StandbyHTTPStatus)
}

// moduleOf names the module whose handlers serve path, or "".
func (s *Server) moduleOf(path string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if s.httpModules[name] {
		return name
	}
	return ""
}

// fencedWriter checks the lease when the handler sends its status line and
// on every write: once the lease is no longer held, an answer not yet
// started becomes a 503, and the rest of one already started is dropped
// (Write fails, the handler should return).
type fencedWriter struct {
	http.ResponseWriter
	s       *Server
	t       *Term
	started bool
	refused bool
}

// allow decides, at the handler's first write, whether the answer may start,
// and later whether it may go on.
func (w *fencedWriter) allow() bool {
	if w.refused {
		return false
	}
	msg := w.s.fenceMessage(w.t)
	if msg == "" {
		return true
	}
	w.refused = true
	if !w.started {
		w.started = true
		http.Error(w.ResponseWriter, msg, http.StatusServiceUnavailable)
	}
	return false
}

func (w *fencedWriter) WriteHeader(code int) {
	if w.allow() {
		w.started = w.started || code >= 200
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *fencedWriter) Write(b []byte) (int, error) {
	if !w.allow() {
		return 0, errWriteFenced
	}
	w.started = true
	return w.ResponseWriter.Write(b)
}

// Flush sends what was written, if the lease is still held.
func (w *fencedWriter) Flush() {
	if !w.allow() {
		return
	}
	w.started = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands the connection over, if the lease is held and the underlying
// writer allows it.
func (w *fencedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.allow() {
		return nil, nil, errWriteFenced
	}
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	return h.Hijack()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *fencedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// moduleGate answers 503 while module name is not running.
func (s *Server) moduleGate(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.isRunning(name) {
			http.Error(w, notEnabled(name), http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// epochString formats the active epoch for the headers.
func epochString(e uint64) string { return strconv.FormatUint(e, 10) }
