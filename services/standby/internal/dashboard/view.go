package dashboard

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// View is the cluster at a glance: what the page shows, as JSON.
type View struct {
	// ServedBy is the manager that built this view.
	ServedBy Manager `json:"served_by"`
	Epoch    uint64  `json:"epoch"`
	FSID     string  `json:"fsid"`
	// Modified is when the monitor made the map; Cause and Reason say why.
	Modified time.Time `json:"modified"`
	Cause    string    `json:"cause"`
	Reason   string    `json:"reason"`
	// Down is the map's `down` flag: no active may be chosen.
	Down   bool    `json:"down"`
	Active *Active `json:"active"`
	// Standbys are sorted by gid.
	Standbys []Standby `json:"standbys"`
	// Modules are sorted by name.
	Modules []Module `json:"modules"`
	// Services are sorted by module name.
	Services []Service `json:"services"`
	// Failovers are the recent changes of active, newest first.
	Failovers []Failover `json:"failovers"`
	// BeaconsAt is when the beacon ages were taken (the monitor's answer,
	// on this manager's clock); zero when they could not be.
	BeaconsAt time.Time `json:"beacons_at"`
	// MonitorError says why the monitors could not be asked for beacon ages
	// or history; empty when they answered.
	MonitorError string `json:"monitor_error,omitempty"`
	// Built is when this manager built the view.
	Built time.Time `json:"built"`
}

// Manager names one manager.
type Manager struct {
	Name string `json:"name"`
	GID  uint64 `json:"gid"`
}

// Active is the active manager.
type Active struct {
	Manager
	Addrs []string `json:"addrs"`
	// Since is when the map chose it (the monitor's clock).
	Since       time.Time `json:"since"`
	ActiveEpoch uint64    `json:"active_epoch"`
	Available   bool      `json:"available"`
	// Failing: it has been told to stop.
	Failing  bool   `json:"failing"`
	Priority int32  `json:"priority"`
	Zone     string `json:"zone"`
	// BeaconAge is the age of its last beacon in seconds when BeaconsAt
	// was taken; nil when unknown.
	BeaconAge *float64 `json:"beacon_age"`
}

// Standby is one standby manager.
type Standby struct {
	Manager
	Priority  int32    `json:"priority"`
	Zone      string   `json:"zone"`
	BeaconAge *float64 `json:"beacon_age"`
}

// Module is one module and its state: "always on", "enabled" or
// "disabled", and whether the active can run it.
type Module struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	CanRun bool   `json:"can_run"`
	Error  string `json:"error,omitempty"`
	// Reported: the active reports carrying the module.
	Reported bool `json:"reported"`
}

// Service is a URL a module publishes.
type Service struct {
	Module string `json:"module"`
	URL    string `json:"url"`
}

// Failover is one change of active, from the map history.
type Failover struct {
	Epoch  uint64    `json:"epoch"`
	Time   time.Time `json:"time"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Cause  string    `json:"cause"`
	Reason string    `json:"reason"`
}

// builder builds views; Run's goroutine owns it.
type builder struct {
	cfg   Config
	admin Admin
	log   hclog.Logger
	// histEpoch is the newest history epoch read; histActive the active
	// gid and name at that epoch.
	histEpoch  uint64
	histActive Manager
	failovers  []Failover
	// lastErr is the last monitor error logged, to log each once.
	lastErr string
}

// build makes the view of m. Beacon ages and history come from the
// monitors; when they cannot be reached the view says so and keeps the
// history it had.
func (b *builder) build(ctx context.Context, m *mgrv1.MgrMap, name string, gid uint64) View {
	v := View{
		ServedBy: Manager{Name: name, GID: gid},
		Epoch:    m.GetEpoch(),
		FSID:     m.GetFsid(),
		Modified: m.GetModified().AsTime(),
		Cause:    causeName(m.GetCause()),
		Reason:   m.GetReason(),
		Down:     m.GetDown(),
		Standbys: []Standby{},
		Modules:  modules(m),
		Services: []Service{},
		Built:    time.Now(),
	}
	if m.GetActiveGid() != 0 {
		v.Active = &Active{
			Manager:     Manager{Name: m.GetActiveName(), GID: m.GetActiveGid()},
			Addrs:       append([]string{}, m.GetActiveAddrs()...),
			Since:       m.GetActiveChange().AsTime(),
			ActiveEpoch: m.GetActiveEpoch(),
			Available:   m.GetAvailable(),
			Failing:     m.GetActiveFailing(),
			Priority:    m.GetActivePriority(),
			Zone:        m.GetActiveZone(),
		}
	}
	for _, s := range m.GetStandbys() {
		v.Standbys = append(v.Standbys, Standby{Manager: Manager{Name: s.GetName(), GID: s.GetGid()}, Priority: s.GetPriority(), Zone: s.GetZone()})
	}
	for _, k := range sortedKeys(m.GetServices()) {
		v.Services = append(v.Services, Service{Module: k, URL: m.GetServices()[k]})
	}

	var errs []string
	if err := b.beacons(ctx, &v); err != nil {
		errs = append(errs, "beacon ages: "+err.Error())
	}
	if err := b.history(ctx, m.GetEpoch()); err != nil {
		errs = append(errs, "history: "+err.Error())
	}
	v.Failovers = slices.Clone(b.failovers)
	if v.Failovers == nil {
		v.Failovers = []Failover{}
	}
	if len(errs) > 0 {
		v.MonitorError = errs[0]
		if len(errs) > 1 {
			v.MonitorError += "; " + errs[1]
		}
		if v.MonitorError != b.lastErr {
			b.log.Warn("the monitors did not answer the dashboard", "error", v.MonitorError)
		}
	}
	b.lastErr = v.MonitorError
	return v
}

// beacons fills in the beacon ages.
func (b *builder) beacons(ctx context.Context, v *View) error {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.CallTimeout)
	defer cancel()
	resp, err := b.admin.ListBeacons(cctx, &mgrv1.ListBeaconsRequest{})
	if err != nil {
		return err
	}
	v.BeaconsAt = time.Now()
	ages := map[uint64]float64{}
	for _, mb := range resp.GetManagers() {
		ages[mb.GetGid()] = mb.GetAge().AsDuration().Seconds()
	}
	age := func(gid uint64) *float64 {
		if a, ok := ages[gid]; ok {
			return &a
		}
		return nil
	}
	if v.Active != nil {
		v.Active.BeaconAge = age(v.Active.GID)
	}
	for i := range v.Standbys {
		v.Standbys[i].BeaconAge = age(v.Standbys[i].GID)
	}
	return nil
}

// history reads the map history past the newest epoch read, up to epoch,
// and keeps the newest changes of active.
func (b *builder) history(ctx context.Context, epoch uint64) error {
	if epoch <= b.histEpoch {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.CallTimeout)
	defer cancel()
	resp, err := b.admin.ListHistory(cctx, &mgrv1.ListHistoryRequest{SinceEpoch: b.histEpoch})
	if err != nil {
		return err
	}
	entries := resp.GetEntries()
	if b.histEpoch == 0 && len(entries) > 0 || len(entries) > 0 && entries[0].GetEpoch() != b.histEpoch+1 {
		// The first read, or a gap (trimmed history): the oldest entry read
		// is the starting point, not a change.
		b.histActive = Manager{Name: entries[0].GetActiveName(), GID: entries[0].GetActiveGid()}
		b.histEpoch = entries[0].GetEpoch()
		entries = entries[1:]
	}
	for _, e := range entries {
		if e.GetActiveGid() != b.histActive.GID {
			b.failovers = append([]Failover{{
				Epoch: e.GetEpoch(), Time: e.GetTime().AsTime(), From: b.histActive.Name, To: e.GetActiveName(),
				Cause: causeName(e.GetCause()), Reason: e.GetReason(),
			}}, b.failovers...)
			if len(b.failovers) > b.cfg.Failovers {
				b.failovers = b.failovers[:b.cfg.Failovers]
			}
		}
		b.histActive = Manager{Name: e.GetActiveName(), GID: e.GetActiveGid()}
		b.histEpoch = e.GetEpoch()
	}
	return nil
}

// modules lists every module the map knows: reported by the active,
// enabled, or always on.
func modules(m *mgrv1.MgrMap) []Module {
	byName := map[string]*Module{}
	get := func(n string) *Module {
		if mod, ok := byName[n]; ok {
			return mod
		}
		mod := &Module{Name: n, State: "disabled", CanRun: true}
		byName[n] = mod
		return mod
	}
	for _, info := range m.GetAvailableModules() {
		mod := get(info.GetName())
		mod.Reported, mod.CanRun, mod.Error = true, info.GetCanRun(), info.GetErrorString()
	}
	for _, n := range m.GetModules() {
		get(n).State = "enabled"
	}
	for _, n := range m.GetAlwaysOnModules() {
		get(n).State = "always on"
	}
	out := make([]Module, 0, len(byName))
	for _, k := range sortedKeys(byName) {
		out = append(out, *byName[k])
	}
	return out
}
