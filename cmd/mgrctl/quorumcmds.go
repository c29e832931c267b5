package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"slices"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// leaderMark marks the leader's row of the member table.
const leaderMark = "*"

// runQuorumStatus is `mgrctl quorum status`, the counterpart of
// `ceph quorum_status`: the view of the monitor that answered (key/value
// lines), then one row per member, by id.
func runQuorumStatus(ctx context.Context, e *env, c *cmdline) error {
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.GetQuorumStatusResponse, error) {
		return a.GetQuorumStatus(ctx, &mgrv1.GetQuorumStatusRequest{})
	})
	if err != nil {
		return err
	}
	// Members in id order, so that the output depends on nothing but the
	// membership (raft keeps them in the order they joined).
	slices.SortFunc(resp.Members, func(a, b *mgrv1.QuorumMember) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return e.emit(resp, func(w io.Writer) { writeQuorum(w, resp) })
}

// writeQuorum writes the tables of quorum status.
func writeQuorum(w io.Writer, q *mgrv1.GetQuorumStatusResponse) {
	kv := func(k string, v any) { fmt.Fprintf(w, "%s\t%v\n", k, v) }
	kv("leader", dash(q.GetLeaderId()))
	kv("term", q.GetTerm())
	kv("commit_index", q.GetCommitIndex())
	kv("applied_index", q.GetAppliedIndex())
	kv("answered_by", dash(q.GetAnsweredBy()))
	kv("epoch", q.GetEpoch())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ID\tADDRESS\tVOTER\tLEADER")
	for _, m := range q.GetMembers() {
		mark := "-"
		if m.GetLeader() {
			mark = leaderMark
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", dash(m.GetId()), dash(m.GetAddress()), yesNo(m.GetVoter()), mark)
	}
}

// runQuorumAdd is `mgrctl quorum add ID ADDR`: the monitor ID, serving at
// ADDR, becomes a voter. Any monitor takes it and forwards it to the leader;
// the new monitor is started with --join (or is already running).
func runQuorumAdd(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"ID", "ADDR"}, nil)
	if err != nil {
		return err
	}
	id, addr := pos[0], pos[1]
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
		return c.usageErr("ADDR must be host:port, got %q", addr)
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.AddMonitorResponse, error) {
		return a.AddMonitor(ctx, &mgrv1.AddMonitorRequest{Id: id, Address: addr})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "added monitor %s at %s\n", id, addr)
}

// runQuorumRemove is `mgrctl quorum remove ID`.
func runQuorumRemove(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"ID"}, nil)
	if err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.RemoveMonitorResponse, error) {
		return a.RemoveMonitor(ctx, &mgrv1.RemoveMonitorRequest{Id: pos[0]})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "removed monitor %s\n", pos[0])
}
