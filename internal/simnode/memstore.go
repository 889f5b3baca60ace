package simnode

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// world is the shared lock of a pair of in-memory stores: every write to
// either store and every snapshot of both takes it, so a snapshot is one
// instant of the simulated world.
type world struct{ mu sync.Mutex }

// MemoryStore is an in-memory Store. Create pairs with NewMemoryStores.
type MemoryStore struct {
	name     string
	w        *world
	initial  int64
	balances map[string]int64
	halves   map[string]Half
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStores returns stores A and B sharing one lock, so
// SnapshotMemory can read both at one instant.
func NewMemoryStores() (a, b *MemoryStore) {
	w := &world{}
	mk := func(name string) *MemoryStore {
		return &MemoryStore{name: name, w: w, balances: map[string]int64{}, halves: map[string]Half{}}
	}
	return mk("A"), mk("B")
}

// Name implements Store.
func (s *MemoryStore) Name() string { return s.name }

// Init implements Store.
func (s *MemoryStore) Init(_ context.Context, accounts []string, initial int64) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	for _, a := range accounts {
		if _, ok := s.balances[a]; !ok {
			s.balances[a] = initial
			s.initial += initial
		}
	}
	return nil
}

// Apply implements Store.
func (s *MemoryStore) Apply(_ context.Context, h Half) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if _, ok := s.balances[h.Account]; !ok {
		return fmt.Errorf("store %s: txn %s: no account %q", s.name, h.TxnID, h.Account)
	}
	if _, dup := s.halves[h.TxnID]; dup {
		return fmt.Errorf("store %s: txn %s written twice", s.name, h.TxnID)
	}
	s.balances[h.Account] += h.Amount
	s.halves[h.TxnID] = h
	return nil
}

// Read implements Store.
func (s *MemoryStore) Read(_ context.Context) (StoreState, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.stateLocked(), nil
}

func (s *MemoryStore) stateLocked() StoreState {
	st := StoreState{InitialTotal: s.initial, Accounts: len(s.balances), Halves: maps.Clone(s.halves)}
	for _, b := range s.balances {
		st.Balance += b
	}
	return st
}

// Close implements Store.
func (s *MemoryStore) Close() error { return nil }

// SnapshotMemory reads both stores of a pair at one instant. It fails if the
// stores were not created together by NewMemoryStores.
func SnapshotMemory(a, b *MemoryStore) (StoreState, StoreState, error) {
	if a.w != b.w {
		return StoreState{}, StoreState{}, fmt.Errorf("stores %s and %s are not a pair from NewMemoryStores", a.name, b.name)
	}
	a.w.mu.Lock()
	defer a.w.mu.Unlock()
	return a.stateLocked(), b.stateLocked(), nil
}
