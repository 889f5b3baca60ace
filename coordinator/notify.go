package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// AlertingConfig sends the FSM's alarms to Alertmanager (v2 API) and to
// generic webhooks, from the leader only.
type AlertingConfig struct {
	// AlertmanagerURLs are Alertmanager base URLs (http://host:9093): the
	// leader POSTs every active alarm, and every alarm cleared within
	// ResolvedFor, to URL/api/v2/alerts on each change and every
	// ResendInterval, as Prometheus does.
	AlertmanagerURLs []string `yaml:"alertmanager_urls"`
	// WebhookURLs receive Alertmanager's webhook receiver JSON (version 4),
	// one message per alarm raised or cleared.
	WebhookURLs []string `yaml:"webhook_urls"`
	// ResendInterval: active alerts are re-sent this often; each carries
	// endsAt = now + 4 x ResendInterval so Alertmanager resolves it by
	// itself if the coordinator goes silent.
	ResendInterval time.Duration `yaml:"resend_interval"`
	// ResolvedFor: a cleared alarm is re-sent as resolved this long.
	ResolvedFor time.Duration `yaml:"resolved_for"`
	// Timeout bounds each HTTP request; MaxBackoff caps the retry backoff.
	Timeout    time.Duration `yaml:"timeout"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// ExternalURL is sent as generatorURL/externalURL (e.g. a dashboard).
	ExternalURL string `yaml:"external_url"`
}

// withDefaults fills unset durations.
func (c AlertingConfig) withDefaults() AlertingConfig {
	if c.ResendInterval <= 0 {
		c.ResendInterval = time.Minute
	}
	if c.ResolvedFor <= 0 {
		c.ResolvedFor = 15 * time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	return c
}

// Validate reports malformed URLs and negative durations.
func (c AlertingConfig) Validate() error {
	var bad []string
	for _, u := range append(append([]string(nil), c.AlertmanagerURLs...), c.WebhookURLs...) {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad = append(bad, fmt.Sprintf("alerting URL %q is not http(s)://host[:port][/path]", u))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"resend_interval", c.ResendInterval}, {"resolved_for", c.ResolvedFor}, {"timeout", c.Timeout}, {"max_backoff", c.MaxBackoff}} {
		if d.v < 0 {
			bad = append(bad, fmt.Sprintf("alerting.%s %v is negative", d.name, d.v))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

func (c AlertingConfig) enabled() bool { return len(c.AlertmanagerURLs)+len(c.WebhookURLs) > 0 }

// amAlert is Alertmanager's v2 postable alert (and, with status and
// fingerprint, its webhook alert).
type amAlert struct {
	Status       string            `json:"status,omitempty"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint,omitempty"`
}

// webhookMessage is the JSON Alertmanager's webhook receiver sends.
type webhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []amAlert         `json:"alerts"`
}

// AlertName is the alertname an alarm kind is sent under
// (error_bound_critical -> StillpointErrorBoundCritical, the same name as
// the matching Prometheus rule).
func AlertName(kind string) string {
	var b strings.Builder
	b.WriteString("Stillpoint")
	for _, part := range strings.FieldsFunc(kind, func(r rune) bool { return r == '_' || r == '-' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// alarmAlert turns an alarm into an Alertmanager alert at time now. Its
// labels (hence its identity in Alertmanager) depend only on the alarm's
// kind, cluster, node(s) and severity, so a re-send, or a send from a new
// leader, updates the same alert instead of adding one.
func alarmAlert(a *pb.Alarm, now time.Time, cfg AlertingConfig) amAlert {
	labels := map[string]string{"alertname": AlertName(a.GetKind()), "kind": a.GetKind(), "alarm_id": a.GetId()}
	if a.GetSeverity() != "" {
		labels["severity"] = a.GetSeverity()
	}
	if a.GetCluster() != "" {
		labels["cluster"] = a.GetCluster()
	}
	if node := a.GetNode(); node != "" {
		labels["node"] = node
	} else if len(a.GetNodes()) > 0 {
		labels["node"] = strings.Join(a.GetNodes(), ",")
	}
	ann := map[string]string{"summary": a.GetMessage(), "description": a.GetMessage()}
	if u := a.GetUnit(); u != "" {
		ann["figure"], ann["limit"] = alarmFigureText(a.GetFigure(), u), alarmFigureText(a.GetLimit(), u)
	}
	if len(a.GetNodes()) > 0 {
		ann["nodes"] = strings.Join(a.GetNodes(), ", ")
	}
	ann["runbook_url"] = RunbookURL(a.GetKind())
	out := amAlert{Labels: labels, Annotations: ann, GeneratorURL: cfg.ExternalURL}
	if t := a.GetRaisedAt().GetLocalTime(); t != nil {
		out.StartsAt = t.AsTime().UTC()
	}
	if a.GetActive() {
		out.Status = "firing"
		out.EndsAt = now.Add(4 * cfg.ResendInterval).UTC()
	} else {
		out.Status = "resolved"
		out.EndsAt = now.UTC()
		if t := a.GetClearedAt().GetLocalTime(); t != nil {
			out.EndsAt = t.AsTime().UTC()
		}
	}
	out.Fingerprint = fingerprint(labels)
	return out
}

func alarmFigureText(v float64, unit string) string {
	if unit == unitNs {
		return timefmt.Duration(time.Duration(v))
	}
	return fmt.Sprintf("%g", v)
}

// RunbookURL is the runbook of an alarm kind: its section of
// deploy/prometheus/README.md.
func RunbookURL(kind string) string {
	return "https://github.com/stillpoint-dev/stillpoint/blob/main/deploy/prometheus/README.md#" + runbookAnchor(kind)
}

// runbookAnchor is the deploy/prometheus/README.md section of a kind.
func runbookAnchor(kind string) string {
	switch kind {
	case AlarmErrorBoundWarning, AlarmErrorBoundCritical:
		return "error-bound"
	case AlarmSpreadWarning, AlarmSpreadCritical:
		return "offset-spread"
	case AlarmClockStatus, AlarmFalseticker, AlarmLeapPending:
		return "clock-not-synchronized"
	case AlarmAgentAbsent:
		return "agent-absent"
	case AlarmNodeUnreachable:
		return "node-unreachable"
	case AlarmPausedWithoutOp:
		return "node-paused-without-an-operation"
	case AlarmPausedPastLease, AlarmAgentDead:
		return "node-paused-past-its-lease"
	case AlarmDeleteHookFailed:
		return "backup-delete-hook-failed"
	}
	return "operation-interrupted"
}

// fingerprint is a stable hash of a label set (FNV-1a over the sorted
// pairs), the alert's idempotency key.
func fingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := fnv.New64a()
	for _, k := range keys {
		_, _ = h.Write([]byte(k))
		_, _ = h.Write([]byte{0xff})
		_, _ = h.Write([]byte(labels[k]))
		_, _ = h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// notifyDuty is the leader's notifier: it never writes to Raft and never
// blocks it; each receiver has its own sender goroutine that retries with
// backoff and sends only the newest state (Alertmanager) or a bounded
// queue of transitions (webhooks).
func (s *Server) notifyDuty(ctx context.Context, epoch uint64) {
	cfg := s.cfg.Alerting.withDefaults()
	if !cfg.enabled() {
		return
	}
	log := s.log.With(zap.Uint64("epoch", epoch), zap.String("duty", "notify"))
	var ams, hooks []*sender
	for _, u := range cfg.AlertmanagerURLs {
		ams = append(ams, newSender(strings.TrimRight(u, "/")+"/api/v2/alerts", true, cfg, log))
	}
	for _, u := range cfg.WebhookURLs {
		hooks = append(hooks, newSender(u, false, cfg, log))
	}
	for _, sd := range append(append([]*sender(nil), ams...), hooks...) {
		go sd.run(ctx)
	}
	// Webhook transitions already older than a resend interval when this
	// term starts are taken as delivered by the previous leader; newer
	// ones are sent again (receivers dedupe on groupKey + fingerprint +
	// startsAt/endsAt).
	sent := map[string]string{}
	start := s.cfg.Now()
	for _, a := range s.fsm.Alarms(true) {
		if last := lastTransition(a); !last.IsZero() && start.Sub(last) > cfg.ResendInterval {
			sent[a.GetId()] = transitionKey(a)
		}
	}
	tick := time.NewTicker(cfg.ResendInterval)
	defer tick.Stop()
	resend := true
	lastSig := ""
	for {
		ch := s.fsm.Changed()
		now := s.cfg.Now()
		all := s.fsm.Alarms(true)
		var batch []amAlert
		var sig strings.Builder
		for _, a := range all {
			if !a.GetActive() {
				if t := a.GetClearedAt().GetLocalTime(); t != nil && now.Sub(t.AsTime()) > cfg.ResolvedFor {
					continue
				}
			}
			batch = append(batch, alarmAlert(a, now, cfg))
			fmt.Fprintf(&sig, "%s|%s|%d;", a.GetId(), transitionKey(a), a.GetUpdatedAt().GetLocalTime().AsTime().UnixNano())
		}
		// Alertmanager hears of every alarm change at once and of the
		// whole set every resend interval; other FSM changes (operations,
		// members) send nothing.
		if resend || sig.String() != lastSig {
			if body, err := json.Marshal(batch); err == nil && len(batch) > 0 {
				for _, sd := range ams {
					sd.offer(body)
				}
			}
			lastSig, resend = sig.String(), false
		}
		for _, a := range all {
			key := transitionKey(a)
			if sent[a.GetId()] == key {
				continue
			}
			sent[a.GetId()] = key
			al := alarmAlert(a, now, cfg)
			msg := webhookMessage{
				Version: "4", GroupKey: fmt.Sprintf("{}:{alarm_id=%q}", a.GetId()), Status: al.Status, Receiver: "stillpoint",
				GroupLabels: map[string]string{"alarm_id": a.GetId()}, CommonLabels: al.Labels, CommonAnnotations: al.Annotations,
				ExternalURL: cfg.ExternalURL, Alerts: []amAlert{al},
			}
			if body, err := json.Marshal(msg); err == nil {
				for _, sd := range hooks {
					sd.offer(body)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-tick.C:
			resend = true
		}
	}
}

// transitionKey changes when an alarm is raised or cleared (not when its
// figure is updated: Alertmanager gets those with the periodic re-sends).
func transitionKey(a *pb.Alarm) string {
	return fmt.Sprintf("%t|%v|%v", a.GetActive(), a.GetRaisedAt().GetLocalTime().AsTime().UnixNano(),
		a.GetClearedAt().GetLocalTime().AsTime().UnixNano())
}

func lastTransition(a *pb.Alarm) time.Time {
	var last time.Time
	for _, st := range []*pb.StampedTime{a.GetRaisedAt(), a.GetClearedAt()} {
		if t := st.GetLocalTime(); t != nil && t.AsTime().After(last) {
			last = t.AsTime()
		}
	}
	return last
}
