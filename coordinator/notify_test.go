package coordinator_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

type postedAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// fakeReceiver records POSTs; the first failFirst answer 500.
type fakeReceiver struct {
	mu        sync.Mutex
	failFirst int
	failed    int
	bodies    [][]byte
	at        []time.Time
	srv       *httptest.Server
}

func newFakeReceiver(t *testing.T, failFirst int) *fakeReceiver {
	f := &fakeReceiver{failFirst: failFirst}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failed < f.failFirst {
			f.failed++
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		f.bodies = append(f.bodies, b)
		f.at = append(f.at, time.Now())
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeReceiver) posts() ([][]byte, []time.Time, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.bodies...), append([]time.Time(nil), f.at...), f.failed
}

// amPosts decodes every accepted Alertmanager POST, with its arrival.
func (f *fakeReceiver) amPosts(t *testing.T) ([][]postedAlert, []time.Time) {
	bodies, at, _ := f.posts()
	var out [][]postedAlert
	for _, b := range bodies {
		var as []postedAlert
		if err := json.Unmarshal(b, &as); err != nil {
			t.Fatalf("Alertmanager body %s: %v", b, err)
		}
		out = append(out, as)
	}
	return out, at
}

type webhookMsg struct {
	Version  string        `json:"version"`
	GroupKey string        `json:"groupKey"`
	Status   string        `json:"status"`
	Receiver string        `json:"receiver"`
	Alerts   []postedAlert `json:"alerts"`
}

func (f *fakeReceiver) hooks(t *testing.T, alarmID string) []webhookMsg {
	bodies, _, _ := f.posts()
	var out []webhookMsg
	for _, b := range bodies {
		var m webhookMsg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("webhook body %s: %v", b, err)
		}
		if len(m.Alerts) == 1 && m.Alerts[0].Labels["alarm_id"] == alarmID {
			out = append(out, m)
		}
	}
	return out
}

// TestNotifierAlertmanagerAndWebhook: an alarm is pushed to an
// Alertmanager-shaped receiver (retried through two 500s) with its labels,
// figure and startsAt, re-sent periodically, and to a webhook as
// Alertmanager's receiver JSON; after a leader kill the new leader re-sends
// the same alert (same labels and fingerprint, same startsAt) and does not
// notify the webhook again; the clear is sent as resolved to both.
func TestNotifierAlertmanagerAndWebhook(t *testing.T) {
	am := newFakeReceiver(t, 2)
	hook := newFakeReceiver(t, 1)
	var l1 *testcluster.StandIn
	c := testcluster.New(t, 3,
		testcluster.WithServerConfig(func(_ int, cfg *coordinator.Config) {
			cfg.Alerting = coordinator.AlertingConfig{AlertmanagerURLs: []string{am.srv.URL}, WebhookURLs: []string{hook.srv.URL},
				ResendInterval: 300 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
		}),
		testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
			l1 = c.AddStandIn(t, "ledger-1", ledgerMeta(0))
			c.AddStandIn(t, "ledger-2", ledgerMeta(time.Millisecond))
		}))
	c.WaitForLeader(t)
	if _, err := c.Client(0).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: fastAlarms()}); err != nil {
		t.Fatal(err)
	}
	if err := l1.Set(func(m *gossip.Meta) { m.Clock.BoundNS = int64(25 * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	id := coordinator.AlarmID(coordinator.AlarmErrorBoundCritical, "ledger", "ledger-1")
	find := func(as []postedAlert) (postedAlert, bool) {
		for _, a := range as {
			if a.Labels["alarm_id"] == id {
				return a, true
			}
		}
		return postedAlert{}, false
	}
	var first postedAlert
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		posts, _ := am.amPosts(t)
		for _, p := range posts {
			if a, ok := find(p); ok && a.Status == "firing" {
				first = a
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d Alertmanager posts, none firing %s", len(posts), id)
	})
	if _, _, failed := am.posts(); failed != 2 {
		t.Fatalf("Alertmanager receiver failed %d requests, want the 2 retried", failed)
	}
	if first.Labels["alertname"] != "StillpointErrorBoundCritical" || first.Labels["node"] != "ledger-1" || first.Labels["cluster"] != "ledger" ||
		first.Labels["severity"] != "critical" || first.Annotations["limit"] != "10ms" || !strings.HasPrefix(first.Annotations["figure"], "25") ||
		!first.EndsAt.After(time.Now()) || first.StartsAt.IsZero() {
		t.Fatalf("first alert = %+v", first)
	}
	raised, _ := activeAlarm(c.WaitForLeader(t), id)
	if !first.StartsAt.Equal(raised.GetRaisedAt().GetLocalTime().AsTime()) {
		t.Fatalf("startsAt %v, want the alarm's raised_at %v", first.StartsAt, raised.GetRaisedAt().GetLocalTime().AsTime())
	}
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		h := hook.hooks(t, id)
		return len(h) == 1 && h[0].Status == "firing" && h[0].Version == "4" && h[0].Alerts[0].Labels["node"] == "ledger-1",
			fmt.Sprintf("webhook messages: %+v", h)
	})

	// Leader kill: the new leader re-sends the same alert.
	old := c.Leader()
	c.Kill(c.Index(old))
	killedAt := time.Now()
	c.WaitForLeader(t)
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		posts, at := am.amPosts(t)
		n := 0
		for i, p := range posts {
			if a, ok := find(p); ok && at[i].After(killedAt) {
				if a.Fingerprint != first.Fingerprint || !a.StartsAt.Equal(first.StartsAt) || a.Labels["node"] != "ledger-1" {
					t.Fatalf("after the leader kill the alert changed identity: %+v, was %+v", a, first)
				}
				n++
			}
		}
		return n >= 3, fmt.Sprintf("%d re-sends since the kill", n)
	})
	if h := hook.hooks(t, id); len(h) != 1 {
		t.Fatalf("webhook notified %d times for one raise across a leader kill: %+v", len(h), h)
	}

	// Cleared: resolved to both.
	if err := l1.Set(func(m *gossip.Meta) { m.Clock.BoundNS = int64(2 * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		posts, _ := am.amPosts(t)
		if a, ok := find(posts[len(posts)-1]); ok && a.Status == "resolved" && !a.EndsAt.After(time.Now()) && a.Fingerprint == first.Fingerprint {
			return true, ""
		}
		return false, "Alertmanager not told it resolved"
	})
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		h := hook.hooks(t, id)
		return len(h) == 2 && h[1].Status == "resolved", fmt.Sprintf("webhook messages: %+v", h)
	})
}
