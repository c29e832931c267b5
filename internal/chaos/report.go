package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run, as written to report.json.
type Report struct {
	Seed     uint64      `json:"seed"`
	Rounds   int         `json:"rounds"`
	Faults   []FaultKind `json:"faults"`
	Managers []string    `json:"managers"`
	// Monitors is how many monsims ran (3: a raft quorum).
	Monitors int `json:"monitors"`
	// The cluster's timings; FenceTimeout is 0 when monsim kept its default
	// (or has no such flag: FenceFlag says).
	BeaconPeriod time.Duration `json:"beacon_period_ns"`
	Grace        time.Duration `json:"grace_ns"`
	Tick         time.Duration `json:"tick_ns"`
	FenceTimeout time.Duration `json:"fence_timeout_ns"`
	FenceFlag    bool          `json:"fence_flag"`
	Start        time.Time     `json:"start"`
	End          time.Time     `json:"end"`
	// Failovers has one entry per round run.
	Failovers []Failover `json:"failovers"`
	Stats     []Stats    `json:"stats"`
	Overlaps  []Overlap  `json:"overlaps"`
	// Answers is how many answers as active the prober recorded, Maps how
	// many maps the watch printed.
	Answers int          `json:"answers"`
	Maps    int          `json:"maps"`
	Probes  []ProbeCount `json:"probes"`
	// Error says why the run stopped early, when it did.
	Error string `json:"error,omitempty"`
}

// TimedOut counts the rounds that saw no new active in time.
func (r *Report) TimedOut() int {
	n := 0
	for _, f := range r.Failovers {
		if f.TimedOut {
			n++
		}
	}
	return n
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("failed to write the report: %w", err)
	}
	return nil
}

// WriteAnswers writes answers as JSON lines, one answer a line.
func WriteAnswers(w io.Writer, answers []Answer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, a := range answers {
		if err := enc.Encode(a); err != nil {
			return fmt.Errorf("failed to write an answer: %w", err)
		}
	}
	return bw.Flush()
}

// formatDur shows a duration in ms below 10 s, in s above.
func formatDur(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// withRatio is a duration and its ratio to grace: "43.0ms (0.007)".
func withRatio(d, grace time.Duration) string {
	return fmt.Sprintf("%s (%.3f)", formatDur(d), float64(d)/float64(grace))
}

// WriteTable writes the failover table (each figure with its ratio to the
// grace), the overlap count, and every overlap and timed-out round.
func (r *Report) WriteTable(w io.Writer) error {
	fence := "monsim's default"
	switch {
	case !r.FenceFlag:
		fence = "none (monsim has no --fence-timeout)"
	case r.FenceTimeout > 0:
		fence = r.FenceTimeout.String()
	}
	fmt.Fprintf(w, "failover over %d rounds (seed %d): %d monitor(s), beacon %v, grace %v, tick %v, fence timeout %s\n",
		len(r.Failovers), r.Seed, max(r.Monitors, 1), r.BeaconPeriod, r.Grace, r.Tick, fence)
	fmt.Fprintf(w, "each figure: time (ratio to the grace); new active = fault to the first answer of the new active;\n")
	fmt.Fprintf(w, "unavailable = last answer of the old active to the first answer of the new one\n")
	if slices.ContainsFunc(r.Stats, func(s Stats) bool { return s.Kind.OnMonitor() }) {
		fmt.Fprintf(w, "monitor faults (on the raft leader; no new active expected, no timeouts): new leader = fault to another\n")
		fmt.Fprintf(w, "monitor naming a new leader; unavailable = longest stretch with no answer as active, fault to healed quorum;\n")
		fmt.Fprintf(w, "replaced = rounds in which another term answered as active (new active over those)\n")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAULT\tN\tTIMEOUTS\tMEASURE\tMIN\tMEDIAN\tP99\tMAX")
	row := func(s Summary) string {
		return strings.Join([]string{withRatio(s.Min, r.Grace), withRatio(s.Median, r.Grace), withRatio(s.P99, r.Grace), withRatio(s.Max, r.Grace)}, "\t")
	}
	for _, s := range r.Stats {
		if s.Kind.OnMonitor() {
			leader := "\t-\t-\t-\t-"
			if s.Leaders > 0 {
				leader = "\t" + row(s.TimeToLeader)
			}
			fmt.Fprintf(tw, "%s\t%d\t-\tnew leader (%d)%s\n", s.Kind, s.Count, s.Leaders, leader)
			fmt.Fprintf(tw, "\t\t\tunavailable\t%s\n", row(s.Unavailable))
			if s.Replaced > 0 {
				fmt.Fprintf(tw, "\t\t\treplaced %d: new active\t%s\n", s.Replaced, row(s.TimeToActive))
			} else {
				fmt.Fprintf(tw, "\t\t\treplaced 0\t-\t-\t-\t-\n")
			}
			continue
		}
		if s.Count == s.TimedOut {
			fmt.Fprintf(tw, "%s\t%d\t%d\tnew active\t-\t-\t-\t-\n", s.Kind, s.Count, s.TimedOut)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\tnew active\t%s\n", s.Kind, s.Count, s.TimedOut, row(s.TimeToActive))
		fmt.Fprintf(tw, "\t\t\tunavailable\t%s\n", row(s.Unavailable))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "overlaps: %d\n", len(r.Overlaps))
	for _, o := range r.Overlaps {
		fmt.Fprintf(w, "  %s\n", o.Describe(r.Start))
	}
	for _, f := range r.Failovers {
		if f.TimedOut {
			fmt.Fprintf(w, "  round %d %s on %s (gid %d): no new active within %s\n", f.Round, f.Kind, f.Target, f.TargetGID, formatDur(f.Until.Sub(f.At)))
		}
	}
	if r.Error != "" {
		fmt.Fprintf(w, "stopped early: %s\n", r.Error)
	}
	return nil
}

// Describe says what an overlap proves, with times since start and in UTC.
func (o Overlap) Describe(start time.Time) string {
	at := func(t time.Time) string {
		return fmt.Sprintf("+%s (%s)", formatDur(t.Sub(start)), t.UTC().Format("15:04:05.000000"))
	}
	switch o.Kind {
	case SharedEpoch:
		return fmt.Sprintf("shared epoch %d: %s (gid %d) answered first at %s, %s (gid %d) at %s (%d answers)",
			o.A.ActiveEpoch, o.A.Manager, o.A.GID, at(o.A1.Recv), o.B.Manager, o.B.GID, at(o.BFrom.Recv), o.Count)
	default:
		sent := func(a Answer) string {
			if a.handled().After(a.Send) {
				return fmt.Sprintf("sent %s while stopped, handled after SIGCONT at %s", at(a.Send), at(a.handled()))
			}
			return "sent " + at(a.Send)
		}
		return fmt.Sprintf("concurrent: %s (gid %d, active epoch %d) answered over %s received %s, and over %s %s, received %s; "+
			"in between %s (gid %d, active epoch %d) answered over %s %s, received %s (%d such answers)",
			o.A.Manager, o.A.GID, o.A.ActiveEpoch, o.A1.Proto, at(o.A1.Recv), o.A2.Proto, sent(o.A2), at(o.A2.Recv),
			o.B.Manager, o.B.GID, o.B.ActiveEpoch, o.BFrom.Proto, sent(o.BFrom), at(o.BFrom.Recv), o.Count)
	}
}
