// Command chaos is the chaos harness: it runs a local mgrplane cluster of
// real processes for N rounds of random faults on the active manager (or,
// with --monitors 3, on the raft leader), probes every manager all along,
// and reports overlaps (two actives at one instant: must be 0) and failover
// times per kind of fault. See `chaos -h`.
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
	"syscall"
	"time"

	"github.com/mgrplane/mgrplane/internal/chaos"
	"github.com/mgrplane/mgrplane/internal/cli"
	"github.com/mgrplane/mgrplane/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := chaos.DefaultConfig()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "how many faults to inject, one per round")
	seed := fs.Uint64("seed", 0, "seed of the fault sequence (0: a new one, printed)")
	fs.IntVar(&cfg.Monitors, "monitors", cfg.Monitors, "how many monsims: 1, or 3 as a raft quorum (allows the faults monkill and monstop)")
	faults := fs.String("faults", "", "comma-separated faults to draw from: kill9, sigstop, sigterm, restart, fail, and with --monitors 3\n"+
		"monkill, monstop (default: all that --monitors allows)")
	fs.DurationVar(&cfg.BeaconPeriod, "beacon-period", cfg.BeaconPeriod, "managers' beacon period (monsim and standby --beacon-period)")
	fs.DurationVar(&cfg.Grace, "grace", cfg.Grace, "monsim --grace")
	fs.DurationVar(&cfg.Tick, "tick", cfg.Tick, "monsim --tick")
	fs.DurationVar(&cfg.FenceTimeout, "fence-timeout", 0, "monsim --fence-timeout, when monsim has it (0: monsim's default)")
	fs.DurationVar(&cfg.ProbeTimeout, "probe-timeout", cfg.ProbeTimeout, "deadline of one probe call")
	fs.DurationVar(&cfg.ProbePause, "probe-pause", cfg.ProbePause, "pause between two probe calls to one manager over one protocol")
	ceph := fs.Bool("ceph", false, "use Ceph's timings (beacon 2s, grace 30s, tick 2s) unless set by their flags")
	out := fs.String("out", filepath.Join("artifacts", "chaos"), "directory for timeline.svg, report.json and the cluster's logs")
	bin := fs.String("bin", "", "directory holding monsim, standby and mgrctl (default: build them with go build)")
	quiet := fs.Bool("quiet", false, "print only the final table, not a line per round")
	dump := fs.Bool("dump-answers", false, "also write every answer as active to answers.jsonl in --out (large)")
	logFlags := cli.LogFlags{Level: "warn"}
	logFlags.Register(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: chaos [flags]\n\n"+
			"Runs a local mgrplane cluster (one monsim or a quorum of three, standbys x, y, z)\n"+
			"for N rounds of random faults on the active manager (or, with three monitors, on\n"+
			"the raft leader), probes every manager's gRPC and HTTP endpoints all along, and\n"+
			"reports overlaps (two managers serving as active at one instant) and failover\n"+
			"times per fault. Exits 1 when an overlap is found or a manager fault saw no new\n"+
			"active in time. Every flag can also be set with MGRPLANE_<FLAG>.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := cli.SetFromEnv(fs, getenv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (chaos takes only flags)", fs.Arg(0))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "chaos", version.Version)
		return nil
	}
	if *ceph {
		setFlags := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })
		c := cfg
		c.CephTimings()
		if !setFlags["beacon-period"] {
			cfg.BeaconPeriod = c.BeaconPeriod
		}
		if !setFlags["grace"] {
			cfg.Grace = c.Grace
		}
		if !setFlags["tick"] {
			cfg.Tick = c.Tick
		}
	}
	var err error
	cfg.Faults = chaos.DefaultFaults(cfg.Monitors)
	if *faults != "" {
		if cfg.Faults, err = chaos.ParseFaults(*faults); err != nil {
			return fmt.Errorf("--faults: %w", err)
		}
	}
	cfg.Seed = *seed
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	logger, err := logFlags.Logger("chaos", stderr)
	if err != nil {
		return err
	}
	if cfg.Dir, err = os.MkdirTemp("", "mgrplane-chaos-"); err != nil {
		return fmt.Errorf("failed to make a data directory: %w", err)
	}
	defer os.RemoveAll(cfg.Dir)
	cfg.LogDir = filepath.Join(*out, "logs")
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.RemoveAll(cfg.LogDir); err != nil {
		return fmt.Errorf("failed to clear %s: %w", cfg.LogDir, err)
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return fmt.Errorf("failed to make %s: %w", cfg.LogDir, err)
	}

	var bins chaos.Binaries
	if *bin != "" {
		if bins, err = chaos.BinariesIn(*bin); err != nil {
			return err
		}
	} else {
		dir, err := os.MkdirTemp("", "mgrplane-chaos-bin-")
		if err != nil {
			return fmt.Errorf("failed to make a directory for the binaries: %w", err)
		}
		defer os.RemoveAll(dir)
		if bins, err = chaos.BuildBinaries(ctx, dir); err != nil {
			return err
		}
	}

	progress := stdout
	if *quiet {
		progress = io.Discard
	}
	fmt.Fprintf(progress, "chaos: %d rounds of %v, seed %d, %d monitor(s), beacon %v, grace %v, tick %v; logs in %s\n",
		cfg.Rounds, cfg.Faults, cfg.Seed, cfg.Monitors, cfg.BeaconPeriod, cfg.Grace, cfg.Tick, cfg.LogDir)
	r, err := chaos.New(cfg, bins, logger, progress)
	if err != nil {
		return err
	}
	res, runErr := r.Run(ctx)
	if res == nil {
		return runErr
	}
	if err := writeArtifacts(*out, res, *dump); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Fprintln(stdout)
	if err := res.Report.WriteTable(stdout); err != nil {
		return err
	}
	fmt.Fprintf(progress, "timeline: %s  report: %s\n", filepath.Join(*out, "timeline.svg"), filepath.Join(*out, "report.json"))
	return errors.Join(runErr, res.Report.Verdict())
}

// writeArtifacts writes timeline.svg and report.json into dir, and
// answers.jsonl when dump is set.
func writeArtifacts(dir string, res *chaos.Result, dump bool) error {
	write := func(name string, fn func(io.Writer) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("failed to create %s: %w", name, err)
		}
		if err := fn(f); err != nil {
			_ = f.Close()
			return fmt.Errorf("failed to write %s: %w", name, err)
		}
		return f.Close()
	}
	if err := write("timeline.svg", func(w io.Writer) error { return chaos.WriteSVG(w, res.Timeline) }); err != nil {
		return err
	}
	if dump {
		if err := write("answers.jsonl", func(w io.Writer) error { return chaos.WriteAnswers(w, res.Timeline.Answers) }); err != nil {
			return err
		}
	}
	return write("report.json", res.Report.WriteJSON)
}
