package main

import (
	"strings"
	"testing"
	"time"
)

// ACLs are on by default for a server; the switch turns them off.
func TestServerACLDefault(t *testing.T) {
	base := []string{"--node-id", "s1", "--bootstrap", "--data-dir", t.TempDir()}
	on, err := resolveServer(t, base...)
	if err != nil || !on.ACL.Enabled {
		t.Fatalf("default acl.enabled = %v (%v), want true", on.ACL.Enabled, err)
	}
	off, err := resolveServer(t, append(base, "--acl-enabled=false")...)
	if err != nil || off.ACL.Enabled {
		t.Fatalf("--acl-enabled=false gives %v (%v)", off.ACL.Enabled, err)
	}
}

// A malformed token is a usage error before any call; so is a bad --since.
func TestTokenAndSinceUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"members", "--token", "hunter2"}, "starts with \"spt_\""},
		{[]string{"members", "--token-file", "/nonexistent/token"}, "--token-file"},
		{[]string{"audit", "list", "--since", "yesterday"}, "want a duration"},
		{[]string{"acl", "token", "create", "--role", "root", "--name", "x"}, "want read, operate or admin"},
	} {
		code, _, errOut := runMain(t, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error with %q", tc.args, code, errOut, tc.want)
		}
		if strings.Contains(errOut, "hunter2") {
			t.Errorf("%v: the token is echoed: %s", tc.args, errOut)
		}
	}
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	if got, err := parseSince("90m", now); err != nil || !got.Equal(now.Add(-90*time.Minute)) {
		t.Fatalf("parseSince 90m = %v, %v", got, err)
	}
	if got, err := parseSince("2026-01-02T10:00:00Z", now); err != nil || got.Hour() != 10 {
		t.Fatalf("parseSince RFC 3339 = %v, %v", got, err)
	}
}
