package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/peertest"
)

func ruleFiles(t *testing.T) []string {
	files, err := filepath.Glob("stillpoint-*-alerts.yml")
	if err != nil || len(files) < 2 {
		t.Fatalf("rule files: %v %v", files, err)
	}
	return files
}

// TestPromtoolCheckRules: every shipped rule file is valid.
func TestPromtoolCheckRules(t *testing.T) {
	bin := peertest.Binary(t, "promtool", "prometheus")
	out, err := exec.Command(bin, append([]string{"check", "rules"}, ruleFiles(t)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestPromtoolTestRules: the rules fire where admission refuses (and at
// the warning ratio), and not below, per tests/*.test.yml.
func TestPromtoolTestRules(t *testing.T) {
	bin := peertest.Binary(t, "promtool", "prometheus")
	tests, err := filepath.Glob("tests/*.test.yml")
	if err != nil || len(tests) < 2 {
		t.Fatalf("rule tests: %v %v", tests, err)
	}
	out, err := exec.Command(bin, append([]string{"test", "rules"}, tests...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestRulesHaveRunbooks: every rule has a severity, a summary, a
// description and a runbook_url pointing at a section of README.md.
func TestRulesHaveRunbooks(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchors[githubAnchor(h)] = true
		}
	}
	// The coordinator's own alerts (its notifier) point at sections too.
	for _, kind := range []string{coordinator.AlarmErrorBoundWarning, coordinator.AlarmErrorBoundCritical, coordinator.AlarmSpreadWarning,
		coordinator.AlarmSpreadCritical, coordinator.AlarmClockStatus, coordinator.AlarmFalseticker, coordinator.AlarmLeapPending,
		coordinator.AlarmAgentAbsent, coordinator.AlarmNodeUnreachable, coordinator.AlarmPausedWithoutOp, coordinator.AlarmPausedPastLease,
		coordinator.AlarmAgentDead, "restore_point_invalidated", coordinator.AlarmDeleteHookFailed} {
		if _, anchor, _ := strings.Cut(coordinator.RunbookURL(kind), "#"); !anchors[anchor] {
			t.Errorf("alarm kind %s: runbook %s names no section of README.md", kind, coordinator.RunbookURL(kind))
		}
	}
	for _, f := range ruleFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
					t.Errorf("%s %s: severity %q", f, r.Alert, r.Labels["severity"])
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s %s: summary or description missing", f, r.Alert)
				}
				url := r.Annotations["runbook_url"]
				_, anchor, ok := strings.Cut(url, "deploy/prometheus/README.md#")
				if !ok || !anchors[anchor] {
					t.Errorf("%s %s: runbook_url %q names no section of README.md (sections: %v)", f, r.Alert, url, anchors)
				}
			}
		}
	}
}

// TestCoordinatorRulesUseExportedMetrics: the coordinator rules name only
// metrics the coordinator exports.
func TestCoordinatorRulesUseExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("stillpoint-coordinator-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, m := range []string{coordinator.MetricMemberUp, coordinator.MetricMemberOffset, coordinator.MetricMemberBound, coordinator.MetricMemberSynced,
		coordinator.MetricMemberPaused, coordinator.MetricMemberHeld, coordinator.MetricSpread, coordinator.MetricMaxErrorBound, coordinator.MetricMaxDrift,
		coordinator.MetricWarningRatio, coordinator.MetricAlarmsActive, coordinator.MetricOperations, coordinator.MetricOpDuration, coordinator.MetricHold,
		coordinator.MetricWindowWidth, coordinator.MetricDrain, coordinator.MetricLastRestorePoint, coordinator.MetricRaftLeader, coordinator.MetricRaftHasLeader,
		coordinator.MetricRaftCommitIndex, coordinator.MetricRaftAppliedIndex, coordinator.MetricRaftLastContact, coordinator.MetricGossipMembers,
		coordinator.MetricGossipDropped} {
		exported[m] = true
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`stillpoint_[a-z_]+`)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			for _, m := range name.FindAllString(r.Expr, -1) {
				if !exported[m] {
					t.Errorf("rule %s uses %s, which the coordinator does not export", r.Alert, m)
				}
			}
		}
	}
}

// githubAnchor is the fragment GitHub gives a Markdown heading.
func githubAnchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}
