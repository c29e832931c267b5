package main

import (
	"context"
	"fmt"
	"io"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// runStat is `mgrctl stat`: "epoch 12  active x (gid 3) available  standbys 2".
func runStat(ctx context.Context, e *env, c *cmdline) error {
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.GetStatResponse, error) {
		return a.GetStat(ctx, &mgrv1.GetStatRequest{})
	})
	if err != nil {
		return err
	}
	if e.format == formatJSON {
		return writeJSON(e.stdout, resp, true)
	}
	active := "no active"
	if resp.GetActiveGid() != 0 {
		state := "available"
		if !resp.GetAvailable() {
			state = "not available"
		}
		active = fmt.Sprintf("active %s (gid %d) %s", dash(resp.GetActiveName()), resp.GetActiveGid(), state)
	}
	line := fmt.Sprintf("epoch %d  %s  standbys %d", resp.GetEpoch(), active, resp.GetNumStandbys())
	if resp.GetDown() {
		line += "  down"
	}
	_, err = fmt.Fprintln(e.stdout, line)
	return err
}

// runDump is `mgrctl dump [--epoch N]`: the map as key/value lines, then the
// standbys, modules and services tables.
func runDump(ctx context.Context, e *env, c *cmdline) error {
	epoch := uintFlag(c.fs, "epoch", 64, "show this kept epoch instead of the current map")
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.GetMapResponse, error) {
		return a.GetMap(ctx, &mgrv1.GetMapRequest{Epoch: *epoch})
	})
	if err != nil {
		return err
	}
	m := resp.GetMap()
	if m == nil {
		m = &mgrv1.MgrMap{}
	}
	return e.emit(m, func(w io.Writer) { writeMap(w, m) })
}

// writeMap writes the tables of dump.
func writeMap(w io.Writer, m *mgrv1.MgrMap) {
	kv := func(k string, v any) { fmt.Fprintf(w, "%s\t%v\n", k, v) }
	kv("epoch", m.GetEpoch())
	kv("fsid", dash(m.GetFsid()))
	kv("active", manager(m.GetActiveName(), m.GetActiveGid()))
	kv("active_addrs", list(m.GetActiveAddrs()))
	kv("available", m.GetAvailable())
	kv("active_epoch", m.GetActiveEpoch())
	kv("active_change", formatTime(m.GetActiveChange()))
	kv("active_metadata_digest", dash(m.GetActiveMetadataDigest()))
	kv("down", m.GetDown())
	kv("modules", list(m.GetModules()))
	kv("always_on_modules", list(m.GetAlwaysOnModules()))
	kv("module_config", moduleConfig(m.GetModuleConfig()))
	kv("modified", formatTime(m.GetModified()))
	kv("cause", causeWord(m.GetCause()))
	kv("reason", dash(m.GetReason()))

	fmt.Fprintln(w)
	fmt.Fprintln(w, "STANDBY\tGID\tMODULES\tMETADATA-DIGEST")
	for _, s := range m.GetStandbys() {
		names := make([]string, 0, len(s.GetAvailableModules()))
		for _, mi := range s.GetAvailableModules() {
			names = append(names, mi.GetName())
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", dash(s.GetName()), s.GetGid(), list(names), dash(s.GetMetadataDigest()))
	}
	fmt.Fprintln(w)
	writeModules(w, moduleRows(m.GetAlwaysOnModules(), m.GetModules(), m.GetAvailableModules()))
	fmt.Fprintln(w)
	writeServices(w, m.GetServices())
}

// moduleConfig lists the options set in the map as
// mgr/<module>/<option>=<value>, by key; "-" when none is set.
func moduleConfig(cfg map[string]*mgrv1.ModuleConfig) string {
	var kvs []string
	for _, mod := range sortedKeys(cfg) {
		vals := cfg[mod].GetValues()
		for _, opt := range sortedKeys(vals) {
			kvs = append(kvs, "mgr/"+mod+"/"+opt+"="+vals[opt])
		}
	}
	return list(kvs)
}

// runHistory is `mgrctl history [--since EPOCH] [--limit N]`.
func runHistory(ctx context.Context, e *env, c *cmdline) error {
	since := uintFlag(c.fs, "since", 64, "only epochs after this one")
	limit := uintFlag(c.fs, "limit", 32, "at most this many entries, the newest (0: all kept)")
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.ListHistoryResponse, error) {
		return a.ListHistory(ctx, &mgrv1.ListHistoryRequest{SinceEpoch: *since, Limit: uint32(*limit)})
	})
	if err != nil {
		return err
	}
	return e.emit(resp, func(w io.Writer) {
		fmt.Fprintln(w, "EPOCH\tTIME\tCAUSE\tACTIVE\tSTANDBYS\tREASON")
		for _, h := range resp.GetEntries() {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\n", h.GetEpoch(), formatTime(h.GetTime()), causeWord(h.GetCause()),
				manager(h.GetActiveName(), h.GetActiveGid()), h.GetNumStandbys(), dash(h.GetReason()))
		}
	})
}
