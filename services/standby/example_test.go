package standby_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mgrplane/mgrplane/services/standby"
)

// hello is an embedder's module: while enabled on the active manager it
// answers GET /hello/ and logs a line every minute.
type hello struct{}

func (hello) Name() string  { return "hello" }
func (hello) CanRun() error { return nil }

func (hello) Register(r standby.Registrar) {
	h := r.Host()
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s (map epoch %d)\n", h.Name(), h.Map().GetEpoch())
	}))
}

func (hello) Run(ctx context.Context, h standby.Host) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.Logger().Info("still active", "since", h.ActiveSince())
		}
	}
}

// An embedder builds a manager with its own module and runs it until
// SIGINT or SIGTERM. Enable the module with `mgrctl module enable hello`.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg := standby.DefaultConfig()
	cfg.Name = "mgr-a"
	cfg.Monitors = []string{"127.0.0.1:6789"}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "mgr-a"})

	sb, err := standby.New(cfg, hello{})
	if err != nil {
		log.Fatal(err)
	}
	if err := sb.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// greeter is a module with typed options, read live while it runs.
type greeter struct{}

func (greeter) Name() string  { return "greeter" }
func (greeter) CanRun() error { return nil }

// Options declares the options `mgrctl config set mgr/greeter/<option>`
// sets; the monitor refuses a value of the wrong type or out of bounds.
func (greeter) Options() []standby.Option {
	return []standby.Option{
		{Name: "word", Type: standby.OptionString, Default: "hello", Allowed: []string{"hello", "hi"}},
		{Name: "every", Type: standby.OptionDuration, Default: "1m", Min: "1s", Max: "1h"},
	}
}

func (greeter) Register(r standby.Registrar) {
	h := r.Host()
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s from %s\n", h.Option("word"), h.Name())
	}))
}

// Run logs the word every period; a new period applies at once, with no
// restart of the module or the process.
func (greeter) Run(ctx context.Context, h standby.Host) error {
	changed := h.OptionsChanged(ctx)
	t := time.NewTicker(h.DurationOption("every"))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			t.Reset(h.DurationOption("every"))
		case <-t.C:
			h.Logger().Info(h.Option("word"))
		}
	}
}

// A module with options (standby.OptionsModule). Enable it and tune it
// live with mgrctl:
//
//	mgrctl module enable greeter
//	mgrctl config set mgr/greeter/every 10s
//	mgrctl config set mgr/greeter/word hi
//
// examples/counter is a complete program built this way.
func Example_options() {
	cfg := standby.DefaultConfig()
	cfg.Name = "mgr-b"
	// A standby answers HTTP with 503 instead of redirecting to the active.
	cfg.StandbyHTTPStatus = 503
	sb, err := standby.New(cfg, greeter{}, standby.Dashboard())
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sb.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
