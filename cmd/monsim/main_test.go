package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/internal/testlog"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestRunRefusesBadFlagsAndEnv(t *testing.T) {
	tests := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"unknown flag":      {args: []string{"--nope"}, want: "flag provided but not defined"},
		"stray argument":    {args: []string{"extra"}, want: `unexpected argument "extra"`},
		"bad duration env":  {env: map[string]string{"MGRPLANE_GRACE": "soon"}, want: "MGRPLANE_GRACE"},
		"grace too short":   {args: []string{"--grace", "1s", "--beacon-period", "1s"}, want: "must exceed fence timeout"},
		"bad log level":     {args: []string{"--log-level", "loud"}, want: "--log-level"},
		"bad address":       {args: []string{"--addr", "nowhere"}, want: "must be host:port"},
		"history too large": {args: []string{"--history", "0"}, want: "history 0"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"--data-dir", t.TempDir()}, tc.args...)
			err := run(context.Background(), args, env(tc.env), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRunPrintsVersionAndIgnoresVersionEnv(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, env(nil), &out, &out); err != nil || !strings.HasPrefix(out.String(), "monsim ") {
		t.Fatalf("--version: %v %q", err, out.String())
	}
}

func TestRunServesUntilCancelledAndTakesEnv(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testlog.Buffer{}
	done := make(chan error, 1)
	dir := t.TempDir()
	go func() {
		done <- run(ctx, nil, env(map[string]string{
			"MGRPLANE_ADDR": "127.0.0.1:0", "MGRPLANE_DATA_DIR": dir, "MGRPLANE_FSID": "env-fsid",
			"MGRPLANE_VERSION": "1", "MGRPLANE_LOG_JSON": "true",
		}), &bytes.Buffer{}, logs)
	}()
	// The listen address is logged; read it from the JSON log line.
	var addr string
	deadline := time.Now().Add(20 * time.Second)
	for addr == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		addr = findAddr(logs.String())
	}
	if addr == "" {
		cancel()
		<-done
		t.Fatalf("no listen address logged: %s", logs.String())
	}
	// The creds dir was made on first start, in the data dir.
	cc, err := creds.LoadClient(filepath.Join(dir, "creds"), "", "client.admin")
	if err != nil {
		cancel()
		<-done
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, cc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Plaintext is refused: the port speaks TLS only.
	plain, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, perr := mgrv1.NewAdminServiceClient(plain).GetStat(pctx, &mgrv1.GetStatRequest{})
	pcancel()
	if status.Code(perr) != codes.Unavailable && status.Code(perr) != codes.DeadlineExceeded {
		t.Errorf("plaintext GetStat: %v, want Unavailable", perr)
	}
	admin := mgrv1.NewAdminServiceClient(conn)
	var fsid string
	for time.Now().Before(deadline) {
		if r, err := admin.GetStat(context.Background(), &mgrv1.GetStatRequest{}); err == nil {
			fsid = r.GetFsid()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	if fsid != "env-fsid" {
		t.Fatalf("fsid %q, want the one from MGRPLANE_FSID", fsid)
	}
}

func findAddr(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "monitor listening") {
			i := strings.Index(line, `"addr":"`)
			if i >= 0 {
				rest := line[i+len(`"addr":"`):]
				return rest[:strings.Index(rest, `"`)]
			}
		}
	}
	return ""
}

func TestCredsInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"creds", "init", "--dir", dir, "--host", "mon1.example,10.0.0.1", "--mgr", "x,y"}, env(nil), &out, &out); err != nil {
		t.Fatalf("creds init: %v\n%s", err, out.String())
	}
	es, err := creds.ReadKeyring(filepath.Join(dir, creds.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name+"="+strings.Join(e.Caps, ","))
	}
	if got := strings.Join(names, " "); got != "client.admin=admin mgr.x=mgr,read mgr.y=mgr,read" {
		t.Errorf("keyring entities %q", got)
	}
	before, err := os.ReadFile(filepath.Join(dir, creds.MgrCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"creds", "issue", "--dir", dir, "--cert", "mgr", "--host", "mgr2.example"}, env(nil), &out, &out); err != nil {
		t.Fatalf("creds issue: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, creds.MgrCertFile)); string(after) == string(before) {
		t.Error("creds issue did not replace mgr.crt")
	}
	// --exist-ok keeps a whole creds dir as it is (a bootstrap step run on
	// every start), and still refuses a partial one.
	keyring, _ := os.ReadFile(filepath.Join(dir, creds.KeyringFile))
	out.Reset()
	if err := run(context.Background(), []string{"creds", "init", "--dir", dir, "--exist-ok", "--mgr", "z"}, env(nil), &out, &out); err != nil {
		t.Fatalf("creds init --exist-ok on a whole dir: %v", err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, creds.KeyringFile)); string(again) != string(keyring) || !strings.Contains(out.String(), "kept the credentials") {
		t.Errorf("creds init --exist-ok changed the keyring or did not say it kept it: %q", out.String())
	}
	partial := t.TempDir()
	if err := os.WriteFile(filepath.Join(partial, creds.CACertFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args []string
		want string
	}{
		"again":       {[]string{"creds", "init", "--dir", dir}, "refusing to overwrite"},
		"partial":     {[]string{"creds", "init", "--dir", partial, "--exist-ok"}, "refusing to overwrite"},
		"no dir":      {[]string{"creds", "init"}, "usage: monsim creds init"},
		"no init":     {[]string{"creds"}, "usage: monsim creds init"},
		"bad manager": {[]string{"creds", "init", "--dir", t.TempDir(), "--mgr", "-x"}, "--mgr"},
		"issue what":  {[]string{"creds", "issue", "--dir", dir, "--cert", "ca"}, "monsim creds issue"},
		"issue no CA": {[]string{"creds", "issue", "--dir", t.TempDir(), "--cert", "mgr"}, "no such file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), tc.args, env(nil), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want %q", tc.args, err, tc.want)
			}
		})
	}
}
