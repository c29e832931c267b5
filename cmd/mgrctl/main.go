// Command mgrctl is the admin CLI of mgrplane, the counterpart of `ceph mgr …`:
// it reads and changes the manager map held by the monitor (monsim) through
// mgrv1.AdminService, and follows it through mgrv1.MonitorService.WatchMap.
//
// Run `mgrctl --help` for the commands and flags.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	// exitOK: the command did what was asked (or help/version was printed,
	// or watch was interrupted).
	exitOK = 0
	// exitFailure: the monitor refused the request or could not be reached,
	// or the output could not be written.
	exitFailure = 1
	// exitUsage: the command line was wrong; nothing was sent.
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

// exitCode maps the error run returned (already reported on stderr) to the
// process exit status.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	default:
		return exitFailure
	}
}
