package quorum

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mgrplane/mgrplane/internal/chaos"
	"github.com/mgrplane/mgrplane/internal/creds"

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

// testCreds is the creds dir every cluster of the package uses, written
// once by TestMain; cleanEnv hands it to every program. Its certificates
// name the namespaces' addresses too (monitors at .10 up, clients at .100).
var testCreds string

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
		if err == nil {
			testCreds = filepath.Join(dir, "creds")
			hosts := []string{netnsSubnet + "100"}
			for i := range 8 {
				hosts = append(hosts, netnsSubnet+strconv.Itoa(10+i))
			}
			err = creds.Init(testCreds, creds.InitOptions{Hosts: hosts, Managers: []string{"a", "b", "c"}})
		}
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

// build compiles monsim, standby and mgrctl into dir, as the chaos harness
// does (CGO_ENABLED=0, no race detector: the programs as shipped).
func build(dir string) (binaries, error) {
	b, err := chaos.BuildBinaries(context.Background(), dir)
	if err != nil {
		return binaries{}, err
	}
	return binaries{monsim: b.Monsim, standby: b.Standby, mgrctl: b.Mgrctl}, nil
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
