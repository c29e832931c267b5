package mgrmap

import (
	"fmt"
	"maps"
	"slices"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"google.golang.org/protobuf/proto"
)

// MaxAuthEntities bounds the keyring.
const MaxAuthEntities = 10000

// pruneEntities keeps the gid-to-entity bindings of gids still in the map
// or pending. written (when not nil) is this command's copy, else prev.
func pruneEntities(written, prev map[uint64]string, m *mgrv1.MgrMap, pending map[uint64]string) map[uint64]string {
	src := prev
	if written != nil {
		src = written
	}
	live := func(gid uint64) bool {
		if gid == m.GetActiveGid() {
			return true
		}
		if _, ok := pending[gid]; ok {
			return true
		}
		return slices.ContainsFunc(m.GetStandbys(), func(s *mgrv1.StandbyInfo) bool { return s.GetGid() == gid })
	}
	var out map[uint64]string
	for gid := range src {
		if !live(gid) {
			if out == nil {
				out = maps.Clone(src)
			}
			delete(out, gid)
		}
	}
	if out == nil {
		return src
	}
	return out
}

// ValidateAuthEntity checks an entity's name, key (and pending key) and caps.
func ValidateAuthEntity(e *mgrv1.AuthEntity) error {
	if err := (creds.Entity{Name: e.GetName(), Key: e.GetKey(), Caps: e.GetCaps()}).Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if pk := e.GetPendingKey(); pk != "" {
		if _, err := creds.DecodeKey(pk); err != nil {
			return fmt.Errorf("%w: entity %s: pending %v", ErrInvalid, e.GetName(), err)
		}
	}
	return nil
}

// applyAuth changes the keyring. It never makes a new map: the epoch does
// not move for keyring changes.
func applyAuth(st *mgrv1.State, op *mgrv1.AuthOp) (*mgrv1.State, Result, error) {
	res := current(st)
	auth := st.GetAuth()
	e := op.GetEntity()
	name := e.GetName()
	lookup := func() (*mgrv1.AuthEntity, error) {
		if err := creds.ValidateEntityName(name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		old, ok := auth[name]
		if !ok {
			return nil, fmt.Errorf("%w: entity %s", ErrNotFound, name)
		}
		return old, nil
	}
	next := maps.Clone(auth)
	if next == nil {
		next = map[string]*mgrv1.AuthEntity{}
	}
	switch op.GetAction() {
	case mgrv1.AuthAction_AUTH_ACTION_ADD:
		if err := ValidateAuthEntity(e); err != nil {
			return st, res, err
		}
		if _, ok := auth[name]; ok {
			return st, res, fmt.Errorf("%w: entity %s (rotate its key or change its caps instead)", ErrExists, name)
		}
		if len(auth) >= MaxAuthEntities {
			return st, res, fmt.Errorf("%w: the keyring holds %d entities, at most %d", ErrInvalid, len(auth), MaxAuthEntities)
		}
		next[name] = &mgrv1.AuthEntity{Name: name, Key: e.GetKey(), Caps: sortedUnique(e.GetCaps())}
	case mgrv1.AuthAction_AUTH_ACTION_REMOVE:
		if _, err := lookup(); err != nil {
			return st, res, err
		}
		delete(next, name)
	case mgrv1.AuthAction_AUTH_ACTION_SET_CAPS:
		old, err := lookup()
		if err != nil {
			return st, res, err
		}
		if err := creds.ValidateCaps(e.GetCaps()); err != nil {
			return st, res, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		n := proto.CloneOf(old)
		n.Caps = sortedUnique(e.GetCaps())
		next[name] = n
	case mgrv1.AuthAction_AUTH_ACTION_ROTATE:
		old, err := lookup()
		if err != nil {
			return st, res, err
		}
		if _, err := creds.DecodeKey(e.GetPendingKey()); err != nil {
			return st, res, fmt.Errorf("%w: pending %v", ErrInvalid, err)
		}
		n := proto.CloneOf(old)
		n.PendingKey = e.GetPendingKey()
		next[name] = n
	case mgrv1.AuthAction_AUTH_ACTION_FINISH_ROTATION:
		old, err := lookup()
		if err != nil {
			return st, res, err
		}
		if old.GetPendingKey() == "" {
			return st, res, fmt.Errorf("%w: entity %s has no rotation in progress (start one with rotate)", ErrAuthState, name)
		}
		next[name] = &mgrv1.AuthEntity{Name: name, Key: old.GetPendingKey(), Caps: old.GetCaps()}
	case mgrv1.AuthAction_AUTH_ACTION_SEED:
		if len(auth) > 0 {
			return st, res, fmt.Errorf("%w: the keyring has %d entities; seed only fills an empty one", ErrAuthState, len(auth))
		}
		if len(op.GetSeed()) == 0 || len(op.GetSeed()) > MaxAuthEntities {
			return st, res, fmt.Errorf("%w: seed: 1 to %d entities", ErrInvalid, MaxAuthEntities)
		}
		for _, s := range op.GetSeed() {
			if err := ValidateAuthEntity(s); err != nil {
				return st, res, err
			}
			if _, ok := next[s.GetName()]; ok {
				return st, res, fmt.Errorf("%w: seed: entity %s listed twice", ErrInvalid, s.GetName())
			}
			next[s.GetName()] = &mgrv1.AuthEntity{Name: s.GetName(), Key: s.GetKey(), Caps: sortedUnique(s.GetCaps())}
		}
	default:
		return st, res, fmt.Errorf("%w: auth action %v", ErrInvalid, op.GetAction())
	}
	if hadAdmin(auth) && !hadAdmin(next) {
		return st, res, fmt.Errorf("%w: that would leave no entity with admin caps", ErrAuthState)
	}
	return &mgrv1.State{
		Map:          st.GetMap(),
		History:      st.GetHistory(),
		NextGid:      st.GetNextGid(),
		Metadata:     st.GetMetadata(),
		Pending:      st.GetPending(),
		HistoryLimit: st.GetHistoryLimit(),
		Auth:         next,
		GidEntities:  st.GetGidEntities(),
	}, res, nil
}

func hadAdmin(auth map[string]*mgrv1.AuthEntity) bool {
	for _, e := range auth {
		if slices.Contains(e.GetCaps(), creds.CapAdmin) {
			return true
		}
	}
	return false
}
