package main

import (
	"bytes"
	"strings"
	"testing"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestOpsShowListsEveryLeader: ops show names each leader that drove the
// op, in order.
func TestOpsShowListsEveryLeader(t *testing.T) {
	var b bytes.Buffer
	op := &pb.Operation{OpId: "op-1", Cluster: "ledger", Leader: "server-1", Leaders: []string{"server-1", "server-3"}}
	if err := printOperation(&b, op, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Leaders        server-1 -> server-3 (taken over once)\n") {
		t.Fatalf("ops show:\n%s", b.String())
	}
}
