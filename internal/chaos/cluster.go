package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
)

// Timings of the cluster's housekeeping. None is measured: they bound waits.
const (
	// cmdTimeout bounds one mgrctl, `monsim -h` or admin call.
	cmdTimeout = 10 * time.Second
	// buildTimeout bounds `go build`.
	buildTimeout = 5 * time.Minute
	// monitorUpTimeout bounds the wait for a new monsim to answer.
	monitorUpTimeout = 30 * time.Second
	// pollInterval is the pause between two looks at a slow condition.
	pollInterval = 100 * time.Millisecond
	// exitTimeout bounds the wait for a process to exit after a signal that
	// should end it (SIGTERM, SIGKILL).
	exitTimeout = 15 * time.Second
	// stopGrace is how long close gives a process after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
)

// Binaries are the paths of the programs the harness runs.
type Binaries struct {
	Monsim  string
	Standby string
	Mgrctl  string
}

// BinariesIn names monsim, standby and mgrctl in dir, and checks that each
// is there.
func BinariesIn(dir string) (Binaries, error) {
	b := Binaries{
		Monsim:  filepath.Join(dir, "monsim"),
		Standby: filepath.Join(dir, "standby"),
		Mgrctl:  filepath.Join(dir, "mgrctl"),
	}
	for _, p := range []string{b.Monsim, b.Standby, b.Mgrctl} {
		if _, err := os.Stat(p); err != nil {
			return Binaries{}, fmt.Errorf("missing binary: %w", err)
		}
	}
	return b, nil
}

// BuildBinaries compiles monsim, standby and mgrctl of the Go module that
// holds the working directory into dir (CGO_ENABLED=0, as shipped).
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("failed to run go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return Binaries{}, errors.New("failed to find the module: the working directory is not inside a Go module")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/monsim", "./cmd/standby", "./cmd/mgrctl")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build failed: %w\n%s", err, out)
	}
	return BinariesIn(dir)
}

// hasFlag reports whether bin's -h output lists --name.
func hasFlag(ctx context.Context, bin, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h")
	cmd.Env = childEnv()
	out, _ := cmd.CombinedOutput() // -h may exit 0 or 2
	if ctx.Err() != nil {
		return false, fmt.Errorf("%s -h did not finish within %v", bin, cmdTimeout)
	}
	return bytes.Contains(out, []byte("-"+name+" ")) || bytes.Contains(out, []byte("-"+name+"\n")), nil
}

// member is one standby daemon: its name and listen addresses stay, its
// process changes on every restart.
type member struct {
	name     string
	grpcAddr string
	httpAddr string
	args     []string
	p        *proc
	starts   int
}

// monitor is one monsim: its id, address and data stay, its process
// changes on every restart.
type monitor struct {
	id      string
	addr    string
	args    []string
	logPath string
	p       *proc
	// conn is a client of this monitor alone (its AdminService).
	conn *grpc.ClientConn
}

// cluster is one monsim (or a quorum of three) and its standby daemons,
// every one a child process.
type cluster struct {
	cfg    Config
	bins   Binaries
	log    hclog.Logger
	logDir string
	mons   []*monitor
	// monAddrs is every monitor's address, comma-separated, as standby and
	// mgrctl take --monitor.
	monAddrs string
	members  map[string]*member
	// fenceFlag is set when monsim has --fence-timeout.
	fenceFlag bool
	// credsDir is the cluster's creds dir (CA, certificates, keyring with
	// client.admin and mgr.NAME for every manager); empty when the binaries
	// predate credentials (then everything is plaintext).
	credsDir string
	// client authenticates the harness's own calls as client.admin.
	client *creds.Client
}

// ctlArgs are mgrctl's global flags for this cluster.
func (c *cluster) ctlArgs() []string {
	args := []string{"--monitor", c.monAddrs}
	if c.credsDir != "" {
		args = append(args, "--creds", c.credsDir)
	}
	return args
}

// dialOptions are the harness's credentials for calls to the monitors.
func (c *cluster) dialOptions() []grpc.DialOption {
	if c.client == nil {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return c.client.DialOptions()
}

// chaosLimits raise the monitors' per-peer rate limits: every manager runs
// on 127.0.0.1, and the faults make them authenticate again and again.
var chaosLimits = []string{"--auth-rate", "1000", "--auth-burst", "1000", "--beacon-rate", "10000", "--beacon-burst", "10000"}

// freeAddrs returns n distinct 127.0.0.1 addresses whose ports were free a
// moment ago.
func freeAddrs(n int) ([]string, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("failed to find a free port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// startCluster starts monsim, waits until it answers, then starts the
// standbys. On error, whatever started is stopped.
func startCluster(ctx context.Context, cfg Config, bins Binaries, log hclog.Logger) (_ *cluster, err error) {
	c := &cluster{cfg: cfg, bins: bins, log: log, logDir: cfg.logDir(), members: map[string]*member{}}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to make the log directory: %w", err)
	}
	n := cfg.Monitors
	addrs, err := freeAddrs(n + 2*len(cfg.Managers))
	if err != nil {
		return nil, err
	}
	timings := []string{"--beacon-period", cfg.BeaconPeriod.String(), "--grace", cfg.Grace.String(), "--tick", cfg.Tick.String()}
	if c.fenceFlag, err = hasFlag(ctx, bins.Monsim, "fence-timeout"); err != nil {
		return nil, err
	}
	switch {
	case cfg.FenceTimeout > 0 && c.fenceFlag:
		timings = append(timings, "--fence-timeout", cfg.FenceTimeout.String())
	case cfg.FenceTimeout > 0:
		log.Warn("monsim has no --fence-timeout flag; running without it", "fence_timeout", cfg.FenceTimeout)
	}
	secure, err := hasFlag(ctx, bins.Monsim, "creds")
	if err != nil {
		return nil, err
	}
	if secure {
		c.credsDir = filepath.Join(cfg.Dir, "creds")
		if !creds.Exists(c.credsDir) {
			if err := creds.Init(c.credsDir, creds.InitOptions{Managers: cfg.Managers}); err != nil {
				return nil, err
			}
		}
		if c.client, err = creds.LoadClient(c.credsDir, "", "client.admin"); err != nil {
			return nil, err
		}
		timings = append(append(timings, "--creds", c.credsDir), chaosLimits...)
	}
	peers := make([]string, n)
	for i := range n {
		peers[i] = fmt.Sprintf("m%d=%s", i+1, addrs[i])
	}
	c.monAddrs = strings.Join(addrs[:n], ",")
	for i := range n {
		m := &monitor{id: fmt.Sprintf("m%d", i+1), addr: addrs[i]}
		dataDir, logName := filepath.Join(cfg.Dir, "monsim"), "monsim.log"
		m.args = []string{"--addr", m.addr}
		if n > 1 {
			dataDir, logName = filepath.Join(cfg.Dir, "monsim-"+m.id), "monsim-"+m.id+".log"
			m.args = append(m.args, "--id", m.id, "--peers", strings.Join(peers, ","))
		}
		m.args = append(append(m.args, "--data-dir", dataDir), timings...)
		m.logPath = filepath.Join(c.logDir, logName)
		// A monitor killed and started again answers on the same address:
		// reconnect quickly (gRPC's default backoff grows to two minutes).
		m.conn, err = grpc.NewClient(m.addr, append(c.dialOptions(),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: monitorBackoff, MinConnectTimeout: quorumCallTimeout}))...)
		if err != nil {
			return nil, fmt.Errorf("failed to make a client of monitor %s: %w", m.id, err)
		}
		c.mons = append(c.mons, m)
		if err := c.startMonitor(i); err != nil {
			return nil, err
		}
	}
	if err := c.waitMonitor(ctx); err != nil {
		return nil, err
	}
	for i, name := range cfg.Managers {
		m := &member{name: name, grpcAddr: addrs[n+2*i], httpAddr: addrs[n+1+2*i]}
		m.args = []string{
			"--name", name, "--monitor", c.monAddrs, "--grpc-addr", m.grpcAddr, "--http-addr", m.httpAddr,
			"--beacon-period", cfg.BeaconPeriod.String(),
		}
		if c.credsDir != "" {
			m.args = append(m.args, "--creds", c.credsDir)
		}
		c.members[name] = m
		if err := c.startMember(name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// startMonitor starts (or starts again) monitor i on its address and data.
func (c *cluster) startMonitor(i int) error {
	m := c.mons[i]
	if m.p != nil && !m.p.exited() {
		return fmt.Errorf("monitor %s is still running (pid %d)", m.id, m.p.pid)
	}
	p, err := startProc("monsim-"+m.id, c.bins.Monsim, m.args, m.logPath)
	if err != nil {
		return err
	}
	m.p = p
	return nil
}

// waitMonitor waits until `mgrctl stat` answers (through any monitor).
func (c *cluster) waitMonitor(ctx context.Context) error {
	deadline := time.Now().Add(monitorUpTimeout)
	for {
		for _, m := range c.mons {
			if m.p.exited() {
				return fmt.Errorf("monsim %s exited at start (%v); see %s:\n%s", m.id, m.p.waitErr, m.logPath, m.p.tail(logTail))
			}
		}
		_, err := c.mgrctl(ctx, "stat")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("monsim did not answer mgrctl stat within %v: %w", monitorUpTimeout, err)
		}
		if !sleepCtx(ctx, pollInterval) {
			return ctx.Err()
		}
	}
}

// mgrctl runs mgrctl against the monitor and returns its stdout.
func (c *cluster) mgrctl(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bins.Mgrctl, slices.Concat(c.ctlArgs(), []string{"--timeout", "5s"}, args)...)
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("mgrctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// startMember starts (or starts again) the standby daemon name.
func (c *cluster) startMember(name string) error {
	m := c.members[name]
	if m.p != nil && !m.p.exited() {
		return fmt.Errorf("%s is still running (pid %d)", name, m.p.pid)
	}
	p, err := startProc(name, c.bins.Standby, m.args, filepath.Join(c.logDir, name+".log"))
	if err != nil {
		return err
	}
	m.p = p
	m.starts++
	return nil
}

// signal sends sig to the standby daemon name.
func (c *cluster) signal(name string, sig syscall.Signal) error {
	m, ok := c.members[name]
	if !ok || m.p == nil {
		return fmt.Errorf("no process for manager %q", name)
	}
	return m.p.signal(sig)
}

// waitExit waits for the standby daemon name to exit; after exitTimeout it
// is killed.
func (c *cluster) waitExit(ctx context.Context, name string) error {
	p := c.members[name].p
	err := p.wait(ctx, exitTimeout)
	if err == nil || ctx.Err() != nil {
		return err
	}
	c.log.Warn("a manager did not exit; killing it", "mgr", name, "pid", p.pid, "error", err)
	_ = p.signal(syscall.SIGKILL)
	return p.wait(ctx, exitTimeout)
}

// alive reports whether every daemon runs.
func (c *cluster) alive() error {
	for _, m := range c.mons {
		if m.p.exited() {
			return fmt.Errorf("monsim %s exited (%v); see %s", m.id, m.p.waitErr, m.logPath)
		}
	}
	for _, n := range c.cfg.Managers {
		if p := c.members[n].p; p.exited() {
			return fmt.Errorf("manager %s exited (%v); see %s", n, p.waitErr, p.logPath)
		}
	}
	return nil
}

// fail asks the monitors to fail the manager gid (what `mgrctl fail GID`
// does): each in turn while they answer Unavailable (not the leader).
func (c *cluster) fail(ctx context.Context, gid uint64) error {
	var err error
	for _, m := range c.mons {
		cctx, cancel := context.WithTimeout(ctx, cmdTimeout)
		_, err = mgrv1.NewAdminServiceClient(m.conn).FailManager(cctx, &mgrv1.FailManagerRequest{Who: strconv.FormatUint(gid, 10)})
		cancel()
		if status.Code(err) != codes.Unavailable {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("failed to fail gid %d: %w", gid, err)
	}
	return nil
}

// targets are the managers' addresses for the prober, in config order.
func (c *cluster) targets() []Target {
	ts := make([]Target, 0, len(c.cfg.Managers))
	for _, n := range c.cfg.Managers {
		m := c.members[n]
		t := Target{Name: n, GRPCAddr: m.grpcAddr, HTTPAddr: m.httpAddr}
		if c.client != nil {
			t.TLS = c.client.TLS()
		}
		ts = append(ts, t)
	}
	return ts
}

// close stops the standbys, then monsim; each gets SIGCONT and SIGTERM,
// then SIGKILL after stopGrace.
func (c *cluster) close() {
	for _, n := range c.cfg.Managers {
		if m := c.members[n]; m != nil && m.p != nil {
			if err := m.p.stop(syscall.SIGTERM, stopGrace); err != nil {
				c.log.Error("failed to stop a manager", "mgr", n, "error", err)
			}
		}
	}
	for _, m := range c.mons {
		if m.p != nil {
			if err := m.p.stop(syscall.SIGTERM, stopGrace); err != nil {
				c.log.Error("failed to stop monsim", "monitor", m.id, "error", err)
			}
		}
		_ = m.conn.Close()
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
