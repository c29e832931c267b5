package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The messages of the fence: every request is refused with one of them
// (gRPC Unavailable, HTTP 503) unless the lease is held and the server is
// not stopping.
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

// fenceMessage reads the clock and the lease, before anything else, and
// returns why the server may not answer as active at that instant, or "".
func (s *Server) fenceMessage() string {
	now := s.now()
	if s.cfg.Lease == nil {
		return msgNoLease
	}
	if until := s.cfg.Lease.Until(); !now.Before(until) {
		if until.IsZero() {
			return msgNoLease
		}
		return msgLeaseExpired
	}
	if s.fenced.Load() {
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

// gate checks the lease first, then sets the active-epoch header (every
// answer carries it, refusals included), then refuses a call when the server
// stops or the service's module is not running.
func (s *Server) gate(fullMethod string, setHeader func(metadata.MD) error) error {
	msg := s.fenceMessage()
	_ = setHeader(metadata.Pairs(ActiveEpochHeader, s.epoch))
	if msg != "" {
		return status.Error(codes.Unavailable, msg)
	}
	if m, ok := s.owner[serviceOf(fullMethod)]; ok && !s.isRunning(m) {
		return status.Error(codes.Unavailable, notEnabled(m))
	}
	return nil
}

// unaryGate gates the call, and checks the lease again once the handler
// returns: an answer computed while the lease ran out (a slow handler, a
// process paused by SIGSTOP) is replaced by the refusal.
func (s *Server) unaryGate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.gate(info.FullMethod, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) }); err != nil {
		return nil, err
	}
	resp, err := h(ctx, req)
	if msg := s.fenceMessage(); msg != "" {
		return nil, status.Error(codes.Unavailable, msg)
	}
	return resp, err
}

// streamGate gates the call, and every message the handler sends.
func (s *Server) streamGate(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.gate(info.FullMethod, ss.SetHeader); err != nil {
		return err
	}
	return h(srv, fencedStream{ServerStream: ss, s: s})
}

// fencedStream refuses to send once the lease is no longer held.
type fencedStream struct {
	grpc.ServerStream
	s *Server
}

func (f fencedStream) SendMsg(m any) error {
	if msg := f.s.fenceMessage(); msg != "" {
		return status.Error(codes.Unavailable, msg)
	}
	return f.ServerStream.SendMsg(m)
}

// httpFence checks the lease first, sets the active-epoch header on every
// answer, and refuses every request unless the lease is held and the server
// is not stopping. The handler's writes are checked again (fencedWriter).
func (s *Server) httpFence(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := s.fenceMessage()
		w.Header().Set(ActiveEpochHeader, s.epoch)
		if msg != "" {
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(&fencedWriter{ResponseWriter: w, s: s}, r)
	})
}

// fencedWriter checks the lease when the handler sends its status line and
// on every write: once the lease is no longer held, an answer not yet
// started becomes a 503, and the rest of one already started is dropped
// (Write fails, the handler should return).
type fencedWriter struct {
	http.ResponseWriter
	s       *Server
	started bool
	refused bool
}

// allow decides, at the handler's first write, whether the answer may start,
// and later whether it may go on.
func (w *fencedWriter) allow() bool {
	if w.refused {
		return false
	}
	msg := w.s.fenceMessage()
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
