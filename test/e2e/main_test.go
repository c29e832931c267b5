package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// binaries are the paths of the real programs the tests drive.
type binaries struct {
	monsim, standby, mgrctl string
	// grpcurl is the binary `go tool grpcurl` runs (go.mod's tool directive).
	grpcurl string
}

// bins is written once by TestMain, before any test runs, and only read
// afterwards; it is empty with -short (the tests then skip).
var bins binaries

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

// build compiles monsim, standby and mgrctl into dir (CGO_ENABLED=0, no race
// detector: the programs are the product as shipped) and finds grpcurl.
func build(dir string) (binaries, error) {
	root, err := moduleRoot()
	if err != nil {
		return binaries{}, err
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("go build ./cmd/... failed: %w\n%s", err, out)
	}
	// `go tool -n grpcurl` builds the tool (cached) and prints its path, so
	// each call below runs `go tool grpcurl` without paying for `go` itself.
	cmd = exec.Command("go", "tool", "-n", "grpcurl")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return binaries{}, fmt.Errorf("go tool -n grpcurl failed: %w\n%s", err, stderr.String())
	}
	b := binaries{
		monsim:  filepath.Join(dir, "monsim"),
		standby: filepath.Join(dir, "standby"),
		mgrctl:  filepath.Join(dir, "mgrctl"),
		grpcurl: strings.TrimSpace(string(out)),
	}
	for _, p := range []string{b.monsim, b.standby, b.mgrctl, b.grpcurl} {
		if _, err := os.Stat(p); err != nil {
			return binaries{}, fmt.Errorf("missing binary: %w", err)
		}
	}
	return b, nil
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD failed: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}
