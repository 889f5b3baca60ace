// Package gossip is Stillpoint's membership layer: a hashicorp/memberlist
// pool whose members gossip typed, versioned metadata (Meta: role, cluster,
// gRPC address, clock estimate, node pause state, lease) and a consumer
// API (Members, Subscribe) that never blocks memberlist.
package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/logging"
)

// ErrClosed is returned by calls on a pool that was shut down.
var ErrClosed = errors.New("gossip pool shut down")

// Pool is one member of a memberlist gossip pool.
type Pool struct {
	name      string
	log       *zap.Logger
	ml        *memberlist.Memberlist
	localMeta func() Meta
	seeds     []string
	t         timings
	advertise string

	// keyring is the memberlist keyring (nil: no encryption), persisted to
	// keyringFile; keyMu serializes changes.
	keyring     *memberlist.Keyring
	keyringFile string
	keyMu       sync.Mutex

	// encoded is the Meta memberlist serves (delegate.NodeMeta).
	encoded atomic.Pointer[[]byte]
	dropped atomic.Uint64
	leaving atomic.Bool
	// updateMu serializes memberlist.UpdateNode, which is not safe to call
	// concurrently (it reads the local node's state unlocked while another
	// call's aliveNode writes it): metaLoop's pushes and Leave's last one.
	updateMu sync.Mutex

	mu      sync.Mutex
	members map[string]Member
	subs    map[uint64]*subscriber
	nextSub uint64
	closed  bool
	pending []byte // latest encoded Meta not yet pushed

	kick         chan struct{}
	done         chan struct{}
	wg           sync.WaitGroup
	shutdownOnce sync.Once
}

type subscriber struct {
	ch chan Event
}

// New validates cfg, creates the memberlist and starts the pool's
// background loops (metadata pushes, rejoin of cfg.Join seeds, pruning of
// long-dead members). localMeta is called by New and by every UpdateMeta;
// it must be safe for concurrent use and must not call back into the pool.
func New(cfg Config, localMeta func() Meta) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gossip %s: %w", cfg.Name, err)
	}
	if localMeta == nil {
		return nil, fmt.Errorf("gossip %s: localMeta func is nil", cfg.Name)
	}
	first, err := EncodeMeta(localMeta())
	if err != nil {
		return nil, fmt.Errorf("gossip %s: initial metadata: %w", cfg.Name, err)
	}
	z := cfg.Logger
	if z == nil {
		z = zap.NewNop()
	}
	z = z.With(zap.String("node", cfg.Name), zap.String("component", "gossip"))
	mc, t := cfg.memberlistConfig()
	p := &Pool{
		name:      cfg.Name,
		log:       z,
		localMeta: localMeta,
		t:         t,
		members:   make(map[string]Member),
		subs:      make(map[uint64]*subscriber),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	p.encoded.Store(&first)
	kr, err := loadKeyring(cfg, z)
	if err != nil {
		return nil, fmt.Errorf("gossip %s: %w", cfg.Name, err)
	}
	if kr != nil {
		mc.SecretKey = nil
		mc.Keyring = kr
		p.keyring, p.keyringFile = kr, cfg.KeyringFile
	}
	d := delegate{p: p}
	mc.Delegate = d
	mc.Events = d
	mc.Logger = logging.StdLog(z)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip %s: start memberlist on %s:%d: %w", cfg.Name, cfg.BindAddr, cfg.BindPort, err)
	}
	p.ml = ml
	// Read once, before any peer can make memberlist rewrite its own node.
	p.advertise = ml.LocalNode().Address()
	for _, s := range cfg.Join {
		if s != p.advertise { // a server may list itself among the seeds
			p.seeds = append(p.seeds, s)
		}
	}
	z.Info("gossip pool started", zap.String("addr", p.advertise), zap.String("profile", cfg.Profile),
		zap.Bool("encrypted", kr != nil), zap.Strings("seeds", p.seeds))
	p.wg.Add(2)
	go p.metaLoop()
	go p.maintainLoop()
	return p, nil
}

// LocalName is this member's name.
func (p *Pool) LocalName() string { return p.name }

// AdvertiseAddr is the gossip host:port peers reach this member on (the
// actual port when BindPort was 0). Give it to others' Join.
func (p *Pool) AdvertiseAddr() string { return p.advertise }

// Join contacts the given gossip addresses and returns how many answered;
// err is non-nil only when none did.
func (p *Pool) Join(addrs []string) (int, error) {
	if p.isClosed() {
		return 0, fmt.Errorf("gossip %s: join: %w", p.name, ErrClosed)
	}
	n, err := p.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("gossip %s: join %v: contacted %d: %w", p.name, addrs, n, err)
	}
	p.log.Debug("joined", zap.Strings("addrs", addrs), zap.Int("contacted", n))
	return n, nil
}

// UpdateMeta encodes localMeta() now and schedules it for gossip. Pushes are
// coalesced to at most one per MetaMinInterval; the latest value always
// goes out. It never waits on the network. An encoding error (say, a field
// over its limit) is returned and the previous metadata stays in force.
func (p *Pool) UpdateMeta() error {
	b, err := p.encodeLocal()
	if err != nil {
		return fmt.Errorf("gossip %s: update metadata: %w", p.name, err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("gossip %s: update metadata: %w", p.name, ErrClosed)
	}
	p.pending = b
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default: // a push is already scheduled; it will take p.pending
	}
	return nil
}

func (p *Pool) encodeLocal() ([]byte, error) {
	m := p.localMeta()
	m.Leaving = m.Leaving || p.leaving.Load()
	return EncodeMeta(m)
}

// metaLoop pushes pending metadata with memberlist.UpdateNode, at most once
// per t.metaMin.
func (p *Pool) metaLoop() {
	defer p.wg.Done()
	var last time.Time
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		}
		if wait := time.Until(last.Add(p.t.metaMin)); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-p.done:
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		p.mu.Lock()
		b := p.pending
		p.mu.Unlock()
		if cur := p.encoded.Load(); b == nil || bytes.Equal(*cur, b) {
			continue
		}
		p.updateMu.Lock()
		if p.leaving.Load() {
			p.updateMu.Unlock()
			continue // Leave pushed its final metadata itself
		}
		p.encoded.Store(&b)
		last = time.Now()
		// Do not wait for the broadcast to finish: it goes out on the next
		// gossip rounds and push-pull repairs any peer it misses, and a
		// long wait would hold up Shutdown.
		_ = p.ml.UpdateNode(time.Millisecond)
		p.updateMu.Unlock()
	}
}

// maintainLoop rejoins the seeds while the pool has no live peer and prunes
// members dead or left for longer than the retention.
func (p *Pool) maintainLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(p.t.rejoin)
	defer tick.Stop()
	for {
		if len(p.seeds) > 0 && p.livePeers() == 0 {
			if n, err := p.ml.Join(p.seeds); err != nil {
				p.log.Warn("no gossip seed answered; will retry", zap.Strings("seeds", p.seeds),
					zap.Duration("retry_in", p.t.rejoin), zap.Error(err))
			} else {
				p.log.Info("joined gossip seeds", zap.Int("contacted", n))
			}
		}
		p.prune(time.Now())
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
}

func (p *Pool) livePeers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for name, m := range p.members {
		if name != p.name && m.Status == StatusAlive {
			n++
		}
	}
	return n
}

func (p *Pool) prune(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, m := range p.members {
		if m.Status != StatusAlive && now.Sub(m.UpdatedAt) > p.t.deadRetention {
			delete(p.members, name)
		}
	}
}

// observe records a memberlist event. It runs inside memberlist's locks:
// it must not block and must not call into memberlist.
func (p *Pool) observe(kind EventKind, n *memberlist.Node) {
	// memberlist never fills n.State (its nodeState shadows the field), so
	// the callback says alive or gone, and the Leaving flag says how.
	m := Member{
		Name:      n.Name,
		Addr:      n.Address(),
		Status:    StatusAlive,
		UpdatedAt: time.Now(),
	}
	meta, err := DecodeMeta(n.Meta) // copies out of n.Meta
	if kind == EventLeave {
		m.Status = StatusDead
		if err == nil && meta.Leaving {
			m.Status = StatusLeft
		}
	}
	if err != nil {
		m.MetaErr = fmt.Errorf("member %s at %s: %w", n.Name, m.Addr, err)
		p.log.Warn("undecodable gossip metadata", zap.String("member", n.Name),
			zap.String("addr", m.Addr), zap.Int("meta_bytes", len(n.Meta)), zap.Error(err))
	} else {
		m.Meta = meta
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.members[m.Name] = m
	ev := Event{Kind: kind, Member: m}
	for _, s := range p.subs {
		select {
		case s.ch <- ev:
		default:
			p.dropped.Add(1)
		}
	}
}

// Members returns every known member (including this one and recently
// dead or left ones), sorted by name.
func (p *Pool) Members() []Member {
	p.mu.Lock()
	out := make([]Member, 0, len(p.members))
	for _, m := range p.members {
		out = append(out, m)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Member returns the named member as last heard of.
func (p *Pool) Member(name string) (Member, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[name]
	return m, ok
}

// Subscribe returns a channel of membership events with buffer buf and a
// cancel func (idempotent) that closes it. Sends never block: when the
// channel is full the event is dropped and counted (DroppedEvents), so a
// consumer must also reconcile against Members() periodically. The channel
// is closed by cancel or Shutdown.
func (p *Pool) Subscribe(buf int) (<-chan Event, func()) {
	if buf < 0 {
		buf = 0
	}
	s := &subscriber{ch: make(chan Event, buf)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	id := p.nextSub
	p.nextSub++
	p.subs[id] = s
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if _, ok := p.subs[id]; ok {
				delete(p.subs, id)
				close(s.ch)
			}
		})
	}
}

// DroppedEvents is how many events were dropped because a subscriber's
// channel was full, over all subscribers.
func (p *Pool) DroppedEvents() uint64 { return p.dropped.Load() }

// Leave announces departure and waits up to timeout for it to spread:
// first metadata with Leaving set (so peers record StatusLeft rather than
// StatusDead), then memberlist's leave. Call Shutdown afterwards; a left
// pool cannot rejoin (create a new one).
func (p *Pool) Leave(timeout time.Duration) error {
	if p.isClosed() {
		return fmt.Errorf("gossip %s: leave: %w", p.name, ErrClosed)
	}
	start := time.Now()
	p.updateMu.Lock() // a metadata push in flight ends first; none starts after
	p.leaving.Store(true)
	if b, err := p.encodeLocal(); err == nil {
		p.mu.Lock()
		p.pending = b
		p.mu.Unlock()
		p.encoded.Store(&b)
		if err := p.ml.UpdateNode(timeout / 2); err != nil {
			p.log.Debug("leaving flag broadcast not confirmed", zap.Error(err))
		}
	}
	p.updateMu.Unlock()
	rest := timeout - time.Since(start)
	if rest <= 0 {
		rest = time.Millisecond
	}
	if err := p.ml.Leave(rest); err != nil {
		return fmt.Errorf("gossip %s: leave within %v: %w", p.name, timeout, err)
	}
	p.log.Info("left gossip pool")
	return nil
}

// Shutdown stops the pool without announcing (peers declare it dead; call
// Leave first for a graceful exit) and closes every subscriber channel.
// It is idempotent.
func (p *Pool) Shutdown() error {
	var err error
	p.shutdownOnce.Do(func() {
		close(p.done)
		// Shut memberlist down first so a seed join in flight fails fast.
		if e := p.ml.Shutdown(); e != nil {
			err = fmt.Errorf("gossip %s: shutdown: %w", p.name, e)
		}
		p.wg.Wait()
		p.mu.Lock()
		p.closed = true
		for id, s := range p.subs {
			delete(p.subs, id)
			close(s.ch)
		}
		p.mu.Unlock()
		p.log.Info("gossip pool stopped")
	})
	return err
}

func (p *Pool) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
