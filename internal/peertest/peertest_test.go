package peertest

import "testing"

func TestLookPath(t *testing.T) {
	if p, err := lookPath("sh"); err != nil || p == "" {
		t.Fatalf("lookPath(sh) = %q, %v", p, err)
	}
	if p, err := lookPath("stillpoint-no-such-binary"); err == nil {
		t.Fatalf("lookPath found a binary that does not exist: %q", p)
	}
}
