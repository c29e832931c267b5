package chaos

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/backoff"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// Timings of the looks at the monitors' quorum. None is measured: they
// bound waits.
const (
	// quorumCallTimeout bounds one GetQuorumStatus call (a stopped monitor
	// answers nothing) and one connection attempt.
	quorumCallTimeout = time.Second
	// quorumTimeout bounds the wait for a leader, a new leader, or a
	// monitor back in the quorum.
	quorumTimeout = 30 * time.Second
	// quorumPoll is the pause between two looks at the quorum.
	quorumPoll = 20 * time.Millisecond
	// monStopExtra is how much longer than the grace a MonStop holds the
	// leader stopped.
	monStopExtra = 2 * time.Second
)

// monitorBackoff is the reconnection backoff of the clients of single
// monitors: a monitor started again is seen within a second.
var monitorBackoff = backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}

// quorumStatus asks monitor i alone for its view of the quorum.
func (c *cluster) quorumStatus(ctx context.Context, i int) (*mgrv1.GetQuorumStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, quorumCallTimeout)
	defer cancel()
	return mgrv1.NewAdminServiceClient(c.mons[i].conn).GetQuorumStatus(ctx, &mgrv1.GetQuorumStatusRequest{})
}

// monitorIndex is the index of the monitor with id, or -1.
func (c *cluster) monitorIndex(id string) int {
	return slices.IndexFunc(c.mons, func(m *monitor) bool { return m.id == id })
}

// leader returns the index of the raft leader: a monitor that names itself
// leader, as another monitor also names it.
func (c *cluster) leader(ctx context.Context) (int, error) {
	deadline := time.Now().Add(quorumTimeout)
	why := "no monitor answered"
	for {
		for i := range c.mons {
			q, err := c.quorumStatus(ctx, i)
			if err != nil {
				why = fmt.Sprintf("monitor %s: %v", c.mons[i].id, err)
				continue
			}
			l := c.monitorIndex(q.GetLeaderId())
			if l < 0 {
				why = fmt.Sprintf("monitor %s names leader %q", c.mons[i].id, q.GetLeaderId())
				continue
			}
			if lq, err := c.quorumStatus(ctx, l); err == nil && lq.GetLeaderId() == c.mons[l].id {
				return l, nil
			}
			why = fmt.Sprintf("monitor %s names leader %s, which does not", c.mons[i].id, q.GetLeaderId())
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no raft leader within %v: %s", quorumTimeout, why)
		}
		if !sleepCtx(ctx, quorumPoll) {
			return -1, ctx.Err()
		}
	}
}

// newLeader looks once at every monitor but old: the index of a monitor
// that another one names leader, or -1.
func (c *cluster) newLeader(ctx context.Context, old int) int {
	for i := range c.mons {
		if i == old {
			continue
		}
		if q, err := c.quorumStatus(ctx, i); err == nil {
			if l := c.monitorIndex(q.GetLeaderId()); l >= 0 && l != old {
				return l
			}
		}
	}
	return -1
}

// waitNewLeader waits until a monitor other than old names a leader other
// than old; it returns that leader and when it was seen.
func (c *cluster) waitNewLeader(ctx context.Context, old int) (int, time.Time, error) {
	deadline := time.Now().Add(quorumTimeout)
	for {
		if l := c.newLeader(ctx, old); l >= 0 {
			return l, time.Now(), nil
		}
		if time.Now().After(deadline) {
			return -1, time.Time{}, fmt.Errorf("no monitor named a leader other than %s within %v", c.mons[old].id, quorumTimeout)
		}
		if !sleepCtx(ctx, quorumPoll) {
			return -1, time.Time{}, ctx.Err()
		}
	}
}

// agreed says why the monitors' views do not show a whole quorum ("" when
// they do): the leader names itself, and every monitor answers, names that
// leader and has applied the map epoch the leader had a moment before.
func (c *cluster) agreed(ctx context.Context) string {
	l, err := c.leader(ctx)
	if err != nil {
		return err.Error()
	}
	lq, err := c.quorumStatus(ctx, l)
	if err != nil {
		return fmt.Sprintf("leader %s: %v", c.mons[l].id, err)
	}
	for i, m := range c.mons {
		q, err := c.quorumStatus(ctx, i)
		switch {
		case err != nil:
			return fmt.Sprintf("monitor %s: %v", m.id, err)
		case q.GetLeaderId() != lq.GetLeaderId():
			return fmt.Sprintf("monitor %s names leader %q, leader %s names %q", m.id, q.GetLeaderId(), c.mons[l].id, lq.GetLeaderId())
		case q.GetEpoch() < lq.GetEpoch():
			return fmt.Sprintf("monitor %s applied epoch %d, below the leader's %d", m.id, q.GetEpoch(), lq.GetEpoch())
		case !slices.ContainsFunc(q.GetMembers(), func(qm *mgrv1.QuorumMember) bool { return qm.GetId() == m.id && qm.GetVoter() }):
			return fmt.Sprintf("monitor %s is not a voter in its own view", m.id)
		}
	}
	return ""
}

// waitAgreed waits until agreed holds.
func (c *cluster) waitAgreed(ctx context.Context) error {
	deadline := time.Now().Add(quorumTimeout)
	for {
		why := c.agreed(ctx)
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the monitors did not agree within %v: %s", quorumTimeout, why)
		}
		if !sleepCtx(ctx, quorumPoll) {
			return ctx.Err()
		}
	}
}
