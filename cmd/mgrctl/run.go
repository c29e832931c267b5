package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/status"

	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/internal/version"
)

// Defaults of the global flags.
const (
	// defaultMonitor is where monsim listens by default (Ceph's monitor port).
	defaultMonitor = "127.0.0.1:6789"
	// defaultTimeout bounds each call to the monitor (not a watch stream).
	defaultTimeout = 10 * time.Second
	// defaultCreds is where `make run` keeps the local cluster's creds dir.
	defaultCreds = ".run/monsim/creds"
	// defaultEntity is who mgrctl authenticates as.
	defaultEntity = "client.admin"
)

// Output formats.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// errHelp is returned by a command whose -h was asked for: its help is printed
// and run succeeds.
var errHelp = flag.ErrHelp

// usageError is a mistake in the command line. Nothing was sent to the
// monitor; main exits with exitUsage.
type usageError struct {
	// msg says what is wrong, naming the flag, argument or variable.
	msg string
	// usage is the synopsis of the command concerned ("" for global mistakes).
	usage string
	// full asks for the whole usage text instead of the hint (no command given).
	full bool
}

func (e *usageError) Error() string { return e.msg }

// env is what every command gets: where to print, how, and the monitor client.
type env struct {
	stdout io.Writer
	format string
	client *client
	log    hclog.Logger
	// creds is the creds dir (--creds): the cluster CA, and the managers'
	// certificate that mgrctl proxy serves with.
	creds string
}

// command is one mgrctl command (one or two words, as `module enable`).
type command struct {
	// name is the command words, e.g. "module enable".
	name string
	// synopsis is its flags and arguments, e.g. "[--force] NAME".
	synopsis string
	// summary is one sentence for the usage text.
	summary string
	// run parses c's flags and arguments and does the work.
	run func(ctx context.Context, e *env, c *cmdline) error
}

// commands lists every command in the order the usage text shows them.
func commands() []command {
	return []command{
		{"stat", "", "Show a one-line summary of the current map.", runStat},
		{"dump", "[--epoch N]", "Show the current map, or the kept map of epoch N.", runDump},
		{"fail", "[NAME|GID]", "Fail a manager; with no argument, the active.", runFail},
		{"services", "", "List the URLs of the services the active publishes.", runServices},
		{"metadata", "[NAME]", "Show the system facts of one manager, or of all.", runMetadata},
		{"count-metadata", "PROPERTY", "Count the managers by the value of a metadata key.", runCountMetadata},
		{"versions", "", "Count the managers by mgrplane version.", runVersions},
		{"beacons", "", "Show when the leader last heard from each manager, and how long ago.", runBeacons},
		{"module ls", "", "List the always-on, enabled and available modules.", runModuleLs},
		{"module enable", "[--force] NAME", "Enable a module (--force: even if the active cannot run it).", runModuleEnable},
		{"module disable", "NAME", "Disable a module.", runModuleDisable},
		{"config set", "mgr/MODULE/OPTION VALUE", "Set a module option; the active applies it at once.", runConfigSet},
		{"config get", "mgr/MODULE/OPTION", "Show a module option's value (its default when not set).", runConfigGet},
		{"config rm", "mgr/MODULE/OPTION", "Remove a module option: it goes back to its default.", runConfigRm},
		{"config ls", "[MODULE]", "List the module options with their values, types and bounds.", runConfigLs},
		{"set down", "", "Set the down flag: no active may be chosen.", runSetDown},
		{"unset down", "", "Clear the down flag.", runUnsetDown},
		{"watch", "[--since EPOCH] [--count N]", "Print every map as it is made, until interrupted.", runWatch},
		{"history", "[--since EPOCH] [--limit N]", "List the kept epochs with their time and cause.", runHistory},
		{"proxy", "[--listen ADDR] [--plaintext]", "Serve the active manager's HTTP services at one address that follows every failover, until interrupted.", runProxy},
		{"quorum status", "", "Show the monitors of the quorum, its leader, term and indexes.", runQuorumStatus},
		{"quorum add", "ID ADDR", "Add the monitor ID serving at ADDR (host:port) to the quorum.", runQuorumAdd},
		{"quorum remove", "ID", "Remove the monitor ID from the quorum.", runQuorumRemove},
		{"auth ls", "", "List the entities and their caps (never their keys).", runAuthLs},
		{"auth get", "NAME", "Print an entity's keyring section, with its key.", runAuthGet},
		{"auth add", "NAME [--caps CAPS]", "Add an entity with a new key (caps: mgr, read, admin; default mgr,read for mgr.*, read otherwise).", runAuthAdd},
		{"auth rm", "NAME", "Remove an entity.", runAuthRm},
		{"auth caps", "NAME CAPS", "Replace an entity's caps (comma-separated).", runAuthCaps},
		{"auth rotate", "NAME [--finish]", "Start a key rotation (both keys work), or finish it (only the new one).", runAuthRotate},
		{"help", "", "Show this text.", nil},
	}
}

// usageText is the text of --help.
func usageText() string {
	var b strings.Builder
	b.WriteString("Usage: mgrctl [flags] COMMAND [command flags] [arguments]\n\n")
	b.WriteString("mgrctl reads and changes the manager map held by the monitors, like `ceph mgr ...`,\nand the membership of their quorum.\n\n")
	b.WriteString("Commands:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.synopsis), c.summary)
	}
	_ = tw.Flush()
	b.WriteString("\nFlags (before the command):\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  --monitor ADDR[,ADDR...]\tMonitor address(es), tried in order until one answers\n")
	fmt.Fprintf(tw, "  \t(env MGRPLANE_MONITOR, default %s).\n", defaultMonitor)
	fmt.Fprintf(tw, "  -o, --output table|json\tOutput format (env MGRPLANE_OUTPUT, default %s).\n", formatTable)
	fmt.Fprintf(tw, "  --timeout DURATION\tDeadline of each call to the monitor, not of watch's stream\n")
	fmt.Fprintf(tw, "  \t(env MGRPLANE_TIMEOUT, default %s).\n", defaultTimeout)
	fmt.Fprintf(tw, "  --creds DIR\tCreds dir with the cluster CA and keyring (env MGRPLANE_CREDS,\n")
	fmt.Fprintf(tw, "  \tdefault %s, where `make run` puts it).\n", defaultCreds)
	fmt.Fprintf(tw, "  --keyring FILE\tKeyring holding the entity's key (env MGRPLANE_KEYRING, default CREDS/keyring).\n")
	fmt.Fprintf(tw, "  --entity NAME\tEntity to authenticate as (env MGRPLANE_ENTITY, default %s).\n", defaultEntity)
	fmt.Fprintf(tw, "  --version\tPrint the version and exit.\n")
	fmt.Fprintf(tw, "  -h, --help\tShow this text; after a command, show that command's help.\n")
	_ = tw.Flush()
	b.WriteString("\nExit status: 0 done; 1 the monitor refused or could not be reached; 2 usage error.\n")
	return b.String()
}

// run is mgrctl: args are the command-line arguments without the program name,
// getenv reads the environment. It reports any error on stderr itself and
// returns it: a *usageError for a wrong command line, a gRPC status error when
// the monitor refused or could not be reached, or another error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := execute(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		report(stderr, err)
	}
	return err
}

// report prints err on stderr the way exitCode will judge it.
func report(stderr io.Writer, err error) {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "mgrctl: %s\n", ue.msg)
		switch {
		case ue.full:
			fmt.Fprintf(stderr, "\n%s", usageText())
		case ue.usage != "":
			fmt.Fprintf(stderr, "%s\nRun 'mgrctl --help' for usage.\n", ue.usage)
		default:
			fmt.Fprintln(stderr, "Run 'mgrctl --help' for usage.")
		}
		return
	}
	if st, ok := status.FromError(err); ok {
		fmt.Fprintf(stderr, "mgrctl: %s: %s\n", st.Code(), st.Message())
		return
	}
	fmt.Fprintf(stderr, "mgrctl: %v\n", err)
}

// globals are the parsed global flags.
type globals struct {
	monitors []string
	format   string
	timeout  time.Duration
	creds    string
	keyring  string
	entity   string
}

// execute parses the global flags, finds the command and runs it.
func execute(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	g, rest, err := parseGlobals(args, getenv, stdout)
	if err != nil {
		return err
	}
	if g == nil { // --version or --help was printed
		return nil
	}
	if len(rest) == 0 {
		return &usageError{msg: "missing command", full: true}
	}
	cmd, cmdArgs, err := lookup(rest)
	if err != nil {
		return err
	}
	if cmd.name == "help" {
		if len(cmdArgs) > 0 {
			return &usageError{msg: fmt.Sprintf("help: unexpected argument %q", cmdArgs[0]), usage: "usage: mgrctl help"}
		}
		_, err := io.WriteString(stdout, usageText())
		return err
	}

	log := hclog.New(&hclog.LoggerOptions{Name: "mgrctl", Output: stderr, Level: hclog.Info})
	cc, err := creds.LoadClient(g.creds, g.keyring, g.entity)
	if err != nil {
		return fmt.Errorf("%w (give the creds dir with --creds or MGRPLANE_CREDS, the keyring with --keyring, the entity with --entity)", err)
	}
	cl, err := newClient(g.monitors, g.timeout, log.Named("client"), cc.DialOptions())
	if err != nil {
		return err
	}
	defer cl.Close()
	e := &env{stdout: stdout, format: g.format, client: cl, log: log, creds: g.creds}
	return cmd.run(ctx, e, newCmdline(cmd, cmdArgs, stdout))
}

// parseGlobals parses the flags before the command, with the environment as
// fallback. It returns nil globals when --version or --help was handled.
func parseGlobals(args []string, getenv func(string) string, stdout io.Writer) (*globals, []string, error) {
	monitor := defaultMonitor
	if v := getenv("MGRPLANE_MONITOR"); v != "" {
		monitor = v
	}
	format := formatValue(formatTable)
	if v := getenv("MGRPLANE_OUTPUT"); v != "" {
		if err := format.Set(v); err != nil {
			return nil, nil, &usageError{msg: fmt.Sprintf("MGRPLANE_OUTPUT: %v", err)}
		}
	}
	timeout := defaultTimeout
	if v := getenv("MGRPLANE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, nil, &usageError{msg: fmt.Sprintf("MGRPLANE_TIMEOUT: %q is not a duration (e.g. 10s)", v)}
		}
		timeout = d
	}

	credsDir, keyring, entity := defaultCreds, getenv("MGRPLANE_KEYRING"), defaultEntity
	if v := getenv("MGRPLANE_CREDS"); v != "" {
		credsDir = v
	}
	if v := getenv("MGRPLANE_ENTITY"); v != "" {
		entity = v
	}
	fs := flag.NewFlagSet("mgrctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&monitor, "monitor", monitor, "monitor address(es), comma-separated")
	fs.StringVar(&credsDir, "creds", credsDir, "creds dir holding ca.crt (and the keyring)")
	fs.StringVar(&keyring, "keyring", keyring, "keyring file (default CREDS/keyring)")
	fs.StringVar(&entity, "entity", entity, "entity to authenticate as")
	fs.Var(&format, "output", "output format: table or json")
	fs.Var(&format, "o", "output format: table or json (short)")
	fs.DurationVar(&timeout, "timeout", timeout, "deadline of each call to the monitor")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, werr := io.WriteString(stdout, usageText())
			return nil, nil, werr
		}
		return nil, nil, &usageError{msg: flagMessage(err)}
	}
	if *showVersion {
		_, err := fmt.Fprintf(stdout, "mgrctl %s\n", version.Version)
		return nil, nil, err
	}
	if timeout <= 0 {
		return nil, nil, &usageError{msg: fmt.Sprintf("--timeout must be greater than 0, got %s", timeout)}
	}
	var monitors []string
	for _, m := range strings.Split(monitor, ",") {
		if m = strings.TrimSpace(m); m != "" {
			monitors = append(monitors, m)
		}
	}
	if len(monitors) == 0 {
		return nil, nil, &usageError{msg: "--monitor must name at least one address (host:port)"}
	}
	if err := creds.ValidateEntityName(entity); err != nil {
		return nil, nil, &usageError{msg: fmt.Sprintf("--entity: %v", err)}
	}
	if credsDir == "" {
		return nil, nil, &usageError{msg: "--creds must name a directory"}
	}
	return &globals{monitors: monitors, format: string(format), timeout: timeout, creds: credsDir, keyring: keyring, entity: entity}, fs.Args(), nil
}

// lookup finds the command named by the first one or two words of args.
func lookup(args []string) (command, []string, error) {
	word := args[0]
	var subs []string
	for _, c := range commands() {
		first, second, two := strings.Cut(c.name, " ")
		if first != word {
			continue
		}
		if !two {
			return c, args[1:], nil
		}
		subs = append(subs, second)
		if len(args) > 1 && args[1] == second {
			return c, args[2:], nil
		}
	}
	if len(subs) == 0 {
		return command{}, nil, &usageError{msg: fmt.Sprintf("unknown command %q", word)}
	}
	usage := "usage: mgrctl " + word + " " + strings.Join(subs, "|")
	if len(args) == 1 {
		return command{}, nil, &usageError{msg: fmt.Sprintf("%s: missing %s", word, strings.Join(subs, ", ")), usage: usage}
	}
	return command{}, nil, &usageError{msg: fmt.Sprintf("%s: unknown %q (want %s)", word, args[1], strings.Join(subs, ", ")), usage: usage}
}

// cmdline is one command's arguments and flag set, parsed by the command.
type cmdline struct {
	cmd    command
	args   []string
	fs     *flag.FlagSet
	stdout io.Writer
}

func newCmdline(cmd command, args []string, stdout io.Writer) *cmdline {
	fs := flag.NewFlagSet("mgrctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &cmdline{cmd: cmd, args: args, fs: fs, stdout: stdout}
}

// usage is the command's synopsis line.
func (c *cmdline) usage() string {
	return strings.TrimSpace("usage: mgrctl " + c.cmd.name + " " + c.cmd.synopsis)
}

// usageErr makes a usage error about this command.
func (c *cmdline) usageErr(format string, a ...any) error {
	return &usageError{msg: c.cmd.name + ": " + fmt.Sprintf(format, a...), usage: c.usage()}
}

// parse parses the flags defined on c.fs, anywhere among the arguments (up to
// "--"), and checks the positional arguments: every required one, at most the
// optional ones. On -h it prints the command's help and returns errHelp.
func (c *cmdline) parse(required, optional []string) ([]string, error) {
	var pos []string
	args := c.args
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, c.printHelp()
			}
			return nil, c.usageErr("%s", flagMessage(err))
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < len(required) {
		return nil, c.usageErr("missing %s", required[len(pos)])
	}
	if len(pos) > len(required)+len(optional) {
		return nil, c.usageErr("unexpected argument %q", pos[len(required)+len(optional)])
	}
	for i, p := range pos {
		if p == "" {
			name := append(append([]string{}, required...), optional...)[i]
			return nil, c.usageErr("%s must not be empty", name)
		}
	}
	return pos, nil
}

// printHelp prints the command's synopsis, summary and flags on stdout.
func (c *cmdline) printHelp() error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n%s\n", c.usage(), c.cmd.summary)
	hasFlags := false
	c.fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		b.WriteString("\nFlags:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		c.fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(tw, "  --%s\t%s\n", f.Name, f.Usage)
		})
		_ = tw.Flush()
	}
	if _, err := io.WriteString(c.stdout, b.String()); err != nil {
		return err
	}
	return errHelp
}

// formatValue is the --output flag: table or json.
type formatValue string

func (f *formatValue) String() string { return string(*f) }

func (f *formatValue) Set(s string) error {
	switch s {
	case formatTable, formatJSON:
		*f = formatValue(s)
		return nil
	}
	return fmt.Errorf("output format must be %s or %s, got %q", formatTable, formatJSON, s)
}

// uintValue is an unsigned integer flag (an epoch, a limit, a count) that
// rejects anything else with a message naming the bound.
type uintValue struct {
	v    *uint64
	bits int
}

func (u uintValue) String() string {
	if u.v == nil {
		return "0"
	}
	return strconv.FormatUint(*u.v, 10)
}

func (u uintValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, u.bits)
	if err != nil {
		if u.bits == 64 {
			return errors.New("must be a non-negative integer")
		}
		return fmt.Errorf("must be an integer from 0 to %d", uint64(1)<<u.bits-1)
	}
	*u.v = n
	return nil
}

// uintFlag defines an unsigned integer flag of the given size on fs.
func uintFlag(fs *flag.FlagSet, name string, bits int, usage string) *uint64 {
	v := new(uint64)
	fs.Var(uintValue{v: v, bits: bits}, name, usage)
	return v
}

// flagMessage is the flag package's error, naming long flags the way the
// usage text spells them (--epoch, not -epoch).
func flagMessage(err error) string {
	re := regexp.MustCompile(`(for flag|needs an argument:|not defined:) -(\w[\w-]+)`)
	return re.ReplaceAllString(err.Error(), "$1 --$2")
}
