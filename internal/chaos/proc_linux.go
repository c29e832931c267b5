package chaos

import "syscall"

// sysProcAttr puts a child in its own process group, so that a Ctrl-C at
// the terminal reaches only the harness (which stops the cluster in order),
// and has the kernel kill it should the harness die.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
