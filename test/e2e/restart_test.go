package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// TestActiveRestartedOnItsPorts: a supervisor restarts a killed active on
// the same ports before the monitor has noticed the crash. The ports then
// answer, so refusals prove nothing; but the manager answering there says
// it holds another gid, which proves the old process no longer listens
// there, and the monitor promotes at once instead of waiting for the old
// lease (set to 5 s here, so that the lease cannot be what promotes).
func TestActiveRestartedOnItsPorts(t *testing.T) {
	c := newCluster(t, "--fence-timeout", "5s", "--grace", "6s")
	c.startMonitor()
	// x reaches the monitor through a path that reports its death late.
	late := startLateProxy(t, c.monAddr)
	x := c.startStandby("x", "--monitor", late.addr())
	st := c.waitActive("", 0)
	if st.ActiveName != "x" {
		t.Fatalf("active %q, want x (started first)", st.ActiveName)
	}
	c.startStandby("y")
	c.startStandby("z")
	c.waitActive("y", 2)
	c.waitServing("x")

	x.kill9(t)
	c.restartStandby("x", "x-restarted", x)
	// The restarted x joined under a new gid: the map tells the old gid to
	// stop, and it still names it active (the old connection looks alive).
	waitFor(t, "the map to tell the old gid of x to stop", func() (bool, string) {
		out := c.mustMgrctl("history")
		return strings.Contains(out, "x restarted as gid"), out
	})
	if now := c.stat(); now.ActiveName != "x" || now.ActiveGID != st.ActiveGID {
		t.Fatalf("stat before the crash is noticed: %+v, want x with gid %d active", now, st.ActiveGID)
	}

	late.release() // the monitor now sees the old connection close
	st2 := c.waitActive("x", 2)
	c.waitServing(st2.ActiveName)
	want := fmt.Sprintf("promoted %s: active x is gone (its connection closed and a manager with another gid answers at its address)", st2.ActiveName)
	if out := c.mustMgrctl("history"); !strings.Contains(out, want) {
		t.Errorf("mgrctl history has no row %q:\n%s", want, out)
	}
}

// lateProxy forwards TCP connections to a target. When a client ends its
// connection, the proxy closes the target side only once release is called:
// a path (a NAT, a load balancer) that reports a dead peer late.
type lateProxy struct {
	lis      net.Listener
	target   string
	released chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

func startLateProxy(t *testing.T, target string) *lateProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lateProxy{lis: lis, target: target, released: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = lis.Close()
		p.release()
		p.wg.Wait()
	})
	return p
}

func (p *lateProxy) addr() string { return p.lis.Addr().String() }

func (p *lateProxy) release() { p.once.Do(func() { close(p.released) }) }

func (p *lateProxy) serve() {
	defer p.wg.Done()
	for {
		conn, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.pipe(conn)
	}
}

func (p *lateProxy) pipe(client net.Conn) {
	defer p.wg.Done()
	defer func() { _ = client.Close() }()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer func() { _ = up.Close() }()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(client, up)
		_ = client.Close()
	}()
	_, _ = io.Copy(up, client) // until the client's side ends
	<-p.released
}
