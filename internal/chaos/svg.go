package chaos

import (
	"bufio"
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Timeline is what the SVG picture shows.
type Timeline struct {
	Title    string
	Start    time.Time
	End      time.Time
	Managers []string
	Answers  []Answer
	Maps     []MapEvent
	// Failovers mark the faults (and their unavailable windows).
	Failovers []Failover
	Overlaps  []Overlap
}

// Layout of the picture, in pixels.
const (
	svgLeft      = 90
	svgRight     = 30
	svgTop       = 130
	svgLaneH     = 26
	svgLaneGap   = 10
	svgBottom    = 50
	svgTargetW   = 4000 // the width aimed at; the scale is clamped below
	svgMinPxSec  = 8.0
	svgMaxPxSec  = 400.0
	svgMinTickPx = 70.0
	// svgMinLabelPx is the least distance between two fault labels.
	svgMinLabelPx = 14.0
	// svgMergeGap joins a manager's answers into one bar when the next was
	// sent within this long of the previous one's arrival.
	svgMergeGap = 100 * time.Millisecond
)

// gidColor colours a gid's bars; red is kept for overlaps.
func gidColor(gid uint64) string {
	palette := [...]string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#86bcb6", "#ff9da7", "#8cd17d"}
	return palette[gid%uint64(len(palette))]
}

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// bar is one stretch of answers of one term.
type bar struct {
	term       Term
	from, to   time.Time
	n          int
	grpc, http int
}

// bars merges each term's answers into stretches without gaps above
// svgMergeGap.
func bars(answers []Answer) map[string][]bar {
	byTerm := map[termKey][]Answer{}
	for _, a := range answers {
		byTerm[keyOf(a)] = append(byTerm[keyOf(a)], a)
	}
	out := map[string][]bar{}
	for _, as := range byTerm {
		slices.SortFunc(as, func(a, b Answer) int { return a.Send.Compare(b.Send) })
		var cur *bar
		for _, a := range as {
			if cur == nil || a.Send.Sub(cur.to) > svgMergeGap {
				if cur != nil {
					out[cur.term.Manager] = append(out[cur.term.Manager], *cur)
				}
				cur = &bar{term: termOf(a), from: a.Send, to: a.Recv}
			}
			if a.Recv.After(cur.to) {
				cur.to = a.Recv
			}
			cur.n++
			if a.Proto == GRPC {
				cur.grpc++
			} else {
				cur.http++
			}
		}
		out[cur.term.Manager] = append(out[cur.term.Manager], *cur)
	}
	for _, bs := range out {
		slices.SortFunc(bs, func(a, b bar) int { return a.from.Compare(b.from) })
	}
	return out
}

// WriteSVG draws the timeline: one lane for the map (who the monitor names
// active), one lane per manager (when it answered as active, coloured by
// gid), every fault as a dashed line with the unavailable window shaded,
// and every overlap in red. Hovering shows the details.
func WriteSVG(w io.Writer, tl Timeline) error {
	bw := bufio.NewWriter(w)
	start, end := tl.Start, tl.End
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	secs := end.Sub(start).Seconds()
	pxSec := min(max(svgTargetW/secs, svgMinPxSec), svgMaxPxSec)
	plotW := secs * pxSec
	width := svgLeft + plotW + svgRight
	lanes := append([]string{"map"}, tl.Managers...)
	laneY := func(i int) float64 { return svgTop + float64(i)*(svgLaneH+svgLaneGap) }
	plotBottom := laneY(len(lanes)) - svgLaneGap
	height := plotBottom + svgBottom
	x := func(t time.Time) float64 {
		return svgLeft + min(max(t.Sub(start).Seconds(), 0), secs)*pxSec
	}
	rel := func(t time.Time) string { return "+" + formatDur(t.Sub(start)) }
	lane := map[string]int{}
	for i, n := range lanes {
		lane[n] = i
	}

	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(bw, `<rect x="0" y="0" width="%.0f" height="%.0f" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(bw, `<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", esc(tl.Title))
	fmt.Fprintf(bw, `<text x="10" y="38">%d faults, %d overlaps, %d answers as active; %s from %s. Bars: answers as active (colour = gid); dashed: a fault; shaded: no active answered; red: overlap.</text>`+"\n",
		len(tl.Failovers), len(tl.Overlaps), len(tl.Answers), formatDur(end.Sub(start)), esc(start.UTC().Format(time.RFC3339Nano)))

	// Lanes and their labels.
	for i, n := range lanes {
		y := laneY(i)
		fmt.Fprintf(bw, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="#f4f4f4"/>`+"\n", svgLeft, y, plotW, svgLaneH)
		fmt.Fprintf(bw, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-8, y+svgLaneH/2+4, esc(n))
	}

	// Time axis.
	step := 1.0
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600} {
		step = s
		if s*pxSec >= svgMinTickPx {
			break
		}
	}
	for s := 0.0; s <= secs; s += step {
		tx := svgLeft + s*pxSec
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", tx, float64(svgTop)-4, tx, plotBottom+4)
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%gs</text>`+"\n", tx, plotBottom+20, s)
	}

	// The map lane: who the map names active, from each map to the next.
	for i, m := range tl.Maps {
		to := end
		if i+1 < len(tl.Maps) {
			to = tl.Maps[i+1].At
		}
		y := laneY(0)
		fill, op := "#bbb", 0.5
		if m.ActiveGID != 0 {
			fill, op = gidColor(m.ActiveGID), 0.5
			if m.Available && !m.ActiveFailing {
				op = 1
			}
		}
		fmt.Fprintf(bw, `<rect x="%.2f" y="%.1f" width="%.2f" height="%d" fill="%s" fill-opacity="%.1f"><title>%s</title></rect>`+"\n",
			x(m.At), y+4, max(x(to)-x(m.At), 0.5), svgLaneH-8, fill, op,
			esc(fmt.Sprintf("epoch %d at %s: active %s (gid %d, active epoch %d) available=%t failing=%t standbys=%v; %s: %s",
				m.Epoch, rel(m.At), dashIfEmpty(m.ActiveName), m.ActiveGID, m.ActiveEpoch, m.Available, m.ActiveFailing, m.Standbys, m.Cause, m.Reason)))
	}

	// Unavailable windows, under the bars.
	managersTop, managersBottom := laneY(1), plotBottom
	for _, f := range tl.Failovers {
		if f.TimedOut {
			continue
		}
		from := f.At
		if !f.LastOld.IsZero() {
			from = f.LastOld
		}
		if !f.FirstNew.After(from) {
			continue
		}
		fmt.Fprintf(bw, `<rect x="%.2f" y="%.1f" width="%.2f" height="%.1f" fill="#e15759" fill-opacity="0.18"><title>%s</title></rect>`+"\n",
			x(from), managersTop, max(x(f.FirstNew)-x(from), 1), managersBottom-managersTop,
			esc(fmt.Sprintf("round %d %s: unavailable %s", f.Round, f.Kind, formatDur(f.Unavailable))))
	}

	// Bars of answers as active.
	bs := bars(tl.Answers)
	for _, name := range tl.Managers {
		y := laneY(lane[name])
		for _, b := range bs[name] {
			fmt.Fprintf(bw, `<rect x="%.2f" y="%.1f" width="%.2f" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
				x(b.from), y+2, max(x(b.to)-x(b.from), 1), svgLaneH-4, gidColor(b.term.GID),
				esc(fmt.Sprintf("%s gid %d active epoch %d: answered as active from %s to %s (%d gRPC, %d HTTP answers)",
					name, b.term.GID, b.term.ActiveEpoch, rel(b.from), rel(b.to), b.grpc, b.http)))
		}
	}

	// Faults: a dashed line and a slanted label (left out when it would
	// cover the previous one; the line's tooltip still tells).
	lastLabel := math.Inf(-1)
	for _, f := range tl.Failovers {
		fx := x(f.At)
		color := "#333"
		label := fmt.Sprintf("%d %s %s", f.Round, f.Kind, f.Target)
		detail := fmt.Sprintf("round %d: %s on %s (gid %d, active epoch %d) at %s", f.Round, f.Kind, f.Target, f.TargetGID, f.OldEpoch, rel(f.At))
		switch {
		case f.Kind.OnMonitor():
			label = fmt.Sprintf("%d %s %s", f.Round, f.Kind, f.Monitor)
			detail = fmt.Sprintf("round %d: %s on monitor %s (the raft leader) at %s, active %s (gid %d); new leader %q; longest stretch without an active %s; quorum whole after %s",
				f.Round, f.Kind, f.Monitor, rel(f.At), f.Target, f.TargetGID, f.NewLeader, formatDur(f.Unavailable), formatDur(f.Until.Sub(f.At)))
		case f.TimedOut:
			color = "#e15759"
			label += " TIMEOUT"
			detail += fmt.Sprintf("; no new active within %s", formatDur(f.Until.Sub(f.At)))
		default:
			detail += fmt.Sprintf("; %s (gid %d) active after %s, unavailable %s", f.New.Manager, f.New.GID, formatDur(f.TimeToActive), formatDur(f.Unavailable))
		}
		fmt.Fprintf(bw, `<g><title>%s</title><line x1="%.2f" y1="%d" x2="%.2f" y2="%.1f" stroke="%s" stroke-dasharray="3,3"/>`,
			esc(detail), fx, svgTop-6, fx, plotBottom, color)
		if fx-lastLabel >= svgMinLabelPx || f.TimedOut {
			lastLabel = fx
			fmt.Fprintf(bw, `<text x="%.2f" y="%d" fill="%s" font-size="10" transform="rotate(-50 %.2f %d)">%s</text>`,
				fx, svgTop-8, color, fx, svgTop-8, esc(label))
		}
		fmt.Fprintln(bw, "</g>")
	}

	// Overlaps: B's answer in red on its lane, and a red line down the plot.
	for _, o := range tl.Overlaps {
		i, ok := lane[o.B.Manager]
		if !ok {
			continue
		}
		bx := x(o.BFrom.Send)
		fmt.Fprintf(bw, `<g><title>%s</title><line x1="%.2f" y1="%d" x2="%.2f" y2="%.1f" stroke="#d00" stroke-width="2"/>`,
			esc("OVERLAP "+o.Describe(start)), bx, svgTop-6, bx, plotBottom)
		fmt.Fprintf(bw, `<rect x="%.2f" y="%.1f" width="%.2f" height="%d" fill="none" stroke="#d00" stroke-width="3"/></g>`+"\n",
			bx-3, laneY(i)-1, max(x(o.BFrom.Recv)-bx, 1)+6, svgLaneH+2)
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// dashIfEmpty is s, or "-" when s is empty.
func dashIfEmpty(s string) string { return cmp.Or(s, "-") }
