package quorum

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

// binaries are the paths of the real programs the tests drive.
type binaries struct {
	monsim, standby, mgrctl string
}

// bins is written once by TestMain, before any test runs, and only read
// afterwards; it is empty with -short (the end-to-end tests then skip).
var bins binaries

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() {
		var err error
		dir, err = os.MkdirTemp("", "mgrplane-quorum-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "quorum:", err)
			os.Exit(1)
		}
		bins, err = build(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "quorum:", err)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
		removeStaleNamespaces()
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "quorum: goroutines leaked:", err)
			code = 1
		}
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// build compiles monsim, standby and mgrctl into dir (CGO_ENABLED=0, no race
// detector: the programs are the product as shipped).
func build(dir string) (binaries, error) {
	root, err := moduleRoot()
	if err != nil {
		return binaries{}, err
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/monsim", "./cmd/standby", "./cmd/mgrctl")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("go build failed: %w\n%s", err, out)
	}
	b := binaries{
		monsim:  filepath.Join(dir, "monsim"),
		standby: filepath.Join(dir, "standby"),
		mgrctl:  filepath.Join(dir, "mgrctl"),
	}
	for _, p := range []string{b.monsim, b.standby, b.mgrctl} {
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

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTestLogger is a logger writing to t.Log.
func newTestLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})
}
