package cli

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestSetFromEnv(t *testing.T) {
	tests := map[string]struct {
		env     map[string]string
		args    []string
		wantDur time.Duration
		wantVer bool
		wantErr string
	}{
		"env sets":           {env: map[string]string{"MGRPLANE_BEACON_PERIOD": "3s"}, wantDur: 3 * time.Second},
		"flag wins":          {env: map[string]string{"MGRPLANE_BEACON_PERIOD": "3s"}, args: []string{"--beacon-period", "5s"}, wantDur: 5 * time.Second},
		"bad value named":    {env: map[string]string{"MGRPLANE_BEACON_PERIOD": "soon"}, wantErr: "MGRPLANE_BEACON_PERIOD"},
		"version not env":    {env: map[string]string{"MGRPLANE_VERSION": "true"}, wantDur: time.Second},
		"default untouched":  {wantDur: time.Second},
		"version from flags": {args: []string{"--version"}, wantDur: time.Second, wantVer: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			d := fs.Duration("beacon-period", time.Second, "")
			v := fs.Bool("version", false, "")
			err := SetFromEnv(fs, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want mention of %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if *d != tc.wantDur || *v != tc.wantVer {
				t.Fatalf("beacon-period %v version %v", *d, *v)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	l, err := LogFlags{Level: "warn", JSON: true}.Logger("m", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "k", "v")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"k":"v"`) {
		t.Fatalf("log %q", buf.String())
	}
	if _, err := (LogFlags{Level: "loud"}).Logger("m", &buf); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Fatalf("bad level: %v", err)
	}
}
