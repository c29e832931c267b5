package creds

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeyringRoundTrip(t *testing.T) {
	in := []Entity{
		{Name: "mgr.x", Key: NewKey(), Caps: []string{CapMgr}},
		{Name: "client.admin", Key: NewKey(), Caps: []string{CapAdmin}},
		{Name: "client.ro", Key: NewKey(), Caps: []string{CapMgr, CapRead}},
	}
	out, err := ParseKeyring(FormatKeyring(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].Name != "client.admin" || out[1].Name != "client.ro" || out[2].Name != "mgr.x" {
		t.Fatalf("got %+v", out)
	}
	for _, e := range out {
		want, _ := Find(in, e.Name)
		if e.Key != want.Key || strings.Join(e.Caps, ",") != strings.Join(want.Caps, ",") {
			t.Errorf("%s: got %+v, want %+v", e.Name, e, want)
		}
	}
}

func TestParseKeyringRefuses(t *testing.T) {
	key := NewKey()
	tests := map[string]struct {
		in   string
		want string
	}{
		"setting before section": {"key = " + key, "before any [entity]"},
		"unterminated header":    {"[client.admin\n", "must end with ]"},
		"bad entity type":        {"[osd.1]\nkey = " + key + "\ncaps mgrplane = \"admin\"", "must be mgr.ID or client.ID"},
		"bad entity id":          {"[mgr.-x]\nkey = " + key + "\ncaps mgrplane = \"admin\"", "the id must be"},
		"no key":                 {"[client.a]\ncaps mgrplane = \"admin\"", "no key"},
		"no caps":                {"[client.a]\nkey = " + key, "no caps"},
		"key not base64":         {"[client.a]\nkey = !!!", "not base64"},
		"key too short":          {"[client.a]\nkey = AAAA", "must be 16 to 64"},
		"two keys":               {"[client.a]\nkey = " + key + "\nkey = " + key, "two keys"},
		"unknown cap":            {"[client.a]\nkey = " + key + "\ncaps mgrplane = \"root\"", "must be mgr, read or admin"},
		"cap twice":              {"[client.a]\nkey = " + key + "\ncaps mgrplane = \"read, read\"", "listed twice"},
		"ceph caps":              {"[client.a]\nkey = " + key + "\ncaps mon = \"allow *\"", "only caps mgrplane"},
		"unknown setting":        {"[client.a]\nauid = 0", "unknown setting"},
		"no equals":              {"[client.a]\nkey", "must be [entity]"},
		"entity twice":           {"[client.a]\nkey = " + key + "\ncaps mgrplane = \"admin\"\n[client.a]\n", "listed twice"},
		"quote inside":           {"[client.a]\nkey = " + key + "\ncaps mgrplane = \"ad\"min\"", "quotes"},
		"too big":                {strings.Repeat("#", MaxKeyringSize+1), "at most"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseKeyring([]byte(tc.in))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

func TestToken(t *testing.T) {
	key, other := NewKey(), NewKey()
	now := time.Now()
	tok, err := MakeToken("mgr.x", key, now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Entity != "mgr.x" || !p.Verify(key) || p.Verify(other) || p.Fresh(now) != nil {
		t.Fatalf("token %q: entity %q verify %v/%v", tok, p.Entity, p.Verify(key), p.Verify(other))
	}
	if p.Fresh(now.Add(MaxTokenSkew+time.Second)) == nil || p.Fresh(now.Add(-MaxTokenSkew-time.Second)) == nil {
		t.Fatal("a token outside the skew was fresh")
	}
	// Changing the entity (to claim another's identity) breaks the MAC.
	forged, _ := ParseToken(strings.Replace(tok, "mgr.x", "mgr.y", 1))
	if forged.Verify(key) {
		t.Fatal("a token renamed to another entity verified")
	}
	for _, bad := range []string{"", "v1", "v2:mgr.x:1:a:b", "v1:mgr.x:-1:a:b", "v1:mgr.x:01:a:b", "v1:bad:1:a:b", strings.Repeat("v", MaxTokenLen+1)} {
		if _, err := ParseToken(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseToken(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestInitAndHandshakes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	if err := Init(dir, InitOptions{Hosts: []string{"mon.example"}, Managers: []string{"x", "y"}}); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, InitOptions{}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second init: %v", err)
	}
	for _, f := range []string{CAKeyFile, MonKeyFile, MgrKeyFile, KeyringFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
	mon, err := LoadMonitor(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(mon.Keyring) != 3 {
		t.Fatalf("keyring: %+v", mon.Keyring)
	}
	mgr, err := LoadManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ClientTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A client verifies the monitor and the manager by name.
	if err := handshake(t, mon.TLS, withName(client, "localhost")); err != nil {
		t.Errorf("client to monitor: %v", err)
	}
	if err := handshake(t, mgr.TLS, withName(client, "mon.example")); err != nil {
		t.Errorf("client to manager: %v", err)
	}
	if err := handshake(t, mon.TLS, withName(client, "elsewhere.example")); err == nil {
		t.Error("a name outside the certificate was accepted")
	}
	// Raft accepts monitors only.
	if err := handshake(t, mon.RaftServerTLS, mon.PeerTLS); err != nil {
		t.Errorf("monitor to monitor raft: %v", err)
	}
	if err := handshake(t, mon.RaftServerTLS, withName(client, "localhost")); err == nil {
		t.Error("raft accepted a client without a certificate")
	}
	// A monitor dialing a manager's port refuses it: it is not a monitor.
	if err := handshake(t, mgr.TLS, mon.PeerTLS); err == nil {
		t.Error("a monitor accepted a manager's certificate as a monitor's")
	}
	// Another cluster's CA is refused.
	other := filepath.Join(t.TempDir(), "other")
	if err := Init(other, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	otherMon, _ := LoadMonitor(other)
	if err := handshake(t, mon.RaftServerTLS, otherMon.PeerTLS); err == nil {
		t.Error("raft accepted another cluster's monitor")
	}
}

func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	mgr, err := LoadManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := mgr.TLS.GetCertificate(nil)
	if err := Issue(dir, MgrCertFile, MgrKeyFile, MgrCN, []string{"new.example"}); err != nil {
		t.Fatal(err)
	}
	second, _ := mgr.TLS.GetCertificate(nil)
	if string(first.Certificate[0]) == string(second.Certificate[0]) {
		t.Fatal("a replaced certificate was not reloaded")
	}
	client, _ := ClientTLS(dir)
	if err := handshake(t, mgr.TLS, withName(client, "new.example")); err != nil {
		t.Fatalf("handshake with the new certificate: %v", err)
	}
}

func withName(c *tls.Config, name string) *tls.Config {
	c = c.Clone()
	c.ServerName = name
	return c
}

// handshake runs one TLS handshake over loopback and returns the client's
// error (or the server's, when only it failed).
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, server)
		errc <- s.Handshake()
		_ = s.Close()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(conn, client)
	cerr := c.Handshake()
	if cerr == nil {
		// TLS 1.3: the server verifies the client after the client is done;
		// a refusal arrives as an alert on the first read.
		_, cerr = c.Read(make([]byte, 1))
		if cerr != nil && strings.Contains(cerr.Error(), "EOF") {
			cerr = nil
		}
	}
	_ = c.Close()
	serr := <-errc
	if cerr != nil {
		return cerr
	}
	return serr
}
