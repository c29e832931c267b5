package chaos

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

// svgCounts parses an SVG and counts its elements by name; it fails the test
// when the document is not well-formed XML.
func svgCounts(t *testing.T, doc []byte) (map[string]int, []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	counts := map[string]int{}
	var texts []string
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
				if el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q, want the SVG namespace", el.Name.Space)
				}
			}
			counts[el.Name.Local]++
		case xml.CharData:
			if s := strings.TrimSpace(string(el)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return counts, texts
}

func TestWriteSVG(t *testing.T) {
	answers := concat(serve("x", 1, 2, 0, 1000, 2), serve("y", 2, 5, 1040, 3000, 2), serve("x", 1, 2, 2000, 2010, 2))
	faults := []Fault{{Round: 1, Kind: SigStop, Target: "x", TargetGID: 1, OldEpoch: 2, At: ms(1001), Until: ms(1100)}}
	an := Analyze(answers, faults)
	tests := map[string]struct {
		tl         Timeline
		wantRects  int // at least
		wantTitles []string
	}{
		"a run with a fault and an overlap": {
			tl: Timeline{
				Title: `chaos <run> & "friends"`, Start: base, End: ms(3100), Managers: []string{"x", "y", "z"},
				Answers: answers, Failovers: an.Failovers, Overlaps: an.Overlaps,
				Maps: []MapEvent{
					{At: ms(0), Epoch: 3, ActiveGID: 1, ActiveName: "x", ActiveEpoch: 2, Available: true, Standbys: []string{"y", "z"}, Reason: "x is available"},
					{At: ms(1030), Epoch: 5, ActiveGID: 2, ActiveName: "y", ActiveEpoch: 5, Reason: "promoted y: x silent <1s>"},
				},
			},
			// 4 lanes, 2 maps, 3 bars (x's term in two stretches), 1
			// overlap box; no unavailable window (x answered after y).
			wantRects:  1 + 4 + 2 + 3 + 1,
			wantTitles: []string{`chaos <run> & "friends"`, "1 sigstop x", "x", "y", "z", "map"},
		},
		"a clean failover": {
			tl: Timeline{
				Title: "clean", Start: base, End: ms(3100), Managers: []string{"x", "y"},
				Answers:   concat(serve("x", 1, 2, 0, 1000, 2), serve("y", 2, 5, 1040, 3000, 2)),
				Failovers: Analyze(concat(serve("x", 1, 2, 0, 1000, 2), serve("y", 2, 5, 1040, 3000, 2)), faults).Failovers,
			},
			// 3 lanes, 1 unavailable window, 2 bars.
			wantRects:  1 + 3 + 1 + 2,
			wantTitles: []string{"round 1 sigstop: unavailable 40.0ms", "1 sigstop x"},
		},
		"an empty run": {
			tl:         Timeline{Title: "empty", Start: base, End: base, Managers: []string{"x"}},
			wantRects:  1 + 2,
			wantTitles: []string{"empty", "x", "map"},
		},
		"a timed-out round": {
			tl: Timeline{Title: "t", Start: base, End: ms(10 * 60 * 1000), Managers: []string{"a", "b"},
				Failovers: []Failover{{Fault: Fault{Round: 3, Kind: Kill9, Target: "a", At: ms(1000), Until: ms(4000)}, TimedOut: true}}},
			wantRects:  1 + 3,
			wantTitles: []string{"3 kill9 a TIMEOUT"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSVG(&buf, tc.tl); err != nil {
				t.Fatal(err)
			}
			counts, texts := svgCounts(t, buf.Bytes())
			if counts["rect"] < tc.wantRects {
				t.Errorf("%d rects, want at least %d", counts["rect"], tc.wantRects)
			}
			joined := "\n" + strings.Join(texts, "\n") + "\n"
			for _, w := range tc.wantTitles {
				if !strings.Contains(joined, "\n"+w+"\n") {
					t.Errorf("no text %q in the picture; texts:%s", w, joined)
				}
			}
		})
	}
}

func TestWriteSVGMarksOverlaps(t *testing.T) {
	answers := concat(serve("x", 1, 2, 0, 100, 2), serve("y", 2, 5, 50, 200, 2))
	ov := FindOverlaps(answers)
	if len(ov) != 1 {
		t.Fatalf("want one overlap to draw, got %d", len(ov))
	}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, Timeline{Title: "o", Start: base, End: ms(300), Managers: []string{"x", "y"}, Answers: answers, Overlaps: ov}); err != nil {
		t.Fatal(err)
	}
	_, texts := svgCounts(t, buf.Bytes())
	found := false
	for _, s := range texts {
		found = found || strings.HasPrefix(s, "OVERLAP concurrent: x (gid 1")
	}
	if !found {
		t.Errorf("the overlap is not described in the picture:\n%s", buf.String())
	}
}
