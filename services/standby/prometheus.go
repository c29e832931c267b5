package standby

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// PrometheusModule is the name of the prometheus module.
const PrometheusModule = "prometheus"

// maxScrapesInFlight bounds the concurrent scrapes of /prometheus/metrics;
// more are answered 503.
const maxScrapesInFlight = 8

// errNoGatherer is the prometheus module's can-run error without a gatherer.
var errNoGatherer = errors.New("no metrics to serve: NewPrometheusModule was given a nil gatherer")

// NewPrometheusModule returns the prometheus module: while it is enabled
// (`mgrctl module enable prometheus`) the active serves what g gathers at
// GET /prometheus/metrics, in the Prometheus text format (or OpenMetrics
// when the scraper asks for it), and a link to it at GET /prometheus/. g is
// usually the manager's own registry (Config.Registry, Standby.Registry):
// the map, the role, beacon round trips, module states, and the Go runtime
// and process metrics; docs/metrics.md lists them. A nil g makes a module
// that cannot run, saying why.
//
// Prometheus should scrape every manager with follow_redirects: false: only
// the active answers 200, so only its series are up.
func NewPrometheusModule(g prometheus.Gatherer) Module {
	return &prometheusModule{g: g}
}

// prometheusModule serves a gatherer over HTTP.
type prometheusModule struct{ g prometheus.Gatherer }

func (*prometheusModule) Name() string { return PrometheusModule }

func (m *prometheusModule) CanRun() error {
	if m.g == nil {
		return errNoGatherer
	}
	return nil
}

func (m *prometheusModule) Register(r Registrar) {
	if m.g == nil {
		return
	}
	log := r.Host().Logger()
	r.HandleHTTP("GET /metrics", promhttp.HandlerFor(m.g, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log: log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapesInFlight,
		EnableOpenMetrics:   true,
	}))
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>mgrplane prometheus</title><p><a href="metrics">metrics</a></p>`)
	}))
}

// Run holds the module running until it is stopped: the module only serves.
func (*prometheusModule) Run(ctx context.Context, _ Host) error {
	<-ctx.Done()
	return nil
}

// promLogger logs promhttp's errors (a metric that failed to gather or
// encode) with the module's logger.
type promLogger struct{ log hclog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("failed to serve metrics", "error", fmt.Sprint(v...))
}
