package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// maxWebhookQueue bounds the transitions waiting for a webhook; the oldest
// are dropped (and logged) beyond it.
const maxWebhookQueue = 1000

// sender delivers bodies to one receiver URL from its own goroutine, with
// retries and exponential backoff, so the notifier (and so the leader and
// Raft) never waits on a receiver. latestOnly keeps just the newest body
// (Alertmanager: each body is the whole alert set); otherwise bodies queue
// in order (webhooks: one per transition).
type sender struct {
	url        string
	latestOnly bool
	cfg        AlertingConfig
	log        *zap.Logger
	client     *http.Client

	mu    sync.Mutex
	queue [][]byte
	kick  chan struct{}
}

func newSender(url string, latestOnly bool, cfg AlertingConfig, log *zap.Logger) *sender {
	return &sender{url: url, latestOnly: latestOnly, cfg: cfg, log: log.With(zap.String("receiver", url)),
		client: &http.Client{Timeout: cfg.Timeout}, kick: make(chan struct{}, 1)}
}

// offer hands a body to the sender; it never blocks.
func (s *sender) offer(body []byte) {
	s.mu.Lock()
	if s.latestOnly {
		s.queue = [][]byte{body}
	} else {
		s.queue = append(s.queue, body)
		if n := len(s.queue) - maxWebhookQueue; n > 0 {
			s.log.Warn("webhook queue full; dropping the oldest notifications", zap.Int("dropped", n))
			s.queue = s.queue[n:]
		}
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *sender) next() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, false
	}
	return s.queue[0], true
}

// done drops body from the head of the queue if it is still there (a
// newer body offered meanwhile stays).
func (s *sender) done(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 && bytes.Equal(s.queue[0], body) {
		s.queue = s.queue[1:]
	}
}

func (s *sender) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		body, ok := s.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.kick:
			}
			continue
		}
		err := s.post(ctx, body)
		if err == nil {
			s.done(body)
			backoff = 100 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("alert notification failed; retrying", zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > s.cfg.MaxBackoff {
			backoff = s.cfg.MaxBackoff
		}
	}
}

func (s *sender) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", s.url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
