package e2e

import (
	"strings"
	"testing"
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

	check := func(addr, service string) string {
		t.Helper()
		r := grpcurl(t, "-plaintext", "-d", `{"service":"`+service+`"}`, addr, "grpc.health.v1.Health/Check")
		if r.code != 0 {
			t.Fatalf("plaintext health check of %q on %s:\n%s", service, addr, r)
		}
		return r.stdout
	}
	waitServing := func(name string) {
		t.Helper()
		waitFor(t, name+"'s health listener to say SERVING and the other's NOT_SERVING", func() (bool, string) {
			on, off := check(health[name], "mgr.v1.ManagerService"), check(health[map[string]string{"a": "b", "b": "a"}[name]], "mgr.v1.ManagerService")
			return strings.Contains(on, `"SERVING"`) && strings.Contains(off, `"NOT_SERVING"`), on + " / " + off
		})
	}
	waitServing(first)
	if out := check(monHealth, ""); !strings.Contains(out, `"SERVING"`) {
		t.Errorf("monsim's plaintext health = %s, want SERVING", out)
	}

	// Only health: no other method, no reflection, on either process.
	for _, addr := range []string{health[first], monHealth} {
		if r := grpcurl(t, "-plaintext", "-d", "{}", addr, "mgr.v1.AdminService/GetStat"); r.code == 0 || !strings.Contains(r.stderr, "Unimplemented") && !strings.Contains(r.stderr, "reflection") {
			t.Errorf("a call other than health on the health listener %s: want it refused:\n%s", addr, r)
		}
		if r := grpcurl(t, "-plaintext", addr, "list"); r.code == 0 {
			t.Errorf("reflection on the health listener %s answered:\n%s", addr, r)
		}
	}

	// A failover moves SERVING to the new active.
	c.mustMgrctl("fail", first)
	c.waitActive(first, 1)
	waitServing(second)
}
