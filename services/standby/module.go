package standby

import (
	"context"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// Module is a unit of manager work that runs on the active manager while the
// map enables it (`mgrctl module enable NAME`), like a Ceph mgr module.
//
// A Module's methods may be called from several goroutines. Across
// activations the same Module value is registered and run again: Register
// once per activation, before Run.
type Module interface {
	// Name is the module's name: 1 to 32 characters of [a-z0-9_], starting
	// with a lower-case letter. It names the module in the map and mounts
	// its HTTP handlers under /<name>/.
	Name() string
	// CanRun returns nil if the module can run on this host, or why not;
	// the message is reported to the monitor as the module's error_string.
	// It is called for every beacon, so it should be cheap.
	CanRun() error
	// Register mounts the module's HTTP handlers and gRPC services on the
	// manager server; it is called each time the server is built, on
	// activation. Requests reach them only while the module runs; otherwise
	// they are answered 503 (HTTP) or Unavailable (gRPC),
	// "module NAME is not enabled".
	Register(r Registrar)
	// Run runs while this manager is active and the module enabled. ctx is
	// cancelled when the module is disabled or the manager stops being
	// active; Run must then return promptly. A Run that returns by itself
	// (or panics) leaves the module stopped, its requests refused, until it
	// is disabled and enabled again or the manager is activated again.
	Run(ctx context.Context, h Host) error
}

// Registrar is where a module mounts its handlers.
type Registrar interface {
	// HandleHTTP mounts h at pattern, a net/http ServeMux pattern relative
	// to the module's root /<name>/: "GET /{$}" answers GET /<name>/,
	// "/items/" answers /<name>/items/... .
	HandleHTTP(pattern string, h http.Handler)
	// GRPC is where the module registers its gRPC services
	// (pb.RegisterXServer(r.GRPC(), impl)).
	GRPC() grpc.ServiceRegistrar
	// Host is the manager the module belongs to, for handlers.
	Host() Host
}

// Host is what a module may ask of the manager it runs in. Its methods are
// safe for concurrent use.
type Host interface {
	// Map is the newest map the manager holds.
	Map() *mgrv1.MgrMap
	// GID is the manager's gid.
	GID() uint64
	// Name is the manager's name.
	Name() string
	// Logger is the module's logger.
	Logger() hclog.Logger
	// ActiveSince is when the manager became active; zero when it is not.
	ActiveSince() time.Time
	// Watch returns a channel carrying the newest map at once (or the first
	// one, before any), then each newer map as the manager receives it. A
	// reader slower than the maps gets the newest when it reads again: the
	// maps in between are dropped, and the manager never waits for a
	// reader. The channel is closed when ctx is done or the manager's Run
	// returns. Each call starts one goroutine, which ends with the channel.
	Watch(ctx context.Context) <-chan *mgrv1.MgrMap
	// Monitors is a connection to the monitor the manager uses, for the
	// monitors' AdminService (mgrv1.NewAdminServiceClient(h.Monitors())),
	// as a Ceph module calls mon_command. Each call goes to the monitor in
	// use at that moment. Calls fail while the manager's Run is not running.
	Monitors() grpc.ClientConnInterface
}
