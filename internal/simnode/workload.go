package simnode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// WorkloadConfig describes the transfer workload: each transaction debits an
// account in store A, waits Gap, then credits an account in store B, all
// inside the node's gate.
type WorkloadConfig struct {
	// Enabled starts the workload with the node.
	Enabled bool
	// Workers is the number of concurrent clients.
	Workers int
	// Rate is the target transactions per second over all workers; 0 runs
	// every worker as fast as it can.
	Rate float64
	// Gap separates the debit in A from the credit in B: a snapshot taken
	// inside it sees a transfer cut in half.
	Gap time.Duration
	// Accounts per store.
	Accounts int
	// MaxAmount bounds one transfer (amounts are 1..MaxAmount).
	MaxAmount int64
}

// DefaultWorkloadConfig: off; 4 workers, 200 transactions/s, 2 ms gap.
func DefaultWorkloadConfig() WorkloadConfig {
	return WorkloadConfig{Workers: 4, Rate: 200, Gap: 2 * time.Millisecond, Accounts: 16, MaxAmount: 100}
}

// Validate reports every problem at once.
func (w WorkloadConfig) Validate() error {
	var errs []error
	if w.Accounts <= 0 {
		errs = append(errs, fmt.Errorf("workload: %d accounts per store: want at least 1", w.Accounts))
	}
	if w.MaxAmount <= 0 {
		errs = append(errs, fmt.Errorf("workload: max amount %d: want at least 1", w.MaxAmount))
	}
	if w.Enabled && w.Workers <= 0 {
		errs = append(errs, fmt.Errorf("workload: %d workers: want at least 1", w.Workers))
	}
	if w.Rate < 0 {
		errs = append(errs, fmt.Errorf("workload: rate %g/s is negative", w.Rate))
	}
	if w.Gap < 0 {
		errs = append(errs, fmt.Errorf("workload: gap %v is negative", w.Gap))
	}
	return errors.Join(errs...)
}

// WorkloadStats counts transactions since the node started.
type WorkloadStats struct {
	// Committed transfers wrote both halves.
	Committed int64
	// Rejected transfers were refused by a paused ScalarDB-mode gate.
	Rejected int64
	// Failed transfers hit a store error.
	Failed int64
}

// startWorkload runs the workers until stopWorkload.
func (n *Node) startWorkload() {
	w := n.cfg.Workload
	ctx, cancel := context.WithCancel(context.Background())
	n.wlCancel = cancel
	var interval time.Duration
	if w.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(w.Workers) / w.Rate)
	}
	for i := range w.Workers {
		n.wlWG.Add(1)
		go func() {
			defer n.wlWG.Done()
			n.worker(ctx, uint64(i), interval)
		}()
	}
}

func (n *Node) stopWorkload() {
	if n.wlCancel == nil {
		return
	}
	n.wlCancel()
	n.wlWG.Wait()
	n.wlCancel = nil
}

func (n *Node) worker(ctx context.Context, id uint64, interval time.Duration) {
	rng := rand.New(rand.NewPCG(uint64(n.nonce), id))
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
		} else if ctx.Err() != nil {
			return
		}
		err := n.transfer(ctx, rng)
		switch {
		case err == nil:
			n.committed.Add(1)
		case errors.Is(err, ErrUnavailable):
			n.rejected.Add(1)
			if tick == nil { // do not spin on a paused ScalarDB node
				t := time.NewTimer(2 * time.Millisecond)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		case ctx.Err() != nil:
			return
		default:
			n.failed.Add(1)
			n.log.Warn("transfer failed", zap.Error(err))
		}
	}
}

// transfer runs one transaction through the gate. Once admitted it always
// writes both halves (its context is detached from the worker's), so a
// transfer is cut in half only by the gap, never by a stop.
func (n *Node) transfer(ctx context.Context, rng *rand.Rand) error {
	w := n.cfg.Workload
	id := fmt.Sprintf("%s-%x-%d", n.cfg.ID, n.nonce, n.seq.Add(1))
	from := n.accountsA[rng.IntN(len(n.accountsA))]
	to := n.accountsB[rng.IntN(len(n.accountsB))]
	amount := 1 + rng.Int64N(w.MaxAmount)
	return n.Transact(ctx, func(ctx context.Context) error {
		ctx = context.WithoutCancel(ctx)
		if err := n.storeA.Apply(ctx, Half{TxnID: id, Account: from, Amount: -amount, At: time.Now()}); err != nil {
			return err
		}
		if w.Gap > 0 {
			time.Sleep(w.Gap) // the simulated non-atomic window between the two stores
		}
		if err := n.storeB.Apply(ctx, Half{TxnID: id, Account: to, Amount: amount, At: time.Now()}); err != nil {
			return fmt.Errorf("txn %s: debit written to store A but credit failed: %w", id, err)
		}
		return nil
	})
}

// Stats returns the workload counters.
func (n *Node) Stats() WorkloadStats {
	return WorkloadStats{Committed: n.committed.Load(), Rejected: n.rejected.Load(), Failed: n.failed.Load()}
}
