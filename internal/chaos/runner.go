package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
)

// Timings of the rounds.
const (
	// roundPoll is the pause between two looks at the prober's answers.
	roundPoll = 5 * time.Millisecond
	// settlePoll is the pause between two looks at the cluster's state.
	settlePoll = 20 * time.Millisecond
	// minRecent bounds the age of the answers that show that an active
	// serves now (4 × the probe timeout when that is longer).
	minRecent = 500 * time.Millisecond
)

// Result is a finished (or stopped) run: the report and the timeline.
type Result struct {
	Report   Report
	Timeline Timeline
}

// Runner runs the rounds of one chaos run.
type Runner struct {
	cfg      Config
	bins     Binaries
	log      hclog.Logger
	progress io.Writer
}

// New makes a runner of cfg on the programs bins; it writes one progress
// line per round to progress.
func New(cfg Config, bins Binaries, log hclog.Logger, progress io.Writer) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, bins: bins, log: log, progress: progress}, nil
}

// Run starts the cluster, runs the rounds, stops the cluster and analyses
// the answers. The result is set (with what was measured) whenever the
// cluster started, also when an error stopped the run early.
func (r *Runner) Run(ctx context.Context) (*Result, error) {
	c, err := startCluster(ctx, r.cfg, r.bins, r.log.Named("cluster"))
	if err != nil {
		return nil, err
	}
	defer c.close()
	start := time.Now()
	pr := NewProber(c.targets(), r.cfg.ProbeTimeout, r.cfg.ProbePause, r.log.Named("prober"))
	w := newWatcher(r.bins.Mgrctl, c.ctlArgs(), filepath.Join(c.logDir, "watch.log"))

	var faults []Fault
	g, gctx := errgroup.WithContext(ctx)
	// The prober and the watch stop when the rounds end.
	probeCtx, stopProbing := context.WithCancel(gctx)
	defer stopProbing()
	g.Go(func() error { return pr.Run(probeCtx) })
	g.Go(func() error { return w.Run(probeCtx) })
	g.Go(func() error {
		defer stopProbing()
		rs := &rounds{Runner: r, c: c, pr: pr, w: w, start: start}
		err := rs.run(gctx)
		faults = rs.faults
		return err
	})
	runErr := g.Wait()
	end := time.Now()

	answers := pr.Answers(0)
	an := Analyze(answers, faults)
	rep := Report{
		Seed: r.cfg.Seed, Rounds: r.cfg.Rounds, Faults: r.cfg.Faults, Managers: r.cfg.Managers, Monitors: r.cfg.Monitors,
		BeaconPeriod: r.cfg.BeaconPeriod, Grace: r.cfg.Grace, Tick: r.cfg.Tick, FenceFlag: c.fenceFlag,
		Start: start, End: end,
		Failovers: an.Failovers, Stats: an.Stats, Overlaps: an.Overlaps,
		Answers: len(answers), Maps: len(w.all()), Probes: pr.Counts(),
	}
	if c.fenceFlag {
		rep.FenceTimeout = r.cfg.FenceTimeout
	}
	if runErr != nil {
		rep.Error = runErr.Error()
	}
	res := &Result{
		Report: rep,
		Timeline: Timeline{
			Title: fmt.Sprintf("mgrplane chaos: %d rounds, seed %d, beacon %v, grace %v, tick %v",
				len(faults), r.cfg.Seed, r.cfg.BeaconPeriod, r.cfg.Grace, r.cfg.Tick),
			Start: start, End: end, Managers: r.cfg.Managers,
			Answers: answers, Maps: w.all(), Failovers: an.Failovers, Overlaps: an.Overlaps,
		},
	}
	return res, runErr
}

// rounds is the state of the round loop.
type rounds struct {
	*Runner
	c     *cluster
	pr    *Prober
	w     *watcher
	start time.Time

	faults []Fault
	// overlaps seen so far, by pair of terms, for the progress lines.
	overlaps map[string]bool
}

// active is the manager a fault will hit.
type active struct {
	name  string
	gid   uint64
	epoch uint64
}

func (rs *rounds) run(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(rs.cfg.Seed, 0x9e3779b97f4a7c15))
	rs.overlaps = map[string]bool{}
	prevFrom := 0
	for i := 1; i <= rs.cfg.Rounds; i++ {
		from := rs.pr.Len()
		// Draw first, so that the faults depend on the seed alone.
		pause := rs.cfg.BeaconPeriod + time.Duration(rng.Int64N(int64(rs.cfg.BeaconPeriod)))
		kind := rs.cfg.Faults[rng.IntN(len(rs.cfg.Faults))]
		if _, err := rs.settle(ctx); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		// A random phase of the beacon cycle.
		if !sleepCtx(ctx, pause) {
			return ctx.Err()
		}
		act, err := rs.settle(ctx)
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		f := Fault{Round: i, Kind: kind, Target: act.name, TargetGID: act.gid, OldEpoch: act.epoch}
		if kind.OnMonitor() {
			err = rs.monitorFault(ctx, &f)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !f.At.IsZero() {
				rs.faults = append(rs.faults, f)
			}
			if err != nil {
				return fmt.Errorf("round %d: %s: %w", i, kind, err)
			}
		} else {
			if err := rs.inject(ctx, &f); err != nil {
				return fmt.Errorf("round %d: failed to inject %s: %w", i, kind, err)
			}
			f.Until = rs.waitNewActive(ctx, from, f)
			if ctx.Err() != nil {
				// Interrupted: the round is left out of the report.
				return ctx.Err()
			}
			err = rs.heal(ctx, &f)
			rs.faults = append(rs.faults, f)
			if err != nil {
				return fmt.Errorf("round %d: failed to heal %s: %w", i, kind, err)
			}
		}
		rs.report(MeasureFailover(rs.pr.Answers(from), f), prevFrom)
		prevFrom = from
	}
	return nil
}

// settle waits until the map names an available active that is not being
// failed, every other manager stands by, every process runs, and the
// active answers on both protocols; it returns that active.
func (rs *rounds) settle(ctx context.Context) (active, error) {
	deadline := time.Now().Add(rs.cfg.settleTimeout())
	recent := max(4*rs.cfg.ProbeTimeout, minRecent)
	why := "no map yet"
	for {
		if err := rs.c.alive(); err != nil {
			return active{}, err
		}
		if m, ok := rs.w.latest(); ok {
			var a active
			a, why = rs.settled(m, recent)
			if why == "" {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			return active{}, fmt.Errorf("the cluster did not settle within %v: %s", rs.cfg.settleTimeout(), why)
		}
		if !sleepCtx(ctx, settlePoll) {
			return active{}, ctx.Err()
		}
	}
}

// settled says why map m and the recent answers do not show a settled
// cluster ("" when they do).
func (rs *rounds) settled(m MapEvent, recent time.Duration) (active, string) {
	a := active{name: m.ActiveName, gid: m.ActiveGID, epoch: m.ActiveEpoch}
	switch {
	case m.ActiveGID == 0:
		return a, fmt.Sprintf("map epoch %d has no active", m.Epoch)
	case !m.Available || m.ActiveFailing:
		return a, fmt.Sprintf("map epoch %d: active %s available=%t failing=%t", m.Epoch, m.ActiveName, m.Available, m.ActiveFailing)
	}
	names := append([]string{m.ActiveName}, m.Standbys...)
	slices.Sort(names)
	want := slices.Sorted(slices.Values(rs.cfg.Managers))
	if !slices.Equal(names, want) {
		return a, fmt.Sprintf("map epoch %d names %v, want %v", m.Epoch, names, want)
	}
	// Both protocols of the active answered lately, in its term.
	since := time.Now().Add(-recent)
	seen := map[Proto]bool{}
	as := rs.pr.Answers(0)
	for i := len(as) - 1; i >= 0 && as[i].Recv.After(since); i-- {
		if as[i].Manager == a.name && as[i].GID == a.gid && as[i].ActiveEpoch == a.epoch {
			seen[as[i].Proto] = true
		}
	}
	if !seen[GRPC] || !seen[HTTP] {
		return a, fmt.Sprintf("active %s (gid %d, active epoch %d) has not answered lately on both protocols (grpc %t, http %t)",
			a.name, a.gid, a.epoch, seen[GRPC], seen[HTTP])
	}
	return a, ""
}

// inject injects f and sets f.At to the instant just before it (and
// f.Stopped for SigStop).
func (rs *rounds) inject(ctx context.Context, f *Fault) error {
	var at time.Time
	var err error
	switch f.Kind {
	case Kill9:
		at = time.Now()
		err = rs.c.signal(f.Target, syscall.SIGKILL)
	case SigStop:
		at = time.Now()
		err = rs.c.signal(f.Target, syscall.SIGSTOP)
		f.Stopped = time.Now()
	case SigTerm:
		at = time.Now()
		err = rs.c.signal(f.Target, syscall.SIGTERM)
	case Restart:
		at = time.Now()
		if err = rs.c.signal(f.Target, syscall.SIGKILL); err != nil {
			break
		}
		if err = rs.c.waitExit(ctx, f.Target); err != nil {
			break
		}
		err = rs.c.startMember(f.Target)
	case Fail:
		at = time.Now()
		err = rs.c.fail(ctx, f.TargetGID)
	default:
		err = fmt.Errorf("unknown fault %q", f.Kind)
	}
	f.At = at
	return err
}

// monitorFault injects a monitor fault into the raft leader and heals it:
// it sets f.Monitor, f.At and, when another monitor named a new leader,
// f.NewLeader and f.LeaderAt; f.Until when the quorum is whole again.
// f.At stays zero when nothing was injected.
func (rs *rounds) monitorFault(ctx context.Context, f *Fault) error {
	c := rs.c
	l, err := c.leader(ctx)
	if err != nil {
		return err
	}
	m := c.mons[l]
	f.Monitor = m.id
	switch f.Kind {
	case MonKill:
		f.At = time.Now()
		if err := m.p.signal(syscall.SIGKILL); err != nil {
			return err
		}
		if err := m.p.wait(ctx, exitTimeout); err != nil {
			return err
		}
		nl, at, err := c.waitNewLeader(ctx, l)
		if err != nil {
			return err
		}
		f.NewLeader, f.LeaderAt = c.mons[nl].id, at
		if err := c.startMonitor(l); err != nil {
			return err
		}
	case MonStop:
		f.At = time.Now()
		if err := m.p.signal(syscall.SIGSTOP); err != nil {
			return err
		}
		f.Stopped = time.Now()
		// Held stopped for a bounded time, looking for a new leader.
		until := f.Stopped.Add(rs.cfg.Grace + monStopExtra)
		for time.Now().Before(until) && ctx.Err() == nil {
			if f.LeaderAt.IsZero() {
				if nl := c.newLeader(ctx, l); nl >= 0 {
					f.NewLeader, f.LeaderAt = c.mons[nl].id, time.Now()
				}
			}
			sleepCtx(ctx, min(quorumPoll, time.Until(until)))
		}
		f.Resumed = time.Now()
		if err := m.p.signal(syscall.SIGCONT); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	default:
		return fmt.Errorf("%q is not a monitor fault", f.Kind)
	}
	err = c.waitAgreed(ctx)
	f.Until = time.Now()
	return err
}

// waitNewActive waits until an answer arrived after f.At that is not of
// the faulted term, or the new-active timeout passed; it returns when the
// wait ended.
func (rs *rounds) waitNewActive(ctx context.Context, from int, f Fault) time.Time {
	deadline := f.At.Add(rs.cfg.newActiveTimeout())
	old := termKey{f.TargetGID, f.OldEpoch}
	cursor := from
	for {
		as := rs.pr.Answers(cursor)
		for _, a := range as {
			if a.Recv.After(f.At) && keyOf(a) != old {
				return time.Now()
			}
		}
		cursor += len(as)
		now := time.Now()
		if now.After(deadline) {
			return deadline
		}
		if !sleepCtx(ctx, roundPoll) {
			return now
		}
	}
}

// heal undoes f: SIGCONT (setting f.Resumed), or the process started
// again once it exited.
func (rs *rounds) heal(ctx context.Context, f *Fault) error {
	switch f.Kind {
	case SigStop:
		f.Resumed = time.Now()
		return rs.c.signal(f.Target, syscall.SIGCONT)
	case Kill9, SigTerm:
		if err := rs.c.waitExit(ctx, f.Target); err != nil {
			return err
		}
		return rs.c.startMember(f.Target)
	}
	return nil
}

// report writes the round's progress line; the overlap count covers the
// answers since the previous round began (the final analysis covers all).
func (rs *rounds) report(fo Failover, prevFrom int) {
	for _, o := range FindOverlaps(ApplyStops(rs.pr.Answers(prevFrom), rs.faults)) {
		if k := o.Key(); !rs.overlaps[k] {
			rs.overlaps[k] = true
			rs.log.Error("OVERLAP", "detail", o.Describe(rs.start))
		}
	}
	elapsed := time.Since(rs.start).Truncate(time.Second)
	head := fmt.Sprintf("[%v] round %d/%d %-7s %s", elapsed, fo.Round, rs.cfg.Rounds, fo.Kind, fo.Target)
	if fo.Kind.OnMonitor() {
		leader := "no new leader"
		if fo.NewLeader != "" {
			leader = fmt.Sprintf("leader %s after %s", fo.NewLeader, formatDur(fo.TimeToLeader))
		}
		act := fmt.Sprintf("active %s kept", fo.Target)
		if fo.ActiveReplaced {
			act = fmt.Sprintf("active %s → %s after %s", fo.Target, fo.New.Manager, formatDur(fo.TimeToActive))
		}
		fmt.Fprintf(rs.progress, "[%v] round %d/%d %-7s %s → %s, %s, unavailable %s, healed after %s  overlaps %d\n",
			elapsed, fo.Round, rs.cfg.Rounds, fo.Kind, fo.Monitor, leader, act, formatDur(fo.Unavailable), formatDur(fo.Until.Sub(fo.At)), len(rs.overlaps))
		return
	}
	if fo.TimedOut {
		fmt.Fprintf(rs.progress, "%s → no new active within %s (TIMEOUT)  overlaps %d\n", head, formatDur(fo.Until.Sub(fo.At)), len(rs.overlaps))
		return
	}
	fmt.Fprintf(rs.progress, "%s → %s active after %s, unavailable %s  overlaps %d\n",
		head, fo.New.Manager, formatDur(fo.TimeToActive), formatDur(fo.Unavailable), len(rs.overlaps))
}

// Why a finished run failed (Report.Verdict).
var (
	// ErrOverlaps: two managers served as active at one instant.
	ErrOverlaps = errors.New("overlaps found")
	// ErrTimeouts: some round saw no new active in time.
	ErrTimeouts = errors.New("some rounds saw no new active in time")
)

// Verdict is nil when the report shows no overlap and no timed-out round,
// else ErrOverlaps or ErrTimeouts (wrapped with the counts).
func (r *Report) Verdict() error {
	var errs []error
	if n := len(r.Overlaps); n > 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrOverlaps, n))
	}
	if n := r.TimedOut(); n > 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrTimeouts, n))
	}
	return errors.Join(errs...)
}
