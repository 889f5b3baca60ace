// Package e2e holds Stillpoint's end-to-end tests: a whole deployment
// (devcluster: NTP servers, a Raft coordinator, agents beside simulated
// Ledger nodes) driving real external systems. pitr_test.go proves that
// every completed restore point restores two independent PostgreSQL
// clusters, written non-atomically by the transfer workload, to a
// transactionally consistent state — and that the check would notice if it
// did not.
//
// The tests need the PostgreSQL server binaries (see internal/pgtest): they
// are skipped without them, and fail when CI=true.
package e2e
