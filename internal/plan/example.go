package plan

import _ "embed"

//go:embed example.yaml
var example string

// Example is a commented default plan (`stillpoint backup plan example`):
// the Ledger cluster paused, a ledger-databases group, then an
// auditor-databases group.
func Example() string { return example }
