package quorum

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// How the test places its processes and cuts the leader off.
const (
	// netnsPrefix starts the name of every network namespace the test makes,
	// followed by the test process's pid.
	netnsPrefix = "mgrq"
	// netnsSubnet is the address block inside the test's namespaces; no
	// namespace has a route anywhere else.
	netnsSubnet = "10.213.0."
	// netnsMonPort is where every monitor listens inside its namespace.
	netnsMonPort = 6789
	// netnsClientPortBase is the first port standbys listen on inside the
	// client namespace.
	netnsClientPortBase = 7000
	// envNet forces the loopback network ("loopback") even as root.
	envNet = "MGRPLANE_QUORUM_NET"
	// ipTimeout bounds one `ip` command.
	ipTimeout = 10 * time.Second
)

// network is where the test's processes run and how a monitor is cut off.
type network interface {
	// describe says how a partition is made, for the test log.
	describe() string
	// monAddr is monitor n's address (n from 1), the same across restarts.
	monAddr(n int) string
	// clientAddr is a fresh address for a standby's listener.
	clientAddr(t *testing.T) string
	// command runs bin with args in the place of who: "m<n>" for monitor
	// n, "c" for every client (standbys, mgrctl).
	command(ctx context.Context, who, bin string, args ...string) *exec.Cmd
	// isolate cuts monitor n (running as p) off from every other process;
	// heal undoes it.
	isolate(t *testing.T, n int, p *proc)
	heal(t *testing.T, n int, p *proc)
}

// newNetwork makes the network namespaces when run as root (and envNet does
// not ask for loopback), or else falls back to loopback; the test log says
// which.
func newNetwork(t *testing.T, monitors int) network {
	t.Helper()
	reason := ""
	switch {
	case os.Getenv(envNet) == "loopback":
		reason = envNet + "=loopback"
	case os.Geteuid() != 0:
		reason = "not root"
	default:
		n, err := newNetns(t, monitors)
		if err == nil {
			t.Logf("partition method: network namespaces (%s): the leader's link is cut; no route leaves the test's namespaces", n.prefix)
			return n
		}
		reason = err.Error()
	}
	t.Logf("partition method: loopback with SIGSTOP of the leader (network namespaces not used: %s)", reason)
	return newLoopback(t, monitors)
}

// loopback runs everything on 127.0.0.1; isolating a monitor stops it.
type loopback struct {
	addrs []string
}

func newLoopback(t *testing.T, monitors int) *loopback {
	l := &loopback{}
	for range monitors {
		l.addrs = append(l.addrs, freeAddr(t))
	}
	return l
}

func (l *loopback) describe() string { return "loopback, SIGSTOP of the isolated monitor" }

func (l *loopback) monAddr(n int) string { return l.addrs[n-1] }

func (l *loopback) clientAddr(t *testing.T) string { return freeAddr(t) }

func (l *loopback) command(ctx context.Context, _, bin string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, bin, args...)
}

func (l *loopback) isolate(t *testing.T, n int, p *proc) { freeze(t, n, p) }

func (l *loopback) heal(t *testing.T, n int, p *proc) { thaw(t, n, p) }

// freeze stops monitor n's process (SIGSTOP): it keeps its sockets, and the
// kernel keeps accepting connections and queueing data for it, but it
// answers nothing, as a host that hangs; thaw lets it go on (SIGCONT).
func freeze(_ *testing.T, _ int, p *proc) { p.signal(syscall.SIGSTOP) }

func thaw(_ *testing.T, _ int, p *proc) { p.signal(syscall.SIGCONT) }

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("failed to close the probe listener: %v", err)
	}
	return addr
}

// netns puts each monitor and the clients in network namespaces of their
// own, joined by veth pairs to a bridge in a hub namespace. Isolating a
// monitor sets its link down in the hub. Nothing has a route out of
// netnsSubnet, and no namespace the test did not make is touched.
type netns struct {
	prefix     string
	nextClient int
}

// nsName is the namespace of who ("h" for the hub).
func (n *netns) nsName(who string) string { return n.prefix + who }

// hubLink is the hub side of who's veth pair (at most 15 bytes).
func (n *netns) hubLink(who string) string {
	return "mq" + strings.TrimPrefix(n.prefix, netnsPrefix) + who
}

// ip runs `ip args`.
func ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func newNetns(t *testing.T, monitors int) (*netns, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("no ip command: %w", err)
	}
	n := &netns{prefix: netnsPrefix + strconv.Itoa(os.Getpid())}
	whos := []string{"c"}
	for i := 1; i <= monitors; i++ {
		whos = append(whos, "m"+strconv.Itoa(i))
	}
	var made []string
	cleanup := func() {
		for _, ns := range made {
			if err := ip("netns", "del", ns); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	}
	hub := n.nsName("h")
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
	}
	for i, who := range whos {
		ns, link := n.nsName(who), n.hubLink(who)
		host := 100 // the clients
		if who != "c" {
			host = 10 + i
		}
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			// Both ends are made inside the test's namespaces.
			[]string{"-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", link, "netns", hub},
			[]string{"-n", ns, "addr", "add", netnsSubnet + strconv.Itoa(host) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", hub, "link", "set", link, "master", "br0"},
			[]string{"-n", hub, "link", "set", link, "up"},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			cleanup()
			return nil, err
		}
		if len(s) == 3 && s[0] == "netns" && s[1] == "add" {
			made = append(made, s[2])
		}
	}
	t.Cleanup(cleanup)
	// Every link must come up.
	for _, who := range whos {
		if err := n.linkUp(who); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// monHost is monitor i's address without the port.
func (n *netns) monHost(i int) string { return netnsSubnet + strconv.Itoa(10+i) }

// linkUp waits until who's link is up (its carrier comes when both ends are).
func (n *netns) linkUp(who string) error {
	path := "/sys/class/net/eth0/operstate"
	var got string
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", n.nsName(who), "cat", path).Output()
		cancel()
		if err != nil {
			return fmt.Errorf("ip netns exec %s cat %s: %w", n.nsName(who), path, err)
		}
		if got = strings.TrimSpace(string(out)); got == "up" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the link of %s stays %q", n.nsName(who), got)
}

func (n *netns) describe() string { return "network namespaces, the isolated monitor's link set down" }

func (n *netns) monAddr(i int) string {
	return net.JoinHostPort(n.monHost(i), strconv.Itoa(netnsMonPort))
}

func (n *netns) clientAddr(*testing.T) string {
	n.nextClient++
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(netnsClientPortBase+n.nextClient))
}

// command runs bin inside who's namespace; `ip netns exec` execs bin, so the
// process is bin itself and signals reach it.
func (n *netns) command(ctx context.Context, who, bin string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.nsName(who), bin}, args...)...)
}

func (n *netns) isolate(t *testing.T, i int, _ *proc) {
	t.Helper()
	if err := ip("-n", n.nsName("h"), "link", "set", n.hubLink("m"+strconv.Itoa(i)), "down"); err != nil {
		t.Fatalf("isolate m%d: %v", i, err)
	}
}

func (n *netns) heal(t *testing.T, i int, _ *proc) {
	t.Helper()
	if err := ip("-n", n.nsName("h"), "link", "set", n.hubLink("m"+strconv.Itoa(i)), "up"); err != nil {
		t.Fatalf("heal m%d: %v", i, err)
	}
}

// removeStaleNamespaces deletes the namespaces of earlier runs of this test
// whose process is gone (a run killed before its cleanup). Only names with
// netnsPrefix and a dead pid are touched.
func removeStaleNamespaces() {
	if os.Geteuid() != 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], netnsPrefix) {
			continue
		}
		rest := strings.TrimPrefix(f[0], netnsPrefix)
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end <= 0 {
			continue
		}
		pid, err := strconv.Atoi(rest[:end])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // that run is still going
		}
		_ = ip("netns", "del", f[0])
	}
}
