package chaos

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Term is one activation of one manager: the gid that served and the active
// epoch (fencing token) it served under. A manager serves one term without
// a break: it is built once per activation and fenced once.
type Term struct {
	Manager     string `json:"manager"`
	GID         uint64 `json:"gid"`
	ActiveEpoch uint64 `json:"active_epoch"`
}

// termOf is the term an answer was given in.
func termOf(a Answer) Term {
	return Term{Manager: a.Manager, GID: a.GID, ActiveEpoch: a.ActiveEpoch}
}

// termKey identifies a term: a gid and an active epoch.
type termKey struct{ gid, epoch uint64 }

func keyOf(a Answer) termKey { return termKey{a.GID, a.ActiveEpoch} }

// OverlapKind says what an overlap proves.
type OverlapKind string

// The kinds of overlap.
const (
	// Concurrent: B answered as active wholly between two answers that A
	// gave in one term (A.a1.Recv < B.Send and B.Recv < A.a2.Send). A
	// served at some instant before a1 arrived and at some instant after a2
	// left, so (one term being one unbroken activation) throughout between;
	// B served at some instant inside that stretch: two actives at once.
	// An answer of A that is merely in flight while B takes over is not
	// one: A's last answer was sent before B's first arrived. (Send here
	// is the earliest instant the call can have been handled: see
	// Answer.Earliest.)
	Concurrent OverlapKind = "concurrent"
	// SharedEpoch: two gids answered with the same active epoch, which
	// names one promotion and so one manager.
	SharedEpoch OverlapKind = "shared-epoch"
)

// Overlap is a proof that two managers served as active at one instant.
type Overlap struct {
	Kind OverlapKind `json:"kind"`
	// A is the term whose answers frame B's (Concurrent), or the first
	// term seen with the shared epoch (SharedEpoch).
	A Term `json:"a"`
	// A1 and A2 are A's answers around B's: A1 arrived before B's was sent
	// and A2 was sent after B's arrived. For SharedEpoch, A1 and A2 are A's
	// first answer.
	A1 Answer `json:"a1"`
	A2 Answer `json:"a2"`
	// B is the other term, and its first answer that proves the overlap.
	B     Term   `json:"b"`
	BFrom Answer `json:"b_answer"`
	// Count is how many of B's answers prove it.
	Count int `json:"count"`
}

// termSpan is what the answers of one term show.
type termSpan struct {
	term     Term
	firstRcv Answer // the answer with the earliest Recv
	lastSend Answer // the answer with the latest Send
	first    Answer // the earliest answer (by Send)
	n        int
}

// spans groups answers by term.
func spans(answers []Answer) map[termKey]*termSpan {
	m := map[termKey]*termSpan{}
	for _, a := range answers {
		k := keyOf(a)
		s, ok := m[k]
		if !ok {
			m[k] = &termSpan{term: termOf(a), firstRcv: a, lastSend: a, first: a, n: 1}
			continue
		}
		s.n++
		if a.Recv.Before(s.firstRcv.Recv) {
			s.firstRcv = a
		}
		if a.handled().After(s.lastSend.handled()) {
			s.lastSend = a
		}
		if a.Send.Before(s.first.Send) {
			s.first = a
		}
	}
	return m
}

// FindOverlaps returns every overlap the answers prove, one per pair of
// terms (when each of two terms frames answers of the other, the older term
// is A), ordered by the time of B's answer. Any subset of a run's answers
// proves a subset of its overlaps: a partial view never invents one.
func FindOverlaps(answers []Answer) []Overlap {
	byTerm := spans(answers)
	terms := make([]*termSpan, 0, len(byTerm))
	for _, s := range byTerm {
		terms = append(terms, s)
	}
	// Sorted by the first arrival; lastEnd[i] is the latest Send of terms[:i+1].
	slices.SortFunc(terms, func(a, b *termSpan) int { return a.firstRcv.Recv.Compare(b.firstRcv.Recv) })
	lastEnd := make([]time.Time, len(terms))
	for i, s := range terms {
		lastEnd[i] = s.lastSend.handled()
		if i > 0 && lastEnd[i-1].After(lastEnd[i]) {
			lastEnd[i] = lastEnd[i-1]
		}
	}
	type pair struct{ a, b termKey }
	found := map[pair]*Overlap{}
	for _, b := range answers {
		// terms[:j] had an answer arrive before b was sent.
		bSend := b.handled()
		j := sort.Search(len(terms), func(i int) bool { return !terms[i].firstRcv.Recv.Before(bSend) })
		for i := j - 1; i >= 0 && lastEnd[i].After(b.Recv); i-- {
			a := terms[i]
			if a.term.GID == b.GID || !a.lastSend.handled().After(b.Recv) {
				continue
			}
			k := pair{termKey{a.term.GID, a.term.ActiveEpoch}, keyOf(b)}
			if o, ok := found[k]; ok {
				o.Count++
				if b.Send.Before(o.BFrom.Send) {
					o.BFrom = b
				}
				continue
			}
			found[k] = &Overlap{Kind: Concurrent, A: a.term, A1: a.firstRcv, A2: a.lastSend, B: termOf(b), BFrom: b, Count: 1}
		}
	}
	// Shared epochs: the terms of one epoch, by their first answer.
	byEpoch := map[uint64][]*termSpan{}
	for _, s := range byTerm {
		byEpoch[s.term.ActiveEpoch] = append(byEpoch[s.term.ActiveEpoch], s)
	}
	out := make([]Overlap, 0, len(found))
	for k, o := range found {
		// When each term frames answers of the other, the older term
		// (first answer first) stands as A for both.
		if m, ok := found[pair{k.b, k.a}]; ok && (m.A1.Recv.Before(o.A1.Recv) || m.A1.Recv.Equal(o.A1.Recv) && k.b.gid < k.a.gid) {
			continue
		}
		out = append(out, *o)
	}
	for _, ss := range byEpoch {
		if len(ss) < 2 {
			continue
		}
		slices.SortFunc(ss, func(a, b *termSpan) int { return a.first.Send.Compare(b.first.Send) })
		for _, s := range ss[1:] {
			out = append(out, Overlap{Kind: SharedEpoch, A: ss[0].term, A1: ss[0].first, A2: ss[0].first, B: s.term, BFrom: s.first, Count: s.n})
		}
	}
	slices.SortFunc(out, func(a, b Overlap) int {
		return cmp.Or(a.BFrom.Send.Compare(b.BFrom.Send), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.A.GID, b.A.GID))
	})
	return out
}

// Key identifies an overlap by its kind and its two terms, in either order.
func (o Overlap) Key() string {
	a := fmt.Sprintf("%d/%d", o.A.GID, o.A.ActiveEpoch)
	b := fmt.Sprintf("%d/%d", o.B.GID, o.B.ActiveEpoch)
	if b < a {
		a, b = b, a
	}
	return fmt.Sprintf("%s %s %s", o.Kind, a, b)
}

// Fault is one fault the harness injected.
type Fault struct {
	Round int       `json:"round"`
	Kind  FaultKind `json:"kind"`
	// Target is the active the fault hit (for a monitor fault: the active
	// when it was injected): its name, gid and active epoch.
	Target    string `json:"target"`
	TargetGID uint64 `json:"target_gid"`
	OldEpoch  uint64 `json:"old_epoch"`
	// At is the instant just before the fault (the signal, the call).
	At time.Time `json:"at"`
	// Stopped (after SIGSTOP was sent) and Resumed (before SIGCONT was
	// sent) bound the stretch in which a SigStop target could run nothing.
	Stopped time.Time `json:"stopped,omitzero"`
	Resumed time.Time `json:"resumed,omitzero"`
	// Until ends the wait for a new active: answers that arrived later do
	// not count for this fault. For a monitor fault it is when the quorum
	// was whole again.
	Until time.Time `json:"until"`
	// Monitor is the id of the monitor a monitor fault hit (the raft
	// leader); NewLeader the leader another monitor named next, and
	// LeaderAt when that was seen (zero when none was).
	Monitor   string    `json:"monitor,omitempty"`
	NewLeader string    `json:"new_leader,omitempty"`
	LeaderAt  time.Time `json:"leader_at,omitzero"`
}

// Failover is what one fault cost.
type Failover struct {
	Fault
	// TimedOut is set when no new active answered before Until.
	TimedOut bool `json:"timed_out"`
	// New is the term of the first answer by a manager other than the
	// target (or in another term), and FirstNew when it arrived.
	New      Term      `json:"new"`
	FirstNew time.Time `json:"first_new"`
	// LastOld is when the old term's last answer arrived (zero when the
	// answers hold none).
	LastOld time.Time `json:"last_old"`
	// TimeToActive is FirstNew − At.
	TimeToActive time.Duration `json:"time_to_active_ns"`
	// Unavailable is FirstNew − LastOld (FirstNew − At without LastOld):
	// the stretch in which no manager answered as active; 0 when the old
	// term's last answer arrived after the new term's first. For a monitor
	// fault it is the longest stretch between At and Until with no answer
	// as active (see MeasureMonitorFault).
	Unavailable time.Duration `json:"unavailable_ns"`
	// ActiveReplaced is set, for a monitor fault, when a term other than
	// the target's answered between At and Until (New, FirstNew and
	// TimeToActive then say which and when). A monitor fault need not
	// replace the active.
	ActiveReplaced bool `json:"active_replaced,omitempty"`
	// TimeToLeader is LeaderAt − At for a monitor fault that saw a new
	// raft leader.
	TimeToLeader time.Duration `json:"time_to_leader_ns,omitempty"`
}

// MeasureMonitorFault measures monitor fault f from the answers: whether
// (and when) a term other than the target's answered between f.At and
// f.Until, the time to the new raft leader, and the longest stretch of
// [f.At, f.Until] with no answer as active, counted from the last answer
// that arrived by f.At. It never times out: the active need not change.
func MeasureMonitorFault(answers []Answer, f Fault) Failover {
	fo := Failover{Fault: f}
	old := termKey{f.TargetGID, f.OldEpoch}
	var last time.Time // the latest answer that arrived by f.At
	var in []time.Time // arrivals in (f.At, f.Until]
	for _, a := range answers {
		switch {
		case !a.Recv.After(f.At):
			if a.Recv.After(last) {
				last = a.Recv
			}
			continue
		case !f.Until.IsZero() && a.Recv.After(f.Until):
			continue
		}
		in = append(in, a.Recv)
		if keyOf(a) != old && (!fo.ActiveReplaced || a.Recv.Before(fo.FirstNew)) {
			fo.ActiveReplaced, fo.FirstNew, fo.New = true, a.Recv, termOf(a)
		}
	}
	if fo.ActiveReplaced {
		fo.TimeToActive = fo.FirstNew.Sub(f.At)
	}
	if !f.LeaderAt.IsZero() {
		fo.TimeToLeader = max(f.LeaderAt.Sub(f.At), 0)
	}
	slices.SortFunc(in, time.Time.Compare)
	prev := f.At
	if !last.IsZero() {
		prev = last
	}
	end := f.Until
	if end.IsZero() && len(in) > 0 {
		end = in[len(in)-1]
	}
	for _, t := range append(in, end) {
		fo.Unavailable = max(fo.Unavailable, t.Sub(prev))
		if t.After(prev) {
			prev = t
		}
	}
	return fo
}

// MeasureFailover measures fault f from the answers: the time from f.At to
// the first answer, arrived after f.At and by f.Until, that is not of the
// old term; and the window from the old term's last answer to that one.
//
// A monitor fault is measured by MeasureMonitorFault instead.
func MeasureFailover(answers []Answer, f Fault) Failover {
	if f.Kind.OnMonitor() {
		return MeasureMonitorFault(answers, f)
	}
	fo := Failover{Fault: f, TimedOut: true}
	old := termKey{f.TargetGID, f.OldEpoch}
	for _, a := range answers {
		if keyOf(a) == old {
			if a.Recv.After(fo.LastOld) {
				fo.LastOld = a.Recv
			}
			continue
		}
		if !a.Recv.After(f.At) || (!f.Until.IsZero() && a.Recv.After(f.Until)) {
			continue
		}
		if fo.TimedOut || a.Recv.Before(fo.FirstNew) {
			fo.TimedOut = false
			fo.FirstNew = a.Recv
			fo.New = termOf(a)
		}
	}
	if fo.TimedOut {
		return fo
	}
	fo.TimeToActive = fo.FirstNew.Sub(f.At)
	from := f.At
	if !fo.LastOld.IsZero() {
		from = fo.LastOld
	}
	fo.Unavailable = max(fo.FirstNew.Sub(from), 0)
	return fo
}

// Summary is the spread of one measure: nearest-rank percentiles.
type Summary struct {
	Min    time.Duration `json:"min_ns"`
	Median time.Duration `json:"median_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
}

// summarize computes the summary of ds (zero when empty).
func summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return Summary{Min: s[0], Median: rank(s, 0.5), P99: rank(s, 0.99), Max: s[len(s)-1]}
}

// rank is the nearest-rank p-quantile of sorted s: the smallest value with
// at least p of the values at or below it.
func rank(s []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Stats are the failovers of one kind of fault.
type Stats struct {
	Kind FaultKind `json:"kind"`
	// Count is how many faults of this kind were injected; TimedOut how
	// many of them saw no new active in time (left out of the summaries).
	Count        int     `json:"count"`
	TimedOut     int     `json:"timed_out"`
	TimeToActive Summary `json:"time_to_active"`
	Unavailable  Summary `json:"unavailable"`
	// For a monitor fault: Replaced counts the faults in which the active
	// changed, and TimeToLeader summarises the time to the new leader over
	// the faults that saw one (Leaders of them). TimeToActive then covers
	// the faults that replaced the active.
	Replaced     int     `json:"active_replaced,omitempty"`
	Leaders      int     `json:"new_leaders,omitempty"`
	TimeToLeader Summary `json:"time_to_leader,omitzero"`
}

// Summarize gives one Stats per kind in kinds that has failovers, in the
// order of kinds.
func Summarize(failovers []Failover, kinds []FaultKind) []Stats {
	var out []Stats
	for _, k := range kinds {
		st := Stats{Kind: k}
		var tta, un, ttl []time.Duration
		for _, f := range failovers {
			if f.Kind != k {
				continue
			}
			st.Count++
			if k.OnMonitor() {
				un = append(un, f.Unavailable)
				if f.ActiveReplaced {
					st.Replaced++
					tta = append(tta, f.TimeToActive)
				}
				if !f.LeaderAt.IsZero() {
					st.Leaders++
					ttl = append(ttl, f.TimeToLeader)
				}
				continue
			}
			if f.TimedOut {
				st.TimedOut++
				continue
			}
			tta = append(tta, f.TimeToActive)
			un = append(un, f.Unavailable)
		}
		if st.Count == 0 {
			continue
		}
		st.TimeToActive, st.Unavailable, st.TimeToLeader = summarize(tta), summarize(un), summarize(ttl)
		out = append(out, st)
	}
	return out
}

// Analysis is what a run's answers show.
type Analysis struct {
	Overlaps  []Overlap  `json:"overlaps"`
	Failovers []Failover `json:"failovers"`
	Stats     []Stats    `json:"stats"`
}

// stopMargin is how long after kill(SIGSTOP) returns a call must have been
// sent for the harness to hold that the stopped process handled it only
// after SIGCONT (the stop reaches every thread within microseconds).
const stopMargin = time.Millisecond

// ApplyStops returns answers with Earliest set on every answer of a
// SigStop fault's target (by gid) sent while the target was stopped:
// Stopped + stopMargin < Send < Resumed. A stopped process runs nothing, so
// it handled such a call after Resumed. answers is not changed: the result
// is a copy when anything is set.
func ApplyStops(answers []Answer, faults []Fault) []Answer {
	type window struct{ from, to time.Time }
	stops := map[uint64][]window{}
	for _, f := range faults {
		if f.Kind == SigStop && !f.Stopped.IsZero() && f.Resumed.After(f.Stopped) {
			stops[f.TargetGID] = append(stops[f.TargetGID], window{f.Stopped.Add(stopMargin), f.Resumed})
		}
	}
	if len(stops) == 0 {
		return answers
	}
	var out []Answer
	for i, a := range answers {
		for _, w := range stops[a.GID] {
			if a.Send.After(w.from) && a.Send.Before(w.to) && w.to.After(a.Earliest) {
				if out == nil {
					out = slices.Clone(answers)
				}
				out[i].Earliest = w.to
			}
		}
	}
	if out == nil {
		return answers
	}
	return out
}

// Analyze finds the overlaps in answers (after ApplyStops) and measures
// every fault.
func Analyze(answers []Answer, faults []Fault) Analysis {
	answers = ApplyStops(answers, faults)
	an := Analysis{Overlaps: FindOverlaps(answers)}
	for _, f := range faults {
		an.Failovers = append(an.Failovers, MeasureFailover(answers, f))
	}
	an.Stats = Summarize(an.Failovers, AllFaults())
	return an
}
