package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMgrctl runs every mgrctl command against a real cluster of x, y, z and
// checks what it prints. The steps share the cluster and run in order: the
// read-only ones first, then the ones that change the map.
func TestMgrctl(t *testing.T) {
	c := newCluster(t)
	st := c.start("x", "y", "z")
	active := st.ActiveName
	c.waitServing(active)
	var standbyNames []string
	for _, n := range []string{"x", "y", "z"} {
		if n != active {
			standbyNames = append(standbyNames, n)
		}
	}
	m := c.dump()
	fsid := m.FSID

	t.Run("stat", func(t *testing.T) {
		out := c.mustMgrctl("stat")
		want := fmt.Sprintf("epoch %d  active %s (gid %d) available  standbys 2\n", m.Epoch, active, st.ActiveGID)
		if out != want {
			t.Errorf("mgrctl stat = %q, want %q", out, want)
		}
	})

	t.Run("dump", func(t *testing.T) {
		out := c.mustMgrctl("dump")
		for _, re := range []string{
			fmt.Sprintf(`(?m)^epoch +%d$`, m.Epoch),
			fmt.Sprintf(`(?m)^fsid +%s$`, regexp.QuoteMeta(fsid)),
			fmt.Sprintf(`(?m)^active +%s\(%d\)$`, active, st.ActiveGID),
			fmt.Sprintf(`(?m)^active_addrs +.*%s`, regexp.QuoteMeta(c.standbys[active].grpcAddr)),
			`(?m)^available +true$`,
			fmt.Sprintf(`(?m)^active_epoch +%d$`, m.ActiveEpoch),
			`(?m)^down +false$`,
			`(?m)^always_on_modules +status$`,
			`(?m)^STANDBY +GID +MODULES +METADATA-DIGEST$`,
			fmt.Sprintf(`(?m)^%s +\d+ +dashboard,prometheus,status +[0-9a-f]+$`, standbyNames[0]),
			fmt.Sprintf(`(?m)^%s +\d+ +dashboard,prometheus,status +[0-9a-f]+$`, standbyNames[1]),
			`(?m)^status +always-on +yes +-$`,
			`(?m)^dashboard +off +yes +-$`,
			`(?m)^prometheus +off +yes +-$`,
			fmt.Sprintf(`(?m)^status +https://%s/status/$`, regexp.QuoteMeta(c.standbys[active].httpAddr)),
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("mgrctl dump does not match %s:\n%s", re, out)
			}
		}
	})

	t.Run("dump --epoch", func(t *testing.T) {
		out := c.mustMgrctl("dump", "--epoch", "1")
		for _, re := range []string{`(?m)^epoch +1$`, `(?m)^active +-$`, `(?m)^cause +bootstrap$`,
			fmt.Sprintf(`(?m)^reason +cluster %s created$`, regexp.QuoteMeta(fsid))} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("mgrctl dump --epoch 1 does not match %s:\n%s", re, out)
			}
		}
		m2 := c.dump("--epoch", "2")
		if m2.Epoch != 2 || m2.Cause != "CHANGE_CAUSE_PROMOTED" || m2.ActiveGID == 0 {
			t.Errorf("mgrctl -o json dump --epoch 2 = epoch %d, cause %s, active %d; want epoch 2, a promotion", m2.Epoch, m2.Cause, m2.ActiveGID)
		}
		r := c.mgrctl("dump", "--epoch", strconv.FormatUint(uint64(m.Epoch)+100, 10))
		if r.code != 1 || !strings.Contains(r.stderr, "OutOfRange") {
			t.Errorf("dump of a future epoch: want exit 1 and OutOfRange:\n%s", r)
		}
	})

	t.Run("services", func(t *testing.T) {
		out := c.mustMgrctl("services")
		want := fmt.Sprintf("SERVICE  URL\nstatus   https://%s/status/\n", c.standbys[active].httpAddr)
		if out != want {
			t.Errorf("mgrctl services = %q, want %q", out, want)
		}
	})

	version := strings.TrimSpace(runCmd(t, bins.standby, "--version").stdout)

	t.Run("metadata", func(t *testing.T) {
		out := c.mustMgrctl("metadata")
		heads := regexp.MustCompile(`(?m)^(\S+) \(gid (\d+), (active|standby)\)$`).FindAllStringSubmatch(out, -1)
		var names []string
		for _, h := range heads {
			names = append(names, h[1])
			if (h[1] == active) != (h[3] == "active") {
				t.Errorf("mgrctl metadata says %s is %s; the active is %s", h[1], h[3], active)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"x", "y", "z"}) {
			t.Errorf("mgrctl metadata lists %v, want x, y, z:\n%s", names, out)
		}
		for _, re := range []string{
			fmt.Sprintf(`(?m)^  os +%s$`, runtime.GOOS),
			fmt.Sprintf(`(?m)^  mgrplane_version +%s$`, regexp.QuoteMeta(version)),
		} {
			if n := len(regexp.MustCompile(re).FindAllString(out, -1)); n != 3 {
				t.Errorf("mgrctl metadata: %d lines match %s, want 3:\n%s", n, re, out)
			}
		}

		one := c.mustMgrctl("metadata", standbyNames[0])
		if !strings.HasPrefix(one, standbyNames[0]+" (gid ") || strings.Count(one, "(gid ") != 1 {
			t.Errorf("mgrctl metadata %s should show only %s:\n%s", standbyNames[0], standbyNames[0], one)
		}
		r := c.mgrctl("metadata", "nosuch")
		if r.code != 1 || !strings.Contains(r.stderr, "NotFound") || !strings.Contains(r.stderr, `"nosuch"`) {
			t.Errorf("metadata of an unknown manager: want exit 1 and NotFound naming it:\n%s", r)
		}
	})

	t.Run("count-metadata", func(t *testing.T) {
		out := c.mustMgrctl("count-metadata", "os")
		if want := fmt.Sprintf("VALUE  COUNT\n%s  3\n", runtime.GOOS); out != want {
			t.Errorf("mgrctl count-metadata os = %q, want %q", out, want)
		}
		out = c.mustMgrctl("count-metadata", "no_such_key")
		if want := "VALUE    COUNT\nunknown  3\n"; out != want {
			t.Errorf("mgrctl count-metadata no_such_key = %q, want %q", out, want)
		}
	})

	t.Run("versions", func(t *testing.T) {
		out := c.mustMgrctl("versions")
		if !regexp.MustCompile(`^VERSION +COUNT\n` + regexp.QuoteMeta(version) + ` +3\n$`).MatchString(out) {
			t.Errorf("mgrctl versions = %q, want version %s counted 3 times", out, version)
		}
	})

	t.Run("beacons", func(t *testing.T) {
		out := c.mustMgrctl("beacons")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 4 || !regexp.MustCompile(`^NAME +GID +ROLE +LAST BEACON +AGE$`).MatchString(lines[0]) {
			t.Fatalf("mgrctl beacons = %q, want a header and 3 managers", out)
		}
		// The active first, then the standbys; each heard from within the
		// grace (the managers beacon every period).
		row := regexp.MustCompile(`^(\S+) +\d+ +(active|standby) +\d{4}-\d\d-\d\dT\S+Z +(\S+)$`)
		for i, l := range lines[1:] {
			mm := row.FindStringSubmatch(l)
			if mm == nil {
				t.Fatalf("mgrctl beacons line %q does not match %s", l, row)
			}
			if wantActive := i == 0; (mm[2] == "active") != wantActive || (wantActive && mm[1] != active) {
				t.Errorf("mgrctl beacons line %d = %q, want the active %s first and standbys after", i+1, l, active)
			}
			if age, err := time.ParseDuration(mm[3]); err != nil || age > 6*time.Second {
				t.Errorf("mgrctl beacons: %s age %q, want a duration within the 6s grace (%v)", mm[1], mm[3], err)
			}
		}
	})

	t.Run("module", func(t *testing.T) {
		if out := c.mustMgrctl("module", "ls"); !regexp.MustCompile(`^MODULE +STATE +CAN-RUN +ERROR\nstatus +always-on +yes +-\ndashboard +off +yes +-\nprometheus +off +yes +-\n$`).MatchString(out) {
			t.Errorf("mgrctl module ls = %q, want status always on, dashboard and prometheus off", out)
		}

		e0 := c.stat().Epoch
		r := c.mgrctl("module", "enable", "nosuch")
		if r.code != 1 || !strings.Contains(r.stderr, "NotFound") || !strings.Contains(r.stderr, "--force") {
			t.Errorf("module enable nosuch: want exit 1, NotFound and a hint at --force:\n%s", r)
		}
		if e := c.stat().Epoch; e != e0 {
			t.Errorf("a refused module enable moved the epoch from %d to %d", e0, e)
		}

		out := c.mustMgrctl("module", "enable", "--force", "nosuch")
		if want := fmt.Sprintf("enabled module nosuch; epoch %d\n", e0+1); out != want {
			t.Errorf("mgrctl module enable --force nosuch = %q, want %q", out, want)
		}
		if out := c.mustMgrctl("module", "ls"); !regexp.MustCompile(`(?m)^nosuch +on +- +-$`).MatchString(out) {
			t.Errorf("mgrctl module ls does not show nosuch enabled:\n%s", out)
		}
		if m := c.dump(); !slices.Contains(m.Modules, "nosuch") {
			t.Errorf("the map's modules %v lack nosuch", m.Modules)
		}

		out = c.mustMgrctl("module", "disable", "nosuch")
		if want := fmt.Sprintf("disabled module nosuch; epoch %d\n", e0+2); out != want {
			t.Errorf("mgrctl module disable nosuch = %q, want %q", out, want)
		}
		if out := c.mustMgrctl("module", "ls"); strings.Contains(out, "nosuch") {
			t.Errorf("mgrctl module ls still shows nosuch:\n%s", out)
		}
		r = c.mgrctl("module", "disable", "nosuch")
		if r.code != 1 || !strings.Contains(r.stderr, "NotFound") {
			t.Errorf("module disable of a module neither enabled nor known: want exit 1 and NotFound:\n%s", r)
		}

		r = c.mgrctl("module", "disable", "status")
		if r.code != 1 || !strings.Contains(r.stderr, "FailedPrecondition") || !strings.Contains(r.stderr, "always on") {
			t.Errorf("module disable status: want exit 1, FailedPrecondition, always on:\n%s", r)
		}
		r = c.mgrctl("module", "enable", "Bad-Name")
		if r.code != 1 || !strings.Contains(r.stderr, "InvalidArgument") {
			t.Errorf("module enable Bad-Name: want exit 1 and InvalidArgument:\n%s", r)
		}
		if e := c.stat().Epoch; e != e0+2 {
			t.Errorf("epoch after the module steps = %d, want %d (two changes)", e, e0+2)
		}
	})

	t.Run("fail NAME", func(t *testing.T) {
		// The first standby by name, the second by gid.
		for i, victim := range standbyNames {
			var gid uint64
			for _, s := range c.dump().Standbys {
				if s.Name == victim {
					gid = uint64(s.GID)
				}
			}
			who := victim
			if i == 1 {
				who = strconv.FormatUint(gid, 10)
			}
			out := c.mustMgrctl("fail", who)
			mt := regexp.MustCompile(`^failed (\S+) \(gid (\d+)\); epoch (\d+)\n$`).FindStringSubmatch(out)
			if mt == nil || mt[1] != victim || mt[2] != strconv.FormatUint(gid, 10) {
				t.Fatalf("mgrctl fail %s = %q, want it to fail %s (gid %d)", who, out, victim, gid)
			}
			at := c.dump("--epoch", mt[3])
			if at.Cause != "CHANGE_CAUSE_ADMIN_FAIL" || !strings.Contains(at.Reason, fmt.Sprintf("standby %s (gid %d) failed by client.admin", victim, gid)) {
				t.Errorf("epoch %s: cause %s, reason %q; want an admin fail of %s", mt[3], at.Cause, at.Reason, victim)
			}
			for _, s := range at.Standbys {
				if s.Name == victim {
					t.Errorf("epoch %s still lists %s as a standby", mt[3], victim)
				}
			}
			// The daemon is alive: it authenticates again and comes back.
			waitFor(t, victim+" to come back with a new gid", func() (bool, string) {
				m := c.dump()
				for _, s := range m.Standbys {
					if s.Name == victim && uint64(s.GID) > gid {
						return true, ""
					}
				}
				return false, fmt.Sprintf("standbys %+v", m.Standbys)
			})
		}
		if r := c.mgrctl("fail", "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "NotFound") {
			t.Errorf("fail nosuch: want exit 1 and NotFound:\n%s", r)
		}
	})

	t.Run("fail", func(t *testing.T) {
		cur := c.stat()
		out := c.mustMgrctl("fail")
		want := regexp.MustCompile(fmt.Sprintf(`^failed %s \(gid %d\); epoch \d+\n$`, cur.ActiveName, cur.ActiveGID))
		if !want.MatchString(out) {
			t.Fatalf("mgrctl fail = %q, want it to match %s", out, want)
		}
		next := c.waitActive(cur.ActiveName, 2)
		c.waitServing(next.ActiveName)
		waitFor(t, "the failed active to answer as a standby", func() (bool, string) {
			return answersAsStandby(c.standbys[cur.ActiveName].httpAddr)
		})
		active = next.ActiveName
	})

	t.Run("set down", func(t *testing.T) {
		e0 := c.stat().Epoch
		out := c.mustMgrctl("set", "down")
		if want := fmt.Sprintf("set down; epoch %d\n", e0+1); out != want {
			t.Errorf("mgrctl set down = %q, want %q", out, want)
		}
		// The active is told to stop; it leaves and comes back as a standby.
		downRE := regexp.MustCompile(`^epoch (\d+)  no active  standbys 3  down\n$`)
		var downEpoch string
		waitFor(t, "no active and 3 standbys while down", func() (bool, string) {
			out := c.mustMgrctl("stat")
			m := downRE.FindStringSubmatch(out)
			if m != nil {
				downEpoch = m[1]
			}
			return m != nil, out
		})
		// The old active stops serving.
		waitFor(t, "the old active to answer as a standby", func() (bool, string) {
			return answersAsStandby(c.standbys[active].httpAddr)
		})
		if out := c.mustMgrctl("services"); out != "SERVICE  URL\n" {
			t.Errorf("mgrctl services while down = %q, want no services", out)
		}
		if out := c.mustMgrctl("set", "down"); out != fmt.Sprintf("set down; epoch %s\n", downEpoch) {
			t.Errorf("mgrctl set down again = %q, want no new epoch", out)
		}
	})

	t.Run("unset down", func(t *testing.T) {
		e0 := c.stat().Epoch
		out := c.mustMgrctl("unset", "down")
		if want := fmt.Sprintf("unset down; epoch %d\n", e0+1); out != want {
			t.Errorf("mgrctl unset down = %q, want %q", out, want)
		}
		next := c.waitActive("", 2)
		c.waitServing(next.ActiveName)
		if out := c.mustMgrctl("stat"); strings.Contains(out, "down") || !strings.Contains(out, "active "+next.ActiveName) {
			t.Errorf("mgrctl stat after unset down = %q", out)
		}
	})

	t.Run("watch --count", func(t *testing.T) {
		w := c.startWatch("watch-count", "--count", "4")
		waitFor(t, "watch to print the current map", func() (bool, string) {
			l := w.out()
			return strings.HasPrefix(l, "epoch "), l
		})
		e0 := c.stat().Epoch
		c.mustMgrctl("set", "down")   // e0+1
		c.mustMgrctl("unset", "down") // e0+2, promoted; then e0+3, available
		if code := w.wait(t); code != 0 {
			t.Fatalf("mgrctl watch --count 4 exited %d:\n%s", code, w.log())
		}
		lines := strings.Split(strings.TrimRight(w.out(), "\n"), "\n")
		if len(lines) != 4 {
			t.Fatalf("mgrctl watch --count 4 printed %d lines, want 4:\n%s", len(lines), w.out())
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, fmt.Sprintf("epoch %d active ", uint64(e0)+uint64(i))) {
				t.Errorf("watch line %d = %q, want epoch %d", i, l, uint64(e0)+uint64(i))
			}
		}
		if !strings.Contains(lines[1], "down=true") || !strings.Contains(lines[1], "flags: down set by client.admin") {
			t.Errorf("watch line 1 = %q, want the map that sets down", lines[1])
		}
	})

	t.Run("watch --since", func(t *testing.T) {
		e := uint64(c.stat().Epoch) - 2
		out := c.mustMgrctl("watch", "--since", strconv.FormatUint(e, 10), "--count", "2")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], fmt.Sprintf("epoch %d ", e+1)) || !strings.HasPrefix(lines[1], fmt.Sprintf("epoch %d ", e+2)) {
			t.Errorf("mgrctl watch --since %d --count 2 = %q, want epochs %d and %d", e, out, e+1, e+2)
		}
		out = c.mustMgrctl("-o", "json", "watch", "--since", strconv.FormatUint(e, 10), "--count", "2")
		lines = strings.Split(strings.TrimRight(out, "\n"), "\n")
		for i, l := range lines {
			var m mapJSON
			if err := json.Unmarshal([]byte(l), &m); err != nil || uint64(m.Epoch) != e+1+uint64(i) || m.FSID != fsid {
				t.Errorf("mgrctl -o json watch line %d = %q (%v), want the map of epoch %d", i, l, err, e+1+uint64(i))
			}
		}
		if len(lines) != 2 {
			t.Errorf("mgrctl -o json watch --count 2 printed %d lines, want 2", len(lines))
		}
	})

	t.Run("history", func(t *testing.T) {
		out := c.mustMgrctl("history")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if !regexp.MustCompile(`^EPOCH +TIME +CAUSE +ACTIVE +STANDBYS +REASON$`).MatchString(lines[0]) {
			t.Errorf("mgrctl history header = %q", lines[0])
		}
		if !regexp.MustCompile(`^1 +\S+ +bootstrap +- +0 +cluster ` + regexp.QuoteMeta(fsid) + ` created$`).MatchString(lines[1]) {
			t.Errorf("mgrctl history first row = %q, want the bootstrap of %s", lines[1], fsid)
		}
		cur := uint64(c.stat().Epoch)
		if uint64(len(lines)-1) != cur {
			t.Errorf("mgrctl history has %d rows, want %d (every epoch is kept)", len(lines)-1, cur)
		}
		for i, l := range lines[1:] {
			if f := strings.Fields(l); len(f) < 5 || f[0] != strconv.Itoa(i+1) {
				t.Errorf("history row %d = %q, want epoch %d", i+1, l, i+1)
			}
		}
		for _, cause := range []string{"promoted", "standby-added", "active-updated", "admin-fail", "modules", "flags"} {
			if !regexp.MustCompile(`(?m)^\d+ +\S+ +` + cause + ` `).MatchString(out) {
				t.Errorf("mgrctl history has no row with cause %s:\n%s", cause, out)
			}
		}
		limited := c.mustMgrctl("history", "--limit", "2")
		if n := strings.Count(limited, "\n"); n != 3 {
			t.Errorf("mgrctl history --limit 2 printed %d lines, want a header and 2 rows:\n%s", n, limited)
		}
		since := c.history("--since", strconv.FormatUint(cur-1, 10))
		if len(since.Entries) != 1 || uint64(since.Entries[0].Epoch) != cur {
			t.Errorf("mgrctl -o json history --since %d = %+v, want only epoch %d", cur-1, since.Entries, cur)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for name, tc := range map[string]struct {
			args []string
			want string
		}{
			"unknown command":  {[]string{"nosuch"}, `unknown command "nosuch"`},
			"extra argument":   {[]string{"fail", "a", "b"}, `unexpected argument "b"`},
			"bad epoch":        {[]string{"dump", "--epoch", "x"}, "--epoch"},
			"missing argument": {[]string{"count-metadata"}, "missing PROPERTY"},
			"bad output":       {[]string{"-o", "yaml", "stat"}, "output format"},
			"module alone":     {[]string{"module"}, "usage: mgrctl module"},
		} {
			t.Run(name, func(t *testing.T) {
				r := c.mgrctl(tc.args...)
				if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
					t.Errorf("want exit 2, nothing on stdout and %q on stderr:\n%s", tc.want, r)
				}
			})
		}
	})

	t.Run("monitor unreachable", func(t *testing.T) {
		r := runCmd(t, bins.mgrctl, "--monitor", freeAddr(t), "--timeout", "2s", "stat")
		if r.code != 1 || !strings.Contains(r.stderr, "Unavailable") {
			t.Errorf("want exit 1 and Unavailable:\n%s", r)
		}
	})
}
