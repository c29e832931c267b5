// Command standby is the mgrplane manager daemon: it joins the monitors as a
// standby, and serves the manager server (gRPC and HTTP, with the built-in
// status module) while the map names it active.
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
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

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
	cfg      standby.Config
	logLevel string
	logJSON  bool
	version  bool
}

// envName is the environment fallback of a flag.
func envName(flagName string) string {
	return "MGRPLANE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
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

// parse reads flags, falling back to the environment; a flag given on the
// command line wins over its variable.
func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{cfg: standby.DefaultConfig(), logLevel: "info"}
	fs := flag.NewFlagSet("standby", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.Name, "name", c.Name, "manager name (required): 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit")
	fs.Var((*monitorList)(&c.Monitors), "monitor", "monitor gRPC addresses, comma-separated; the first that answers is used")
	fs.StringVar(&c.FSID, "fsid", c.FSID, "cluster fsid to join (optional)")
	fs.DurationVar(&c.BeaconPeriod, "beacon-period", c.BeaconPeriod, "time between beacons")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "manager gRPC listen address while active")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "manager HTTP listen address while active")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", c.AdvertiseHost, "host put in server addresses and service URLs (default: the listen host, or the hostname when listening on all addresses)")
	fs.DurationVar(&c.ReconnectMin, "reconnect-min", c.ReconnectMin, "first delay before reconnecting to a monitor")
	fs.DurationVar(&c.ReconnectMax, "reconnect-max", c.ReconnectMax, "longest delay before reconnecting to a monitor")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "log level: trace, debug, info, warn or error")
	fs.BoolVar(&o.logJSON, "log-json", o.logJSON, "log as JSON")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: standby --name NAME [flags]\n\nFlags (each also read from MGRPLANE_<FLAG>):\n")
		fs.PrintDefaults()
	}

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "version" {
			return
		}
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s: %w", v, envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

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
	level := hclog.LevelFromString(o.logLevel)
	if level == hclog.NoLevel {
		return fmt.Errorf("--log-level %q: must be trace, debug, info, warn or error", o.logLevel)
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "standby",
		Level:      level,
		JSONFormat: o.logJSON,
		Output:     stderr,
	}).With("mgr", o.cfg.Name)
	o.cfg.Logger = log

	sb, err := standby.New(o.cfg)
	if err != nil {
		return err
	}
	log.Info("starting", "version", version.Version, "monitors", o.cfg.Monitors,
		"grpc_addr", o.cfg.GRPCAddr, "http_addr", o.cfg.HTTPAddr, "beacon_period", o.cfg.BeaconPeriod)
	if err := sb.Run(ctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
