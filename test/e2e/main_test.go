package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mgrplane/mgrplane/internal/chaos"
	"github.com/mgrplane/mgrplane/internal/creds"

	"go.uber.org/goleak"
)

// binaries are the paths of the real programs the tests drive.
type binaries struct {
	monsim, standby, mgrctl string
	// counter is examples/counter: a program embedding the library with
	// its own module.
	counter string
	// grpcurl is the binary `go tool grpcurl` runs (go.mod's tool directive).
	grpcurl string
}

// bins is written once by TestMain, before any test runs, and only read
// afterwards; it is empty with -short (the tests then skip).
var bins binaries

// testCreds is the creds dir every cluster of the package uses (one CA, a
// keyring with client.admin and mgr.NAME for the managers the tests run),
// written once by TestMain; cleanEnv hands it to every program.
var testCreds string

// testTLS trusts testCreds' CA: HTTPS to the managers and monsim's metrics.
var testTLS *tls.Config

// testManagers get an entity mgr.NAME (caps mgr, read) in the keyring.
var testManagers = []string{"a", "b", "c", "w", "x", "y", "z", "early", "c1", "c2", "lb"}

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() {
		var err error
		dir, err = os.MkdirTemp("", "mgrplane-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(1)
		}
		bins, err = build(dir)
		if err == nil {
			testCreds = filepath.Join(dir, "creds")
			err = creds.Init(testCreds, creds.InitOptions{Managers: testManagers})
		}
		if err == nil {
			testTLS, err = creds.ClientTLS(testCreds)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines leaked:", err)
			code = 1
		}
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// build compiles monsim, standby, mgrctl and examples/counter into dir, as the chaos harness
// does (CGO_ENABLED=0, no race detector: the programs as shipped), and finds
// grpcurl.
func build(dir string) (binaries, error) {
	cb, err := chaos.BuildBinaries(context.Background(), dir)
	if err != nil {
		return binaries{}, err
	}
	// `go tool -n grpcurl` builds the tool (cached) and prints its path, so
	// each call below runs `go tool grpcurl` without paying for `go` itself.
	cmd := exec.Command("go", "tool", "-n", "grpcurl")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return binaries{}, fmt.Errorf("go tool -n grpcurl failed: %w\n%s", err, stderr.String())
	}
	counter := filepath.Join(dir, "counter")
	cmd = exec.Command("go", "build", "-o", counter, "github.com/mgrplane/mgrplane/examples/counter")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("go build examples/counter failed: %w\n%s", err, out)
	}
	b := binaries{monsim: cb.Monsim, standby: cb.Standby, mgrctl: cb.Mgrctl, counter: counter, grpcurl: strings.TrimSpace(string(out))}
	if _, err := os.Stat(b.grpcurl); err != nil {
		return binaries{}, fmt.Errorf("missing binary: %w", err)
	}
	return b, nil
}
