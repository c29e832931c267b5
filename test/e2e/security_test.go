package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/creds"
)

// writeKeyring writes one entity's keyring and returns its path.
func writeKeyring(t *testing.T, dir string, e creds.Entity) string {
	t.Helper()
	p := filepath.Join(dir, e.Name+".keyring")
	if err := os.WriteFile(p, creds.FormatKeyring([]creds.Entity{e}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecurityRefusals tries every kind of bad credentials and every limit
// against the real monitor: each gets its status and message, and the map
// does not move.
func TestSecurityRefusals(t *testing.T) {
	c := newCluster(t, "--max-msg-size", "8192", "--max-watches", "2", "--auth-rate", "0.01", "--auth-burst", "8")
	st := c.start("x")
	c.waitServing("x")
	gid, fsid := uint64(st.ActiveGID), st.FSID
	dir := t.TempDir()

	// A read-only entity, made with mgrctl; its keyring comes from auth get.
	c.mustMgrctl("auth", "add", "client.ro", "--caps", "read")
	roKeyring := filepath.Join(dir, "ro.keyring")
	if err := os.WriteFile(roKeyring, []byte(c.mustMgrctl("auth", "get", "client.ro")), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongKey := writeKeyring(t, dir, creds.Entity{Name: "client.admin", Key: creds.NewKey(), Caps: []string{"admin"}})
	unknown := writeKeyring(t, dir, creds.Entity{Name: "client.nobody", Key: creds.NewKey(), Caps: []string{"admin"}})
	before := c.stat()

	bigMeta := map[string]string{}
	for i := range 10 {
		bigMeta[fmt.Sprintf("k%d", i)] = strings.Repeat("v", 1000)
	}
	beacon := func(gid uint64, name string, md map[string]string) string {
		b := fmt.Sprintf(`{"fsid":%q,"gid":"%d","name":%q`, fsid, gid, name)
		if md != nil {
			var kv []string
			for k, v := range md {
				kv = append(kv, fmt.Sprintf("%q:%q", k, v))
			}
			b += `,"metadata":{` + strings.Join(kv, ",") + "}"
		}
		return b + "}"
	}
	mgrctlAs := func(keyring, entity string, args ...string) result {
		return c.mgrctl(append([]string{"--keyring", keyring, "--entity", entity}, args...)...)
	}
	type refusal struct {
		run       func() result
		code, msg string
	}
	for name, tc := range map[string]refusal{
		"no credentials": {func() result {
			return grpcurlAs(t, "", "-d", "{}", c.monAddr, "mgr.v1.AdminService/SetFlags")
		}, "Unauthenticated", "no credentials"},
		"plaintext to the TLS port": {func() result {
			return grpcurl(t, "-plaintext", "-max-time", "5", "-d", "{}", c.monAddr, "mgr.v1.AdminService/GetStat")
		}, "", ""},
		"wrong key":                  {func() result { return mgrctlAs(wrongKey, "client.admin", "set", "down") }, "Unauthenticated", "wrong key for entity client.admin"},
		"unknown entity":             {func() result { return mgrctlAs(unknown, "client.nobody", "set", "down") }, "Unauthenticated", "unknown entity client.nobody"},
		"read key used for admin":    {func() result { return mgrctlAs(roKeyring, "client.ro", "set", "down") }, "PermissionDenied", "entity client.ro has caps [read]"},
		"read key used for auth get": {func() result { return mgrctlAs(roKeyring, "client.ro", "auth", "get", "client.admin") }, "PermissionDenied", "needs admin"},
		"mgr key used for admin": {func() result {
			return grpcurlAs(t, "mgr.x", "-d", `{"who":"x"}`, c.monAddr, "mgr.v1.AdminService/FailManager")
		}, "PermissionDenied", "needs admin"},
		"mgr key for another name": {func() result {
			return grpcurlAs(t, "mgr.y", "-d", `{"name":"x"}`, c.monAddr, "mgr.v1.MonitorService/Authenticate")
		}, "PermissionDenied", `entity mgr.y may act only as manager "y", not "x"`},
		"another manager's gid": {func() result {
			return grpcurlAs(t, "mgr.y", "-d", beacon(gid, "y", nil), c.monAddr, "mgr.v1.MonitorService/Beacon")
		}, "PermissionDenied", fmt.Sprintf("gid %d belongs to entity mgr.x, not mgr.y", gid)},
		"another manager's gid to leave": {func() result {
			return grpcurlAs(t, "client.admin", "-d", beacon(gid, "x", nil), c.monAddr, "mgr.v1.MonitorService/Leave")
		}, "PermissionDenied", fmt.Sprintf("gid %d belongs to entity mgr.x, not client.admin", gid)},
		"oversize message": {func() result {
			return grpcurlAs(t, "mgr.x", "-d", beacon(gid, "x", bigMeta), c.monAddr, "mgr.v1.MonitorService/Beacon")
		}, "ResourceExhausted", "8192"},
	} {
		t.Run(name, func(t *testing.T) {
			r := tc.run()
			if r.code == 0 || !strings.Contains(r.stderr, tc.code) || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("want a non-zero exit with %s and %q:\n%s", tc.code, tc.msg, r)
			}
		})
	}

	t.Run("too many watches", func(t *testing.T) {
		for i := range 2 {
			w := c.startWatch(fmt.Sprintf("watch-%d", i))
			waitFor(t, "watch to print the current map", func() (bool, string) { return strings.HasPrefix(w.out(), "epoch"), w.out() })
		}
		r := c.mgrctl("watch", "--count", "1")
		if r.code != 1 || !strings.Contains(r.stderr, "ResourceExhausted") || !strings.Contains(r.stderr, "at most 2 (--max-watches)") {
			t.Errorf("third watch of client.admin: want exit 1 and ResourceExhausted naming --max-watches:\n%s", r)
		}
		// Another entity has its own count.
		if r := mgrctlAs(roKeyring, "client.ro", "watch", "--count", "1"); r.code != 0 {
			t.Errorf("client.ro's watch: want exit 0:\n%s", r)
		}
	})

	t.Run("authenticate rate limit", func(t *testing.T) {
		var r result
		for range 9 {
			if r = grpcurlAs(t, "mgr.y", "-d", `{"name":"y"}`, c.monAddr, "mgr.v1.MonitorService/Authenticate"); r.code != 0 {
				break
			}
		}
		if !strings.Contains(r.stderr, "ResourceExhausted") || !strings.Contains(r.stderr, "--auth-rate") {
			t.Errorf("want ResourceExhausted naming --auth-rate within the burst:\n%s", r)
		}
	})

	if after := c.stat(); after != before {
		t.Errorf("the refused calls changed the map: before %+v, after %+v", before, after)
	}
	audit := c.mon.log()
	for _, want := range []string{"audit", "client.nobody", "Unauthenticated", "PermissionDenied"} {
		if !strings.Contains(audit, want) {
			t.Errorf("monsim's audit lines lack %q", want)
		}
	}
}

// TestHostileConnections sends the monitor and the active manager what no
// client should: garbage, truncated HTTP/2, plaintext to TLS ports, TLS with
// a foreign CA, a raft stream without a monitor certificate, and TLS to the
// wrong port. Each is refused, and both keep serving everyone else.
func TestHostileConnections(t *testing.T) {
	c := newCluster(t)
	st := c.start("x", "y")
	c.waitServing(st.ActiveName)
	active := c.standbys[st.ActiveName]

	preface := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	for _, addr := range []string{c.monAddr, active.grpcAddr, active.httpAddr} {
		for _, junk := range [][]byte{
			randomBytes(t, 4096),
			preface,                                    // plaintext HTTP/2 to a TLS port
			append(preface, 0, 0, 18, 4, 0, 0, 0),      // a truncated SETTINGS frame
			[]byte("\x16\x03\x01\x02\x00\x01\x00\x01"), // a truncated TLS ClientHello
			[]byte("MGRRAFT\x01garbage after the raft magic"),
		} {
			sendGarbage(t, addr, junk)
		}
	}

	// Raft's magic, then TLS without a monitor certificate: refused.
	conn, err := net.DialTimeout("tcp", c.monAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("MGRRAFT\x01")); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, clientTLS(t))
	err = tc.Handshake()
	if err == nil {
		_, err = tc.Read(make([]byte, 1))
	}
	_ = tc.Close()
	if err == nil {
		t.Error("a raft stream without a monitor certificate was accepted")
	}

	// A client trusting another CA refuses the monitor.
	other := filepath.Join(t.TempDir(), "other")
	if err := creds.Init(other, creds.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := c.mgrctl("--creds", other, "stat"); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("mgrctl trusting another CA: want exit 1 naming the certificate:\n%s", r)
	}
	// mgrctl pointed at the manager's gRPC port: TLS works (same CA), the
	// monitor's service is not there.
	if r := c.mgrctl("--monitor", active.grpcAddr, "stat"); r.code != 1 || !strings.Contains(r.stderr, "Unimplemented") {
		t.Errorf("mgrctl to the manager's port: want exit 1 and Unimplemented:\n%s", r)
	}
	// The manager's HTTPS port speaks TLS only.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + active.httpAddr + "/status/"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the manager answered plain HTTP on its HTTPS port")
		}
	}

	if c.mon.exited() || active.exited() {
		t.Fatal("a server exited")
	}
	after := c.waitActive("", 1)
	if after.ActiveName != st.ActiveName || after.Epoch != st.Epoch {
		t.Errorf("the map moved: before %+v, after %+v", st, after)
	}
	c.waitServing(st.ActiveName)
	listHas(t, c.monAddr, "mgr.v1.MonitorService", "mgr.v1.AdminService")
}

// TestAuthCommands drives mgrctl auth through the real binaries, with a
// key rotation of a running standby that never loses its place.
func TestAuthCommands(t *testing.T) {
	c := newCluster(t)
	c.start("x", "y")
	dir := t.TempDir()

	ls := c.mustMgrctl("auth", "ls")
	for _, want := range []string{"client.admin", "admin", "mgr.x", "mgr,read"} {
		if !strings.Contains(ls, want) {
			t.Errorf("auth ls lacks %q:\n%s", want, ls)
		}
	}
	got := c.mustMgrctl("auth", "get", "mgr.y")
	es, err := creds.ParseKeyring([]byte(got))
	if err != nil || len(es) != 1 || es[0].Name != "mgr.y" {
		t.Fatalf("auth get printed no keyring section: %v\n%s", err, got)
	}
	oldKey := es[0].Key
	if strings.Contains(ls, oldKey) {
		t.Error("auth ls printed a key")
	}
	if r := c.mgrctl("auth", "add", "mgr.y"); r.code != 1 || !strings.Contains(r.stderr, "AlreadyExists") {
		t.Errorf("auth add of an existing entity: want AlreadyExists:\n%s", r)
	}
	if r := c.mgrctl("auth", "caps", "client.admin", "read"); r.code != 1 || !strings.Contains(r.stderr, "no entity with admin caps") {
		t.Errorf("demoting the last admin: want FailedPrecondition:\n%s", r)
	}
	if r := c.mgrctl("auth", "add", "osd.1"); r.code != 2 {
		t.Errorf("auth add osd.1: want a usage error:\n%s", r)
	}

	// Rotate y's key while it runs: it goes on with the old key, restarts
	// with the new one, and after finish only the new one works.
	rotated := c.mustMgrctl("auth", "rotate", "mgr.y")
	newKeyring := filepath.Join(dir, "y.keyring")
	if err := os.WriteFile(newKeyring, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.mustMgrctl("auth", "ls"), "yes") {
		t.Error("auth ls does not show the rotation")
	}
	c.standbys["y"].signal(syscall.SIGTERM)
	c.standbys["y"].wait(t)
	c.startStandby("y", "--keyring", newKeyring)
	c.waitActive("y", 1)
	c.mustMgrctl("auth", "rotate", "mgr.y", "--finish")
	old := writeKeyring(t, dir, creds.Entity{Name: "mgr.y", Key: oldKey, Caps: []string{"mgr", "read"}})
	if r := c.mgrctl("--keyring", old, "--entity", "mgr.y", "stat"); r.code != 1 || !strings.Contains(r.stderr, "wrong key for entity mgr.y") {
		t.Errorf("the old key after finish: want Unauthenticated:\n%s", r)
	}
	if r := c.mgrctl("--keyring", newKeyring, "--entity", "mgr.y", "stat"); r.code != 0 {
		t.Errorf("the new key after finish:\n%s", r)
	}
	// y still beacons: it stays a standby through a few graces.
	time.Sleep(2 * time.Second)
	if st := c.waitActive("y", 1); st.NumStandbys != 1 {
		t.Errorf("y left the map after the rotation: %+v", st)
	}
	c.mustMgrctl("auth", "add", "client.gone")
	c.mustMgrctl("auth", "rm", "client.gone")
	if r := c.mgrctl("auth", "get", "client.gone"); r.code != 1 || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("auth get of a removed entity: want NotFound:\n%s", r)
	}
}
