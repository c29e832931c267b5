// Package cli holds what the mgrplane daemons share on their command line:
// every flag backed by an environment variable, and the root logger.
package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// EnvName is the environment variable behind a flag: MGRPLANE_DATA_DIR for
// --data-dir.
func EnvName(flagName string) string {
	return "MGRPLANE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// SetFromEnv sets every flag of fs whose variable is set, so that the command
// line, parsed afterwards, wins. --version is never read from the
// environment: a stray MGRPLANE_VERSION must not turn a daemon into a print.
func SetFromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || f.Name == "version" {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", v, EnvName(f.Name), serr)
			}
		}
	})
	return err
}

// LogFlags are the logging flags every daemon takes.
type LogFlags struct {
	Level string
	JSON  bool
}

// Register adds --log-level and --log-json to fs.
func (l *LogFlags) Register(fs *flag.FlagSet) {
	if l.Level == "" {
		l.Level = "info"
	}
	fs.StringVar(&l.Level, "log-level", l.Level, "log level: trace, debug, info, warn or error")
	fs.BoolVar(&l.JSON, "log-json", l.JSON, "log as JSON")
}

// Logger makes the process's root logger.
func (l LogFlags) Logger(name string, w io.Writer) (hclog.Logger, error) {
	level := hclog.LevelFromString(l.Level)
	if level == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: must be trace, debug, info, warn or error", l.Level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, JSONFormat: l.JSON, Output: w}), nil
}
