package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// maxMapLine bounds one line of `mgrctl -o json watch`.
const maxMapLine = 16 << 20

// MapEvent is one map `mgrctl watch` printed, and when it was read.
type MapEvent struct {
	At            time.Time `json:"at"`
	Epoch         uint64    `json:"epoch"`
	ActiveGID     uint64    `json:"active_gid"`
	ActiveName    string    `json:"active_name"`
	ActiveEpoch   uint64    `json:"active_epoch"`
	Available     bool      `json:"available"`
	ActiveFailing bool      `json:"active_failing"`
	// Standbys are the standbys' names, in the map's order.
	Standbys []string `json:"standbys"`
	Cause    string   `json:"cause"`
	Reason   string   `json:"reason"`
}

// mapEvent turns a map into a MapEvent read at at.
func mapEvent(m *mgrv1.MgrMap, at time.Time) MapEvent {
	e := MapEvent{
		At: at, Epoch: m.GetEpoch(), ActiveGID: m.GetActiveGid(), ActiveName: m.GetActiveName(),
		ActiveEpoch: m.GetActiveEpoch(), Available: m.GetAvailable(), ActiveFailing: m.GetActiveFailing(),
		Cause:  strings.ToLower(strings.TrimPrefix(m.GetCause().String(), "CHANGE_CAUSE_")),
		Reason: m.GetReason(),
	}
	for _, s := range m.GetStandbys() {
		e.Standbys = append(e.Standbys, s.GetName())
	}
	return e
}

// watcher runs `mgrctl -o json watch` and keeps every map it prints.
type watcher struct {
	mgrctl  string
	ctlArgs []string
	logPath string

	mu   sync.Mutex
	maps []MapEvent
}

// newWatcher watches with mgrctl; ctlArgs are its global flags (the
// monitors and credentials).
func newWatcher(mgrctl string, ctlArgs []string, logPath string) *watcher {
	return &watcher{mgrctl: mgrctl, ctlArgs: ctlArgs, logPath: logPath}
}

// Run runs the watch until ctx ends (nil then); it fails when mgrctl ends
// by itself or prints something that is not a map.
func (w *watcher) Run(ctx context.Context) error {
	logf, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open the watch log: %w", err)
	}
	defer logf.Close()
	// CommandContext kills mgrctl when ctx ends, which ends the read below.
	cmd := exec.CommandContext(ctx, w.mgrctl, append(slices.Clone(w.ctlArgs), "-o", "json", "watch")...)
	cmd.Env = childEnv()
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("failed to make the watch's pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start mgrctl watch: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), maxMapLine)
	var perr error
	for sc.Scan() {
		at := time.Now()
		var m mgrv1.MgrMap
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(sc.Bytes(), &m); err != nil {
			perr = fmt.Errorf("mgrctl watch printed something that is not a map: %w: %.200s", err, sc.Text())
			_ = cmd.Process.Kill()
			break
		}
		w.mu.Lock()
		w.maps = append(w.maps, mapEvent(&m, at))
		w.mu.Unlock()
	}
	werr := cmd.Wait()
	switch {
	case perr != nil:
		return perr
	case ctx.Err() != nil:
		return nil
	default:
		return fmt.Errorf("mgrctl watch ended (%v); see %s", werr, w.logPath)
	}
}

// latest is the newest map, and whether there is one.
func (w *watcher) latest() (MapEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.maps) == 0 {
		return MapEvent{}, false
	}
	return w.maps[len(w.maps)-1], true
}

// all returns every map seen so far.
func (w *watcher) all() []MapEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maps[:len(w.maps):len(w.maps)]
}
