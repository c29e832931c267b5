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
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mgrplane/mgrplane/internal/cli"
	"github.com/mgrplane/mgrplane/internal/creds"
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
	if len(args) > 0 && args[0] == "creds" {
		return runCreds(args[1:], stdout, stderr)
	}
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
	fs.StringVar(&cfg.HealthAddr, "health-addr", cfg.HealthAddr, "where to serve gRPC health checks alone, in plaintext, for probes without TLS (Kubernetes grpc probes), host:port (empty: none)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "where to serve Prometheus metrics at GET /metrics, host:port (empty: none)")
	credsDir := fs.String("creds", "", "creds dir: CA, monitor certificate and keyring (default DATA_DIR/creds, made on first start)")
	fs.StringVar(&cfg.AuditLog, "audit-log", cfg.AuditLog, "append the audit log (admin commands, joins, leaves, refusals) to this file as JSON lines (default: the log, as monsim.audit)")
	fs.IntVar(&cfg.MaxMsgSize, "max-msg-size", cfg.MaxMsgSize, "largest request accepted, in bytes (4096 to 67108864)")
	fs.Float64Var(&cfg.AuthRate, "auth-rate", cfg.AuthRate, "authenticate calls per second allowed per peer address")
	fs.IntVar(&cfg.AuthBurst, "auth-burst", cfg.AuthBurst, "authenticate calls a peer may make at once above the rate")
	fs.Float64Var(&cfg.BeaconRate, "beacon-rate", cfg.BeaconRate, "beacons per second allowed per peer address")
	fs.IntVar(&cfg.BeaconBurst, "beacon-burst", cfg.BeaconBurst, "beacons a peer may send at once above the rate")
	fs.IntVar(&cfg.MaxWatches, "max-watches", cfg.MaxWatches, "watch streams one entity may hold open")
	var logFlags cli.LogFlags
	logFlags.Register(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: monsim [flags]\n       monsim creds init --dir DIR [--host H,...] [--mgr NAME,...] [--exist-ok]\n       monsim creds issue --dir DIR --cert mon|mgr [--host H,...]\n\nThe mgrplane monitor. Every flag can also be set with the environment\nvariable MGRPLANE_<FLAG> (e.g. MGRPLANE_DATA_DIR).\n\nFlags:\n")
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
	dir := *credsDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "creds")
	}
	if !creds.Exists(dir) {
		if err := creds.Init(dir, creds.InitOptions{}); err != nil {
			return err
		}
		logger.Info("made a new CA, certificates and keyring (client.admin)", "creds", dir)
	}
	if cfg.Creds, err = creds.LoadMonitor(dir); err != nil {
		return err
	}
	srv, err := monsim.New(cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("monitor listening", "addr", srv.Addr(), "data_dir", cfg.DataDir, "creds", dir, "version", version.Version)
	if a := srv.HealthAddr(); a != "" {
		logger.Info("serving health checks in plaintext", "addr", a)
	}
	if a := srv.MetricsAddr(); a != "" {
		logger.Info("serving metrics", "url", srv.MetricsURL())
	}
	if err := srv.Run(ctx); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// credsUsage is the synopsis of the creds subcommands.
const credsUsage = "usage: monsim creds init --dir DIR [--host H,...] [--mgr NAME,...] [--exist-ok]\n       monsim creds issue --dir DIR --cert mon|mgr [--host H,...]"

// runCreds is `monsim creds init` (a new creds dir) and `monsim creds
// issue` (a new monitor or manager certificate from the dir's CA, picked up
// by running servers at their next handshake).
func runCreds(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "issue" {
		return runCredsIssue(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "init" {
		return errors.New(credsUsage)
	}
	fs := flag.NewFlagSet("monsim creds init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory to write ca.crt, ca.key, mon.crt, mon.key, mgr.crt, mgr.key and keyring to (required)")
	var o creds.InitOptions
	fs.Func("host", "names and IPs to put in the certificates beside 127.0.0.1, localhost and ::1 (comma-separated)", func(v string) error {
		o.Hosts = append(o.Hosts, splitList(v)...)
		return nil
	})
	fs.Func("mgr", "managers to give an entity mgr.NAME with caps mgr in the keyring (comma-separated)", func(v string) error {
		o.Managers = append(o.Managers, splitList(v)...)
		return nil
	})
	existOK := fs.Bool("exist-ok", false, "when DIR already holds every file, keep them and succeed (a bootstrap step run on every start); a partial DIR is still refused")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return errors.New(credsUsage)
	}
	if *existOK && creds.Complete(*dir) {
		fmt.Fprintf(stdout, "kept the credentials already in %s\n", *dir)
		return nil
	}
	if err := creds.Init(*dir, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a CA, monitor and manager certificates and a keyring to %s\n", *dir)
	return nil
}

func runCredsIssue(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("monsim creds issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "creds dir holding ca.crt and ca.key (required)")
	cert := fs.String("cert", "", "which certificate: mon or mgr (required)")
	var hosts []string
	fs.Func("host", "names and IPs beside 127.0.0.1, localhost and ::1 (comma-separated)", func(v string) error {
		hosts = append(hosts, splitList(v)...)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 || (*cert != creds.MonCN && *cert != creds.MgrCN) {
		return errors.New(credsUsage)
	}
	certFile, keyFile := creds.MonCertFile, creds.MonKeyFile
	if *cert == creds.MgrCN {
		certFile, keyFile = creds.MgrCertFile, creds.MgrKeyFile
	}
	if err := creds.Issue(*dir, certFile, keyFile, *cert, hosts); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a new %s and %s to %s\n", certFile, keyFile, *dir)
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
