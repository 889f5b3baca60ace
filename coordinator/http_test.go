package coordinator_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCoordinatorHTTP: every server serves /metrics with per-node clock
// figures, the cluster spread, the active alarms, Raft and gossip health;
// /healthz and /readyz answer 200 while a leader is known, and /readyz
// turns 503 on a server left without a quorum.
func TestCoordinatorHTTP(t *testing.T) {
	c := testcluster.New(t, 3,
		testcluster.WithServerConfig(func(_ int, cfg *coordinator.Config) { cfg.HTTPAddr = "127.0.0.1:0" }),
		testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
			m := ledgerMeta(3 * time.Millisecond)
			m.Clock.BoundNS = int64(25 * time.Millisecond)
			c.AddStandIn(t, "ledger-1", m)
			c.AddStandIn(t, "ledger-2", ledgerMeta(-time.Millisecond))
		}))
	leader := c.WaitForLeader(t)
	if _, err := c.Client(0).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: fastAlarms()}); err != nil {
		t.Fatal(err)
	}
	critical := coordinator.AlarmID(coordinator.AlarmErrorBoundCritical, "ledger", "ledger-1")
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		_, ok := activeAlarm(leader, critical)
		return ok, "alarm not raised"
	})
	base := "http://" + leader.HTTPAddr()
	var body string
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		_, body = httpGet(t, base+"/metrics")
		return strings.Contains(body, `stillpoint_coordinator_member_clock_offset_seconds{cluster="ledger",node="ledger-2"} -0.001`), body
	})
	for _, want := range []string{
		`stillpoint_coordinator_member_clock_offset_seconds{cluster="ledger",node="ledger-1"} 0.003`,
		`stillpoint_coordinator_member_clock_error_bound_seconds{cluster="ledger",node="ledger-1"} 0.02`,
		`stillpoint_coordinator_member_up{cluster="ledger",node="ledger-1"} 1`,
		`stillpoint_coordinator_member_clock_synchronized{cluster="ledger",node="ledger-2"} 1`,
		`stillpoint_coordinator_cluster_offset_spread_seconds{cluster="ledger"} 0.004`,
		`stillpoint_coordinator_alarms_active{cluster="ledger",kind="error_bound_critical",severity="critical"} 1`,
		`stillpoint_coordinator_config_max_error_bound_seconds 0.01`,
		`stillpoint_coordinator_config_max_drift_seconds 0.1`,
		`stillpoint_coordinator_config_alarm_warning_ratio 0.8`,
		`stillpoint_coordinator_raft_leader 1`,
		`stillpoint_coordinator_raft_has_leader 1`,
		`stillpoint_coordinator_gossip_members{status="alive"} 5`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("/metrics:\n%s", body)
	}
	for _, s := range c.Servers() {
		if code, b := httpGet(t, "http://"+s.HTTPAddr()+"/healthz"); code != 200 {
			t.Fatalf("%s /healthz = %d %s", s.ID(), code, b)
		}
		testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
			code, b := httpGet(t, "http://"+s.HTTPAddr()+"/readyz")
			return code == 200, fmt.Sprintf("%s /readyz = %d %s", s.ID(), code, b)
		})
	}
	// Two servers gone: the last one has no leader and is not ready.
	// Chosen by index, not by role: leadership may have moved since
	// WaitForLeader, and a stale role picked the same server twice.
	last := c.Server(0)
	c.Kill(1)
	c.Kill(2)
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		code, b := httpGet(t, "http://"+last.HTTPAddr()+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(b, "leader"), fmt.Sprintf("%s /readyz = %d %s", last.ID(), code, b)
	})
	if code, _ := httpGet(t, "http://"+last.HTTPAddr()+"/healthz"); code != 200 {
		t.Fatalf("/healthz of a live server without quorum = %d, want 200", code)
	}
}
