package standby

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/montest"
)

// tunable is a module with options; Run records each change it sees.
type tunable struct {
	opts    []Option
	starts  atomic.Int32
	changes atomic.Int32
	step    atomic.Int64
	every   atomic.Int64 // DurationOption("every") in ns
}

func (*tunable) Name() string        { return "tunable" }
func (*tunable) CanRun() error       { return nil }
func (m *tunable) Options() []Option { return m.opts }
func (*tunable) Register(Registrar)  {}
func (m *tunable) Run(ctx context.Context, h Host) error {
	m.starts.Add(1)
	changed := h.OptionsChanged(ctx)
	m.step.Store(h.IntOption("step"))
	m.every.Store(int64(h.DurationOption("every")))
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changed:
			if !ok {
				return nil
			}
			m.changes.Add(1)
			m.step.Store(h.IntOption("step"))
			m.every.Store(int64(h.DurationOption("every")))
		}
	}
}

func tunableOptions() []Option {
	return []Option{
		{Name: "step", Type: OptionInt, Default: "1", Min: "1", Max: "10", Description: "how far"},
		{Name: "every", Type: OptionDuration, Default: "1500ms"},
		{Name: "loud", Type: OptionBool, Default: "false"},
		{Name: "ratio", Type: OptionFloat, Default: "0.5"},
		{Name: "mode", Type: OptionString, Default: "a", Allowed: []string{"a", "b"}},
	}
}

// The declarations go out in the beacons; the values come from the map,
// with defaults, and a change reaches the running module live: same Run,
// no restart.
func TestOptionsLive(t *testing.T) {
	mon := montest.Start(t)
	m := &tunable{opts: tunableOptions()}
	r := start(t, testConfig(t, mon, "x"), m)
	waitActive(t, mon, r)
	mon.SetModules("tunable")
	eventually(t, "the module runs with its defaults", func() bool { return m.starts.Load() == 1 && m.step.Load() == 1 })
	if got := time.Duration(m.every.Load()); got != 1500*time.Millisecond {
		t.Errorf("every = %v, want the default 1.5s", got)
	}
	b, _ := lastBeacon(mon, r.GID())
	var decl []*mgrv1.ModuleOption
	for _, mi := range b.Req.GetAvailableModules() {
		if mi.GetName() == "tunable" {
			decl = mi.GetOptions()
		}
	}
	if len(decl) != 5 || decl[0].GetName() != "step" || decl[0].GetType() != mgrv1.OptionType_OPTION_TYPE_INT ||
		decl[0].GetMax() != "10" || decl[1].GetDefaultValue() != "1.5s" || decl[4].GetAllowedValues()[1] != "b" {
		t.Errorf("declared options in the beacon: %v", decl)
	}

	mon.SetModuleOption("tunable", "step", "4", false)
	eventually(t, "the module sees step 4", func() bool { return m.step.Load() == 4 })
	mon.SetModuleOption("tunable", "every", "2s", false)
	eventually(t, "the module sees every 2s", func() bool { return time.Duration(m.every.Load()) == 2*time.Second })
	// A value that does not fit this manager's declaration gives the default.
	mon.SetModuleOption("tunable", "step", "99", false)
	eventually(t, "the module falls back to the default step", func() bool { return m.step.Load() == 1 })
	mon.SetModuleOption("tunable", "step", "", true)
	mon.SetModuleOption("other", "x", "1", false) // another module's option: no change here
	if n := m.starts.Load(); n != 1 {
		t.Errorf("the module started %d times; options must apply without a restart", n)
	}
	if m.changes.Load() < 3 {
		t.Errorf("%d changes seen, want at least 3", m.changes.Load())
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	mon := montest.Start(t)
	tests := map[string]struct {
		opts []Option
		want string
	}{
		"no type":        {[]Option{{Name: "a"}}, `option "a": type 0 is not one of`},
		"bad name":       {[]Option{{Name: "a/b", Type: OptionString}}, `"a/b": name must be 1 to 64 characters`},
		"twice":          {[]Option{{Name: "a", Type: OptionString}, {Name: "a", Type: OptionString}}, `option "a": declared twice`},
		"bad default":    {[]Option{{Name: "a", Type: OptionInt, Default: "x"}}, `option "a": default "x"`},
		"default bounds": {[]Option{{Name: "a", Type: OptionInt, Default: "20", Max: "10"}}, "above the maximum 10"},
		"min above max":  {[]Option{{Name: "a", Type: OptionFloat, Default: "1", Min: "2", Max: "0"}}, "min 2 is above max 0"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(testConfig(t, mon, "x"), &tunable{opts: tc.opts})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `module "tunable"`) {
				t.Fatalf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// sidecar runs on standbys too.
type sidecar struct {
	starts, stops atomic.Int32
	sawStandby    atomic.Bool
}

func (*sidecar) Name() string       { return "sidecar" }
func (*sidecar) CanRun() error      { return nil }
func (*sidecar) RunOnStandby() bool { return true }
func (*sidecar) Register(r Registrar) {
	h := r.Host()
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if h.Active() {
			_, _ = w.Write([]byte("active"))
			return
		}
		_, _ = w.Write([]byte("standby"))
	}))
}
func (s *sidecar) Run(ctx context.Context, h Host) error {
	s.starts.Add(1)
	defer s.stops.Add(1)
	if !h.Active() {
		s.sawStandby.Store(true)
	}
	<-ctx.Done()
	return nil
}

// A StandbyModule runs on a standby when enabled, serves there, and goes
// on running through the manager's activation.
func TestStandbyModuleRunsOnStandby(t *testing.T) {
	mon := montest.Start(t)
	other := mon.AddStandby("other")
	if _, err := mon.MakeActive(other); err != nil {
		t.Fatal(err)
	}
	mon.SetModules("sidecar")
	s := &sidecar{}
	r := start(t, testConfig(t, mon, "x"), s)
	eventually(t, "the sidecar runs on the standby", func() bool { return s.starts.Load() == 1 && s.sawStandby.Load() })
	resp, body := httpGet(t, "http://"+r.HTTPAddr()+"/sidecar/")
	if resp.StatusCode != http.StatusOK || body != "standby" || resp.Header.Get("Mgr-Active-Epoch") != "" {
		t.Errorf("GET /sidecar/ on the standby = %d %q epoch %q", resp.StatusCode, body, resp.Header.Get("Mgr-Active-Epoch"))
	}
	eventually(t, "the manager joins as standby", func() bool { return standbyIndex(mon.Map(), r.GID()) >= 0 })
	if _, err := mon.MakeActive(r.GID()); err != nil {
		t.Fatal(err)
	}
	waitActive(t, mon, r)
	resp, body = httpGet(t, "http://"+r.HTTPAddr()+"/sidecar/")
	if resp.StatusCode != http.StatusOK || body != "active" || resp.Header.Get("Mgr-Active-Epoch") == "" {
		t.Errorf("GET /sidecar/ on the active = %d %q epoch %q", resp.StatusCode, body, resp.Header.Get("Mgr-Active-Epoch"))
	}
	if n := s.starts.Load(); n != 1 {
		t.Errorf("the sidecar started %d times; activation must not restart it", n)
	}
	mon.SetModules()
	eventually(t, "the sidecar stops once disabled", func() bool { return s.stops.Load() == 1 })
}
