package mgrmap

import (
	"errors"
	"fmt"
	"slices"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"google.golang.org/protobuf/proto"
)

// CheckInvariants verifies what every transition must keep: the epoch moves
// by exactly one on a change and not at all otherwise; at most one active,
// never also a standby; gids unique, issued and increasing; names unique; the
// history contiguous and ending at the map. It is used by the fuzz target
// and the replicated state machine's tests.
func CheckInvariants(prev, next *mgrv1.State, r Result) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	pm, nm := prev.GetMap(), next.GetMap()
	switch {
	case r.Changed && nm.GetEpoch() != pm.GetEpoch()+1:
		bad("changed map has epoch %d after %d", nm.GetEpoch(), pm.GetEpoch())
	case !r.Changed && nm.GetEpoch() != pm.GetEpoch():
		bad("unchanged map moved epoch %d to %d", pm.GetEpoch(), nm.GetEpoch())
	case !r.Changed && !proto.Equal(pm, nm):
		bad("map changed without a new epoch (%d)", nm.GetEpoch())
	}
	// The keyring: every entity valid, never left without an admin once it
	// had one, and gids bound only while in the map or pending.
	for name, e := range next.GetAuth() {
		if e.GetName() != name || ValidateAuthEntity(e) != nil {
			bad("keyring entry %q is invalid: %v", name, ValidateAuthEntity(e))
		}
	}
	if hadAdmin(prev.GetAuth()) && !hadAdmin(next.GetAuth()) {
		bad("the keyring lost its last admin")
	}
	for gid := range next.GetGidEntities() {
		_, pending := next.GetPending()[gid]
		inMap := gid == nm.GetActiveGid() || slices.ContainsFunc(nm.GetStandbys(), func(s *mgrv1.StandbyInfo) bool { return s.GetGid() == gid })
		if !pending && !inMap {
			bad("gid %d is bound to an entity but neither in the map nor pending", gid)
		}
	}
	if next.GetNextGid() < prev.GetNextGid() {
		bad("next gid went back from %d to %d", prev.GetNextGid(), next.GetNextGid())
	}
	if r.GID != 0 && r.GID != prev.GetNextGid() {
		bad("issued gid %d, want %d", r.GID, prev.GetNextGid())
	}
	names := map[string]uint64{}
	gids := map[uint64]bool{}
	if a := nm.GetActiveGid(); a != 0 {
		names[nm.GetActiveName()] = a
		gids[a] = true
		if nm.GetActiveEpoch() == 0 || nm.GetActiveEpoch() > nm.GetEpoch() {
			bad("active epoch %d outside 1..%d", nm.GetActiveEpoch(), nm.GetEpoch())
		}
		if a >= next.GetNextGid() {
			bad("active gid %d was never issued", a)
		}
	} else if nm.GetActiveEpoch() != 0 || nm.GetAvailable() || len(nm.GetActiveAddrs()) != 0 || nm.GetActiveName() != "" || nm.GetActiveFailing() {
		bad("no active but active fields set: %v", nm)
	}
	var last uint64
	for _, s := range nm.GetStandbys() {
		if s.GetGid() <= last {
			bad("standbys not sorted by unique gid at %d", s.GetGid())
		}
		last = s.GetGid()
		if gids[s.GetGid()] {
			bad("gid %d is active and standby", s.GetGid())
		}
		if s.GetGid() >= next.GetNextGid() {
			bad("standby gid %d was never issued", s.GetGid())
		}
		if g, ok := names[s.GetName()]; ok && !(g == nm.GetActiveGid() && nm.GetActiveFailing()) {
			bad("name %s held by gids %d and %d", s.GetName(), g, s.GetGid())
		}
		names[s.GetName()] = s.GetGid()
		gids[s.GetGid()] = true
	}
	if nm.GetDown() && pm.GetActiveGid() == 0 && nm.GetActiveGid() != 0 {
		bad("promoted gid %d while down", nm.GetActiveGid())
	}
	if nm.GetActiveGid() == 0 && !nm.GetDown() && len(nm.GetStandbys()) > 0 {
		bad("no active while %d standbys wait and the cluster is not down", len(nm.GetStandbys()))
	}
	for gid := range next.GetMetadata() {
		if !gids[gid] {
			bad("metadata kept for gid %d not in the map", gid)
		}
	}
	hist := next.GetHistory()
	if len(hist) == 0 || hist[len(hist)-1] != nm {
		bad("history does not end with the current map")
	}
	if lim := int(next.GetHistoryLimit()); len(hist) > lim {
		bad("history keeps %d maps, limit %d", len(hist), lim)
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].GetEpoch() != hist[i-1].GetEpoch()+1 {
			bad("history gap between epochs %d and %d", hist[i-1].GetEpoch(), hist[i].GetEpoch())
		}
	}
	return errors.Join(errs...)
}

// CheckPromotion verifies the promotion invariant of DESIGN.md: a map names
// a new active only when the previous active can no longer serve, that is,
// the command was that active's Leave or a Drop of it by the leader (silent
// past the grace, lease run out, or proved gone). An operator's fail, a
// same-name restart or `down` only tell the active to stop.
func CheckPromotion(prev, next *mgrv1.State, cmd *mgrv1.Command) error {
	was, now := prev.GetMap().GetActiveGid(), next.GetMap().GetActiveGid()
	if was == 0 || was == now {
		return nil
	}
	if l := cmd.GetLeave(); l != nil && l.GetGid() == was {
		return nil
	}
	for _, d := range cmd.GetDrop().GetGids() {
		if d.GetGid() == was {
			return nil
		}
	}
	return fmt.Errorf("active gid %d replaced by %d through %T, which may not end an active's term", was, now, cmd.GetOp())
}
