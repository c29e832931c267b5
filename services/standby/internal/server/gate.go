package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// errNotActive answers requests that arrive while the server stops.
var errNotActive = status.Error(codes.Unavailable, "this manager is no longer active")

func notEnabled(module string) string {
	return fmt.Sprintf("module %s is not enabled", module)
}

// gate refuses a call when the server is fenced or the service's module is
// not running, and sets the active-epoch header on every answer.
func (s *Server) gate(ctx context.Context, fullMethod string, setHeader func(metadata.MD) error) error {
	_ = setHeader(metadata.Pairs(ActiveEpochHeader, strconv.FormatUint(s.cfg.ActiveEpoch, 10)))
	if s.fenced.Load() {
		return errNotActive
	}
	if m, ok := s.owner[serviceOf(fullMethod)]; ok && !s.isRunning(m) {
		return status.Error(codes.Unavailable, notEnabled(m))
	}
	return nil
}

func (s *Server) unaryGate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.gate(ctx, info.FullMethod, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) }); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamGate(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.gate(ss.Context(), info.FullMethod, ss.SetHeader); err != nil {
		return err
	}
	return h(srv, ss)
}

// httpFence sets the active-epoch header on every answer and refuses every
// request once the server is fenced.
func (s *Server) httpFence(next http.Handler) http.Handler {
	epoch := strconv.FormatUint(s.cfg.ActiveEpoch, 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ActiveEpochHeader, epoch)
		if s.fenced.Load() {
			http.Error(w, "this manager is no longer active", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

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
