package standby

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		change func(*Config)
		want   string // "" for valid
	}{
		"defaults with a name":    {change: func(*Config) {}},
		"port zero":               {change: func(c *Config) { c.GRPCAddr, c.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0" }},
		"all addresses":           {change: func(c *Config) { c.GRPCAddr, c.HTTPAddr = ":6800", "[::]:6880" }},
		"advertise IPv6":          {change: func(c *Config) { c.AdvertiseHost = "fe80::1" }},
		"advertise name":          {change: func(c *Config) { c.AdvertiseHost = "mgr-0.mgr.ns.svc" }},
		"zone and priority":       {change: func(c *Config) { c.Zone, c.Priority = "eu-west-1a", -2147483648 }},
		"zone with space":         {change: func(c *Config) { c.Zone = "rack 1" }, want: "Zone \"rack 1\": must be empty or 1 to 64 characters of [A-Za-z0-9_.-]"},
		"zone starts with dot":    {change: func(c *Config) { c.Zone = ".a" }, want: "Zone \".a\""},
		"zone too long":           {change: func(c *Config) { c.Zone = strings.Repeat("z", 65) }, want: "must be empty or 1 to 64 characters"},
		"empty name":              {change: func(c *Config) { c.Name = "" }, want: "Name \"\": must be 1 to 64 characters"},
		"name starts with dash":   {change: func(c *Config) { c.Name = "-x" }, want: "Name \"-x\": must be 1 to 64"},
		"name with space":         {change: func(c *Config) { c.Name = "a b" }, want: "Name"},
		"name too long":           {change: func(c *Config) { c.Name = strings.Repeat("a", 65) }, want: "1 to 64 characters"},
		"no monitor":              {change: func(c *Config) { c.Monitors = nil }, want: "Monitors: 0 addresses, must be 1 to 16"},
		"too many monitors":       {change: func(c *Config) { c.Monitors = make([]string, 17) }, want: "must be 1 to 16"},
		"monitor without port":    {change: func(c *Config) { c.Monitors = []string{"mon1"} }, want: "Monitors[0] \"mon1\": must be host:port"},
		"monitor without host":    {change: func(c *Config) { c.Monitors = []string{":6789"} }, want: "Monitors[0] \":6789\": must name a host"},
		"monitor port zero":       {change: func(c *Config) { c.Monitors = []string{"mon1:0"} }, want: "port must be 1 to 65535"},
		"fsid too long":           {change: func(c *Config) { c.FSID = strings.Repeat("f", 65) }, want: "FSID: must be at most 64 bytes"},
		"period too short":        {change: func(c *Config) { c.BeaconPeriod = time.Millisecond }, want: "BeaconPeriod 1ms: must be between 10ms and 1m0s"},
		"period too long":         {change: func(c *Config) { c.BeaconPeriod = time.Hour }, want: "BeaconPeriod 1h0m0s: must be between 10ms and 1m0s"},
		"grpc addr bad":           {change: func(c *Config) { c.GRPCAddr = "nope" }, want: "GRPCAddr \"nope\": must be host:port"},
		"http port too big":       {change: func(c *Config) { c.HTTPAddr = "127.0.0.1:70000" }, want: "HTTPAddr \"127.0.0.1:70000\": port must be 0 to 65535"},
		"same addresses":          {change: func(c *Config) { c.HTTPAddr = c.GRPCAddr }, want: "HTTPAddr \"127.0.0.1:6800\": must differ from GRPCAddr"},
		"advertise with port":     {change: func(c *Config) { c.AdvertiseHost = "host:1" }, want: "AdvertiseHost \"host:1\": must be an IP address or a host name of at most 253"},
		"reconnect min zero":      {change: func(c *Config) { c.ReconnectMin = 0 }, want: "ReconnectMin 0s: must be between 1ms and 5m0s"},
		"reconnect max below min": {change: func(c *Config) { c.ReconnectMax = time.Millisecond }, want: "ReconnectMax 1ms: must be between ReconnectMin (50ms) and 5m0s"},
		"reconnect max too long":  {change: func(c *Config) { c.ReconnectMax = time.Hour }, want: "ReconnectMax 1h0m0s"},
		"secure without creds":    {change: func(c *Config) { c.Insecure = false }, want: "CredsDir: required"},
		"secure with creds":       {change: func(c *Config) { c.Insecure, c.CredsDir = false, "/etc/mgrplane" }},
		"bad entity":              {change: func(c *Config) { c.Entity = "osd.1" }, want: "Entity: invalid credentials: entity \"osd.1\": must be mgr.ID or client.ID"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Name = "x"
			cfg.Insecure = true
			tc.change(&cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.BeaconPeriod != time.Second || cfg.GRPCAddr != "127.0.0.1:6800" || cfg.HTTPAddr != "127.0.0.1:6880" ||
		len(cfg.Monitors) != 1 || cfg.Monitors[0] != "127.0.0.1:6789" ||
		cfg.ReconnectMin != 50*time.Millisecond || cfg.ReconnectMax != 2*time.Second ||
		cfg.Priority != 0 || cfg.Zone != "" {
		t.Errorf("DefaultConfig = %+v", cfg)
	}
}

// FuzzConfig checks Validate on fuzzed values: it never panics, and what it
// accepts is within the documented bounds.
func FuzzConfig(f *testing.F) {
	f.Add("x", "127.0.0.1:6789", "", "", int64(time.Second), int64(50*time.Millisecond), int64(2*time.Second), "", "127.0.0.1:0", "/creds", false)
	f.Add("-x", "nowhere", "rack 1", "h:1", int64(-1), int64(0), int64(-5), "osd.1", ":http", "", true)
	f.Fuzz(func(t *testing.T, name, monitor, zone, host string, period, rmin, rmax int64, entity, grpcAddr, credsDir string, insecure bool) {
		c := DefaultConfig()
		c.Name, c.Monitors, c.Zone, c.AdvertiseHost = name, []string{monitor}, zone, host
		c.BeaconPeriod, c.ReconnectMin, c.ReconnectMax = time.Duration(period), time.Duration(rmin), time.Duration(rmax)
		c.Entity, c.GRPCAddr, c.CredsDir, c.Insecure = entity, grpcAddr, credsDir, insecure
		if c.Validate() != nil {
			return
		}
		if len(c.Name) == 0 || len(c.Name) > MaxNameLen || len(c.Zone) > MaxZoneLen || len(c.AdvertiseHost) > MaxHostLen {
			t.Fatalf("accepted name %q zone %q host %q", c.Name, c.Zone, c.AdvertiseHost)
		}
		if c.BeaconPeriod < MinBeaconPeriod || c.BeaconPeriod > MaxBeaconPeriod || c.ReconnectMin > c.ReconnectMax {
			t.Fatalf("accepted timings %v %v %v", c.BeaconPeriod, c.ReconnectMin, c.ReconnectMax)
		}
		if !c.Insecure && c.CredsDir == "" {
			t.Fatal("accepted a secure config without a creds dir")
		}
	})
}
