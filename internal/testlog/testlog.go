// Package testlog sends a test's hclog output to t.Log, so it shows only
// for failing (or -v) tests and is attributed to the right test.
package testlog

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Writer writes each line it is given to t.Log.
func Writer(t testing.TB) *W { return &W{t: t} }

// W is the io.Writer behind Writer.
type W struct{ t testing.TB }

// Write logs p as one t.Log line.
func (w *W) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// New returns a debug-level logger named after the test that writes to t.Log.
func New(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: Writer(t), Level: hclog.Debug})
}
