package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// execCLI runs the stillpoint command in-process within timeout.
func execCLI(t *testing.T, stdout, stderr io.Writer, timeout time.Duration, args ...string) error {
	t.Helper()
	root := newRootCmd()
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return root.ExecuteContext(ctx)
}
