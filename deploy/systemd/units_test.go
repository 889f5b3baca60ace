package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/stillpoint-dev/stillpoint/internal/peertest"
)

// units maps each unit to the example config its ExecStart names.
var units = map[string]string{
	"stillpoint-server.service": "server.yaml",
	"stillpoint-agent.service":  "agent.yaml",
}

const installedBinary = "/usr/local/bin/stillpoint"

// unitFile is a parsed unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not key=value", path, line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %d values %q, want exactly one", section, key, len(v), v)
	}
	return v[0]
}

// testableCopy writes unit into dir with ExecStart's binary replaced by one
// that exists (verify refuses a missing ExecStart binary), and returns its
// path.
func testableCopy(t *testing.T, dir, unit string, edit func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), installedBinary, self)
	if edit != nil {
		s = edit(s)
	}
	p := filepath.Join(dir, unit)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// verify runs systemd-analyze verify; it reports problems such as unknown
// keys as warnings with exit status 0, so any output is a failure.
func verify(t *testing.T, analyze, path string) (string, error) {
	t.Helper()
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestUnitsVerify: systemd-analyze verify prints nothing for each unit
// (its ExecStart pointed at an existing binary), and does complain about a
// misspelled key, so the check can fail.
func TestUnitsVerify(t *testing.T) {
	analyze := peertest.Binary(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	for unit := range units {
		p := testableCopy(t, dir, unit, nil)
		out, err := verify(t, analyze, p)
		t.Logf("systemd-analyze verify %s: exit %v, output %q", unit, err, out)
		if err != nil || out != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
	bad := testableCopy(t, t.TempDir(), "stillpoint-agent.service", func(s string) string {
		return strings.Replace(s, "NoNewPrivileges=yes", "NoNewPrivilges=yes", 1)
	})
	if out, err := verify(t, analyze, bad); err == nil && !strings.Contains(out, "NoNewPrivilges") {
		t.Errorf("systemd-analyze verify accepted a misspelled key silently: %v %q", err, out)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// maxExposure is the highest `systemd-analyze security` exposure (0 safest,
// 10 unprotected) a unit may have: 1.8 measured with systemd 252.
const maxExposure = 2.0

// TestUnitsHardening: the hardening does not silently erode.
func TestUnitsHardening(t *testing.T) {
	analyze := peertest.Binary(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	for unit := range units {
		p := testableCopy(t, dir, unit, nil)
		out, _ := exec.Command(analyze, "security", "--offline=yes", "--no-pager", p).CombinedOutput()
		m := exposureRE.FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security %s: no overall exposure in:\n%s", unit, out)
		}
		level, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: exposure %.1f", unit, level)
		if level > maxExposure {
			t.Errorf("%s: exposure %.1f > %.1f:\n%s", unit, level, maxExposure, out)
		}
		u := parseUnit(t, unit)
		// adjtimex is in @clock: ProtectClock= or an allow-list filter would
		// refuse the clock sampler's read-only call.
		if v := u["Service"]["ProtectClock"]; len(v) > 0 && v[len(v)-1] != "no" {
			t.Errorf("%s: ProtectClock=%s refuses adjtimex, which the clock sampler reads", unit, v[len(v)-1])
		}
		for _, f := range u["Service"]["SystemCallFilter"] {
			if !strings.HasPrefix(f, "~") || strings.Contains(f, "@clock") {
				t.Errorf("%s: SystemCallFilter=%s would refuse adjtimex (@clock)", unit, f)
			}
		}
	}
}

// TestUnitsMatchConfigs: each unit runs the binary with its example config
// installed under /etc/stillpoint, that config's data_dir is the unit's
// StateDirectory (the one writable place under ProtectSystem=strict), the
// user is the one sysusers.d creates, and the agent starts after the clock
// is synchronized (a recovered lease is a wall-clock deadline).
func TestUnitsMatchConfigs(t *testing.T) {
	sysusers, err := os.ReadFile("sysusers.d/stillpoint.conf")
	if err != nil {
		t.Fatal(err)
	}
	for unit, cfg := range units {
		u := parseUnit(t, unit)
		execStart := strings.Fields(u.one(t, "Service", "ExecStart"))
		want := []string{installedBinary, strings.TrimSuffix(cfg, ".yaml"), "--config", "/etc/stillpoint/" + cfg}
		if strings.Join(execStart, " ") != strings.Join(want, " ") {
			t.Errorf("%s: ExecStart %q, want %q", unit, execStart, want)
		}
		var c struct {
			DataDir string `yaml:"data_dir"`
		}
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", cfg, err)
		}
		if sd := "/var/lib/" + u.one(t, "Service", "StateDirectory"); c.DataDir != sd {
			t.Errorf("%s: data_dir %q is not %s's StateDirectory %s", cfg, c.DataDir, unit, sd)
		}
		user := u.one(t, "Service", "User")
		if !regexp.MustCompile(`(?m)^u\s+` + regexp.QuoteMeta(user) + `\s`).Match(sysusers) {
			t.Errorf("%s: User=%s is not created by sysusers.d/stillpoint.conf", unit, user)
		}
	}
	agent := parseUnit(t, "stillpoint-agent.service")
	after := strings.Fields(strings.Join(agent["Unit"]["After"], " "))
	if !strings.Contains(" "+strings.Join(after, " ")+" ", " time-sync.target ") {
		t.Errorf("stillpoint-agent.service: not ordered After=time-sync.target (After: %v)", after)
	}
}

// TestSysusersAndTmpfiles applies sysusers.d then tmpfiles.d to an empty
// root: the user and group exist, and every directory the units need and
// do not create (the agent's ReadWritePaths for backup hooks, the config
// directory) is there with the owner and mode the files state.
func TestSysusersAndTmpfiles(t *testing.T) {
	sysusers := peertest.Binary(t, "systemd-sysusers", "systemd")
	tmpfiles := peertest.Binary(t, "systemd-tmpfiles", "systemd")
	if os.Geteuid() != 0 {
		t.Skip("systemd-tmpfiles --root needs root to set owners")
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(bin string, args ...string) {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
		}
		t.Logf("%s: %s", filepath.Base(bin), strings.TrimSpace(string(out)))
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	run(sysusers, "--root="+root, abs("sysusers.d/stillpoint.conf"))
	run(tmpfiles, "--create", "--root="+root, abs("tmpfiles.d/stillpoint.conf"))

	uid, gid := lookupIDs(t, root, "stillpoint")
	dirs := []struct {
		path        string
		mode        os.FileMode
		uid, gid    int
		whatNeedsIt string
	}{
		{"/etc/stillpoint", 0o750, 0, gid, "config and *.env secrets"},
		{"/etc/stillpoint/tls", 0o750, 0, gid, "TLS keys"},
		{"/var/backups/stillpoint", 0o750, uid, gid, "agent unit ReadWritePaths"},
	}
	for _, d := range dirs {
		st, err := os.Stat(filepath.Join(root, d.path))
		if err != nil {
			t.Errorf("%s (%s): %v", d.path, d.whatNeedsIt, err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if !st.IsDir() || st.Mode().Perm() != d.mode || int(sys.Uid) != d.uid || int(sys.Gid) != d.gid {
			t.Errorf("%s: dir %v mode %v uid %d gid %d, want mode %v uid %d gid %d", d.path, st.IsDir(), st.Mode().Perm(), sys.Uid, sys.Gid, d.mode, d.uid, d.gid)
		}
	}
	// Every ReadWritePaths of the agent is one of them.
	agent := parseUnit(t, "stillpoint-agent.service")
	for _, p := range agent["Service"]["ReadWritePaths"] {
		p = strings.TrimPrefix(p, "-")
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("agent ReadWritePaths=%s is not created by tmpfiles.d/stillpoint.conf: %v", p, err)
		}
	}
}

// lookupIDs reads name's uid and gid from root's /etc/passwd.
func lookupIDs(t *testing.T, root, name string) (uid, gid int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[0] == name {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				t.Fatalf("passwd line %q", line)
			}
			return uid, gid
		}
	}
	t.Fatalf("user %s not in %s/etc/passwd:\n%s", name, root, b)
	return 0, 0
}
