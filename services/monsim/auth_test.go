package monsim

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/internal/testlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Secure test monitors: a creds dir per test with client.admin (admin),
// client.ro (read), mgr.x and mgr.y (mgr).

// secureConfig is testConfig with credentials.
func secureConfig(t testing.TB) Config {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "creds")
	if err := creds.Init(dir, creds.InitOptions{Managers: []string{"x", "y"}}); err != nil {
		t.Fatal(err)
	}
	es, err := creds.ReadKeyring(filepath.Join(dir, creds.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	es = append(es, creds.Entity{Name: "client.ro", Key: creds.NewKey(), Caps: []string{creds.CapRead}})
	if err := creds.WriteFile(filepath.Join(dir, creds.KeyringFile), creds.FormatKeyring(es), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Insecure = false
	if cfg.Creds, err = creds.LoadMonitor(dir); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// clientOptions dials cfg's monitor as entity: plaintext for an insecure
// monitor, else TLS with the entity's token.
func clientOptions(t testing.TB, cfg Config, entity string) []grpc.DialOption {
	t.Helper()
	if cfg.Insecure {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	e, ok := creds.Find(cfg.Creds.Keyring, entity)
	if !ok {
		t.Fatalf("entity %s is not in the test keyring", entity)
	}
	return clientWithKey(t, cfg, entity, e.Key)
}

func clientWithKey(t testing.TB, cfg Config, entity, key string) []grpc.DialOption {
	t.Helper()
	c, err := creds.NewClient(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: cfg.Creds.CAPool}, entity, key)
	if err != nil {
		t.Fatal(err)
	}
	return c.DialOptions()
}

// clients are a monitor's services for one caller.
type clients struct {
	mon   mgrv1.MonitorServiceClient
	admin mgrv1.AdminServiceClient
}

func dialAs(t testing.TB, addr string, opts ...grpc.DialOption) clients {
	t.Helper()
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return clients{mgrv1.NewMonitorServiceClient(conn), mgrv1.NewAdminServiceClient(conn)}
}

func TestEveryMethodClassified(t *testing.T) {
	tm := startMonitor(t, secureConfig(t))
	n := 0
	for svc, info := range tm.srv.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if _, ok := methodAccess[full]; !ok {
				t.Errorf("%s is served but not in methodAccess: decide who may call it", full)
			}
			n++
		}
	}
	if n < 20 {
		t.Fatalf("only %d methods registered", n)
	}
}

// TestGuard calls the secure monitor with every kind of bad credentials and
// checks the code, the message and that the epoch did not move.
func TestGuard(t *testing.T) {
	cfg := secureConfig(t)
	cfg.MaxWatches = 2
	cfg.AuthRate, cfg.AuthBurst = 0.001, 3
	tm := startMonitor(t, cfg)
	ctx := context.Background()
	addr := tm.srv.Addr()
	admin := dialAs(t, addr, clientOptions(t, cfg, "client.admin")...)
	x := dialAs(t, addr, clientOptions(t, cfg, "mgr.x")...)
	y := dialAs(t, addr, clientOptions(t, cfg, "mgr.y")...)
	ro := dialAs(t, addr, clientOptions(t, cfg, "client.ro")...)
	ax, err := x.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	fsid := ax.GetFsid()
	if _, err := x.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: ax.GetGid(), Name: "x"}); err != nil {
		t.Fatal(err)
	}
	epoch := tm.current(t).GetEpoch()
	plain := dialAs(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	tlsOnly := dialAs(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: cfg.Creds.CAPool})))
	wrongKey := dialAs(t, addr, clientWithKey(t, cfg, "client.admin", creds.NewKey())...)
	unknown := dialAs(t, addr, clientWithKey(t, cfg, "client.nobody", creds.NewKey())...)
	setDown := func(c clients) error {
		_, err := c.admin.SetFlags(ctx, &mgrv1.SetFlagsRequest{Down: true})
		return err
	}
	tests := map[string]struct {
		call func() error
		code codes.Code
		msg  string
	}{
		"plaintext":          {func() error { return setDown(plain) }, codes.Unavailable, ""},
		"no credentials":     {func() error { return setDown(tlsOnly) }, codes.Unauthenticated, "no credentials"},
		"wrong key":          {func() error { return setDown(wrongKey) }, codes.Unauthenticated, "wrong key for entity client.admin"},
		"unknown entity":     {func() error { return setDown(unknown) }, codes.Unauthenticated, "unknown entity client.nobody"},
		"read key for admin": {func() error { return setDown(ro) }, codes.PermissionDenied, "entity client.ro has caps [read]; /mgr.v1.AdminService/SetFlags needs admin"},
		"mgr key for admin":  {func() error { return setDown(x) }, codes.PermissionDenied, "needs admin"},
		"mgr key for read": {func() error {
			_, err := x.admin.GetMap(ctx, &mgrv1.GetMapRequest{})
			return err
		}, codes.OK, ""},
		"read key to authenticate": {func() error {
			_, err := ro.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "ro"})
			return err
		}, codes.PermissionDenied, "needs mgr (as its own name) or admin"},
		"mgr key for another name": {func() error {
			_, err := y.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "x"})
			return err
		}, codes.PermissionDenied, `entity mgr.y may act only as manager "y", not "x"`},
		"another manager's gid": {func() error {
			_, err := y.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: ax.GetGid(), Name: "y"})
			return err
		}, codes.PermissionDenied, "belongs to entity mgr.x, not mgr.y"},
		"admin with a manager's gid": {func() error {
			_, err := admin.mon.Leave(ctx, &mgrv1.LeaveRequest{Fsid: fsid, Gid: ax.GetGid(), Name: "x"})
			return err
		}, codes.PermissionDenied, "belongs to entity mgr.x, not client.admin"},
		"watch with another manager's gid": {func() error {
			s, err := y.mon.WatchMap(ctx, &mgrv1.WatchMapRequest{Gid: ax.GetGid(), Name: "y"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.PermissionDenied, "belongs to entity mgr.x"},
		"a client reporting a stream closed (monitors only)": {func() error {
			_, err := admin.mon.ReportStreamClosed(ctx, &mgrv1.ReportStreamClosedRequest{Gid: ax.GetGid()})
			return err
		}, codes.PermissionDenied, "needs a monitor's certificate"},
		"oversize message": {func() error {
			_, err := x.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: fsid, Gid: ax.GetGid(), Name: "x",
				Metadata: map[string]string{"big": strings.Repeat("v", DefaultMaxMsgSize)}})
			return err
		}, codes.ResourceExhausted, "larger than max"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v, want %v with %q", err, tc.code, tc.msg)
			}
			if e := tm.current(t).GetEpoch(); e != epoch {
				t.Fatalf("epoch moved from %d to %d", epoch, e)
			}
		})
	}

	t.Run("too many watches", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for range cfg.MaxWatches {
			s, err := ro.mon.WatchMap(wctx, &mgrv1.WatchMapRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		s, err := ro.mon.WatchMap(wctx, &mgrv1.WatchMapRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "at most 2 (--max-watches)") {
			t.Fatalf("third watch: %v, want ResourceExhausted naming --max-watches", err)
		}
		// Another entity is not counted against client.ro.
		s, err = x.mon.WatchMap(wctx, &mgrv1.WatchMapRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		if err != nil {
			t.Fatalf("mgr.x's watch: %v", err)
		}
	})

	t.Run("authenticate rate limit", func(t *testing.T) {
		// The burst (3) is shared by every Authenticate from 127.0.0.1,
		// refused ones included: the limit comes before any other check.
		var err error
		for i := 0; i <= cfg.AuthBurst && err == nil; i++ {
			_, err = y.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "y"})
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--auth-rate") {
			t.Fatalf("got %v, want ResourceExhausted naming --auth-rate", err)
		}
		epoch := tm.current(t).GetEpoch()
		if _, err := y.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "y"}); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("got %v, want ResourceExhausted", err)
		}
		if e := tm.current(t).GetEpoch(); e != epoch {
			t.Fatalf("a refused authenticate moved the epoch from %d to %d", epoch, e)
		}
	})
}

func TestAuthRPCs(t *testing.T) {
	var logs testlog.Buffer
	cfg := secureConfig(t)
	cfg.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	srv, err := New(cfg, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Trace}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	admin := dialAs(t, srv.Addr(), clientOptions(t, cfg, "client.admin")...)
	waitFor(t, func() bool {
		_, err := admin.admin.GetStat(ctx, &mgrv1.GetStatRequest{})
		return err == nil
	})
	var secrets []string
	for _, e := range cfg.Creds.Keyring {
		secrets = append(secrets, e.Key)
	}

	add, err := admin.admin.AddAuth(ctx, &mgrv1.AddAuthRequest{Name: "mgr.z", Caps: []string{"mgr"}})
	if err != nil {
		t.Fatal(err)
	}
	key := add.GetEntity().GetKey()
	secrets = append(secrets, key)
	if _, err := admin.admin.AddAuth(ctx, &mgrv1.AddAuthRequest{Name: "mgr.z", Caps: []string{"mgr"}}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second add: %v, want AlreadyExists", err)
	}
	z := dialAs(t, srv.Addr(), clientWithKey(t, cfg, "mgr.z", key)...)
	if _, err := z.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "z"}); err != nil {
		t.Fatalf("the new entity authenticates: %v", err)
	}

	// Rotation: both keys work until finish, then only the new one.
	rot, err := admin.admin.RotateAuth(ctx, &mgrv1.RotateAuthRequest{Name: "mgr.z"})
	if err != nil {
		t.Fatal(err)
	}
	newKey := rot.GetEntity().GetPendingKey()
	secrets = append(secrets, newKey)
	if newKey == "" || rot.GetEntity().GetKey() != key {
		t.Fatalf("rotate: %+v", rot.GetEntity())
	}
	z2 := dialAs(t, srv.Addr(), clientWithKey(t, cfg, "mgr.z", newKey)...)
	for name, c := range map[string]clients{"old key": z, "new key": z2} {
		if _, err := c.admin.GetStat(ctx, &mgrv1.GetStatRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s during rotation: %v, want PermissionDenied (caps mgr only): it authenticated", name, err)
		}
	}
	ls, err := admin.admin.ListAuth(ctx, &mgrv1.ListAuthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ls.GetEntities() {
		names = append(names, e.GetName())
		if e.GetName() == "mgr.z" && !e.GetRotating() {
			t.Errorf("ls does not say mgr.z is rotating")
		}
	}
	if got := strings.Join(names, " "); got != "client.admin client.ro mgr.x mgr.y mgr.z" {
		t.Errorf("ls = %q", got)
	}
	if _, err := admin.admin.RotateAuth(ctx, &mgrv1.RotateAuthRequest{Name: "mgr.z", Finish: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := z.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "z"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("old key after finish: %v, want Unauthenticated", err)
	}
	if _, err := z2.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "z"}); err != nil {
		t.Fatalf("new key after finish: %v", err)
	}
	if _, err := admin.admin.RotateAuth(ctx, &mgrv1.RotateAuthRequest{Name: "mgr.z", Finish: true}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("finish without rotation: %v, want FailedPrecondition", err)
	}

	// Caps and removal; the last admin stays.
	if _, err := admin.admin.SetAuthCaps(ctx, &mgrv1.SetAuthCapsRequest{Name: "client.ro", Caps: []string{"root"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad caps: %v", err)
	}
	if _, err := admin.admin.SetAuthCaps(ctx, &mgrv1.SetAuthCapsRequest{Name: "client.admin", Caps: []string{"read"}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("demoting the last admin: %v, want FailedPrecondition", err)
	}
	if _, err := admin.admin.RemoveAuth(ctx, &mgrv1.RemoveAuthRequest{Name: "client.admin"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("removing the last admin: %v, want FailedPrecondition", err)
	}
	if _, err := admin.admin.RemoveAuth(ctx, &mgrv1.RemoveAuthRequest{Name: "mgr.z"}); err != nil {
		t.Fatal(err)
	}
	if _, err := z2.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: "z"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("removed entity: %v, want Unauthenticated", err)
	}
	if _, err := admin.admin.GetAuth(ctx, &mgrv1.GetAuthRequest{Name: "mgr.z"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get of a removed entity: %v, want NotFound", err)
	}
	if _, err := admin.admin.GetAuth(ctx, &mgrv1.GetAuthRequest{Name: "nope"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("get of a bad name: %v, want InvalidArgument", err)
	}

	// The map never carries keys; neither do the logs nor the audit log.
	m, err := admin.admin.GetMap(ctx, &mgrv1.GetMapRequest{})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := os.ReadFile(cfg.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		for what, text := range map[string]string{"map": m.String(), "log": logs.String(), "audit log": string(audit)} {
			if strings.Contains(text, s) {
				t.Errorf("a key appears in the %s", what)
			}
		}
	}
	for _, want := range []string{`"entity":"client.admin"`, `"method":"/mgr.v1.AdminService/RemoveAuth"`, `"result":"FailedPrecondition"`, `"entity":"mgr.z"`, `"result":"Unauthenticated"`} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("audit log lacks %s:\n%s", want, audit)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
