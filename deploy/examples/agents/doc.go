// Package agents holds example agent configs with backup hooks and their
// scripts (the files beside this one), and the test that runs the
// pg_dump hook against a real PostgreSQL.
package agents
