package standby

import (
	"context"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/dashboard"
)

// DashboardModule is the name of the dashboard module.
const DashboardModule = "dashboard"

// Dashboard returns the dashboard module: a web page at /dashboard/ showing
// the cluster at a glance (the active with its addresses and since when,
// the standbys with the age of their last beacon, the epoch, the modules
// and their state, the services, the recent failovers), updated live over
// server-sent events (GET /dashboard/events) fed by the map watch. GET
// /dashboard/state answers the same view as JSON. Beacon ages and history
// come from the monitors' AdminService (ListBeacons, ListHistory).
//
// The page is plain HTML, CSS and JS embedded in the binary; it loads
// nothing from elsewhere.
func Dashboard() Module {
	d, err := dashboard.New(dashboard.DefaultConfig())
	if err != nil {
		// The defaults are valid; a failure here is a bug in this package.
		panic(err)
	}
	return &dashboardModule{d: d}
}

// dashboardModule adapts internal/dashboard to Module.
type dashboardModule struct{ d *dashboard.Dashboard }

func (*dashboardModule) Name() string  { return DashboardModule }
func (*dashboardModule) CanRun() error { return nil }

func (m *dashboardModule) Register(r Registrar) {
	for _, rt := range m.d.Routes() {
		r.HandleHTTP(rt.Pattern, rt.Handler)
	}
}

// Run builds the view from the map watch until ctx is done.
func (m *dashboardModule) Run(ctx context.Context, h Host) error {
	return m.d.Run(ctx, h, dashboard.AdminClient(mgrv1.NewAdminServiceClient(h.Monitors())))
}
