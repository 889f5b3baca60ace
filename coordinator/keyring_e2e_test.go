package coordinator_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestSecuredClusterRotatesKeyringAndAuditsTheCaller: a running 3-server,
// 3-agent cluster with encrypted gossip and ACLs on. A pause sent to a
// follower with an operate token is audited with that token and the
// caller's address, never the follower's, with --requested-by as a note.
// The keyring rotates (install new, use new, remove old) on all six nodes
// without a restart and the cluster stays joined; using a key some node
// lacks and removing a primary key are refused naming the nodes; a node
// without the key cannot join.
func TestSecuredClusterRotatesKeyringAndAuditsTheCaller(t *testing.T) {
	oldKey := []byte("0123456789abcdef0123456789abcdef")
	newKey := []byte("abcdefghijklmnopqrstuvwxyz012345")
	oldB64, newB64 := base64.StdEncoding.EncodeToString(oldKey), base64.StdEncoding.EncodeToString(newKey)
	dir := t.TempDir()
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.GossipKey = oldKey
		cfg.ACL = true
		cfg.DataDir = dir
	})
	ctx := ctxT(t, 120*time.Second)
	admin := withToken(ctx, c.ACLToken())
	l := c.Leader()
	fi := (l + 1) % 3
	cl, d := dialWithAddr(t, c.Servers()[fi].GRPCAddr())

	// A forwarded pause records the caller.
	ops, err := cl.CreateACLToken(admin, &pb.CreateACLTokenRequest{Name: "ops", Role: pb.ACLRole_ACL_ROLE_OPERATE})
	if err != nil {
		t.Fatal(err)
	}
	var op *pb.Operation
	testcluster.WaitFor(t, 60*time.Second, func() (bool, string) {
		resp, err := cl.StartPause(withToken(ctx, ops.GetSecret()), &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 10, RequestId: "sec-1", RequestedBy: "ticket-42"})
		if err != nil {
			return false, err.Error() // a clock wobble on a loaded box; nothing started
		}
		op = resp.GetOperation()
		return true, ""
	})
	want := fmt.Sprintf("token:ops/%s@%s", ops.GetToken().GetAccessorId(), d.addr())
	if op.GetRequestedBy() != want {
		t.Fatalf("op requested_by = %q, want %q", op.GetRequestedBy(), want)
	}
	leader := c.Servers()[c.Leader()]
	var rec *pb.AuditRecord
	for _, r := range leader.FSM().Audit(0) {
		if r.GetAction() == fsm.AuditPause && r.GetOpId() == op.GetOpId() {
			rec = r
		}
	}
	if rec == nil || rec.GetActor() != want || rec.GetCaller().GetNote() != "ticket-42" || rec.GetCaller().GetReceivedBy() != c.Servers()[fi].ID() || rec.GetCaller().GetUnverified() {
		t.Fatalf("pause audited as %v, want actor %q note ticket-42 received by %s", rec, want, c.Servers()[fi].ID())
	}
	watchEnd(t, c, op.GetOpId(), 30*time.Second)

	// The keyring, through the follower with the admin token.
	list := func() *pb.KeyringResponse {
		t.Helper()
		resp, err := cl.Keyring(admin, &pb.KeyringRequest{Op: pb.KeyringOp_KEYRING_OP_LIST})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := list(); r.GetTotalNodes() != 6 || r.GetFailedNodes() != 0 || r.GetKeyCounts()[oldB64] != 6 || r.GetPrimaryCounts()[oldB64] != 6 {
		t.Fatalf("keyring before rotation = %v", r)
	}
	_, err = cl.Keyring(admin, &pb.KeyringRequest{Op: pb.KeyringOp_KEYRING_OP_USE, Key: newB64})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not installed on 6 of 6 nodes") || !strings.Contains(err.Error(), "ledger-2") {
		t.Fatalf("use of a key installed nowhere: %v", err)
	}
	if _, err := cl.Keyring(withToken(ctx, ops.GetSecret()), &pb.KeyringRequest{Op: pb.KeyringOp_KEYRING_OP_LIST}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("keyring with an operate token: %v", err)
	}
	rotated := time.Now()
	for _, step := range []struct {
		op  pb.KeyringOp
		key string
	}{{pb.KeyringOp_KEYRING_OP_INSTALL, newB64}, {pb.KeyringOp_KEYRING_OP_USE, newB64}, {pb.KeyringOp_KEYRING_OP_REMOVE, oldB64}} {
		r, err := cl.Keyring(admin, &pb.KeyringRequest{Op: step.op, Key: step.key, Note: "rotation"})
		if err != nil || r.GetFailedNodes() != 0 || r.GetTotalNodes() != 6 {
			t.Fatalf("%s: %v, %v", step.op, r, err)
		}
	}
	t.Logf("rotation (install, use, remove on 6 nodes, through a follower) took %v", time.Since(rotated))
	_, err = cl.Keyring(admin, &pb.KeyringRequest{Op: pb.KeyringOp_KEYRING_OP_REMOVE, Key: newB64})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "primary key on") {
		t.Fatalf("removing the primary key: %v", err)
	}
	if r := list(); r.GetKeyCounts()[newB64] != 6 || r.GetPrimaryCounts()[newB64] != 6 || len(r.GetKeyCounts()) != 1 {
		t.Fatalf("keyring after rotation = %v", r)
	}
	// Still joined: every agent's metadata keeps arriving over the new key.
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		s := c.Servers()[c.Leader()]
		for _, n := range c.Nodes() {
			m, ok := s.Member(n.Spec.Name)
			if !ok || m.Status != gossip.StatusAlive || !m.UpdatedAt.After(rotated.Add(time.Second)) {
				return false, fmt.Sprintf("%s: known=%v status=%v updated %v", n.Spec.Name, ok, m.Status, m.UpdatedAt)
			}
		}
		return true, ""
	})
	// Persisted for a restart.
	b, err := os.ReadFile(filepath.Join(dir, c.Servers()[0].ID(), coordinator.KeyringFileName))
	var keys []string
	if err != nil || json.Unmarshal(b, &keys) != nil || len(keys) != 1 || keys[0] != newB64 {
		t.Fatalf("server keyring file = %s, %v", b, err)
	}
	var removed, refused *pb.AuditRecord
	for _, r := range c.Servers()[c.Leader()].FSM().Audit(0) {
		switch {
		case r.GetAction() != "keyring-remove":
		case r.GetRefusedCode() == "" && removed == nil:
			removed = r
		case r.GetRefusedCode() == codes.FailedPrecondition.String() && refused == nil:
			refused = r
		}
	}
	if removed == nil || strings.Contains(removed.GetDetail(), oldB64) || removed.GetCaller().GetNote() != "rotation" || !strings.Contains(removed.GetDetail(), "6 of 6 nodes applied") {
		t.Fatalf("keyring removal audited as %v (the key itself must not be in it)", removed)
	}
	if refused == nil || strings.Contains(refused.GetDetail(), newB64) {
		t.Fatalf("refused removal of the primary key audited as %v", refused)
	}

	// A node holding only the removed key cannot join.
	for name, key := range map[string][]byte{"intruder-old-key": oldKey, "intruder-no-key": nil} {
		p, err := gossip.New(gossip.Config{Name: name, BindAddr: "127.0.0.1", Profile: gossip.ProfileTest, SecretKey: key}, func() gossip.Meta { return gossip.Meta{Role: "ledger", Cluster: "ledger"} })
		if err != nil {
			t.Fatal(err)
		}
		n, err := p.Join([]string{c.Servers()[0].GossipAddr()})
		_ = p.Shutdown()
		if err == nil || n != 0 {
			t.Fatalf("%s joined: contacted %d, err %v", name, n, err)
		}
		if _, ok := c.Servers()[0].Member(name); ok {
			t.Fatalf("server knows %s", name)
		}
	}
}
