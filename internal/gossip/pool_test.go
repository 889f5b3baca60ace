package gossip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// metaBox is a node's mutable metadata, read by the pool through get.
type metaBox struct {
	mu sync.Mutex
	m  Meta
}

func (b *metaBox) get() Meta {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m
}

func (b *metaBox) set(f func(*Meta)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.m)
}

type testNode struct {
	pool *Pool
	meta *metaBox
}

func testMeta(name string) Meta {
	return Meta{
		Role:        "ledger",
		Cluster:     "c1",
		GRPCAddr:    "127.0.0.1:" + fmt.Sprint(7000+len(name)),
		Clock:       ClockMeta{Status: clock.Synchronized, BoundNS: 1_000_000, MaxDriftPPM: 50},
		Incarnation: NewIncarnation(),
	}
}

// startNode starts a pool on loopback, port 0, test profile; it is shut
// down when the test ends.
func startNode(t *testing.T, name string, mutate func(*Config)) *testNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = 0
	cfg.Profile = ProfileTest
	if mutate != nil {
		mutate(&cfg)
	}
	box := &metaBox{m: testMeta(name)}
	p, err := New(cfg, box.get)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return &testNode{pool: p, meta: box}
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	waitfor.Fatal(context.Background(), t, timeout, what, waitfor.Err(cond))
}

// sees checks that observer holds want as alive with the given meta.
func sees(observer *Pool, name, addr string, want Meta) error {
	m, ok := observer.Member(name)
	switch {
	case !ok:
		return fmt.Errorf("%s does not know %s", observer.LocalName(), name)
	case m.Status != StatusAlive:
		return fmt.Errorf("%s sees %s %v", observer.LocalName(), name, m.Status)
	case m.MetaErr != nil:
		return fmt.Errorf("%s: %v", observer.LocalName(), m.MetaErr)
	case addr != "" && m.Addr != addr:
		return fmt.Errorf("%s sees %s at %s, want %s", observer.LocalName(), name, m.Addr, addr)
	case m.Meta != want:
		return fmt.Errorf("%s sees %s meta %+v, want %+v", observer.LocalName(), name, m.Meta, want)
	}
	return nil
}

func startCluster(t *testing.T, n int, mutate func(*Config)) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("n%d", i), mutate)
	}
	// Single seed: convergence relies on gossip and push-pull.
	for _, nd := range nodes[1:] {
		if _, err := nd.pool.Join([]string{nodes[0].pool.AdvertiseAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, nodes)
	return nodes
}

func waitConverged(t *testing.T, nodes []*testNode) {
	t.Helper()
	waitFor(t, 20*time.Second, "convergence", func() error {
		for _, obs := range nodes {
			for _, nd := range nodes {
				if err := sees(obs.pool, nd.pool.LocalName(), nd.pool.AdvertiseAddr(), nd.meta.get()); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func TestPoolsConverge(t *testing.T) {
	start := time.Now()
	nodes := startCluster(t, 5, nil)
	t.Logf("5 pools converged in %v", time.Since(start))
	for _, nd := range nodes {
		if got := len(nd.pool.Members()); got != 5 {
			t.Errorf("%s has %d members, want 5", nd.pool.LocalName(), got)
		}
		if !strings.HasPrefix(nd.pool.AdvertiseAddr(), "127.0.0.1:") || strings.HasSuffix(nd.pool.AdvertiseAddr(), ":0") {
			t.Errorf("%s advertises %q, want 127.0.0.1:<bound port>", nd.pool.LocalName(), nd.pool.AdvertiseAddr())
		}
	}
}

func TestSeedsFromConfigJoinInBackground(t *testing.T) {
	a := startNode(t, "seed", nil)
	b := startNode(t, "joiner", func(c *Config) { c.Join = []string{a.pool.AdvertiseAddr()} })
	waitConverged(t, []*testNode{a, b})
}

func TestMetaUpdatePropagates(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	events, cancel := nodes[2].pool.Subscribe(64)
	defer cancel()

	nodes[0].meta.set(func(m *Meta) {
		m.OpID = "op-42"
		m.Node.Paused = pb.PausedState_PAUSED_STATE_PAUSED
		m.LeaseRemainingMS = 30_000
	})
	if err := nodes[0].pool.UpdateMeta(); err != nil {
		t.Fatal(err)
	}
	want := nodes[0].meta.get()
	waitFor(t, 10*time.Second, "meta update at every peer", func() error {
		for _, obs := range nodes {
			if err := sees(obs.pool, "n0", "", want); err != nil {
				return err
			}
		}
		return nil
	})
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind == EventUpdate && ev.Member.Name == "n0" && ev.Member.Meta.OpID == "op-42" {
				return
			}
		case <-deadline:
			t.Fatal("subscriber of n2 got no update event for n0's op-42")
		}
	}
}

func TestUpdateMetaCoalesces(t *testing.T) {
	const interval = 500 * time.Millisecond
	nodes := startCluster(t, 2, func(c *Config) { c.MetaMinInterval = interval })
	events, cancel := nodes[0].pool.Subscribe(1024)
	defer cancel()

	const calls = 50
	start := time.Now()
	for i := 1; i <= calls; i++ {
		nodes[0].meta.set(func(m *Meta) { m.LeaseRemainingMS = int64(i) })
		if err := nodes[0].pool.UpdateMeta(); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	want := nodes[0].meta.get()
	waitFor(t, 10*time.Second, "last update at the peer", func() error {
		return sees(nodes[1].pool, "n0", "", want)
	})
	// Own updates show up as local events, one per push.
	pushes := 0
	for len(events) > 0 {
		if ev := <-events; ev.Kind == EventUpdate && ev.Member.Name == "n0" {
			pushes++
		}
	}
	// One push right away, then at most one per interval, plus the final one.
	limit := int(elapsed/interval) + 2
	if pushes == 0 || pushes > limit {
		t.Fatalf("%d UpdateMeta calls in %v made %d pushes, want 1..%d", calls, elapsed, pushes, limit)
	}
	t.Logf("%d calls in %v: %d pushes", calls, elapsed, pushes)
}

func TestUpdateMetaRefusesOversized(t *testing.T) {
	nd := startNode(t, "n0", nil)
	before := nd.meta.get()
	nd.meta.set(func(m *Meta) { m.OpID = strings.Repeat("x", MaxOpIDLen+1) })
	if err := nd.pool.UpdateMeta(); !errors.Is(err, ErrMetaField) {
		t.Fatalf("UpdateMeta with an over-long op id: %v, want ErrMetaField", err)
	}
	if err := sees(nd.pool, "n0", "", before); err != nil {
		t.Fatalf("previous meta not kept: %v", err)
	}
}

func TestDepartureSeen(t *testing.T) {
	tests := []struct {
		name   string
		leave  bool
		status Status
	}{
		{"crash is dead", false, StatusDead},
		{"leave is left", true, StatusLeft},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := startCluster(t, 3, nil)
			events, cancel := nodes[0].pool.Subscribe(64)
			defer cancel()
			gone := nodes[2].pool
			if tt.leave {
				if err := gone.Leave(2 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if err := gone.Shutdown(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "departure of n2", func() error {
				for _, obs := range nodes[:2] {
					m, ok := obs.pool.Member("n2")
					if !ok || m.Status != tt.status {
						return fmt.Errorf("%s sees n2 as %v (known %v)", obs.pool.LocalName(), m.Status, ok)
					}
				}
				return nil
			})
			for {
				select {
				case ev := <-events:
					if ev.Kind == EventLeave && ev.Member.Name == "n2" {
						if ev.Member.Status != tt.status {
							t.Fatalf("leave event status %v, want %v", ev.Member.Status, tt.status)
						}
						return
					}
				default:
					t.Fatal("no leave event for n2")
				}
			}
		})
	}
}

func TestEncryption(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210")
	withKey := func(k []byte) func(*Config) { return func(c *Config) { c.SecretKey = k } }

	a := startNode(t, "a", withKey(key))
	b := startNode(t, "b", withKey(key))
	if _, err := b.pool.Join([]string{a.pool.AdvertiseAddr()}); err != nil {
		t.Fatalf("same key: %v", err)
	}
	waitConverged(t, []*testNode{a, b})

	tests := []struct {
		name string
		key  []byte
	}{
		{"wrong key", other},
		{"no key", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startNode(t, "c-"+strings.ReplaceAll(tt.name, " ", "-"), withKey(tt.key))
			n, err := c.pool.Join([]string{a.pool.AdvertiseAddr()})
			if err == nil || n != 0 {
				t.Fatalf("join with %s: contacted %d, err %v; want refused", tt.name, n, err)
			}
			if _, ok := a.pool.Member(c.pool.LocalName()); ok {
				t.Fatalf("a knows %s", c.pool.LocalName())
			}
		})
	}
}

func TestRestartedNodeRejoins(t *testing.T) {
	tests := []struct {
		name  string
		leave bool
	}{
		{"after crash", false},
		{"after leave", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := startCluster(t, 3, nil)
			old := nodes[2].pool
			oldAddr := old.AdvertiseAddr()
			if tt.leave {
				if err := old.Leave(2 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if err := old.Shutdown(); err != nil {
				t.Fatal(err)
			}
			// Restart at once, as systemd would: the peers may not have
			// declared the old instance dead yet.
			restarted := startNode(t, "n2", func(c *Config) { c.Join = []string{nodes[0].pool.AdvertiseAddr()} })
			if restarted.pool.AdvertiseAddr() == oldAddr {
				t.Fatalf("restarted node reused %s; the test needs a new port", oldAddr)
			}
			if restarted.meta.get().Incarnation == nodes[2].meta.get().Incarnation {
				t.Fatal("restarted node has the old incarnation")
			}
			waitFor(t, 20*time.Second, "restarted n2 seen at its new address", func() error {
				for _, obs := range nodes[:2] {
					if err := sees(obs.pool, "n2", restarted.pool.AdvertiseAddr(), restarted.meta.get()); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// A peer whose metadata is not ours is kept and flagged, not dropped.
func TestUndecodableMetaKeptAndFlagged(t *testing.T) {
	nd := startNode(t, "n0", nil)
	mc := memberlist.DefaultLocalConfig()
	mc.Name = "foreign"
	mc.BindAddr = "127.0.0.1"
	mc.BindPort = 0
	mc.Delegate = rawMeta([]byte(`{"role":"x"}`))
	mc.LogOutput = discard{}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ml.Shutdown() }()
	if _, err := ml.Join([]string{nd.pool.AdvertiseAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "foreign member known", func() error {
		m, ok := nd.pool.Member("foreign")
		if !ok {
			return errors.New("foreign unknown")
		}
		if m.Status != StatusAlive || !errors.Is(m.MetaErr, ErrMetaVersion) || m.Meta != (Meta{}) {
			return fmt.Errorf("foreign: status %v, meta err %v, meta %+v", m.Status, m.MetaErr, m.Meta)
		}
		return nil
	})
}

type rawMeta []byte

func (r rawMeta) NodeMeta(int) []byte           { return r }
func (rawMeta) NotifyMsg([]byte)                {}
func (rawMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (rawMeta) LocalState(bool) []byte          { return nil }
func (rawMeta) MergeRemoteState([]byte, bool)   {}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestSubscribeDropsAndCloses(t *testing.T) {
	a := startNode(t, "a", nil)
	full, cancelFull := a.pool.Subscribe(0) // never read: every event drops
	defer cancelFull()
	live, cancelLive := a.pool.Subscribe(16)

	b := startNode(t, "b", nil)
	if _, err := b.pool.Join([]string{a.pool.AdvertiseAddr()}); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, []*testNode{a, b})
	if a.pool.DroppedEvents() == 0 {
		t.Fatal("no event counted as dropped for the unread subscriber")
	}
	select {
	case ev := <-live:
		if ev.Kind != EventJoin || ev.Member.Name != "b" {
			t.Fatalf("first event %v %s, want join b", ev.Kind, ev.Member.Name)
		}
	default:
		t.Fatal("buffered subscriber got nothing")
	}
	cancelLive()
	cancelLive() // idempotent
	if _, ok := drain(live); ok {
		t.Fatal("cancelled subscription still open")
	}
	if err := a.pool.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, ok := drain(full); ok {
		t.Fatal("Shutdown did not close the subscription")
	}
	if err := a.pool.UpdateMeta(); !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateMeta after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := a.pool.Join([]string{b.pool.AdvertiseAddr()}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Shutdown: %v, want ErrClosed", err)
	}
}

// drain reads what is buffered; ok is false once the channel is closed.
func drain(ch <-chan Event) (n int, ok bool) {
	for {
		select {
		case _, open := <-ch:
			if !open {
				return n, false
			}
			n++
		case <-time.After(time.Second):
			return n, true
		}
	}
}
