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

	"github.com/mgrplane/mgrplane/internal/cli"
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

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := monsim.DefaultConfig()
	fs := flag.NewFlagSet("monsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "gRPC listen address")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the raft log and snapshots")
	fs.StringVar(&cfg.NodeID, "id", cfg.NodeID, "this monitor's id in the quorum")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise-addr", cfg.AdvertiseAddr, "address other monitors use to reach this one (default: the listen address)")
	fs.Func("peers", "initial quorum, the same on every member: id=host:port,... (bootstrapped once; empty: this monitor alone)", func(v string) error {
		cfg.Peers = splitList(v)
		return nil
	})
	fs.Func("join", "addresses of running members to ask for admission (host:port,...), for a monitor added to an existing quorum", func(v string) error {
		cfg.Join = splitList(v)
		return nil
	})
	fs.StringVar(&cfg.FSID, "fsid", cfg.FSID, "cluster id to create at bootstrap (random when empty; ignored afterwards)")
	fs.DurationVar(&cfg.BeaconPeriod, "beacon-period", cfg.BeaconPeriod, "how often managers beacon")
	fs.DurationVar(&cfg.Grace, "grace", cfg.Grace, "how long a manager may be silent before it is dropped")
	fs.DurationVar(&cfg.FenceTimeout, "fence-timeout", cfg.FenceTimeout, "the lease: how long an active may serve after a beacon the monitor acknowledged (grace must exceed it plus the beacon period plus 500ms)")
	fs.DurationVar(&cfg.Tick, "tick", cfg.Tick, "how often the leader looks for silent managers")
	fs.IntVar(&cfg.HistoryLimit, "history", cfg.HistoryLimit, "how many maps to keep for dump --epoch and watch resume")
	fs.IntVar(&cfg.WatchMaxLag, "watch-max-lag", cfg.WatchMaxLag, "how many maps a watcher may fall behind before it is cut off")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "where to serve Prometheus metrics at GET /metrics, host:port (empty: none)")
	var logFlags cli.LogFlags
	logFlags.Register(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: monsim [flags]\n\nThe mgrplane monitor. Every flag can also be set with the environment\nvariable MGRPLANE_<FLAG> (e.g. MGRPLANE_DATA_DIR).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := cli.SetFromEnv(fs, getenv); err != nil {
		return err
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
	logger, err := logFlags.Logger("monsim", stderr)
	if err != nil {
		return err
	}
	srv, err := monsim.New(cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("monitor listening", "addr", srv.Addr(), "data_dir", cfg.DataDir, "version", version.Version)
	if a := srv.MetricsAddr(); a != "" {
		logger.Info("serving metrics", "url", "http://"+a+monsim.MetricsPath)
	}
	if err := srv.Run(ctx); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
