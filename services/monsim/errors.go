package monsim

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"github.com/mgrplane/mgrplane/services/monsim/internal/quorum"
	"github.com/mgrplane/mgrplane/services/monsim/internal/watch"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errPrecondition: the request is valid but the quorum's state forbids it.
var errPrecondition = errors.New("failed precondition")

// toStatus is the one place domain errors become gRPC status codes.
func toStatus(logger hclog.Logger, err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, mgrmap.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, mgrmap.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, mgrmap.ErrTrimmed), errors.Is(err, mgrmap.ErrFuture),
		errors.Is(err, watch.ErrTrimmed), errors.Is(err, watch.ErrFuture):
		code = codes.OutOfRange
	case errors.Is(err, mgrmap.ErrWrongFSID), errors.Is(err, mgrmap.ErrStaleGID),
		errors.Is(err, mgrmap.ErrAlwaysOn), errors.Is(err, mgrmap.ErrCannotRun), errors.Is(err, errPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, mgrmap.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, mgrmap.ErrAuthState):
		code = codes.FailedPrecondition
	case errors.Is(err, mgrmap.ErrNotOwner):
		code = codes.PermissionDenied
	case errors.Is(err, quorum.ErrNotLeader), errors.Is(err, quorum.ErrTimeout),
		errors.Is(err, mgrmap.ErrNotBootstrapped), errors.Is(err, watch.ErrClosed),
		errors.Is(err, watch.ErrNotReady), errors.Is(err, errNotReady):
		code = codes.Unavailable
	case errors.Is(err, watch.ErrSlow):
		code = codes.ResourceExhausted
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	if code == codes.Internal {
		logger.Error("internal error", "error", err)
		return status.Error(code, "internal error")
	}
	return status.Error(code, err.Error())
}
