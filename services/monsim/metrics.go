package monsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the metrics HTTP server.
const (
	metricsReadHeaderTimeout = 10 * time.Second
	metricsIdleTimeout       = 60 * time.Second
	// metricsStopTimeout bounds the graceful stop of the metrics server.
	metricsStopTimeout = time.Second
	// maxScrapesInFlight bounds concurrent scrapes; more are answered 503.
	maxScrapesInFlight = 8
)

// MetricsPath is where the metrics server answers.
const MetricsPath = "/metrics"

// listenMetrics opens the metrics listener on addr: TLS with tlsCfg, or
// plaintext when tlsCfg is nil.
func listenMetrics(addr string, tlsCfg *tls.Config) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen for metrics on %s: %w", addr, err)
	}
	if tlsCfg != nil {
		lis = tls.NewListener(lis, tlsCfg)
	}
	return lis, nil
}

// metricsTLS is the metrics listener's TLS: the monitor's certificate for
// HTTP/1.1 scrapers (Prometheus trusts the cluster CA, tls_config ca_file),
// no client certificate asked; nil (plaintext) when the monitor is Insecure.
func metricsTLS(cfg Config) *tls.Config {
	if cfg.Insecure || cfg.Creds == nil {
		return nil
	}
	c := cfg.Creds.TLS.Clone()
	c.NextProtos = []string{"http/1.1"}
	c.ClientAuth = tls.NoClientCert
	c.ClientCAs = nil
	return c
}

// metricsServer serves a gatherer at MetricsPath on one listener.
type metricsServer struct {
	lis  net.Listener
	http *http.Server
}

func newMetricsServer(lis net.Listener, g prometheus.Gatherer, log hclog.Logger) *metricsServer {
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log: log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapesInFlight,
		EnableOpenMetrics:   true,
	}))
	return &metricsServer{lis: lis, http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsReadHeaderTimeout,
		IdleTimeout:       metricsIdleTimeout,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}}
}

// Run serves until ctx is done, then shuts down.
func (m *metricsServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- m.http.Serve(m.lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("failed to serve metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), metricsStopTimeout)
	defer cancel()
	if err := m.http.Shutdown(sctx); err != nil {
		_ = m.http.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("failed to serve metrics: %w", err)
	}
	return nil
}

// promLogger logs promhttp's errors (a metric that failed to gather or
// encode).
type promLogger struct{ log hclog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("failed to serve metrics", "error", fmt.Sprint(v...))
}

// metricsSource answers the metrics' questions at scrape time, from the
// server once New has made it (the metrics are made first, to hook into
// raft); zeros before.
type metricsSource struct{ s atomic.Pointer[Server] }

func (m *metricsSource) Epoch() uint64 {
	if s := m.s.Load(); s != nil {
		return s.node.State().GetMap().GetEpoch()
	}
	return 0
}

func (m *metricsSource) Leading() bool {
	if s := m.s.Load(); s != nil {
		return s.leading.Load()
	}
	return false
}

func (m *metricsSource) Watchers() int {
	if s := m.s.Load(); s != nil {
		return s.hub.Subscribers()
	}
	return 0
}
