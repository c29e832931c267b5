// Command monsim is the mgrplane monitor: it owns the MgrMap, takes
// beacons, promotes standbys and streams maps. See `monsim -h`.
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
	"github.com/mgrplane/mgrplane/services/monsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "monsim:", err)
		os.Exit(1)
	}
}

// envName is the environment variable that backs a flag: MGRPLANE_DATA_DIR for --data-dir.
func envName(flagName string) string {
	return "MGRPLANE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := monsim.DefaultConfig()
	fs := flag.NewFlagSet("monsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "gRPC listen address")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the raft log and snapshots")
	fs.StringVar(&cfg.NodeID, "id", cfg.NodeID, "this monitor's id in the quorum")
	fs.StringVar(&cfg.FSID, "fsid", cfg.FSID, "cluster id to create at bootstrap (random when empty; ignored afterwards)")
	fs.DurationVar(&cfg.BeaconPeriod, "beacon-period", cfg.BeaconPeriod, "how often managers beacon")
	fs.DurationVar(&cfg.Grace, "grace", cfg.Grace, "how long a manager may be silent before it is dropped")
	fs.DurationVar(&cfg.Tick, "tick", cfg.Tick, "how often the leader looks for silent managers")
	fs.IntVar(&cfg.HistoryLimit, "history", cfg.HistoryLimit, "how many maps to keep for dump --epoch and watch resume")
	fs.IntVar(&cfg.WatchMaxLag, "watch-max-lag", cfg.WatchMaxLag, "how many maps a watcher may fall behind before it is cut off")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log as JSON")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: monsim [flags]\n\nThe mgrplane monitor. Every flag can also be set with the environment\nvariable MGRPLANE_<FLAG> (e.g. MGRPLANE_DATA_DIR).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "version" {
			return // a stray MGRPLANE_VERSION must not turn the daemon into a version print
		}
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (monsim takes only flags)", fs.Arg(0))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "monsim", version.Version)
		return nil
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return fmt.Errorf("--log-level %q: must be one of trace, debug, info, warn, error", *logLevel)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "monsim", Level: level, JSONFormat: *logJSON, Output: stderr})
	srv, err := monsim.New(cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("monitor listening", "addr", srv.Addr(), "data_dir", cfg.DataDir, "version", version.Version)
	return srv.Run(ctx)
}
