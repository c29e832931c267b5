package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// `mgrctl proxy`, as a user runs it in front of the managers: one fixed
// HTTPS address whose /status/ is the active's, before and after `mgrctl
// fail` and after the active is killed, with the active's Mgr-Active-Epoch.
func TestProxyFollowsTheActive(t *testing.T) {
	c := newCluster(t)
	st := c.start("x", "y", "z")
	listen := freeAddr(t)
	p := startProc(t, c.dir, "proxy", bins.mgrctl, "--monitor", c.monAddr, "proxy", "--listen", listen)
	url := "https://" + listen + "/status/"

	through := func(want string) {
		t.Helper()
		waitFor(t, "the proxy to answer as "+want, func() (bool, string) {
			if p.exited() {
				t.Fatalf("mgrctl proxy exited:\n%s", p.tail(logTail))
			}
			a, err := getStatus(url)
			if err != nil {
				return false, err.Error()
			}
			// The active's own answer, stamped with its active epoch.
			return a.code == http.StatusOK && a.body.Name == want && a.activeEpoch == strconv.FormatUint(a.body.ActiveEpoch, 10),
				fmt.Sprintf("%d %s epoch header %q", a.code, a.body.Name, a.activeEpoch)
		})
	}
	through(st.ActiveName)

	c.mustMgrctl("fail", st.ActiveName)
	st2 := c.waitActive(st.ActiveName, 2)
	through(st2.ActiveName)

	c.standbys[st2.ActiveName].kill9(t)
	st3 := c.waitActive(st2.ActiveName, 1)
	through(st3.ActiveName)
}
