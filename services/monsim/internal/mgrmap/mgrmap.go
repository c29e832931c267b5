// Package mgrmap is the MgrMap and its pure state machine: Apply takes a state
// and one command and returns the next state. It does no I/O and reads no
// clock (time comes in the command), so every replica that applies the same
// log reaches the same state, and the whole machine can be fuzzed.
//
// The rules are Ceph's MgrMonitor's (DESIGN.md, "Monitor rules"): gids are
// issued by Authenticate and never reused; a beacon makes a new epoch only
// when the map changes; a new gid under the active's name replaces it; with
// no active the first standby to beacon is promoted; the tick drops silent
// managers and promotes the standby with the lowest gid.
package mgrmap

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// MaxPending bounds the gids issued but not yet seen in a beacon; past it the
// oldest pending gids are forgotten (their owners get ErrStaleGID and
// authenticate again).
const MaxPending = 1024

// DefaultHistoryLimit is how many maps are kept when bootstrap names none.
const DefaultHistoryLimit = 500

// Result says what a command did.
type Result struct {
	// Changed is true when the command made a new map.
	Changed bool
	// Epoch is the current epoch after the command.
	Epoch uint64
	// GID is the gid issued by Authenticate.
	GID uint64
	// Standing is the beaconing manager's standing after a Beacon.
	Standing mgrv1.Standing
	// ActiveEpoch is the active's fencing token after the command.
	ActiveEpoch uint64
	// FailedGID and FailedName name the manager a Fail removed.
	FailedGID  uint64
	FailedName string
}

// Apply applies one command to st and returns the next state. st is never
// modified; the returned state shares every unchanged part with it. On error
// the state is st itself and the error wraps one of the package's sentinels.
func Apply(st *mgrv1.State, cmd *mgrv1.Command) (*mgrv1.State, Result, error) {
	if cmd == nil || cmd.GetOp() == nil {
		return st, current(st), fmt.Errorf("%w: empty command", ErrInvalid)
	}
	if b := cmd.GetBootstrap(); b != nil {
		return bootstrap(st, b, cmd.GetTime().AsTime())
	}
	if st.GetMap().GetEpoch() == 0 {
		return st, Result{}, ErrNotBootstrapped
	}
	if a := cmd.GetAuth(); a != nil {
		return applyAuth(st, a)
	}
	t := begin(st, cmd.GetTime().AsTime())
	var err error
	switch op := cmd.GetOp().(type) {
	case *mgrv1.Command_Authenticate:
		err = t.authenticate(op.Authenticate)
	case *mgrv1.Command_Beacon:
		err = t.beacon(op.Beacon)
	case *mgrv1.Command_Leave:
		err = t.leave(op.Leave)
	case *mgrv1.Command_Drop:
		t.drop(op.Drop)
	case *mgrv1.Command_Fail:
		err = t.fail(op.Fail)
	case *mgrv1.Command_Module:
		err = t.module(op.Module)
	case *mgrv1.Command_SetFlags:
		t.setFlags(op.SetFlags)
	case *mgrv1.Command_Config:
		err = t.config(op.Config)
	default:
		err = fmt.Errorf("%w: unknown command %T", ErrInvalid, op)
	}
	if err != nil {
		return st, current(st), err
	}
	return t.commit()
}

func current(st *mgrv1.State) Result {
	return Result{Epoch: st.GetMap().GetEpoch(), ActiveEpoch: st.GetMap().GetActiveEpoch()}
}

func bootstrap(st *mgrv1.State, b *mgrv1.BootstrapOp, now time.Time) (*mgrv1.State, Result, error) {
	if st.GetMap().GetEpoch() != 0 {
		return st, current(st), fmt.Errorf("%w: fsid %s", ErrBootstrapped, st.GetMap().GetFsid())
	}
	if b.GetFsid() == "" || len(b.GetFsid()) > MaxFSIDLen {
		return st, Result{}, fmt.Errorf("%w: fsid: must be 1 to %d bytes", ErrInvalid, MaxFSIDLen)
	}
	limit := b.GetHistoryLimit()
	if limit == 0 {
		limit = DefaultHistoryLimit
	}
	if limit > MaxHistoryLimit {
		return st, Result{}, fmt.Errorf("%w: history_limit %d: at most %d", ErrInvalid, limit, MaxHistoryLimit)
	}
	for _, m := range append(slices.Clone(b.GetAlwaysOnModules()), b.GetEnabledModules()...) {
		if err := ValidateModuleName("module", m); err != nil {
			return st, Result{}, err
		}
	}
	m := &mgrv1.MgrMap{
		Epoch:           1,
		Fsid:            b.GetFsid(),
		ActiveChange:    ts(now),
		Modules:         sortedUnique(b.GetEnabledModules()),
		AlwaysOnModules: sortedUnique(b.GetAlwaysOnModules()),
		Services:        map[string]string{},
		Modified:        ts(now),
		Cause:           mgrv1.ChangeCause_CHANGE_CAUSE_BOOTSTRAP,
		Reason:          "cluster " + b.GetFsid() + " created",
	}
	next := &mgrv1.State{
		Map:          m,
		History:      []*mgrv1.MgrMap{m},
		NextGid:      1,
		Metadata:     map[uint64]*mgrv1.Metadata{},
		Pending:      map[uint64]string{},
		HistoryLimit: limit,
	}
	return next, Result{Changed: true, Epoch: 1}, nil
}

// txn is one command being applied: a private copy of the map and the
// copy-on-write parts of the state.
type txn struct {
	prev     *mgrv1.State
	now      time.Time
	m        *mgrv1.MgrMap
	nextGID  uint64
	metadata map[uint64]*mgrv1.Metadata // nil until written
	pending  map[uint64]string          // nil until written
	entities map[uint64]string          // nil until written
	cause    mgrv1.ChangeCause
	reason   string
	res      Result
}

func begin(st *mgrv1.State, now time.Time) *txn {
	return &txn{
		prev:    st,
		now:     now,
		m:       proto.CloneOf(st.GetMap()),
		nextGID: st.GetNextGid(),
	}
}

// commit decides whether the map changed and builds the next state.
func (t *txn) commit() (*mgrv1.State, Result, error) {
	prevMap := t.prev.GetMap()
	t.m.Epoch = prevMap.GetEpoch()
	t.m.Modified, t.m.Cause, t.m.Reason = prevMap.GetModified(), prevMap.GetCause(), prevMap.GetReason()
	changed := !proto.Equal(t.m, prevMap)
	next := &mgrv1.State{
		Map:          prevMap,
		History:      t.prev.GetHistory(),
		NextGid:      t.nextGID,
		Metadata:     t.prev.GetMetadata(),
		Pending:      t.prev.GetPending(),
		HistoryLimit: t.prev.GetHistoryLimit(),
		Auth:         t.prev.GetAuth(),
		GidEntities:  t.prev.GetGidEntities(),
	}
	if t.metadata != nil {
		next.Metadata = t.metadata
	}
	if t.pending != nil {
		next.Pending = t.pending
	}
	if t.entities != nil || t.pending != nil || t.metadata != nil {
		next.GidEntities = pruneEntities(t.entities, t.prev.GetGidEntities(), t.m, next.Pending)
	}
	if changed {
		t.m.Epoch = prevMap.GetEpoch() + 1
		t.m.Modified = ts(t.now)
		t.m.Cause = t.cause
		t.m.Reason = t.reason
		if t.m.GetActiveEpoch() == pendingActiveEpoch {
			t.m.ActiveEpoch = t.m.Epoch
		}
		next.Map = t.m
		keep := int(max(t.prev.GetHistoryLimit(), 1))
		hist := t.prev.GetHistory()
		if len(hist) >= keep {
			hist = hist[len(hist)-keep+1:]
		}
		next.History = append(slices.Clip(hist), t.m)
	}
	r := t.res
	r.Changed = changed
	r.Epoch = next.Map.GetEpoch()
	r.ActiveEpoch = next.Map.GetActiveEpoch()
	return next, r, nil
}

// pendingActiveEpoch marks a promotion in a txn; commit replaces it with the
// new epoch (the fencing token is the epoch of the map that promotes).
const pendingActiveEpoch = ^uint64(0)

func (t *txn) setCause(c mgrv1.ChangeCause, format string, args ...any) {
	if t.cause != mgrv1.ChangeCause_CHANGE_CAUSE_UNSPECIFIED {
		// The first cause names the change; later effects extend the sentence.
		t.reason += "; " + fmt.Sprintf(format, args...)
		return
	}
	t.cause = c
	t.reason = fmt.Sprintf(format, args...)
}

func (t *txn) writeMetadata() map[uint64]*mgrv1.Metadata {
	if t.metadata == nil {
		t.metadata = maps.Clone(t.prev.GetMetadata())
		if t.metadata == nil {
			t.metadata = map[uint64]*mgrv1.Metadata{}
		}
	}
	return t.metadata
}

func (t *txn) writePending() map[uint64]string {
	if t.pending == nil {
		t.pending = maps.Clone(t.prev.GetPending())
		if t.pending == nil {
			t.pending = map[uint64]string{}
		}
	}
	return t.pending
}

func (t *txn) authenticate(op *mgrv1.AuthenticateOp) error {
	if err := validateFSID(t.m.GetFsid(), op.GetFsid(), false); err != nil {
		return err
	}
	if err := ValidateName("name", op.GetName()); err != nil {
		return err
	}
	if e := op.GetEntity(); e != "" {
		if err := creds.ValidateEntityName(e); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	gid := t.nextGID
	t.nextGID++
	p := t.writePending()
	p[gid] = op.GetName()
	for len(p) > MaxPending {
		delete(p, slices.Min(slices.Collect(maps.Keys(p))))
	}
	if e := op.GetEntity(); e != "" {
		if t.entities == nil {
			t.entities = maps.Clone(t.prev.GetGidEntities())
			if t.entities == nil {
				t.entities = map[uint64]string{}
			}
		}
		t.entities[gid] = e
	}
	t.res.GID = gid
	return nil
}

// owner finds who holds gid: "active", "standby" (with its index) or
// "pending", and the name it was issued to.
func (t *txn) owner(gid uint64) (where string, name string, idx int) {
	if gid != 0 && gid == t.m.GetActiveGid() {
		return "active", t.m.GetActiveName(), -1
	}
	if i := t.standbyIndex(gid); i >= 0 {
		return "standby", t.m.GetStandbys()[i].GetName(), i
	}
	if n, ok := t.prev.GetPending()[gid]; ok {
		return "pending", n, -1
	}
	return "", "", -1
}

func (t *txn) standbyIndex(gid uint64) int {
	return slices.IndexFunc(t.m.GetStandbys(), func(s *mgrv1.StandbyInfo) bool { return s.GetGid() == gid })
}

// newestGID is the highest gid the map holds for name (0 when none).
func (t *txn) newestGID(name string) uint64 {
	var g uint64
	if t.m.GetActiveName() == name {
		g = t.m.GetActiveGid()
	}
	for _, s := range t.m.GetStandbys() {
		if s.GetName() == name {
			g = max(g, s.GetGid())
		}
	}
	return g
}

// checkGID verifies that gid was issued to name and is still known.
func (t *txn) checkGID(gid uint64, name string) (string, error) {
	if gid >= t.nextGID {
		return "", fmt.Errorf("%w: gid %d was never issued (next gid is %d)", ErrNotFound, gid, t.nextGID)
	}
	where, owner, _ := t.owner(gid)
	if where == "" {
		return "", fmt.Errorf("%w: gid %d is no longer in the map (dropped, failed or replaced); authenticate again", ErrStaleGID, gid)
	}
	if owner != name {
		return "", fmt.Errorf("%w: gid %d was issued to %q, not %q", ErrNotOwner, gid, owner, name)
	}
	return where, nil
}

func (t *txn) beacon(b *mgrv1.BeaconRequest) error {
	if err := validateFSID(t.m.GetFsid(), b.GetFsid(), true); err != nil {
		return err
	}
	if err := validateBeacon(b); err != nil {
		return err
	}
	gid, name := b.GetGid(), b.GetName()
	where, err := t.checkGID(gid, name)
	if err != nil {
		return err
	}
	if newer := t.newestGID(name); newer > gid {
		return fmt.Errorf("%w: gid %d of %s is superseded by its gid %d; authenticate again", ErrStaleGID, gid, name, newer)
	}
	// Rule 3: a newer gid under a known name replaces the older entry. The
	// old active may still be serving, so it is told to stop and replaced
	// only once it leaves or its lease runs out (the promotion invariant).
	if t.m.GetActiveName() == name && t.m.GetActiveGid() != gid && gid > t.m.GetActiveGid() && !t.m.GetActiveFailing() {
		t.m.ActiveFailing = true
		t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_REPLACED, "%s restarted as gid %d; its old gid %d is told to stop and is replaced when it leaves or its lease runs out", name, gid, t.m.GetActiveGid())
	}
	for _, s := range slices.Clone(t.m.GetStandbys()) {
		if s.GetName() == name && s.GetGid() < gid {
			t.removeStandby(s.GetGid())
			t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_REPLACED, "%s restarted as gid %d; dropped its old gid %d", name, gid, s.GetGid())
		}
	}
	mods := sortedModules(b.GetAvailableModules())
	digest := Digest(b.GetMetadata())
	if t.prev.GetMetadata()[gid].GetValues() == nil || Digest(t.prev.GetMetadata()[gid].GetValues()) != digest {
		t.writeMetadata()[gid] = &mgrv1.Metadata{Values: maps.Clone(b.GetMetadata())}
	}
	switch where {
	case "pending":
		delete(t.writePending(), gid)
		t.m.Standbys = insertStandby(t.m.GetStandbys(), &mgrv1.StandbyInfo{
			Gid: gid, Name: name, AvailableModules: mods, MetadataDigest: digest,
			Priority: b.GetPriority(), Zone: b.GetZone(),
		})
		t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_STANDBY_ADDED, "%s joined as standby (gid %d)", name, gid)
	case "standby":
		i := t.standbyIndex(gid)
		s := t.m.GetStandbys()[i]
		if !modulesEqual(s.GetAvailableModules(), mods) || s.GetMetadataDigest() != digest ||
			s.GetPriority() != b.GetPriority() || s.GetZone() != b.GetZone() {
			s = proto.CloneOf(s)
			s.AvailableModules, s.MetadataDigest = mods, digest
			s.Priority, s.Zone = b.GetPriority(), b.GetZone()
			t.m.Standbys[i] = s
			t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_STANDBY_UPDATED, "standby %s updated its modules or metadata", name)
		}
	case "active":
		if t.m.GetActiveFailing() {
			break // it has been told to stop: what it reports no longer matters
		}
		// Rule 5: the active reports where it serves.
		addrs, services := []string(nil), map[string]string{}
		if b.GetAvailable() {
			addrs = slices.Clone(b.GetServerAddrs())
			maps.Copy(services, b.GetServices())
		}
		before := proto.CloneOf(t.m)
		t.m.Available = b.GetAvailable()
		t.m.ActiveAddrs = addrs
		t.m.Services = services
		t.m.AvailableModules = mods
		t.m.ActiveMetadataDigest = digest
		t.m.ActivePriority, t.m.ActiveZone = b.GetPriority(), b.GetZone()
		if !proto.Equal(before, t.m) {
			if b.GetAvailable() && !before.GetAvailable() {
				t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_ACTIVE_UPDATED, "%s is available at %v", name, addrs)
			} else {
				t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_ACTIVE_UPDATED, "active %s updated its addresses, services or modules", name)
			}
		}
	}
	// Rule 4: with no active (and not down) a standby is promoted at once: the
	// one with the lowest gid, which is the beaconing one when it is alone.
	if t.m.GetActiveGid() == 0 && !t.m.GetDown() && len(t.m.GetStandbys()) > 0 {
		if t.cause == mgrv1.ChangeCause_CHANGE_CAUSE_STANDBY_ADDED || t.cause == mgrv1.ChangeCause_CHANGE_CAUSE_UNSPECIFIED {
			t.cause, t.reason = mgrv1.ChangeCause_CHANGE_CAUSE_UNSPECIFIED, ""
		}
		t.promoteNext("no active manager", "")
	}
	switch {
	case t.m.GetActiveGid() == gid && t.m.GetActiveFailing():
		// Told to stop: stop serving, leave, and come back as a standby.
		t.res.Standing = mgrv1.Standing_STANDING_STALE
	case t.m.GetActiveGid() == gid:
		t.res.Standing = mgrv1.Standing_STANDING_ACTIVE
	case b.GetAvailable():
		// Rule 6: it believes it is active but is not.
		t.res.Standing = mgrv1.Standing_STANDING_STALE
	default:
		t.res.Standing = mgrv1.Standing_STANDING_STANDBY
	}
	return nil
}

func (t *txn) leave(op *mgrv1.LeaveOp) error {
	if err := validateFSID(t.m.GetFsid(), op.GetFsid(), true); err != nil {
		return err
	}
	if err := ValidateName("name", op.GetName()); err != nil {
		return err
	}
	where, err := t.checkGID(op.GetGid(), op.GetName())
	if err != nil {
		return err
	}
	switch where {
	case "pending":
		delete(t.writePending(), op.GetGid())
	case "active":
		t.dropActive()
		t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_LEFT, "active %s (gid %d) left", op.GetName(), op.GetGid())
		t.promoteNext("", "")
	case "standby":
		t.removeStandby(op.GetGid())
		t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_LEFT, "standby %s (gid %d) left", op.GetName(), op.GetGid())
	}
	return nil
}

// GoneProof says what proved a crashed active gone, for the drop reasons
// of the crash fast path (GONE, ADDRESS_TAKEN); "" for any other.
func GoneProof(r mgrv1.DropReason) string {
	switch r {
	case mgrv1.DropReason_DROP_REASON_GONE:
		return "its connection closed and nothing listens at its addresses"
	case mgrv1.DropReason_DROP_REASON_ADDRESS_TAKEN:
		return "its connection closed and a manager with another gid answers at its address"
	}
	return ""
}

func (t *txn) drop(op *mgrv1.DropOp) {
	var activeGone, failedZone string
	lostCause := mgrv1.ChangeCause_CHANGE_CAUSE_SILENT
	for _, s := range op.GetGids() {
		gid := s.GetGid()
		silent := time.Duration(s.GetSilentMs()) * time.Millisecond
		switch {
		case gid != 0 && gid == t.m.GetActiveGid():
			name := t.m.GetActiveName()
			switch s.GetReason() {
			case mgrv1.DropReason_DROP_REASON_GONE, mgrv1.DropReason_DROP_REASON_ADDRESS_TAKEN:
				lostCause = mgrv1.ChangeCause_CHANGE_CAUSE_LOST
				activeGone = fmt.Sprintf("active %s is gone (%s)", name, GoneProof(s.GetReason()))
			case mgrv1.DropReason_DROP_REASON_LEASE_EXPIRED:
				lostCause = mgrv1.ChangeCause_CHANGE_CAUSE_LOST
				activeGone = fmt.Sprintf("active %s's lease ran out (no lease for %.1f s)", name, silent.Seconds())
			default:
				activeGone = fmt.Sprintf("active %s silent for %.1f s", name, silent.Seconds())
			}
			failedZone = t.m.GetActiveZone()
			t.dropActive()
		case t.standbyIndex(gid) >= 0:
			name := t.m.GetStandbys()[t.standbyIndex(gid)].GetName()
			t.removeStandby(gid)
			t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_SILENT, "dropped standby %s (gid %d): silent for %.1f s", name, gid, silent.Seconds())
		}
	}
	if activeGone == "" {
		return
	}
	// The active's loss names the map: "promoted y: active x silent for 6.1 s".
	standbys := t.reason
	t.cause, t.reason = lostCause, ""
	if s, why := t.nextStandby(failedZone); s != nil && !t.m.GetDown() {
		t.reason = fmt.Sprintf("promoted %s%s: %s", s.GetName(), why, activeGone)
		t.promote(s.GetGid())
	} else {
		t.reason = fmt.Sprintf("dropped: %s; no standby to promote", activeGone)
	}
	if standbys != "" {
		t.reason += "; " + standbys
	}
}

func (t *txn) fail(op *mgrv1.FailOp) error {
	who := op.GetWho()
	if len(who) > MaxWhoLen {
		return fmt.Errorf("%w: who: %d bytes, at most %d allowed", ErrInvalid, len(who), MaxWhoLen)
	}
	gid, name := uint64(0), ""
	switch {
	case who == "":
		if t.m.GetActiveGid() == 0 {
			return fmt.Errorf("%w: there is no active manager to fail", ErrNotFound)
		}
		gid, name = t.m.GetActiveGid(), t.m.GetActiveName()
	default:
		if n, err := strconv.ParseUint(who, 10, 64); err == nil {
			gid = n
		} else if err := ValidateName("who", who); err != nil {
			return err
		}
		if gid == 0 || gid != t.m.GetActiveGid() {
			if t.m.GetActiveGid() != 0 && t.m.GetActiveName() == who {
				gid = t.m.GetActiveGid()
			}
		}
		if gid == t.m.GetActiveGid() && gid != 0 {
			name = t.m.GetActiveName()
		} else {
			i := slices.IndexFunc(t.m.GetStandbys(), func(s *mgrv1.StandbyInfo) bool {
				return s.GetGid() == gid || (gid == 0 && s.GetName() == who)
			})
			if i < 0 {
				return fmt.Errorf("%w: no manager %q in the map (epoch %d)", ErrNotFound, who, t.m.GetEpoch())
			}
			gid, name = t.m.GetStandbys()[i].GetGid(), t.m.GetStandbys()[i].GetName()
		}
	}
	t.res.FailedGID, t.res.FailedName = gid, name
	if gid == t.m.GetActiveGid() {
		// The promotion invariant: tell the active to stop; the next
		// standby is promoted when it leaves or its lease runs out.
		if !t.m.GetActiveFailing() {
			t.m.ActiveFailing = true
			t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_ADMIN_FAIL, "active %s (gid %d) failed by %s: told to stop, replaced when it leaves or its lease runs out", name, gid, actor(op.GetActor()))
		}
		return nil
	}
	t.removeStandby(gid)
	t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_ADMIN_FAIL, "standby %s (gid %d) failed by %s", name, gid, actor(op.GetActor()))
	return nil
}

func (t *txn) module(op *mgrv1.ModuleOp) error {
	name := op.GetName()
	if err := ValidateModuleName("module", name); err != nil {
		return err
	}
	alwaysOn := slices.Contains(t.m.GetAlwaysOnModules(), name)
	enabled := slices.Contains(t.m.GetModules(), name)
	known, canRun, why := t.moduleReport(name)
	if !op.GetEnable() {
		switch {
		case alwaysOn:
			return fmt.Errorf("%w: module %s is always on and cannot be disabled", ErrAlwaysOn, name)
		case !enabled && !known:
			return fmt.Errorf("%w: module %s is neither enabled nor reported by any manager", ErrNotFound, name)
		case enabled:
			t.m.Modules = slices.DeleteFunc(slices.Clone(t.m.GetModules()), func(s string) bool { return s == name })
			t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_MODULES, "module %s disabled by %s", name, actor(op.GetActor()))
		}
		return nil
	}
	if alwaysOn || enabled {
		return nil // already on: nothing changes, as in Ceph
	}
	if !op.GetForce() {
		if !known {
			return fmt.Errorf("%w: module %s is not reported by any manager (use --force to enable it anyway)", ErrNotFound, name)
		}
		if !canRun {
			return fmt.Errorf("%w: module %s reports it cannot run: %s (use --force to enable it anyway)", ErrCannotRun, name, why)
		}
	}
	t.m.Modules = sortedUnique(append(slices.Clone(t.m.GetModules()), name))
	t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_MODULES, "module %s enabled by %s", name, actor(op.GetActor()))
	return nil
}

// moduleReport says whether any manager in the map reports the module, and
// whether every manager that reports it says it can run.
func (t *txn) moduleReport(name string) (known, canRun bool, why string) {
	canRun = true
	check := func(mods []*mgrv1.ModuleInfo) {
		for _, m := range mods {
			if m.GetName() == name {
				known = true
				if !m.GetCanRun() && canRun {
					canRun, why = false, m.GetErrorString()
				}
			}
		}
	}
	if t.m.GetActiveGid() != 0 {
		check(t.m.GetAvailableModules())
	}
	for _, s := range t.m.GetStandbys() {
		check(s.GetAvailableModules())
	}
	return known, canRun, why
}

func (t *txn) setFlags(op *mgrv1.SetFlagsOp) {
	if op.GetDown() == t.m.GetDown() {
		return
	}
	t.m.Down = op.GetDown()
	if op.GetDown() {
		t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_FLAGS, "down set by %s", actor(op.GetActor()))
		if t.m.GetActiveGid() != 0 && !t.m.GetActiveFailing() {
			// The active is told to stop; once it leaves (or its lease
			// runs out) no one is promoted while down.
			t.m.ActiveFailing = true
			t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_FLAGS, "active %s told to stop", t.m.GetActiveName())
		}
		return
	}
	t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_FLAGS, "down unset by %s", actor(op.GetActor()))
	t.promoteNext("", "")
}

// dropActive removes the active and its metadata; no one is promoted.
func (t *txn) dropActive() {
	delete(t.writeMetadata(), t.m.GetActiveGid())
	t.clearActive()
}

func (t *txn) clearActive() {
	t.m.ActiveGid, t.m.ActiveName = 0, ""
	t.m.ActiveAddrs, t.m.Available = nil, false
	t.m.ActiveEpoch = 0
	t.m.ActiveChange = ts(t.now)
	t.m.AvailableModules = nil
	t.m.Services = map[string]string{}
	t.m.ActiveMetadataDigest = ""
	t.m.ActiveFailing = false
	t.m.ActivePriority, t.m.ActiveZone = 0, ""
}

func (t *txn) removeStandby(gid uint64) {
	delete(t.writeMetadata(), gid)
	t.m.Standbys = slices.DeleteFunc(slices.Clone(t.m.GetStandbys()), func(s *mgrv1.StandbyInfo) bool { return s.GetGid() == gid })
}

// nextStandby is the standby to promote, by the promotion policy: the
// highest priority, then a standby outside failedZone (the zone of the active
// that failed), then the lowest gid. why says what decided, for the reason.
func (t *txn) nextStandby(failedZone string) (*mgrv1.StandbyInfo, string) {
	list := t.m.GetStandbys() // sorted by gid
	if len(list) == 0 {
		return nil, ""
	}
	best := list[0]
	outside := func(s *mgrv1.StandbyInfo) bool { return failedZone == "" || s.GetZone() != failedZone }
	for _, s := range list[1:] {
		switch {
		case s.GetPriority() > best.GetPriority():
			best = s
		case s.GetPriority() == best.GetPriority() && outside(s) && !outside(best):
			best = s
		}
	}
	var why []string
	if best.GetPriority() != 0 || slices.ContainsFunc(list, func(s *mgrv1.StandbyInfo) bool { return s.GetPriority() != best.GetPriority() }) {
		why = append(why, fmt.Sprintf("priority %d", best.GetPriority()))
	}
	if failedZone != "" && outside(best) && slices.ContainsFunc(list, func(s *mgrv1.StandbyInfo) bool { return !outside(s) }) {
		why = append(why, fmt.Sprintf("zone %q, outside failed zone %q", best.GetZone(), failedZone))
	}
	if len(why) == 0 {
		return best, ""
	}
	return best, " (" + strings.Join(why, ", ") + ")"
}

// promoteNext promotes the next standby when there is no active and the
// cluster is not down, and says so in the reason ("promoted y (gid 4)",
// followed by why when why is set).
func (t *txn) promoteNext(why, failedZone string) {
	s, policy := t.nextStandby(failedZone)
	if t.m.GetActiveGid() != 0 || t.m.GetDown() || s == nil {
		return
	}
	t.promote(s.GetGid())
	if why != "" {
		t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED, "promoted %s (gid %d)%s: %s", s.GetName(), s.GetGid(), policy, why)
		return
	}
	t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_PROMOTED, "promoted %s (gid %d)%s", s.GetName(), s.GetGid(), policy)
}

// promote makes a standby the active.
func (t *txn) promote(gid uint64) {
	i := t.standbyIndex(gid)
	s := t.m.GetStandbys()[i]
	t.m.Standbys = slices.Delete(slices.Clone(t.m.GetStandbys()), i, i+1)
	t.m.ActiveGid, t.m.ActiveName = s.GetGid(), s.GetName()
	t.m.ActiveAddrs, t.m.Available = nil, false
	t.m.ActiveEpoch = pendingActiveEpoch
	t.m.ActiveChange = ts(t.now)
	t.m.AvailableModules = s.GetAvailableModules()
	t.m.Services = map[string]string{}
	t.m.ActiveMetadataDigest = s.GetMetadataDigest()
	t.m.ActiveFailing = false
	t.m.ActivePriority, t.m.ActiveZone = s.GetPriority(), s.GetZone()
}

func insertStandby(list []*mgrv1.StandbyInfo, s *mgrv1.StandbyInfo) []*mgrv1.StandbyInfo {
	out := append(slices.Clone(list), s)
	slices.SortFunc(out, func(a, b *mgrv1.StandbyInfo) int { return cmp.Compare(a.GetGid(), b.GetGid()) })
	return out
}

func sortedModules(mods []*mgrv1.ModuleInfo) []*mgrv1.ModuleInfo {
	out := make([]*mgrv1.ModuleInfo, len(mods))
	for i, m := range mods {
		out[i] = proto.CloneOf(m)
	}
	slices.SortFunc(out, func(a, b *mgrv1.ModuleInfo) int { return cmp.Compare(a.GetName(), b.GetName()) })
	if len(out) == 0 {
		return nil
	}
	return out
}

func modulesEqual(a, b []*mgrv1.ModuleInfo) bool {
	return slices.EqualFunc(a, b, func(x, y *mgrv1.ModuleInfo) bool { return proto.Equal(x, y) })
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func actor(a string) string {
	if a == "" {
		return "an operator"
	}
	return a
}

// Digest is a short stable digest of a manager's metadata, kept in the map
// so that a metadata change makes a new epoch without carrying the metadata.
func Digest(md map[string]string) string {
	if len(md) == 0 {
		return ""
	}
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(md)) {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(md[k]), md[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
