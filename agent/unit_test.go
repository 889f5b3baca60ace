package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const agentUnit = "../deploy/systemd/stillpoint-agent.service"

// TestSystemdUnitStartsAfterTimeSync: the agent re-arms a recovered lease
// from a wall-clock deadline, so its unit is ordered after the host clock
// is synchronized; and the unit passes systemd-analyze verify where
// systemd is installed.
func TestSystemdUnitStartsAfterTimeSync(t *testing.T) {
	b, err := os.ReadFile(agentUnit)
	if err != nil {
		t.Fatal(err)
	}
	var section string
	after := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && section == "[Unit]" && strings.TrimSpace(k) == "After" {
			for _, u := range strings.Fields(v) {
				after[u] = true
			}
		}
	}
	if !after["time-sync.target"] {
		t.Errorf("%s: [Unit] is not ordered After=time-sync.target (After: %v)", agentUnit, after)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit not verified")
		return
	}
	// verify wants ExecStart to exist: point it at a binary that does.
	unit := filepath.Join(t.TempDir(), "stillpoint-agent.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/stillpoint", "/bin/true")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", agentUnit, err, out)
	}
}
