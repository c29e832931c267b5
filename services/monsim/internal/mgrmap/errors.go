package mgrmap

import "errors"

// Errors returned by Apply and the history lookups. Each wraps into a message
// that names the field and the bound; the monitor's gRPC edge maps them to
// status codes with errors.Is.
var (
	// ErrInvalid: a request field is malformed or out of bounds.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound: an unknown manager, gid or module.
	ErrNotFound = errors.New("not found")
	// ErrWrongFSID: the request names another cluster.
	ErrWrongFSID = errors.New("wrong fsid")
	// ErrStaleGID: the gid was issued but is no longer in the map (dropped,
	// failed or replaced); the manager must authenticate again.
	ErrStaleGID = errors.New("stale gid")
	// ErrNotOwner: the gid was issued to another name.
	ErrNotOwner = errors.New("gid belongs to another manager")
	// ErrAlwaysOn: an always-on module cannot be disabled.
	ErrAlwaysOn = errors.New("module is always on")
	// ErrCannotRun: the module reports that it cannot run (use force).
	ErrCannotRun = errors.New("module cannot run")
	// ErrTrimmed: the epoch is older than the oldest kept map.
	ErrTrimmed = errors.New("epoch trimmed")
	// ErrFuture: the epoch is newer than the current map.
	ErrFuture = errors.New("epoch not yet issued")
	// ErrNotBootstrapped: the cluster has no map yet.
	ErrNotBootstrapped = errors.New("cluster not bootstrapped")
	// ErrBootstrapped: bootstrap was applied to a cluster that has a map.
	ErrBootstrapped = errors.New("cluster already bootstrapped")
	// ErrExists: an auth entity of that name exists.
	ErrExists = errors.New("already exists")
	// ErrAuthState: the keyring's state forbids the change (removing the
	// last admin, finishing a rotation that was not started, seeding a
	// keyring that has entities).
	ErrAuthState = errors.New("keyring state forbids it")
)
