package quorum

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"google.golang.org/protobuf/proto"
)

// applied is what the FSM returns for one log entry, read back from the
// ApplyFuture by the proposer.
type applied struct {
	res mgrmap.Result
	err error
}

// fsm applies raft log entries to the MgrMap state machine. The applied
// state is published through an atomic pointer so readers never block the
// apply loop; every changed map is then handed to onMap (the watch hub),
// after the state that holds it in its history is visible.
type fsm struct {
	state atomic.Pointer[mgrv1.State]
	onMap func(*mgrv1.MgrMap)
	// onApply, when set, is told how long each command took to apply.
	onApply func(time.Duration)
	logger  hclog.Logger
}

var _ raft.FSM = (*fsm)(nil)

func newFSM(onMap func(*mgrv1.MgrMap), onApply func(time.Duration), logger hclog.Logger) *fsm {
	f := &fsm{onMap: onMap, onApply: onApply, logger: logger}
	f.state.Store(&mgrv1.State{})
	return f
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return applied{}
	}
	if f.onApply != nil {
		start := time.Now()
		defer func() { f.onApply(time.Since(start)) }()
	}
	var cmd mgrv1.Command
	if err := proto.Unmarshal(l.Data, &cmd); err != nil {
		// Every replica sees the same bytes, so every replica skips it alike.
		f.logger.Error("undecodable log entry skipped", "index", l.Index, "error", err)
		return applied{err: fmt.Errorf("%w: undecodable log entry %d", mgrmap.ErrInvalid, l.Index)}
	}
	prev := f.state.Load()
	next, res, err := mgrmap.Apply(prev, &cmd)
	if err != nil {
		return applied{res: res, err: err}
	}
	f.state.Store(next)
	if res.Changed && f.onMap != nil {
		f.onMap(next.GetMap())
	}
	return applied{res: res}
}

// Snapshot implements raft.FSM. The state is immutable, so the snapshot is
// just the pointer; it is marshalled on Persist, off the apply loop.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{st: f.state.Load()}, nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("failed to read snapshot: %w", err)
	}
	st := &mgrv1.State{}
	if err := proto.Unmarshal(data, st); err != nil {
		return fmt.Errorf("failed to decode snapshot: %w", err)
	}
	f.state.Store(st)
	if f.onMap != nil && st.GetMap().GetEpoch() != 0 {
		f.onMap(st.GetMap())
	}
	return nil
}

type snapshot struct{ st *mgrv1.State }

// Persist implements raft.FSMSnapshot.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.st)
	if err == nil {
		_, err = sink.Write(data)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("failed to write snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {}
