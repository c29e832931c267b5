package standby

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/dashboard"
	"github.com/mgrplane/mgrplane/services/standby/internal/montest"
)

// watchModule records the epochs its Run reads from Host.Watch.
type watchModule struct {
	mu     sync.Mutex
	epochs []uint64
	// first is each Run's first epoch, with the host's map at that moment.
	first []uint64
	runs  int
}

func (*watchModule) Name() string       { return "watcher" }
func (*watchModule) CanRun() error      { return nil }
func (*watchModule) Register(Registrar) {}

func (w *watchModule) Run(ctx context.Context, h Host) error {
	w.mu.Lock()
	w.runs++
	w.mu.Unlock()
	firstOfRun := true
	for m := range h.Watch(ctx) {
		w.mu.Lock()
		if firstOfRun {
			w.first = append(w.first, m.GetEpoch())
			firstOfRun = false
		}
		w.epochs = append(w.epochs, m.GetEpoch())
		w.mu.Unlock()
	}
	return nil
}

func (w *watchModule) seen() (epochs, first []uint64, runs int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]uint64{}, w.epochs...), append([]uint64{}, w.first...), w.runs
}

func TestHostWatchGivesTheNewestMapThenEachNew(t *testing.T) {
	mon := montest.Start(t)
	w := &watchModule{}
	r := start(t, testConfig(t, mon, "x"), w)
	waitActive(t, mon, r)
	mon.SetModules("watcher")
	enabledAt := mon.Map().GetEpoch()
	eventually(t, "the module reads its first map", func() bool {
		_, first, _ := w.seen()
		return len(first) == 1
	})
	if _, first, _ := w.seen(); first[0] < enabledAt {
		t.Fatalf("first map epoch %d, older than the map %d that enabled the module", first[0], enabledAt)
	}
	y := mon.AddStandby("y")
	want := mon.Map().GetEpoch()
	eventually(t, "the module reads the map with standby y", func() bool {
		epochs, _, _ := w.seen()
		return epochs[len(epochs)-1] == want
	})
	epochs, _, _ := w.seen()
	for i := 1; i < len(epochs); i++ {
		if epochs[i] <= epochs[i-1] {
			t.Fatalf("epochs not increasing: %v", epochs)
		}
	}
	if r.Map().GetStandbys()[0].GetGid() != y {
		t.Fatalf("host map %v", r.Map())
	}
	// Disabled: Run's ctx ends, the watch channel closes, Run returns.
	mon.SetModules()
	eventually(t, "the module stops", func() bool { return len(r.role.Running()) == 1 })

	// A watch outside any module ends when the manager's Run returns.
	ch := r.role.Watch(context.Background())
	if m := <-ch; m.GetEpoch() != mon.Map().GetEpoch() {
		t.Fatalf("watch gave epoch %d, newest is %d", m.GetEpoch(), mon.Map().GetEpoch())
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	for range ch {
	}
}

func TestHostMonitorsFailsWhileNotRunning(t *testing.T) {
	mon := montest.Start(t)
	sb, err := New(testConfig(t, mon, "x"))
	if err != nil {
		t.Fatal(err)
	}
	h := host{s: sb}
	_, err = mgrv1.NewAdminServiceClient(h.Monitors()).ListBeacons(context.Background(), &mgrv1.ListBeaconsRequest{})
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("call before Run: %v", err)
	}
}

func TestDashboardModuleFollowsTheMap(t *testing.T) {
	mon := montest.Start(t)
	r := start(t, testConfig(t, mon, "x"), Dashboard())
	waitActive(t, mon, r)
	base := "http://" + r.HTTPAddr() + "/dashboard/"
	if resp, body := httpGet(t, base); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "module dashboard is not enabled") {
		t.Fatalf("before enable: %d %q", resp.StatusCode, body)
	}
	mon.SetModules(DashboardModule)
	eventually(t, "the dashboard is published", func() bool { return mon.Map().GetServices()[DashboardModule] == base })
	resp, body := httpGet(t, base)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<title>mgrplane dashboard</title>") {
		t.Fatalf("page: %d %q", resp.StatusCode, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"events", nil)
	ev, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Body.Close()
	if ev.StatusCode != http.StatusOK || ev.Header.Get("Mgr-Active-Epoch") == "" {
		t.Fatalf("events: %s, headers %v", ev.Status, ev.Header)
	}
	br := bufio.NewReader(ev.Body)
	next := func() dashboard.View {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("event stream: %v", err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var v dashboard.View
				if err := json.Unmarshal([]byte(data), &v); err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	v := next()
	if v.Active == nil || v.Active.Name != "x" || v.Active.GID != r.GID() || v.ServedBy.Name != "x" || v.Active.BeaconAge == nil {
		t.Fatalf("first view %+v", v)
	}
	mon.AddStandby("y")
	want := mon.Map().GetEpoch()
	for v.Epoch < want {
		v = next()
	}
	if len(v.Standbys) != 1 || v.Standbys[0].Name != "y" {
		t.Fatalf("view after standby y joined: %+v", v)
	}
}
