package coordinator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/peertest"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
)

// TestShippedRulesFireInRealPrometheus: Debian's Prometheus on loopback
// scrapes the coordinator servers' /metrics with the shipped rules (their
// for: durations cut to 0s so the test does not wait minutes; the
// expressions are the shipped ones) and fires the error-bound rules for
// the agent whose bound is over the limit, and only for it.
func TestShippedRulesFireInRealPrometheus(t *testing.T) {
	bin := peertest.Binary(t, "prometheus", "prometheus")
	c := testcluster.New(t, 3,
		testcluster.WithServerConfig(func(_ int, cfg *coordinator.Config) { cfg.HTTPAddr = "127.0.0.1:0" }),
		testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
			m := ledgerMeta(0)
			m.Clock.BoundNS = int64(25 * time.Millisecond)
			c.AddStandIn(t, "ledger-1", m)
			c.AddStandIn(t, "ledger-2", ledgerMeta(time.Millisecond))
		}))
	c.WaitForLeader(t)

	rules, err := os.ReadFile("../deploy/prometheus/stillpoint-coordinator-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	quick := regexp.MustCompile(`(?m)^(\s+for:) .*$`).ReplaceAll(rules, []byte("$1 0s"))
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), quick, 0o600); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, s := range c.Servers() {
		targets = append(targets, fmt.Sprintf("%q", s.HTTPAddr()))
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: stillpoint-coordinator
    static_configs:
      - targets: [%s]
`, filepath.Join(dir, "rules.yml"), strings.Join(targets, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freeLoopbackPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	log := startProcess(t, bin, []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn",
	}, base+"/-/ready")

	type promAlert struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
		Value  string            `json:"value"`
	}
	var firing []promAlert
	testcluster.WaitFor(t, 60*time.Second, func() (bool, string) {
		resp, err := http.Get(base + "/api/v1/alerts")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Alerts []promAlert `json:"alerts"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return false, err.Error()
		}
		firing = firing[:0]
		names := map[string]bool{}
		for _, a := range body.Data.Alerts {
			if a.State == "firing" {
				firing = append(firing, a)
				names[a.Labels["alertname"]] = true
			}
		}
		return names["StillpointErrorBoundCritical"] && names["StillpointErrorBoundWarning"],
			fmt.Sprintf("firing: %v\nprometheus log:\n%s", firing, log.String())
	})
	for _, a := range firing {
		if strings.HasPrefix(a.Labels["alertname"], "StillpointErrorBound") && (a.Labels["node"] != "ledger-1" || a.Labels["cluster"] != "ledger") {
			t.Errorf("error-bound rule fired for %v (only ledger-1 is over the limit)", a.Labels)
		}
		if strings.HasPrefix(a.Labels["alertname"], "StillpointOffsetSpread") {
			t.Errorf("spread rule fired with a 1ms spread: %v", a.Labels)
		}
	}
	t.Logf("firing in Prometheus: %v", firing)
}
