package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/testlog"
)

// printedEpochs reads the epochs of watch's output, table or JSON lines.
func printedEpochs(t *testing.T, out, format string) []uint64 {
	t.Helper()
	var epochs []uint64
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		if format == formatJSON {
			var m mgrv1.MgrMap
			if err := protojson.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("line %q is not a map: %v", line, err)
			}
			epochs = append(epochs, m.GetEpoch())
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "epoch" {
			t.Fatalf("line %q does not start with epoch N", line)
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		epochs = append(epochs, n)
	}
	return epochs
}

// span is the epochs from..to.
func span(from, to uint64) []uint64 {
	var s []uint64
	for e := from; e <= to; e++ {
		s = append(s, e)
	}
	return s
}

// startWatch runs mgrctl in the background; the returned channel gets run's
// error. The run is interrupted and awaited at cleanup.
func startWatch(t *testing.T, args ...string) (out, errOut *testlog.Buffer, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out, errOut = &testlog.Buffer{}, &testlog.Buffer{}
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ch <- run(ctx, args, envOf(nil), out, errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(20 * time.Second):
			t.Error("watch did not stop after cancel")
		}
	})
	return out, errOut, cancel, ch
}

// await returns run's error, failing the test if it does not come in time.
func await(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end")
		return nil
	}
}

func TestWatchLine(t *testing.T) {
	maps := cannedMaps()
	down := nextMap(maps[3], mgrv1.ChangeCause_CHANGE_CAUSE_SILENT, "")
	down.ActiveGid, down.ActiveName, down.Available, down.Standbys, down.Down = 0, "", false, nil, true
	tests := map[string]struct {
		m    *mgrv1.MgrMap
		want string
	}{
		"no active": {maps[0], "epoch 1 active - available=false standbys=[] bootstrap: cluster created"},
		"promoted":  {maps[1], "epoch 2 active x(3) available=false standbys=[] promoted: promoted x: no active"},
		"standbys":  {maps[3], "epoch 4 active x(3) available=true standbys=[y(4) z(5)] active-updated: x is available"},
		"down":      {down, "epoch 5 active - available=false standbys=[] down=true silent"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := watchLine(tc.m); got != tc.want {
				t.Errorf("watchLine = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWatchResume(t *testing.T) {
	for _, format := range []string{formatTable, formatJSON} {
		t.Run(format, func(t *testing.T) {
			f := newFake(t)
			f.addMaps(4) // epochs 1..8
			f.watchSteps = []watchStep{
				{send: 2, err: status.Error(codes.Unavailable, "monitor restarting")},
				{send: 1, err: status.Error(codes.ResourceExhausted, "watcher too slow: 1000 maps behind")},
			}
			addr, _ := startFake(t, f, "")
			out, errOut, err := runCLI(t, "--monitor", addr, "-o", format, "watch", "--since", "1", "--count", "7")
			if err != nil {
				t.Fatalf("run: %v (stderr %q)", err, errOut)
			}
			if got := printedEpochs(t, out, format); !slices.Equal(got, span(2, 8)) {
				t.Errorf("printed epochs %v, want %v", got, span(2, 8))
			}
			if got, want := f.sinces(), []uint64{1, 3, 4}; !slices.Equal(got, want) {
				t.Errorf("since_epoch of the calls = %v, want %v", got, want)
			}
			if !strings.Contains(errOut, "resuming") {
				t.Errorf("stderr does not mention the reconnection: %q", errOut)
			}
		})
	}
}

func TestWatchFromCurrent(t *testing.T) {
	f := newFake(t)
	addr, _ := startFake(t, f, "")
	out, _, err := runCLI(t, "--monitor", addr, "watch", "--count", "1")
	if err != nil {
		t.Fatal(err)
	}
	want := "epoch 4 active x(3) available=true standbys=[y(4) z(5)] active-updated: x is available\n"
	if out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	if got := f.sinces(); !slices.Equal(got, []uint64{0}) {
		t.Errorf("since_epoch = %v, want [0]", got)
	}
}

func TestWatchInterrupt(t *testing.T) {
	f := newFake(t)
	addr, _ := startFake(t, f, "")
	out, errOut, cancel, done := startWatch(t, "--monitor", addr, "watch", "--since", "2")
	waitFor(t, "epoch 4", func() bool { return strings.Contains(out.String(), "epoch 4 ") })
	cancel()
	if err := await(t, done); err != nil || exitCode(err) != exitOK {
		t.Fatalf("interrupted watch: err = %v, want nil", err)
	}
	if got := printedEpochs(t, out.String(), formatTable); !slices.Equal(got, span(3, 4)) {
		t.Errorf("printed epochs %v, want [3 4]", got)
	}
	if errOut.String() != "" {
		t.Errorf("stderr = %q", errOut.String())
	}
}

func TestWatchMonitorRestart(t *testing.T) {
	f := newFake(t)
	addr, srv := startFake(t, f, "")
	out, errOut, _, done := startWatch(t, "--monitor", addr, "watch", "--since", "1", "--count", "5")
	waitFor(t, "epoch 4", func() bool { return strings.Contains(out.String(), "epoch 4 ") })

	srv.Stop() // the monitor goes away: the stream breaks with Unavailable
	f.addMaps(2)
	startFake(t, f, addr) // and comes back on the same address with two more maps

	if err := await(t, done); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, errOut.String())
	}
	if got := printedEpochs(t, out.String(), formatTable); !slices.Equal(got, span(2, 6)) {
		t.Errorf("printed epochs %v, want %v", got, span(2, 6))
	}
	sinces := f.sinces()
	if len(sinces) < 2 || sinces[0] != 1 {
		t.Fatalf("since_epoch of the calls = %v, want 1 then 4", sinces)
	}
	for _, s := range sinces[1:] {
		if s != 4 {
			t.Errorf("since_epoch of the calls = %v, want 1 then 4", sinces)
		}
	}
}

func TestWatchFailover(t *testing.T) {
	// The first monitor dies mid-stream; the watch resumes on the second.
	a, b := newFake(t), newFake(t)
	b.addMaps(2)
	a.watchSteps = []watchStep{{send: 1, err: status.Error(codes.Unavailable, "shutting down")}}
	addrA, _ := startFake(t, a, "")
	addrB, _ := startFake(t, b, "")
	out, _, err := runCLI(t, "--monitor", addrA+","+addrB, "watch", "--since", "2", "--count", "4")
	if err != nil {
		t.Fatal(err)
	}
	if got := printedEpochs(t, out, formatTable); !slices.Equal(got, span(3, 6)) {
		t.Errorf("printed epochs %v, want %v", got, span(3, 6))
	}
	if got := a.sinces(); !slices.Equal(got, []uint64{2}) {
		t.Errorf("first monitor since_epoch = %v, want [2]", got)
	}
	if got := b.sinces(); !slices.Equal(got, []uint64{3}) {
		t.Errorf("second monitor since_epoch = %v, want [3]", got)
	}
}

func TestWatchErrors(t *testing.T) {
	t.Run("trimmed", func(t *testing.T) {
		f := newFake(t)
		f.maps = f.maps[2:] // keeps epochs 3 and 4
		addr, _ := startFake(t, f, "")
		_, errOut, err := runCLI(t, "--monitor", addr, "watch", "--since", "1")
		if status.Code(err) != codes.OutOfRange || exitCode(err) != exitFailure {
			t.Fatalf("err = %v, want OutOfRange", err)
		}
		if want := "mgrctl: OutOfRange: since_epoch 1 is trimmed: the oldest kept epoch is 3\n"; errOut != want {
			t.Errorf("stderr = %q, want %q", errOut, want)
		}
	})
	t.Run("no monitor", func(t *testing.T) {
		_, errOut, err := runCLI(t, "--monitor", deadAddr(t), "watch")
		if status.Code(err) != codes.Unavailable || exitCode(err) != exitFailure {
			t.Fatalf("err = %v, want Unavailable", err)
		}
		if !strings.HasPrefix(errOut, "mgrctl: Unavailable: ") {
			t.Errorf("stderr = %q", errOut)
		}
	})
	t.Run("refused before any map", func(t *testing.T) {
		f := newFake(t)
		f.watchSteps = []watchStep{{send: 0, err: status.Error(codes.PermissionDenied, "client.x lacks the read cap")}}
		addr, _ := startFake(t, f, "")
		_, errOut, err := runCLI(t, "--monitor", addr, "watch")
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("err = %v, want PermissionDenied", err)
		}
		if want := "mgrctl: PermissionDenied: client.x lacks the read cap\n"; errOut != want {
			t.Errorf("stderr = %q, want %q", errOut, want)
		}
	})
}
