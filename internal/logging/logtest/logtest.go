// Package logtest gives tests a zap logger that writes to t.Log until the
// test ends and drops lines afterwards: memberlist and raft goroutines may
// still log briefly after a component shut down, and t.Log panics once the
// test has completed.
package logtest

import (
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger at level that writes to t.Log while t runs.
func New(t testing.TB, level zapcore.Level) *zap.Logger {
	w := &writer{t: t}
	// Registered before the components' cleanups, so it runs after them.
	t.Cleanup(w.close)
	enc := zap.NewDevelopmentEncoderConfig()
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level))
}

type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *writer) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
