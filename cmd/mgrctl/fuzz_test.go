package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzArgs runs mgrctl on fuzzed command lines (arguments separated by NUL)
// against a monitor address where nothing listens: parsing never panics,
// every outcome is one of the three exit codes, and a usage error is
// reported on stderr with nothing on stdout.
func FuzzArgs(f *testing.F) {
	for _, s := range []string{
		"stat", "dump\x00--epoch\x003", "fail\x00x", "module\x00enable\x00--force\x00dashboard",
		"auth\x00add\x00mgr.q\x00--caps\x00mgr,read", "auth\x00caps\x00client.a\x00root", "auth\x00rotate\x00mgr.x\x00--finish",
		"watch\x00--since\x00-1", "history\x00--limit\x00x", "-o\x00yaml\x00stat", "--entity\x00osd.1\x00stat", "quorum\x00add\x00m2\x00nowhere",
	} {
		f.Add(s)
	}
	dead := deadAddrTB(f)
	f.Fuzz(func(t *testing.T, line string) {
		args := append([]string{"--monitor", dead, "--timeout", "100ms"}, strings.Split(line, "\x00")...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var out, errOut bytes.Buffer
		err := run(ctx, args, envOf(nil), &out, &errOut)
		code := exitCode(err)
		if code != exitOK && code != exitFailure && code != exitUsage {
			t.Fatalf("exit code %d", code)
		}
		var ue *usageError
		if errors.As(err, &ue) && (out.Len() != 0 || !strings.HasPrefix(errOut.String(), "mgrctl: ")) {
			t.Fatalf("usage error %q: stdout %q stderr %q", ue.msg, out.String(), errOut.String())
		}
	})
}
