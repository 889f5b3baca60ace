package coordinator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/peertest"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncLog collects a child process's output for the failure message.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProcess runs bin with args until the test ends and waits until
// GET readyURL answers 200.
func startProcess(t *testing.T, bin string, args []string, readyURL string) *syncLog {
	t.Helper()
	out := &syncLog{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		resp, err := http.Get(readyURL)
		if err != nil {
			return false, fmt.Sprintf("%s: %v\n%s", readyURL, err, out.String())
		}
		resp.Body.Close()
		return resp.StatusCode == 200, fmt.Sprintf("%s: %s\n%s", readyURL, resp.Status, out.String())
	})
	return out
}

// gettableAlert is what Alertmanager's GET /api/v2/alerts returns.
type gettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, base string) []gettableAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatalf("GET alerts: %v", err)
	}
	defer resp.Body.Close()
	var out []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET alerts: %v", err)
	}
	return out
}

// webhookSink records the JSON bodies POSTed to it.
type webhookSink struct {
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func newWebhookSink(t *testing.T) *webhookSink {
	s := &webhookSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *webhookSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// TestAlarmReachesRealAlertmanager: Debian's Alertmanager on loopback,
// the dev cluster's notifier pointed at it; ledger-1's clock is stepped
// by a second: Alertmanager holds the offset-spread alert with the node
// label and the figure, and its own webhook receiver is notified firing;
// the step is undone: the alert resolves (gone from /api/v2/alerts,
// resolved notification with the node label).
func TestAlarmReachesRealAlertmanager(t *testing.T) {
	bin := peertest.Binary(t, "prometheus-alertmanager", "prometheus-alertmanager")
	receiver := newWebhookSink(t)
	dir := t.TempDir()
	conf := fmt.Sprintf(`route:
  receiver: sink
  group_by: [alertname, cluster, node]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sink
    webhook_configs:
      - url: %s
        send_resolved: true
`, receiver.srv.URL)
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freeLoopbackPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	amLog := startProcess(t, bin, []string{
		"--config.file=" + filepath.Join(dir, "alertmanager.yml"), "--storage.path=" + dir,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=", "--log.level=warn",
	}, base+"/-/ready")

	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Skews = map[string]time.Duration{"ledger-1": 0}
		// A long resend interval (endsAt = now + 80s) makes the resolution
		// within the test's wait the notifier's explicit endsAt, never
		// Alertmanager timing the alert out.
		cfg.Alerting = coordinator.AlertingConfig{AlertmanagerURLs: []string{base}, ResendInterval: 20 * time.Second, MaxBackoff: time.Second}
		cfg.Runtime = func(rc *pb.RuntimeConfig) {
			rc.MaxErrorBoundNs, rc.MaxDriftNs = int64(time.Second), int64(500*time.Millisecond)
			rc.AlarmForNs, rc.AlarmClearForNs, rc.AlarmEvalIntervalNs = int64(500*time.Millisecond), int64(time.Second), int64(200*time.Millisecond)
		}
	})
	waitAdmissible(t, c)
	skewed, ok := c.Node("ledger-1").Clock().(*clock.Skewed)
	if !ok {
		t.Fatal("ledger-1 has no steppable clock")
	}
	skewed.Jump(time.Second)

	var firing gettableAlert
	testcluster.WaitFor(t, 60*time.Second, func() (bool, string) {
		for _, a := range amAlerts(t, base) {
			if a.Labels["alertname"] == "StillpointOffsetSpreadCritical" && a.Labels["node"] == "ledger-1" {
				firing = a
				return a.Status.State == "active", "state " + a.Status.State
			}
		}
		return false, "no StillpointOffsetSpreadCritical alert for ledger-1 in Alertmanager; its log:\n" + amLog.String()
	})
	if firing.Labels["cluster"] != "ledger" || firing.Labels["severity"] != "critical" ||
		!strings.Contains(firing.Annotations["figure"], "ms") && !strings.Contains(firing.Annotations["figure"], "s") ||
		firing.Annotations["limit"] != "500ms" || !strings.Contains(firing.Annotations["summary"], "ledger-1") {
		t.Fatalf("alert in Alertmanager = %+v", firing)
	}
	t.Logf("Alertmanager holds %s{node=%s} figure %s > %s: %s", firing.Labels["alertname"], firing.Labels["node"],
		firing.Annotations["figure"], firing.Annotations["limit"], firing.Annotations["summary"])
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		for _, b := range receiver.all() {
			if strings.Contains(b, `"status":"firing"`) && strings.Contains(b, `"node":"ledger-1"`) && strings.Contains(b, "StillpointOffsetSpreadCritical") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("Alertmanager's receiver got no firing notification: %v", receiver.all())
	})

	skewed.Jump(-time.Second)
	testcluster.WaitFor(t, 60*time.Second, func() (bool, string) {
		for _, a := range amAlerts(t, base) {
			if a.Fingerprint == firing.Fingerprint {
				return false, fmt.Sprintf("alert still %s, endsAt %v", a.Status.State, a.EndsAt)
			}
		}
		return true, ""
	})
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		for _, b := range receiver.all() {
			if strings.Contains(b, `"status":"resolved"`) && strings.Contains(b, `"node":"ledger-1"`) && strings.Contains(b, "StillpointOffsetSpreadCritical") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("Alertmanager's receiver got no resolved notification: %v", receiver.all())
	})
	// The alarm itself is cleared in the replicated state.
	leader := c.Servers()[c.Leader()]
	id := coordinator.AlarmID(coordinator.AlarmSpreadCritical, "ledger", "ledger-1")
	if a, ok := leader.FSM().Alarm(id); !ok || a.GetActive() || a.GetClearedAt() == nil {
		t.Fatalf("alarm %s = %v", id, a)
	}
}
