package coordinator

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// TestMain runs the package's tests with the reason check strict: an error
// any server of this test binary sends without a coordinator ErrorInfo
// (a site that forgot its reason) fails the run, naming the method.
func TestMain(m *testing.M) {
	var mu sync.Mutex
	var missing []string
	hook := func(method string, err error) {
		mu.Lock()
		defer mu.Unlock()
		missing = append(missing, fmt.Sprintf("%s: %v", method, err))
	}
	missingReasonHook.Store(&hook)
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d errors were sent without a coordinator ErrorInfo reason:\n", len(missing))
		for _, m := range missing {
			fmt.Fprintln(os.Stderr, "  "+m)
		}
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
