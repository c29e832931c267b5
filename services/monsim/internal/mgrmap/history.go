package mgrmap

import (
	"fmt"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// At returns the kept map with the given epoch; epoch 0 is the current map.
func At(st *mgrv1.State, epoch uint64) (*mgrv1.MgrMap, error) {
	cur := st.GetMap().GetEpoch()
	if cur == 0 {
		return nil, ErrNotBootstrapped
	}
	if epoch == 0 {
		return st.GetMap(), nil
	}
	if epoch > cur {
		return nil, fmt.Errorf("%w: epoch %d: the current epoch is %d", ErrFuture, epoch, cur)
	}
	hist := st.GetHistory()
	oldest := hist[0].GetEpoch()
	if epoch < oldest {
		return nil, fmt.Errorf("%w: epoch %d: the oldest kept epoch is %d (%d kept)", ErrTrimmed, epoch, oldest, len(hist))
	}
	return hist[epoch-oldest], nil
}

// Since returns the kept maps with epochs greater than since, oldest first.
// It fails with ErrTrimmed when since+1 is no longer kept and with ErrFuture
// when since is past the current epoch.
func Since(st *mgrv1.State, since uint64) ([]*mgrv1.MgrMap, error) {
	cur := st.GetMap().GetEpoch()
	if cur == 0 {
		return nil, ErrNotBootstrapped
	}
	if since > cur {
		return nil, fmt.Errorf("%w: epoch %d: the current epoch is %d", ErrFuture, since, cur)
	}
	hist := st.GetHistory()
	oldest := hist[0].GetEpoch()
	if since+1 < oldest {
		return nil, fmt.Errorf("%w: cannot resume after epoch %d: the oldest kept epoch is %d", ErrTrimmed, since, oldest)
	}
	return hist[since+1-oldest:], nil
}

// Entry summarises a map for the history listing.
func Entry(m *mgrv1.MgrMap) *mgrv1.HistoryEntry {
	return &mgrv1.HistoryEntry{
		Epoch:       m.GetEpoch(),
		Time:        m.GetModified(),
		Cause:       m.GetCause(),
		Reason:      m.GetReason(),
		ActiveGid:   m.GetActiveGid(),
		ActiveName:  m.GetActiveName(),
		NumStandbys: uint32(len(m.GetStandbys())),
	}
}
