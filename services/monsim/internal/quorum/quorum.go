// Package quorum replicates the MgrMap state machine on hashicorp/raft. One
// monitor is a raft group of one voter; three or five are a quorum. Either
// way every change is a log entry applied by the same FSM, so a single
// monitor and a cluster share one code path.
//
// Storage: bbolt (raft-boltdb/v2) as the log and stable store, and raft's
// file snapshot store; a snapshot holds the whole mgrv1.State (map, history,
// next gid, metadata), so gids and epochs survive any restart.
package quorum

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Errors of the replication layer.
var (
	// ErrNotLeader: this monitor cannot commit changes now.
	ErrNotLeader = errors.New("not the quorum leader")
	// ErrTimeout: a change was not committed in time; it may still commit.
	ErrTimeout = errors.New("change not committed in time")
)

// Config tunes the replicated store.
type Config struct {
	// DataDir holds the raft log (raft.db) and snapshots; created when missing.
	DataDir string
	// NodeID names this monitor in the raft configuration.
	NodeID string
	// ApplyTimeout bounds how long a proposal may wait to commit.
	ApplyTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot trigger a new one.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks whether to snapshot.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries are kept behind a snapshot.
	TrailingLogs uint64
	// RetainSnapshots is how many snapshots are kept on disk.
	RetainSnapshots int
	// Advertise is this monitor's address as its peers dial it.
	Advertise string
	// Peers is the initial membership, bootstrapped once when the data dir
	// is empty. Empty means a cluster of this monitor alone.
	Peers []Peer
	// Join: start without bootstrapping and wait to be added by a member.
	Join bool
	// OnCommit, when set, is told how long each proposal (Apply) took from
	// its submission until raft committed it and this replica applied it
	// (a command the state machine refuses is committed too); proposals
	// raft did not commit are not reported. It must return at once.
	OnCommit func(time.Duration)
	// OnApply, when set, is told how long the state machine took on each
	// command entry this replica applied (leader and followers). It is
	// called from raft's apply loop and must return at once.
	OnApply func(time.Duration)
}

// Peer is one monitor: its raft id and its address (gRPC and raft share it).
type Peer struct {
	ID   string
	Addr string
}

// DefaultConfig returns the embedded default's settings.
func DefaultConfig() Config {
	return Config{
		NodeID:            "monsim-1",
		ApplyTimeout:      5 * time.Second,
		SnapshotThreshold: 8192,
		SnapshotInterval:  30 * time.Second,
		TrailingLogs:      1024,
		RetainSnapshots:   2,
	}
}

// Validate checks the settings and names the bound that failed.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("data dir is required")
	case c.NodeID == "" || len(c.NodeID) > 64:
		return errors.New("node id: must be 1 to 64 bytes")
	case c.ApplyTimeout < 10*time.Millisecond || c.ApplyTimeout > time.Minute:
		return fmt.Errorf("apply timeout %v: must be between 10ms and 1m", c.ApplyTimeout)
	case c.SnapshotThreshold < 16:
		return fmt.Errorf("snapshot threshold %d: must be at least 16", c.SnapshotThreshold)
	case c.SnapshotInterval < 100*time.Millisecond:
		return fmt.Errorf("snapshot interval %v: must be at least 100ms", c.SnapshotInterval)
	case c.RetainSnapshots < 1:
		return fmt.Errorf("retain snapshots %d: must be at least 1", c.RetainSnapshots)
	}
	return nil
}

// Node is one monitor's replica of the MgrMap state.
type Node struct {
	cfg    Config
	raft   *raft.Raft
	fsm    *fsm
	store  *raftboltdb.BoltStore
	trans  raft.Transport
	logger hclog.Logger
}

// Open starts this monitor's raft replica from its data dir. onMap is called
// from the apply loop with every new map, in epoch order, after the state
// holding it is visible through State; it must not block.
//
// stream carries raft traffic to the other monitors (a Mux's Raft side);
// nil uses an in-memory transport, for tests of a monitor alone.
func Open(cfg Config, stream raft.StreamLayer, onMap func(*mgrv1.MgrMap), logger hclog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = logger.Named("quorum")
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create data dir: %w", err)
	}
	// The log and stable store: bbolt through raft-boltdb/v2 (docs/quorum.md
	// says why not raft-wal v0.4.0). Pages freed by log compaction are reused,
	// so the file stays bounded.
	dbPath := filepath.Join(cfg.DataDir, "raft.db")
	w, err := raftboltdb.New(raftboltdb.Options{Path: dbPath})
	if err != nil {
		return nil, fmt.Errorf("failed to open the raft log %s: %w", dbPath, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.RetainSnapshots, logger.Named("snapshots"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("failed to open snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = logger.Named("raft")
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	// Short timeouts: a lone voter elects itself after one election timeout,
	// and a quorum on one site replaces a lost leader within about a second.
	rc.HeartbeatTimeout = 500 * time.Millisecond
	rc.ElectionTimeout = 500 * time.Millisecond
	rc.LeaderLeaseTimeout = 250 * time.Millisecond
	var trans raft.Transport
	if stream != nil {
		if cfg.Advertise != "" {
			stream = advertisedStream{StreamLayer: stream, addr: advertisedAddr(cfg.Advertise)}
		}
		trans = raft.NewNetworkTransportWithLogger(stream, 3, 5*time.Second, logger.Named("transport"))
	} else {
		_, trans = raft.NewInmemTransport(raft.ServerAddress(cmp.Or(cfg.Advertise, cfg.NodeID)))
	}
	f := newFSM(onMap, cfg.OnApply, logger)
	has, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("failed to read raft state: %w", err)
	}
	if !has && !cfg.Join {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: raft.ServerAddress(cmp.Or(cfg.Advertise, string(trans.LocalAddr()))), Suffrage: raft.Voter}}}
		if len(cfg.Peers) > 0 {
			conf.Servers = nil
			for _, p := range cfg.Peers {
				conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
			}
		}
		if err := raft.BootstrapCluster(rc, w, w, snaps, trans, conf); err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("failed to bootstrap raft: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, f, w, w, snaps, trans)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("failed to start raft: %w", err)
	}
	return &Node{cfg: cfg, raft: r, fsm: f, store: w, trans: trans, logger: logger}, nil
}

// State returns the latest applied state. It is immutable: never modify it.
func (n *Node) State() *mgrv1.State { return n.fsm.state.Load() }

// IsLeader reports whether this replica may commit changes.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderCh delivers true when this replica becomes leader and false when it stops.
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// Barrier waits until every committed entry is applied here (called by a new
// leader before it judges liveness or serves writes).
func (n *Node) Barrier(ctx context.Context) error {
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return n.raftErr(err)
	}
	return nil
}

// Apply commits one command and returns what the state machine made of it.
// The command's time is set here, from this (leader) monitor's clock.
func (n *Node) Apply(ctx context.Context, cmd *mgrv1.Command) (mgrmap.Result, error) {
	cmd.Time = timestamppb.Now()
	data, err := proto.Marshal(cmd)
	if err != nil {
		return mgrmap.Result{}, fmt.Errorf("failed to encode command: %w", err)
	}
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return mgrmap.Result{}, ErrTimeout
	}
	start := time.Now()
	fut := n.raft.Apply(data, timeout)
	if err := fut.Error(); err != nil {
		return mgrmap.Result{}, n.raftErr(err)
	}
	if n.cfg.OnCommit != nil {
		n.cfg.OnCommit(time.Since(start))
	}
	a, ok := fut.Response().(applied)
	if !ok {
		return mgrmap.Result{}, fmt.Errorf("unexpected apply response %T", fut.Response())
	}
	return a.res, a.err
}

func (n *Node) raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return fmt.Errorf("failed to commit: %w", err)
}

// VerifyLeader confirms with a majority that this replica still leads. A
// lease may only be granted after it: a leader cut off (or stopped and
// resumed) may not know yet that another has been elected.
func (n *Node) VerifyLeader() error {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return n.raftErr(err)
	}
	return nil
}

// Leader returns the leader's id and address, empty when none is known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// ID is this monitor's raft id.
func (n *Node) ID() string { return n.cfg.NodeID }

// CaughtUp reports whether a leader is known and this replica has applied
// everything it knows to be committed.
func (n *Node) CaughtUp() bool {
	if _, addr := n.Leader(); addr == "" {
		return false
	}
	return n.raft.AppliedIndex() >= n.raft.CommitIndex()
}

// Member is one monitor in the raft configuration.
type Member struct {
	ID, Addr string
	Voter    bool
	Leader   bool
}

// Members lists the raft configuration.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.raftErr(err)
	}
	leaderID, _ := n.Leader()
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter, Leader: string(s.ID) == leaderID})
	}
	return out, nil
}

// AddVoter adds a monitor to the quorum (on the leader).
func (n *Node) AddVoter(id, addr string) error {
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return n.raftErr(err)
	}
	return nil
}

// RemoveServer removes a monitor from the quorum (on the leader).
func (n *Node) RemoveServer(id string) error {
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return n.raftErr(err)
	}
	return nil
}

// Snapshot forces a snapshot now (tests and operators).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("failed to snapshot: %w", err)
	}
	return nil
}

// Stats reports raft's view: term, commit and applied index.
func (n *Node) Stats() (term, commit, applied uint64) {
	return n.raft.CurrentTerm(), n.raft.CommitIndex(), n.raft.AppliedIndex()
}

// Close stops raft and closes the stores.
func (n *Node) Close() error {
	err := n.raft.Shutdown().Error()
	if cerr := n.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if c, ok := n.trans.(raft.WithClose); ok {
		_ = c.Close()
	}
	return err
}

// advertisedStream reports the advertised address as its own. raft takes a
// transport's local address from its stream layer's Addr and sends it in
// every AppendEntries and RequestVote: followers learn the leader's address
// from it and forward writes there. The listener's address is wrong for
// that when the monitor listens on all interfaces (0.0.0.0:6789 in a
// container) or behind an address others cannot dial.
type advertisedStream struct {
	raft.StreamLayer
	addr advertisedAddr
}

func (s advertisedStream) Addr() net.Addr { return s.addr }

// advertisedAddr is a host:port as peers dial it.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
