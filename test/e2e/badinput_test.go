package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestBadInput sends the real monitor requests it must refuse, through
// grpcurl, mgrctl and a raw TCP connection: each gets the right code, and
// the map does not change.
func TestBadInput(t *testing.T) {
	c := newCluster(t, "--history", "3")
	c.start("x")
	c.waitServing("x")
	// Push epoch 1 out of the three kept maps.
	c.mustMgrctl("set", "down")
	c.mustMgrctl("unset", "down")
	c.waitActive("", 0)
	c.waitServing("x")
	waitFor(t, "epoch 1 to be trimmed", func() (bool, string) {
		h := c.history()
		return h.OldestEpoch > 1, fmt.Sprintf("oldest kept epoch %d", h.OldestEpoch)
	})
	before := c.stat()
	gid := uint64(before.ActiveGID)
	fsid := before.FSID

	beacon := func(fsid string, gid uint64, name string, md map[string]string) string {
		b, err := json.Marshal(map[string]any{"fsid": fsid, "gid": fmt.Sprint(gid), "name": name, "metadata": md})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	bigValue := map[string]string{"big": strings.Repeat("v", 1025)}
	manyKeys := map[string]string{}
	for i := range 65 {
		manyKeys[fmt.Sprintf("k%d", i)] = "v"
	}

	// Managers' calls are made as mgr.x (the active's own entity), the rest
	// as client.admin: each case reaches the check it is about.
	for name, tc := range map[string]struct {
		method, body string
		code, msg    string
		entity       string
	}{
		"beacon with a wrong fsid": {
			"mgr.v1.MonitorService/Beacon", beacon("not-this-cluster", gid, "x", nil),
			"FailedPrecondition", "not-this-cluster", "mgr.x",
		},
		"beacon with a gid never issued": {
			"mgr.v1.MonitorService/Beacon", beacon(fsid, 999999, "x", nil),
			"NotFound", "999999", "mgr.x",
		},
		"beacon with another manager's gid": {
			"mgr.v1.MonitorService/Beacon", beacon(fsid, gid, "y", nil),
			"PermissionDenied", fmt.Sprintf("gid %d belongs to entity mgr.x, not mgr.y", gid), "mgr.y",
		},
		"beacon under another manager's name": {
			"mgr.v1.MonitorService/Beacon", beacon(fsid, gid, "x", nil),
			"PermissionDenied", "entity mgr.y may act only as manager \"y\", not \"x\"", "mgr.y",
		},
		"beacon with an oversize metadata value": {
			"mgr.v1.MonitorService/Beacon", beacon(fsid, gid, "x", bigValue),
			"InvalidArgument", "1024", "mgr.x",
		},
		"beacon with too many metadata keys": {
			"mgr.v1.MonitorService/Beacon", beacon(fsid, gid, "x", manyKeys),
			"InvalidArgument", "64", "mgr.x",
		},
		"beacon without a gid": {
			"mgr.v1.MonitorService/Beacon", fmt.Sprintf(`{"fsid":%q,"name":"x"}`, fsid),
			"InvalidArgument", "gid", "mgr.x",
		},
		"authenticate with a bad name": {
			"mgr.v1.MonitorService/Authenticate", `{"name":"no spaces allowed"}`,
			"InvalidArgument", "name", "client.admin",
		},
		"authenticate with a wrong fsid": {
			"mgr.v1.MonitorService/Authenticate", `{"fsid":"not-this-cluster","name":"x"}`,
			"FailedPrecondition", "fsid", "client.admin",
		},
		"leave with a gid never issued": {
			"mgr.v1.MonitorService/Leave", fmt.Sprintf(`{"fsid":%q,"gid":"999999","name":"x"}`, fsid),
			"NotFound", "999999", "mgr.x",
		},
		"fail with an oversize argument": {
			"mgr.v1.AdminService/FailManager", fmt.Sprintf(`{"who":%q}`, strings.Repeat("a", 65)),
			"InvalidArgument", "64", "client.admin",
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := grpcurlAs(t, tc.entity, "-d", tc.body, c.monAddr, tc.method)
			if r.code == 0 || !strings.Contains(r.stderr, "Code: "+tc.code) || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("want a non-zero exit, Code: %s and %q in the message:\n%s", tc.code, tc.msg, r)
			}
		})
	}

	t.Run("dump of a trimmed epoch", func(t *testing.T) {
		r := c.mgrctl("dump", "--epoch", "1")
		if r.code != 1 || !strings.Contains(r.stderr, "OutOfRange") || !strings.Contains(r.stderr, "oldest kept epoch") {
			t.Errorf("want exit 1 and OutOfRange naming the oldest kept epoch:\n%s", r)
		}
	})
	t.Run("garbage bytes", func(t *testing.T) {
		for _, junk := range [][]byte{
			randomBytes(t, 4096),
			[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
			append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), randomBytes(t, 1024)...),
		} {
			sendGarbage(t, c.monAddr, junk)
		}
		if c.mon.exited() {
			t.Fatalf("monsim exited after garbage bytes")
		}
		listHas(t, c.monAddr, "mgr.v1.MonitorService", "mgr.v1.AdminService")
	})

	after := c.stat()
	if after != before {
		t.Errorf("the bad requests changed the map: stat before %+v, after %+v", before, after)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sendGarbage writes junk to addr and reads until the server closes the
// connection (or a deadline passes: a server may also just wait).
func sendGarbage(t *testing.T, addr string, junk []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(junk); err != nil {
		t.Logf("writing garbage to %s: %v (the server may have closed first)", addr, err)
	}
	// The server closes (or resets) the connection; either is fine.
	_, _ = io.Copy(io.Discard, conn)
}
