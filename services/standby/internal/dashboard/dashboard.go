// Package dashboard is the dashboard module's engine: it builds a view of
// the cluster (active, standbys with the age of their last beacon, epoch,
// modules, services, recent failovers) from the map watch and the
// monitors' AdminService, and serves it as an HTML page that follows it
// live over server-sent events. The page is plain HTML, CSS and JS embedded
// in the binary and served as one document: no build step, nothing loaded
// from elsewhere.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/feed"
)

//go:embed assets
var assets embed.FS

// Config holds the dashboard's tunables.
type Config struct {
	// Refresh is how often the beacon ages are fetched again while the map
	// does not change.
	Refresh time.Duration
	// CallTimeout bounds each call to the monitors.
	CallTimeout time.Duration
	// Keepalive is how often an idle event stream gets a comment line, so
	// proxies and browsers keep it open.
	Keepalive time.Duration
	// Failovers is how many recent active changes the page lists.
	Failovers int
}

// Bounds of Config.
const (
	MinRefresh   = 100 * time.Millisecond
	MaxRefresh   = time.Minute
	MaxFailovers = 100
)

// DefaultConfig returns the defaults: refresh every 2 s, calls bounded at
// 2 s, a keepalive every 15 s, 10 failovers.
func DefaultConfig() Config {
	return Config{Refresh: 2 * time.Second, CallTimeout: 2 * time.Second, Keepalive: 15 * time.Second, Failovers: 10}
}

// Validate checks the bounds.
func (c Config) Validate() error {
	var errs []error
	if c.Refresh < MinRefresh || c.Refresh > MaxRefresh {
		errs = append(errs, fmt.Errorf("refresh %v: must be between %v and %v", c.Refresh, MinRefresh, MaxRefresh))
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("call timeout %v: must be above 0", c.CallTimeout))
	}
	if c.Keepalive <= 0 {
		errs = append(errs, fmt.Errorf("keepalive %v: must be above 0", c.Keepalive))
	}
	if c.Failovers < 1 || c.Failovers > MaxFailovers {
		errs = append(errs, fmt.Errorf("failovers %d: must be between 1 and %d", c.Failovers, MaxFailovers))
	}
	return errors.Join(errs...)
}

// Source is the manager the dashboard runs in.
type Source interface {
	// Watch carries the newest map, then each newer one (dropping maps for
	// a slow reader); it is closed when ctx is done.
	Watch(ctx context.Context) <-chan *mgrv1.MgrMap
	Name() string
	GID() uint64
	Logger() hclog.Logger
}

// Admin is what the dashboard calls on the monitors.
type Admin interface {
	ListBeacons(ctx context.Context, req *mgrv1.ListBeaconsRequest) (*mgrv1.ListBeaconsResponse, error)
	ListHistory(ctx context.Context, req *mgrv1.ListHistoryRequest) (*mgrv1.ListHistoryResponse, error)
}

// adminClient adapts mgrv1.AdminServiceClient (whose methods take call
// options) to Admin.
type adminClient struct{ c mgrv1.AdminServiceClient }

func (a adminClient) ListBeacons(ctx context.Context, req *mgrv1.ListBeaconsRequest) (*mgrv1.ListBeaconsResponse, error) {
	return a.c.ListBeacons(ctx, req)
}

func (a adminClient) ListHistory(ctx context.Context, req *mgrv1.ListHistoryRequest) (*mgrv1.ListHistoryResponse, error) {
	return a.c.ListHistory(ctx, req)
}

// AdminClient makes an Admin of an AdminService client.
func AdminClient(c mgrv1.AdminServiceClient) Admin { return adminClient{c: c} }

// Dashboard serves the page and its event stream. Run feeds it; its
// handlers answer 503 while Run is not running.
type Dashboard struct {
	cfg Config
	// run is set while Run runs; nil otherwise.
	run atomic.Pointer[running]
}

// running is what one Run shares with the handlers.
type running struct {
	// views carries the encoded view.
	views *feed.Feed[[]byte]
	log   hclog.Logger
}

// New returns a dashboard; cfg must be valid.
func New(cfg Config) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid dashboard config: %w", err)
	}
	return &Dashboard{cfg: cfg}, nil
}

// Route is one handler and its ServeMux pattern, relative to the module's
// root.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Routes lists the dashboard's handlers: the page (GET /), its static files
// (GET /static/), the newest view as JSON (GET /state) and the event stream
// (GET /events).
func (d *Dashboard) Routes() []Route {
	static, _ := fs.Sub(assets, "assets")
	return []Route{
		{Pattern: "GET /{$}", Handler: http.HandlerFunc(d.serveIndex)},
		{Pattern: "GET /static/", Handler: noCache(http.StripPrefix("/static/", http.FileServerFS(static)))},
		{Pattern: "GET /state", Handler: http.HandlerFunc(d.serveState)},
		{Pattern: "GET /events", Handler: http.HandlerFunc(d.serveEvents)},
	}
}

// Run builds the view from each map and, between maps, every Refresh (the
// beacon ages change without a map), until ctx is done or the map watch
// ends. The event streams open then end with it.
func (d *Dashboard) Run(ctx context.Context, src Source, admin Admin) error {
	run := &running{views: feed.New[[]byte](), log: src.Logger()}
	f := run.views
	d.run.Store(run)
	defer func() {
		d.run.CompareAndSwap(run, nil)
		f.Close()
	}()
	maps := src.Watch(ctx)
	tick := time.NewTicker(d.cfg.Refresh)
	defer tick.Stop()
	b := &builder{cfg: d.cfg, admin: admin, log: run.log}
	var m *mgrv1.MgrMap
	for {
		select {
		case <-ctx.Done():
			return nil
		case nm, ok := <-maps:
			if !ok {
				return nil
			}
			m = nm
		case <-tick.C:
			if m == nil {
				continue
			}
		}
		v := b.build(ctx, m, src.Name(), src.GID())
		enc, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("failed to encode the dashboard view: %w", err)
		}
		f.Publish(enc)
	}
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

func (d *Dashboard) serveIndex(w http.ResponseWriter, _ *http.Request) {
	body, err := page()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(body)
}

// msgNotRunning answers requests while Run is not running.
const msgNotRunning = "the dashboard is not running"

// serveState answers the newest view as JSON.
func (d *Dashboard) serveState(w http.ResponseWriter, _ *http.Request) {
	var v []byte
	var ok bool
	if run := d.run.Load(); run != nil {
		v, ok, _, _ = run.views.Latest()
	}
	if !ok {
		http.Error(w, msgNotRunning, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(v)
	_, _ = w.Write([]byte("\n"))
}

// serveEvents streams each view as a server-sent event "state", newest
// first, until the client goes, the dashboard stops, or a write fails. A
// client slower than the views gets the newest one when it can take it.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	run := d.run.Load()
	if run == nil {
		http.Error(w, msgNotRunning, http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// retry: how long the browser waits before it reconnects.
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		run.log.Debug("event stream cannot flush", "error", err)
		return
	}
	views := run.views.Watch(r.Context())
	keep := time.NewTicker(d.cfg.Keepalive)
	defer keep.Stop()
	var id uint64
	for {
		var err error
		select {
		case v, ok := <-views:
			if !ok {
				return
			}
			id++
			_, err = fmt.Fprintf(w, "event: state\nid: %d\ndata: %s\n\n", id, v)
		case <-keep.C:
			_, err = fmt.Fprint(w, ": keepalive\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			run.log.Debug("event stream ended", "error", err)
			return
		}
	}
}

// causeName turns CHANGE_CAUSE_STANDBY_ADDED into "standby added".
func causeName(c mgrv1.ChangeCause) string {
	s := strings.TrimPrefix(c.String(), "CHANGE_CAUSE_")
	return strings.ToLower(strings.ReplaceAll(s, "_", " "))
}

// sortedKeys returns m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
