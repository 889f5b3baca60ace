// Package plans holds example backup plans (the YAML files beside this
// one) and the test that keeps them loadable: each is decoded as
// `stillpoint backup plan set` does and validated against the example
// agent configs in ../agents.
package plans
