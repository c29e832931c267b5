// Command standby is the mgrplane manager daemon: it joins the monitors as a
// standby, and serves the manager server (gRPC and HTTP, with the built-in
// status module) while the map names it active. It carries the dashboard
// and prometheus modules: `mgrctl module enable dashboard|prometheus`.
//
// Every flag has an environment fallback MGRPLANE_<FLAG> (dashes become
// underscores), e.g. MGRPLANE_NAME, MGRPLANE_MONITOR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mgrplane/mgrplane/internal/cli"
	"github.com/mgrplane/mgrplane/internal/version"
	"github.com/mgrplane/mgrplane/services/standby"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "standby:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	cfg     standby.Config
	log     cli.LogFlags
	version bool
}

// monitorList is a comma-separated list of addresses.
type monitorList []string

func (m *monitorList) String() string { return strings.Join(*m, ",") }

func (m *monitorList) Set(s string) error {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	*m = out
	return nil
}

// int32Value is a flag holding an int32.
type int32Value int32

func (v *int32Value) String() string { return strconv.FormatInt(int64(*v), 10) }

func (v *int32Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return fmt.Errorf("must be an integer from %d to %d", math.MinInt32, math.MaxInt32)
	}
	*v = int32Value(n)
	return nil
}

// parse reads flags, falling back to the environment; a flag given on the
// command line wins over its variable.
func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{cfg: standby.DefaultConfig()}
	fs := flag.NewFlagSet("standby", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.Name, "name", c.Name, "manager name (required): 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit")
	fs.Var((*monitorList)(&c.Monitors), "monitor", "monitor gRPC addresses, comma-separated; the first that answers is used")
	fs.StringVar(&c.FSID, "fsid", c.FSID, "cluster fsid to join (optional)")
	fs.DurationVar(&c.BeaconPeriod, "beacon-period", c.BeaconPeriod, "time between beacons; the monitor's fence timeout must exceed it by max(period/2, 100ms)")
	fs.Var((*int32Value)(&c.Priority), "priority", "promotion priority, an `int32`: the monitor promotes the standby with the highest first")
	fs.StringVar(&c.Zone, "zone", c.Zone, "failure zone (optional, like a name): after a failure the monitor prefers a standby outside the failed active's zone")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "manager gRPC listen address (a standby listens too, refusing calls with the active's name)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "manager HTTP listen address (a standby listens too, redirecting to the active)")
	fs.StringVar(&c.HealthAddr, "health-addr", c.HealthAddr, "where to serve gRPC health checks alone, in plaintext, for probes without TLS (Kubernetes grpc probes); mgr.v1.ManagerService is SERVING on the active only (empty: none)")
	fs.IntVar(&c.StandbyHTTPStatus, "standby-http-status", c.StandbyHTTPStatus, "how a standby answers HTTP: 303 or 307 (redirect to the same path on the active) or 503 (for load balancers)")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", c.AdvertiseHost, "host put in server addresses and service URLs (default: the listen host, or the hostname when listening on all addresses)")
	fs.DurationVar(&c.ReconnectMin, "reconnect-min", c.ReconnectMin, "first delay before reconnecting to a monitor")
	fs.DurationVar(&c.ReconnectMax, "reconnect-max", c.ReconnectMax, "longest delay before reconnecting to a monitor")
	c.CredsDir = defaultCreds
	fs.StringVar(&c.CredsDir, "creds", c.CredsDir, "creds dir: the cluster CA, mgr.crt/mgr.key for this manager's listeners, and the keyring")
	fs.StringVar(&c.Keyring, "keyring", c.Keyring, "keyring holding the entity's key (default CREDS/keyring)")
	fs.StringVar(&c.Entity, "entity", c.Entity, "entity to authenticate as (default mgr.NAME)")
	o.log.Register(fs)
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: standby --name NAME [flags]\n\nFlags (each also read from MGRPLANE_<FLAG>):\n")
		fs.PrintDefaults()
	}

	if err := cli.SetFromEnv(fs, getenv); err != nil {
		return o, err
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

// defaultCreds is where `make run` keeps the local cluster's creds dir.
const defaultCreds = ".run/monsim/creds"

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.version {
		_, err := fmt.Fprintln(stdout, version.Version)
		return err
	}
	if o.cfg.Name == "" {
		return errors.New("--name (or MGRPLANE_NAME) is required")
	}
	root, err := o.log.Logger("standby", stderr)
	if err != nil {
		return err
	}
	log := root.With("mgr", o.cfg.Name)
	o.cfg.Logger = log

	// The process's own metrics registry, which the prometheus module serves.
	reg := prometheus.NewRegistry()
	o.cfg.Registry = reg
	// The modules this daemon carries; `mgrctl module enable NAME` runs one
	// on the active.
	sb, err := standby.New(o.cfg, standby.Dashboard(), standby.NewPrometheusModule(reg))
	if err != nil {
		return err
	}
	log.Info("starting", "version", version.Version, "monitors", o.cfg.Monitors,
		"grpc_addr", o.cfg.GRPCAddr, "http_addr", o.cfg.HTTPAddr, "health_addr", o.cfg.HealthAddr, "beacon_period", o.cfg.BeaconPeriod,
		"priority", o.cfg.Priority, "zone", o.cfg.Zone)
	if err := sb.Run(ctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
