package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is one running program of the cluster. Its stdout and stderr are
// appended to logPath.
type proc struct {
	name    string
	pid     int
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
	waitErr error         // set before done is closed
}

// childEnv is the harness's environment without MGRPLANE_* variables, so
// that only the flags the harness passes configure the programs.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MGRPLANE_") {
			env = append(env, kv)
		}
	}
	return env
}

// startProc starts bin with args. The goroutine that waits for the process
// ends when the process exits; the cluster kills every process it started
// before it returns from close.
func startProc(name, bin string, args []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open the log of %s: %w", name, err)
	}
	defer f.Close() // the child holds its own descriptor
	fmt.Fprintf(f, "=== %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	p := &proc{name: name, pid: cmd.Process.Pid, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// signal sends sig unless the process has exited.
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s (pid %d) has exited", p.name, p.pid)
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("failed to send %v to %s (pid %d): %w", sig, p.name, p.pid, err)
	}
	return nil
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits at most d for the process to exit.
func (p *proc) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("%s (pid %d) did not exit within %v", p.name, p.pid, d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logTail is how many lines of a process's log an error shows.
const logTail = 10

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killWait bounds the wait for a process to go after SIGKILL.
const killWait = 10 * time.Second

// stop ends the process: SIGCONT (it may be stopped) and sig, then SIGKILL
// when it has not exited after grace. It returns once the process is gone,
// or with an error when even SIGKILL did not end it within killWait.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.signal(syscall.SIGCONT)
	_ = p.signal(sig)
	if p.wait(context.Background(), grace) == nil {
		return nil
	}
	_ = p.signal(syscall.SIGKILL)
	return p.wait(context.Background(), killWait)
}
