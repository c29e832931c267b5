package standby

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mgrplane/mgrplane/internal/creds"
)

// Defaults and bounds of Config, checked by Validate.
const (
	DefaultBeaconPeriod = time.Second
	MinBeaconPeriod     = 10 * time.Millisecond
	MaxBeaconPeriod     = time.Minute

	DefaultMonitor  = "127.0.0.1:6789"
	DefaultGRPCAddr = "127.0.0.1:6800"
	DefaultHTTPAddr = "127.0.0.1:6880"

	DefaultReconnectMin = 50 * time.Millisecond
	DefaultReconnectMax = 2 * time.Second
	MinReconnect        = time.Millisecond
	MaxReconnect        = 5 * time.Minute

	// MaxMonitors bounds Config.Monitors.
	MaxMonitors = 16
	// MaxNameLen bounds Config.Name.
	MaxNameLen = 64
	// MaxZoneLen bounds Config.Zone.
	MaxZoneLen = 64
	// MaxFSIDLen bounds Config.FSID.
	MaxFSIDLen = 64
	// MaxHostLen bounds Config.AdvertiseHost.
	MaxHostLen = 253

	// DefaultStandbyHTTPStatus is 303 See Other: a standby redirects.
	DefaultStandbyHTTPStatus = 303
)

// StandbyHTTPStatuses are the values Config.StandbyHTTPStatus may take.
var StandbyHTTPStatuses = []int{303, 307, 503}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// Config holds a manager's settings. Start from DefaultConfig.
type Config struct {
	// Name is the manager's name: 1 to 64 characters of [A-Za-z0-9_.-],
	// starting with a letter or digit. Required.
	Name string
	// Monitors are the monitors' gRPC addresses (host:port). The manager uses
	// the first that answers and moves to the next when one is unavailable.
	Monitors []string
	// FSID, when set, is the cluster this manager must join; Run fails when
	// the monitors serve another.
	FSID string
	// BeaconPeriod is how often the manager beacons (10ms to 1m). Run fails
	// when the monitor's fence timeout does not exceed it by a margin of
	// max(BeaconPeriod/2, 100ms): the active's lease would lapse between
	// two beacons.
	BeaconPeriod time.Duration
	// Priority orders promotion: when the active is lost the monitor
	// promotes the standby with the highest priority (any int32; default
	// 0), then one outside the lost active's zone, then the lowest gid.
	Priority int32
	// Zone is the manager's failure zone (a rack, a host, an availability
	// zone): empty, or 1 to 64 characters of [A-Za-z0-9_.-] starting with a
	// letter or digit.
	Zone string
	// GRPCAddr is where the manager server listens for gRPC while active
	// (host:port; port 0 picks a free port).
	GRPCAddr string
	// HTTPAddr is where the manager server listens for HTTP while active.
	HTTPAddr string
	// HealthAddr, when set, is where the manager serves gRPC health alone,
	// in plaintext, for probes that cannot speak TLS (Kubernetes' grpc
	// probes): mgr.v1.ManagerService is SERVING on the active only, as on
	// GRPCAddr. Empty serves none.
	HealthAddr string
	// AdvertiseHost is the host put in server_addrs and service URLs. Empty
	// means the listen host, or the machine's hostname when listening on all
	// addresses (0.0.0.0, ::, or no host).
	AdvertiseHost string
	// ReconnectMin and ReconnectMax bound the jittered exponential backoff of
	// the map stream and of authentication retries.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// Logger receives the manager's logs; nil discards them.
	Logger hclog.Logger
	// Registry receives the manager's metrics (docs/metrics.md) and the Go
	// runtime's and the process's; the prometheus module serves it. It is
	// the process's own registry (prometheus.NewRegistry), never the
	// package-global default one. Nil makes a new one (Standby.Registry). One registry carries one
	// manager's metrics: New fails when they are on it already.
	Registry *prometheus.Registry
	// StandbyHTTPStatus is how a standby answers HTTP requests: 303 (the
	// default) or 307 redirects to the same path on the active; 503 (for
	// load balancers that should not follow) refuses, naming the active.
	StandbyHTTPStatus int

	// CredsDir is the creds dir: the cluster CA the monitors' certificates
	// are checked against, the keyring (unless Keyring is set) and mgr.crt
	// and mgr.key for the manager's own listeners (unless TLS is set).
	// Required unless Insecure.
	CredsDir string
	// Keyring is the keyring file holding Entity's key; empty means
	// CredsDir/keyring.
	Keyring string
	// Entity is who the manager authenticates as; empty means mgr.NAME.
	// An entity with caps mgr may act only under its own name.
	Entity string
	// Insecure talks plaintext to the monitors without credentials (and,
	// unless TLS is set, serves plaintext). For tests and embedders that
	// secure the network otherwise; never the default.
	Insecure bool
	// TLS is the server TLS for the manager's gRPC and HTTP listeners; nil
	// means plaintext when Insecure, else mgr.crt and mgr.key from CredsDir.
	TLS *tls.Config
}

// DefaultConfig returns the defaults; Name must still be set.
func DefaultConfig() Config {
	return Config{
		Monitors:     []string{DefaultMonitor},
		BeaconPeriod: DefaultBeaconPeriod,
		GRPCAddr:     DefaultGRPCAddr,
		HTTPAddr:     DefaultHTTPAddr,
		ReconnectMin: DefaultReconnectMin,
		ReconnectMax: DefaultReconnectMax,

		StandbyHTTPStatus: DefaultStandbyHTTPStatus,
	}
}

// Validate reports every field out of bounds, each message naming the field
// and the bound.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Name) == 0 || len(c.Name) > MaxNameLen || !nameRE.MatchString(c.Name) {
		bad("Name %q: must be 1 to %d characters of [A-Za-z0-9_.-], starting with a letter or digit", c.Name, MaxNameLen)
	}
	if n := len(c.Monitors); n == 0 || n > MaxMonitors {
		bad("Monitors: %d addresses, must be 1 to %d", n, MaxMonitors)
	}
	for i, a := range c.Monitors {
		if err := checkAddr(a, false); err != nil {
			bad("Monitors[%d] %q: %v", i, a, err)
		}
	}
	if c.Zone != "" && (len(c.Zone) > MaxZoneLen || !nameRE.MatchString(c.Zone)) {
		bad("Zone %q: must be empty or 1 to %d characters of [A-Za-z0-9_.-], starting with a letter or digit", c.Zone, MaxZoneLen)
	}
	if len(c.FSID) > MaxFSIDLen || !utf8.ValidString(c.FSID) {
		bad("FSID: must be at most %d bytes of UTF-8", MaxFSIDLen)
	}
	if c.BeaconPeriod < MinBeaconPeriod || c.BeaconPeriod > MaxBeaconPeriod {
		bad("BeaconPeriod %v: must be between %v and %v", c.BeaconPeriod, MinBeaconPeriod, MaxBeaconPeriod)
	}
	if !c.Insecure && c.CredsDir == "" {
		bad("CredsDir: required (the cluster's creds dir, from `monsim creds init`), unless Insecure")
	}
	if c.Entity != "" {
		if err := creds.ValidateEntityName(c.Entity); err != nil {
			bad("Entity: %v", err)
		}
	}
	if err := checkAddr(c.GRPCAddr, true); err != nil {
		bad("GRPCAddr %q: %v", c.GRPCAddr, err)
	}
	if err := checkAddr(c.HTTPAddr, true); err != nil {
		bad("HTTPAddr %q: %v", c.HTTPAddr, err)
	}
	if c.GRPCAddr == c.HTTPAddr && !hasPortZero(c.GRPCAddr) {
		bad("HTTPAddr %q: must differ from GRPCAddr", c.HTTPAddr)
	}
	if c.HealthAddr != "" {
		if err := checkAddr(c.HealthAddr, true); err != nil {
			bad("HealthAddr %q: %v", c.HealthAddr, err)
		} else if !hasPortZero(c.HealthAddr) && (c.HealthAddr == c.GRPCAddr || c.HealthAddr == c.HTTPAddr) {
			bad("HealthAddr %q: must differ from GRPCAddr and HTTPAddr", c.HealthAddr)
		}
	}
	if c.AdvertiseHost != "" {
		if len(c.AdvertiseHost) > MaxHostLen || (net.ParseIP(c.AdvertiseHost) == nil && !hostRE.MatchString(c.AdvertiseHost)) {
			bad("AdvertiseHost %q: must be an IP address or a host name of at most %d characters, without a port", c.AdvertiseHost, MaxHostLen)
		}
	}
	if c.ReconnectMin < MinReconnect || c.ReconnectMin > MaxReconnect {
		bad("ReconnectMin %v: must be between %v and %v", c.ReconnectMin, MinReconnect, MaxReconnect)
	}
	if c.ReconnectMax < c.ReconnectMin || c.ReconnectMax > MaxReconnect {
		bad("ReconnectMax %v: must be between ReconnectMin (%v) and %v", c.ReconnectMax, c.ReconnectMin, MaxReconnect)
	}
	if !slices.Contains(StandbyHTTPStatuses, c.StandbyHTTPStatus) {
		bad("StandbyHTTPStatus %d: must be one of %v", c.StandbyHTTPStatus, StandbyHTTPStatuses)
	}
	return errors.Join(errs...)
}

// checkAddr checks host:port; listen allows port 0 and an empty host (all
// addresses), for listen addresses.
func checkAddr(a string, listen bool) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("must be host:port")
	}
	if host == "" && !listen {
		return fmt.Errorf("must name a host")
	}
	lo := 1
	if listen {
		lo = 0
	}
	if p, err := strconv.Atoi(port); err != nil || p < lo || p > 65535 {
		return fmt.Errorf("port must be %d to 65535", lo)
	}
	return nil
}

func hasPortZero(a string) bool {
	_, port, err := net.SplitHostPort(a)
	return err == nil && port == "0"
}
