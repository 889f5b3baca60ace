package agent

import (
	"os"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestAlertRulesUseAgentMetrics: every rule in deploy/prometheus names
// only metrics this agent exports, and is complete.
func TestAlertRulesUseAgentMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/prometheus/stillpoint-agent-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("rules file: %v", err)
	}
	exported := map[string]bool{}
	for _, m := range []string{MetricClockOffset, MetricClockBound, MetricClockAge, MetricClockStatus, MetricClockSlew, MetricClockFailedRounds, MetricNodeReachable,
		MetricNodePaused, MetricNodeDraining, MetricLeaseHeld, MetricLeaseRemaining, MetricLeasesExpired,
		MetricOpsInterrupted, MetricMaxEpoch, MetricAgentInfo, MetricGossipMembers, MetricGossipMetaErrors} {
		exported[m] = true
	}
	name := regexp.MustCompile(`stillpoint_[a-z_]+`)
	used := map[string]bool{}
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("group %s: rule %q lacks alert, expr, severity, summary or description", g.Name, r.Alert)
			}
			for _, m := range name.FindAllString(r.Expr, -1) {
				used[m] = true
				if !exported[m] {
					t.Errorf("rule %s uses %s, which the agent does not export", r.Alert, m)
				}
			}
		}
	}
	for _, m := range []string{MetricClockOffset, MetricClockBound, MetricClockStatus, MetricLeasesExpired, MetricNodeReachable} {
		if !used[m] {
			t.Errorf("no alert on %s (drift, bound, status and lease must be covered)", m)
		}
	}
	if rules < 5 {
		t.Fatalf("only %d rules", rules)
	}
}
