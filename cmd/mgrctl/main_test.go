package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mgrplane/mgrplane/internal/creds"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// testCreds is a creds dir made once for the package: the fake monitor
// serves TLS with its certificate and runCLI gives it to mgrctl.
var testCreds string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mgrctl-creds")
	if err != nil {
		panic(err)
	}
	testCreds = filepath.Join(dir, "creds")
	if err := creds.Init(testCreds, creds.InitOptions{}); err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	goleak.VerifyTestMain(m)
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

// envOf is a getenv reading only vars, so the tests ignore the real environment.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := vars[k]; ok || k != "MGRPLANE_CREDS" {
			return v
		}
		return testCreds
	}
}

// runCLI runs mgrctl with args and no environment, and returns what it printed.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCLIEnv(t, nil, args...)
}

// runCLIEnv is runCLI with environment variables.
func runCLIEnv(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, envOf(vars), &out, &errOut)
	t.Logf("mgrctl %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out.String(), errOut.String())
	return out.String(), errOut.String(), err
}

// waitFor polls cond until it holds, failing the test after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExitCode(t *testing.T) {
	tests := map[string]struct {
		err  error
		want int
	}{
		"success":        {nil, exitOK},
		"usage":          {&usageError{msg: "missing command"}, exitUsage},
		"wrapped usage":  {errors.Join(errors.New("x"), &usageError{msg: "bad"}), exitUsage},
		"server refused": {status.Error(codes.NotFound, "no manager"), exitFailure},
		"unreachable":    {status.Error(codes.Unavailable, "refused"), exitFailure},
		"other":          {errors.New("write: broken pipe"), exitFailure},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
