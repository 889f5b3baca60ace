package simnode

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrInvariant: the stores break the transfer invariant.
var ErrInvariant = errors.New("transfer invariant broken")

// maxSamples bounds the unpaired transactions listed in a Report.
const maxSamples = 10

// Report is the outcome of checking the transfer invariant on two stores:
// the total over both stores is conserved, every transfer has both halves or
// neither, and each store's balances match its own journal.
type Report struct {
	// ExpectedTotal is the initial total of both stores; ActualTotal the
	// current sum of balances.
	ExpectedTotal, ActualTotal int64
	// DebitsA and CreditsB count the halves in each store; Paired counts
	// transactions with both.
	DebitsA, CreditsB, Paired int
	// MissingCredit: debits in A without a credit in B (a transfer cut in
	// the middle). MissingDebit: credits in B without a debit in A.
	MissingCredit, MissingDebit int
	// AmountMismatch: paired halves whose amounts do not cancel.
	AmountMismatch int
	// JournalMismatchA/B: the store's balances differ from its initial
	// total plus its journal (a store that is not atomic by itself).
	JournalMismatchA, JournalMismatchB int64
	// Samples lists a few offending transactions with their timestamps.
	Samples []string
	// LatestA and LatestB are the newest half timestamps in each store.
	LatestA, LatestB time.Time
}

// Consistent reports whether the invariant holds.
func (r Report) Consistent() bool {
	return r.ExpectedTotal == r.ActualTotal && r.MissingCredit == 0 && r.MissingDebit == 0 &&
		r.AmountMismatch == 0 && r.JournalMismatchA == 0 && r.JournalMismatchB == 0
}

// Err returns nil when consistent, else an error wrapping ErrInvariant that
// names every broken figure.
func (r Report) Err() error {
	if r.Consistent() {
		return nil
	}
	var p []string
	if r.ExpectedTotal != r.ActualTotal {
		p = append(p, fmt.Sprintf("total %d, want %d (off by %d)", r.ActualTotal, r.ExpectedTotal, r.ActualTotal-r.ExpectedTotal))
	}
	if r.MissingCredit > 0 {
		p = append(p, fmt.Sprintf("%d debits in store A have no credit in store B", r.MissingCredit))
	}
	if r.MissingDebit > 0 {
		p = append(p, fmt.Sprintf("%d credits in store B have no debit in store A", r.MissingDebit))
	}
	if r.AmountMismatch > 0 {
		p = append(p, fmt.Sprintf("%d transfers have halves that do not cancel", r.AmountMismatch))
	}
	if r.JournalMismatchA != 0 {
		p = append(p, fmt.Sprintf("store A balances off its journal by %d", r.JournalMismatchA))
	}
	if r.JournalMismatchB != 0 {
		p = append(p, fmt.Sprintf("store B balances off its journal by %d", r.JournalMismatchB))
	}
	if len(r.Samples) > 0 {
		p = append(p, "e.g. "+strings.Join(r.Samples, "; "))
	}
	return fmt.Errorf("%w: %s", ErrInvariant, strings.Join(p, ", "))
}

// Check computes the Report for the states of store A and store B.
func Check(a, b StoreState) Report {
	r := Report{
		ExpectedTotal: a.InitialTotal + b.InitialTotal,
		ActualTotal:   a.Balance + b.Balance,
		DebitsA:       len(a.Halves),
		CreditsB:      len(b.Halves),
	}
	var journalA, journalB int64
	var samples []string
	for id, h := range a.Halves {
		journalA += h.Amount
		if h.At.After(r.LatestA) {
			r.LatestA = h.At
		}
		c, ok := b.Halves[id]
		switch {
		case !ok:
			r.MissingCredit++
			samples = append(samples, fmt.Sprintf("txn %s debit at %s has no credit", id, h.At.UTC().Format(time.RFC3339Nano)))
		case c.Amount != -h.Amount:
			r.AmountMismatch++
			samples = append(samples, fmt.Sprintf("txn %s debit %d vs credit %d", id, h.Amount, c.Amount))
		default:
			r.Paired++
		}
	}
	for id, h := range b.Halves {
		journalB += h.Amount
		if h.At.After(r.LatestB) {
			r.LatestB = h.At
		}
		if _, ok := a.Halves[id]; !ok {
			r.MissingDebit++
			samples = append(samples, fmt.Sprintf("txn %s credit at %s has no debit", id, h.At.UTC().Format(time.RFC3339Nano)))
		}
	}
	r.JournalMismatchA = a.Balance - (a.InitialTotal + journalA)
	r.JournalMismatchB = b.Balance - (b.InitialTotal + journalB)
	sort.Strings(samples)
	if len(samples) > maxSamples {
		samples = samples[:maxSamples]
	}
	r.Samples = samples
	return r
}
