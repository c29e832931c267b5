// Command counter is an example of a program that embeds the mgrplane
// manager library (services/standby) with a module of its own.
//
// The counter module counts while it runs on the active manager, by its
// option step every period, and answers GET /counter/ with the count and
// its options as JSON. Its options are typed and bounded; change them live
// with mgrctl, and the running module picks them up without a restart:
//
//	mgrctl auth add mgr.c1 > c1.keyring   # manager c1's key (make run has x, y, z)
//	counter --name c1 --keyring c1.keyring --monitor 127.0.0.1:6789 &
//	mgrctl module enable counter
//	mgrctl config set mgr/counter/step 10
//	curl --cacert .run/monsim/creds/ca.crt https://127.0.0.1:6880/counter/
//
// --creds (MGRPLANE_CREDS, default .run/monsim/creds) is the cluster's creds
// dir: the CA, the managers' certificate for its own listeners, and the
// keyring unless --keyring names another.
//
// The program also carries the dashboard module. --counter-can-run=false
// makes the counter module report that it cannot run here (mgrctl module
// enable then refuses it unless --force).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mgrplane/mgrplane/services/standby"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

// run parses the flags, builds the manager with the counter and dashboard
// modules, and runs it until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := standby.DefaultConfig()
	fs := flag.NewFlagSet("counter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	monitors := fs.String("monitor", strings.Join(cfg.Monitors, ","), "monitor gRPC addresses, comma-separated")
	fs.StringVar(&cfg.Name, "name", getenv("MGRPLANE_NAME"), "manager name (required)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "manager gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "manager HTTP listen address")
	fs.DurationVar(&cfg.BeaconPeriod, "beacon-period", cfg.BeaconPeriod, "time between beacons")
	fs.IntVar(&cfg.StandbyHTTPStatus, "standby-http-status", cfg.StandbyHTTPStatus, "how a standby answers HTTP: 303, 307 or 503")
	cfg.CredsDir = getenv("MGRPLANE_CREDS")
	if cfg.CredsDir == "" {
		cfg.CredsDir = ".run/monsim/creds" // where `make run` keeps them
	}
	fs.StringVar(&cfg.CredsDir, "creds", cfg.CredsDir, "creds dir: the cluster CA, mgr.crt/mgr.key for this manager's listeners, and the keyring holding mgr.NAME")
	fs.StringVar(&cfg.Keyring, "keyring", "", "keyring holding mgr.NAME's key (default CREDS/keyring)")
	canRun := fs.Bool("counter-can-run", true, "whether the counter module can run here")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.Name == "" {
		return errors.New("--name is required")
	}
	cfg.Monitors = strings.Split(*monitors, ",")
	log := hclog.New(&hclog.LoggerOptions{Name: "counter", Output: stderr, Level: hclog.Info}).With("mgr", cfg.Name)
	cfg.Logger = log

	sb, err := standby.New(cfg, &Counter{canRun: *canRun}, standby.Dashboard())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "counter %s: pid %d\n", cfg.Name, os.Getpid())
	return sb.Run(ctx)
}

// Counter is the example module. It implements standby.Module and
// standby.OptionsModule.
type Counter struct {
	canRun bool
	count  atomic.Int64
}

var (
	_ standby.Module        = (*Counter)(nil)
	_ standby.OptionsModule = (*Counter)(nil)
)

// Name is the module's name: its options are mgr/counter/<option>, its
// HTTP root /counter/.
func (*Counter) Name() string { return "counter" }

// CanRun says whether the module can run on this host.
func (c *Counter) CanRun() error {
	if !c.canRun {
		return errors.New("disabled on this host by --counter-can-run=false")
	}
	return nil
}

// Options declares the module's typed options, with defaults and bounds
// the monitor enforces.
func (*Counter) Options() []standby.Option {
	return []standby.Option{
		{Name: "step", Type: standby.OptionInt, Default: "1", Min: "1", Max: "1000", Description: "added to the count every period"},
		{Name: "period", Type: standby.OptionDuration, Default: "1s", Min: "10ms", Max: "1h", Description: "time between two steps"},
		{Name: "greeting", Type: standby.OptionString, Default: "hello", Allowed: []string{"hello", "hi", "hey"}, Description: "word in the answer"},
	}
}

// answer is the JSON of GET /counter/.
type answer struct {
	Manager  string `json:"manager"`
	Count    int64  `json:"count"`
	Step     int64  `json:"step"`
	Period   string `json:"period"`
	Greeting string `json:"greeting"`
	Pid      int    `json:"pid"`
}

// Register mounts GET /counter/.
func (c *Counter) Register(r standby.Registrar) {
	h := r.Host()
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer{
			Manager:  h.Name(),
			Count:    c.count.Load(),
			Step:     h.IntOption("step"),
			Period:   h.DurationOption("period").String(),
			Greeting: h.Option("greeting"),
			Pid:      os.Getpid(),
		})
	}))
}

// Run counts until ctx is done, reading its options live: a new period
// takes effect at once, a new step at the next tick.
func (c *Counter) Run(ctx context.Context, h standby.Host) error {
	changed := h.OptionsChanged(ctx)
	period := h.DurationOption("period")
	t := time.NewTicker(period)
	defer t.Stop()
	h.Logger().Info("counting", "step", h.IntOption("step"), "period", period)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.count.Add(h.IntOption("step"))
		case _, ok := <-changed:
			if !ok {
				return nil
			}
			if p := h.DurationOption("period"); p != period {
				period = p
				t.Reset(period)
			}
			h.Logger().Info("options changed", "step", h.IntOption("step"), "period", period, "greeting", h.Option("greeting"))
		}
	}
}
