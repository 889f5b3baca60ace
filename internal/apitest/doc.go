// Package apitest holds the gRPC API's contract tests (issue 19): buf breaking
// catches a change that would break a client, and rpc.Admin stays
// wire-identical to scalar-admin's admin.proto (vendored under
// testdata/scalar-admin). The package has no production code.
package apitest
