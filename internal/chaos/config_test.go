package chaos

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Dir = t.TempDir()
	if err := good.Validate(); err != nil {
		t.Fatalf("the default config (with a dir) is refused: %v", err)
	}
	tests := map[string]struct {
		change func(*Config)
		want   string
	}{
		"no rounds":            {func(c *Config) { c.Rounds = 0 }, "Rounds"},
		"too many rounds":      {func(c *Config) { c.Rounds = maxRounds + 1 }, "Rounds"},
		"no faults":            {func(c *Config) { c.Faults = nil }, "Faults"},
		"an unknown fault":     {func(c *Config) { c.Faults = []FaultKind{"reboot"} }, "Faults"},
		"one manager":          {func(c *Config) { c.Managers = []string{"x"} }, "Managers"},
		"a bad manager name":   {func(c *Config) { c.Managers = []string{"x", "-y"} }, "Managers"},
		"the map lane's name":  {func(c *Config) { c.Managers = []string{"x", "map"} }, "Managers"},
		"a manager twice":      {func(c *Config) { c.Managers = []string{"x", "x"} }, "Managers"},
		"no dir":               {func(c *Config) { c.Dir = "" }, "Dir"},
		"no beacon period":     {func(c *Config) { c.BeaconPeriod = 0 }, "BeaconPeriod"},
		"a negative grace":     {func(c *Config) { c.Grace = -time.Second }, "Grace"},
		"no tick":              {func(c *Config) { c.Tick = 0 }, "Tick"},
		"a fence above grace":  {func(c *Config) { c.FenceTimeout = c.Grace }, "FenceTimeout"},
		"a tiny probe timeout": {func(c *Config) { c.ProbeTimeout = time.Millisecond }, "ProbeTimeout"},
		"a long probe pause":   {func(c *Config) { c.ProbePause = 2 * time.Second }, "ProbePause"},
		"a negative wait":      {func(c *Config) { c.NewActiveTimeout = -1 }, "NewActiveTimeout"},
		"a negative settle":    {func(c *Config) { c.SettleTimeout = -1 }, "SettleTimeout"},
		"two monitors":         {func(c *Config) { c.Monitors = 2 }, "Monitors"},
		"monkill on one":       {func(c *Config) { c.Faults = []FaultKind{Kill9, MonKill} }, "Faults"},
		"monstop on one":       {func(c *Config) { c.Faults = []FaultKind{MonStop} }, "Faults"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := good
			c.Managers = slices.Clone(good.Managers)
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want+" ") {
				t.Fatalf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	c.Dir = "/d"
	if got := c.newActiveTimeout(); got != 3*c.Grace {
		t.Errorf("new-active timeout %v, want 3 × grace", got)
	}
	if got := c.settleTimeout(); got != 3*c.Grace+10*time.Second {
		t.Errorf("settle timeout %v, want 3 × grace + 10 s", got)
	}
	if got := c.logDir(); got != "/d/logs" {
		t.Errorf("log dir %q, want /d/logs", got)
	}
	c.CephTimings()
	if c.BeaconPeriod != 2*time.Second || c.Grace != 30*time.Second || c.Tick != 2*time.Second {
		t.Errorf("Ceph timings: beacon %v, grace %v, tick %v", c.BeaconPeriod, c.Grace, c.Tick)
	}
}

func TestDefaultFaults(t *testing.T) {
	quorum := DefaultConfig()
	quorum.Dir, quorum.Monitors, quorum.Faults = t.TempDir(), 3, DefaultFaults(3)
	if err := quorum.Validate(); err != nil {
		t.Fatalf("three monitors with their default faults are refused: %v", err)
	}
	if !slices.Contains(quorum.Faults, MonKill) || !slices.Contains(quorum.Faults, MonStop) {
		t.Errorf("default faults with 3 monitors %v lack the monitor faults", quorum.Faults)
	}
	if got := DefaultFaults(1); slices.ContainsFunc(got, FaultKind.OnMonitor) {
		t.Errorf("default faults with 1 monitor %v hold a monitor fault", got)
	}
}

func TestParseFaults(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    []FaultKind
		wantErr bool
	}{
		"all":            {in: "kill9,sigstop,sigterm,restart,fail,monkill,monstop", want: AllFaults()},
		"managers":       {in: "kill9,sigstop,sigterm,restart,fail", want: ManagerFaults()},
		"spaces":         {in: " fail , kill9", want: []FaultKind{Fail, Kill9}},
		"duplicates":     {in: "kill9,kill9", want: []FaultKind{Kill9}},
		"empty":          {in: "", wantErr: true},
		"only commas":    {in: ",,", wantErr: true},
		"an unknown one": {in: "kill9,reboot", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFaults(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %t", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
