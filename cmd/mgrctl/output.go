package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// timeLayout is how tables show times: UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// emit prints m as JSON with -o json, or else as the table that table writes
// (through a tabwriter: cells separated by tabs, blocks by empty lines).
func (e *env) emit(m proto.Message, table func(w io.Writer)) error {
	if e.format == formatJSON {
		return writeJSON(e.stdout, m, true)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// writeJSON writes m as stable JSON: protojson with proto field names and
// every field present, re-encoded with encoding/json so that object keys are
// sorted and the bytes depend on nothing but m. indent selects two-space
// indentation; without it m takes one line.
func writeJSON(w io.Writer, m proto.Message, indent bool) error {
	raw, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("failed to encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("failed to re-encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// causeWord is a ChangeCause as a short lower-case word: "promoted",
// "standby-added"; "-" when unspecified, the number when unknown.
func causeWord(c mgrv1.ChangeCause) string {
	if c == mgrv1.ChangeCause_CHANGE_CAUSE_UNSPECIFIED {
		return "-"
	}
	name, ok := mgrv1.ChangeCause_name[int32(c)]
	if !ok {
		return strconv.Itoa(int(c))
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "CHANGE_CAUSE_")), "_", "-")
}

// formatTime is a timestamp for a table; "-" when unset.
func formatTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(timeLayout)
}

// dash is s, or "-" when s is empty, so that table cells never vanish.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// list joins names with commas; "-" when there are none.
func list(names []string) string {
	return dash(strings.Join(names, ","))
}

// manager names a manager as "x(3)"; "-" for gid 0 (none).
func manager(name string, gid uint64) string {
	if gid == 0 && name == "" {
		return "-"
	}
	return fmt.Sprintf("%s(%d)", dash(name), gid)
}

// yesNo is a boolean for a table.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// moduleRow is one module as `module ls` and `dump` show it.
type moduleRow struct {
	name   string
	state  string // always-on, on or off
	canRun string // yes, no, or - when the active does not report it
	err    string
}

// moduleRows merges the always-on, enabled and available modules into one
// row per module: always-on first, then enabled, then the others, each by name.
func moduleRows(alwaysOn, enabled []string, available []*mgrv1.ModuleInfo) []moduleRow {
	rows := map[string]*moduleRow{}
	row := func(name string) *moduleRow {
		r, ok := rows[name]
		if !ok {
			r = &moduleRow{name: name, state: "off", canRun: "-", err: "-"}
			rows[name] = r
		}
		return r
	}
	for _, m := range available {
		r := row(m.GetName())
		r.canRun = yesNo(m.GetCanRun())
		r.err = dash(m.GetErrorString())
	}
	for _, n := range enabled {
		row(n).state = "on"
	}
	for _, n := range alwaysOn {
		row(n).state = "always-on"
	}
	rank := map[string]int{"always-on": 0, "on": 1, "off": 2}
	out := make([]moduleRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b moduleRow) int {
		if d := rank[a.state] - rank[b.state]; d != 0 {
			return d
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// writeModules writes the MODULE table.
func writeModules(w io.Writer, rows []moduleRow) {
	fmt.Fprintln(w, "MODULE\tSTATE\tCAN-RUN\tERROR")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.name, r.state, r.canRun, r.err)
	}
}

// writeServices writes the SERVICE table.
func writeServices(w io.Writer, services map[string]string) {
	fmt.Fprintln(w, "SERVICE\tURL")
	for _, k := range sortedKeys(services) {
		fmt.Fprintf(w, "%s\t%s\n", k, services[k])
	}
}

// writeCounts writes a two-column table of value to count, by value.
func writeCounts(w io.Writer, header string, counts map[string]uint32) {
	fmt.Fprintf(w, "%s\tCOUNT\n", header)
	for _, k := range sortedKeys(counts) {
		fmt.Fprintf(w, "%s\t%d\n", dash(k), counts[k])
	}
}

// watchLine is one map as `watch` prints it in a table:
// "epoch N active NAME(gid) available=… standbys=[…] cause: reason".
func watchLine(m *mgrv1.MgrMap) string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d active %s available=%t standbys=[", m.GetEpoch(), manager(m.GetActiveName(), m.GetActiveGid()), m.GetAvailable())
	for i, s := range m.GetStandbys() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(manager(s.GetName(), s.GetGid()))
	}
	b.WriteByte(']')
	if m.GetDown() {
		b.WriteString(" down=true")
	}
	fmt.Fprintf(&b, " %s", causeWord(m.GetCause()))
	if r := m.GetReason(); r != "" {
		fmt.Fprintf(&b, ": %s", r)
	}
	return b.String()
}

// say prints m as JSON with -o json, or else one sentence made from format.
func (e *env) say(m proto.Message, format string, a ...any) error {
	if e.format == formatJSON {
		return writeJSON(e.stdout, m, true)
	}
	_, err := fmt.Fprintf(e.stdout, format, a...)
	return err
}
