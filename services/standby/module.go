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
// A Module's methods may be called from several goroutines. The manager
// registers each module once, when its Run starts, on standbys too (its
// handlers are mounted and warm before any activation), and runs it each
// time it becomes active with the module enabled: activation is a switch,
// not a start.
//
// A module may also implement OptionsModule (typed options, set with
// `mgrctl config set mgr/<module>/<option>`, applied live) and
// StandbyModule (it runs and serves on standbys too).
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
	// manager server; it is called once, when the manager's Run starts.
	// Requests reach them only while the module runs; otherwise they are
	// answered 503 (HTTP) or Unavailable (gRPC), "module NAME is not
	// enabled". On a standby they are not reached at all (the standby
	// redirects HTTP to the active and refuses gRPC naming the active),
	// unless the module is a StandbyModule.
	Register(r Registrar)
	// Run runs while this manager is active and the module enabled (for a
	// StandbyModule: while the module is enabled, active or not). ctx is
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
	// Active reports whether the manager serves as the active now (the map
	// names it active and it holds a lease).
	Active() bool
	// Option is the value of the module's option name in the newest map:
	// the value an operator set, else the declared default, in the
	// canonical text form of its type; "" for an option the module does
	// not declare.
	Option(name string) string
	// IntOption, FloatOption, BoolOption and DurationOption are Option
	// parsed for an option of that type; a value that does not parse (an
	// option of another type, or not declared) gives the zero value.
	IntOption(name string) int64
	FloatOption(name string) float64
	BoolOption(name string) bool
	DurationOption(name string) time.Duration
	// OptionsChanged returns a channel that receives a value each time the
	// module's option values change in the map (set, removed, or a new
	// default), applied live with no restart. Changes that come faster
	// than the reader are coalesced into one value. The channel is closed
	// when ctx is done or the manager's Run returns. Each call starts one
	// goroutine, which ends with the channel.
	OptionsChanged(ctx context.Context) <-chan struct{}
}

// OptionType is the type of a module option's value.
type OptionType int

// The option types. A value travels as text; each type has one canonical
// text form: an int in decimal (64 bits), a float as Go's strconv 'g'
// format, a bool as true or false, a duration as time.Duration.String.
const (
	OptionString OptionType = iota + 1
	OptionInt
	OptionFloat
	OptionBool
	OptionDuration
)

// Option declares one option of a module. The monitor refuses a value of
// the wrong type, outside [Min, Max], or not in Allowed, and changes
// nothing.
type Option struct {
	// Name is 1 to 64 characters of [A-Za-z0-9_.-].
	Name string
	Type OptionType
	// Default is the value when none is set; it must itself be valid
	// (required for every type but string).
	Default string
	// Description says what the option does, for `mgrctl config ls`.
	Description string
	// Min and Max bound an int, float or duration option (inclusive,
	// in its text form); empty means unbounded.
	Min, Max string
	// Allowed, when not empty, lists the only values accepted.
	Allowed []string
}

// OptionsModule is a Module with options. The manager reports the
// declarations in its beacons; the map holds the values operators set
// (`mgrctl config set mgr/<module>/<option> VALUE`), checked by the
// monitor against the declarations. A running module reads them with
// Host.Option and its typed variants, and learns of changes from
// Host.OptionsChanged: no restart.
type OptionsModule interface {
	Module
	// Options declares the module's options. It is called once, by New,
	// which checks every declaration.
	Options() []Option
}

// StandbyModule is a Module that runs on standbys too, like Ceph's standby
// modules: its Run runs whenever the map enables it, whether this manager
// is active or not (Host.Active says which), through activations and
// demotions without a restart; its handlers answer on a standby (without
// the active-epoch header) as well as on the active (with it, under the
// lease like every module).
type StandbyModule interface {
	Module
	// RunOnStandby reports whether the module runs on standbys. It is
	// called once, by New.
	RunOnStandby() bool
}
