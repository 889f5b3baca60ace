package simnode

import (
	"context"
	"fmt"
	"time"
)

// Half is one side of a transfer as written to one store: the debit in
// store A or the credit in store B. Both halves carry the transaction id.
type Half struct {
	TxnID   string
	Account string
	// Amount is the balance change on Account (negative for a debit).
	Amount int64
	// At is when the half was written (real clock).
	At time.Time
}

// StoreState is everything Verify needs from one store.
type StoreState struct {
	// InitialTotal is the sum of the accounts' balances before any transfer.
	InitialTotal int64
	// Balance is the sum of the accounts' current balances.
	Balance int64
	// Accounts is the number of account rows.
	Accounts int
	// Halves maps transaction id to the half written in this store.
	Halves map[string]Half
}

// Store holds one side of every transfer. Apply must be atomic within the
// store (balance change and journal row together); nothing is atomic across
// the two stores, which is the point of the simulation.
type Store interface {
	// Name identifies the store in errors and reports ("A", "B").
	Name() string
	// Init creates the accounts (with balance initial each) if missing.
	Init(ctx context.Context, accounts []string, initial int64) error
	// Apply writes one half.
	Apply(ctx context.Context, h Half) error
	// Read returns the store's current state.
	Read(ctx context.Context) (StoreState, error)
	// Close releases the store.
	Close() error
}

// InitialBalance is every account's balance before the first transfer.
const InitialBalance = 1_000_000

// accountNames returns n account names with the given prefix.
func accountNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}
