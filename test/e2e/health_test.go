package e2e

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// --health-addr, as Kubernetes' grpc probes use it: a plaintext listener
// with gRPC health alone. On a manager mgr.v1.ManagerService is SERVING on
// the active only and follows a failover; monsim says SERVING once it
// leads. Nothing else is answered there: no other method, no reflection.
func TestHealthListenerForProbes(t *testing.T) {
	monHealth := freeAddr(t)
	c := newCluster(t, "--health-addr", monHealth)
	c.startMonitor()
	health := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	for _, n := range []string{"a", "b"} {
		c.startStandby(n, "--health-addr", health[n])
	}
	first := c.waitActive("", 1).ActiveName
	second := map[string]string{"a": "b", "b": "a"}[first]

	// The kubelet's way: the health API directly, plaintext, no reflection.
	check := func(addr, service string) string {
		t.Helper()
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("plaintext health check of %q on %s: %v", service, addr, err)
		}
		return r.GetStatus().String()
	}
	waitServing := func(name string) {
		t.Helper()
		waitFor(t, name+"'s health listener to say SERVING and the other's NOT_SERVING", func() (bool, string) {
			on, off := check(health[name], "mgr.v1.ManagerService"), check(health[map[string]string{"a": "b", "b": "a"}[name]], "mgr.v1.ManagerService")
			return on == "SERVING" && off == "NOT_SERVING", on + " / " + off
		})
	}
	waitServing(first)
	if out := check(monHealth, ""); out != "SERVING" {
		t.Errorf("monsim's plaintext health = %s, want SERVING", out)
	}

	// Only health: no other method, no reflection, on either process.
	for _, addr := range []string{health[first], monHealth} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		_, err = mgrv1.NewAdminServiceClient(conn).GetStat(ctx, &mgrv1.GetStatRequest{})
		_, err2 := mgrv1.NewManagerServiceClient(conn).GetStatus(ctx, &mgrv1.GetStatusRequest{})
		cancel()
		_ = conn.Close()
		if status.Code(err) != codes.Unimplemented || status.Code(err2) != codes.Unimplemented {
			t.Errorf("calls other than health on the health listener %s = %v, %v; want Unimplemented", addr, err, err2)
		}
		if r := grpcurl(t, "-plaintext", addr, "list"); r.code == 0 || !strings.Contains(r.stderr, "reflection") {
			t.Errorf("reflection on the health listener %s: want it refused:\n%s", addr, r)
		}
	}

	// A failover moves SERVING to the new active.
	c.mustMgrctl("fail", first)
	c.waitActive(first, 1)
	waitServing(second)
}
