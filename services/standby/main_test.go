package standby

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/testlog"

	"go.uber.org/goleak"

	"github.com/mgrplane/mgrplane/services/standby/internal/montest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig is a config for a manager named name against the fake, with
// servers on free loopback ports and a short beacon period.
func testConfig(t testing.TB, mon *montest.Monitor, name string) Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.Monitors = []string{mon.Addr()}
	cfg.BeaconPeriod = 20 * time.Millisecond
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.ReconnectMin = 5 * time.Millisecond
	cfg.ReconnectMax = 50 * time.Millisecond
	cfg.Logger = testlog.New(t)
	// The fake monitor is plaintext; the real one is tested securely in
	// test/e2e and internal/chaos.
	cfg.Insecure = true
	return cfg
}

// running is a manager whose Run goes on in the background.
type running struct {
	*Standby
	cancel context.CancelFunc
	done   chan error
}

// stop cancels Run and returns its error.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// start makes a manager from cfg and runs it until the test ends.
func start(t testing.TB, cfg Config, modules ...Module) *running {
	t.Helper()
	sb, err := New(cfg, modules...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Standby: sb, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sb.Run(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// eventually polls cond until it holds; it fails the test after a bound.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errTest = errors.New("test error")
