package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// runCoordCLI runs the stillpoint command in-process and returns its stdout.
func runCoordCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := execCLI(t, &out, io.Discard, 20*time.Second, args...)
	return out.String(), err
}

func agentMeta(cluster string, offset, bound time.Duration, st clock.Status, paused pb.PausedState, reachable bool) gossip.Meta {
	return gossip.Meta{
		Role: cluster, Cluster: cluster, GRPCAddr: "127.0.0.1:1",
		Clock: gossip.ClockMeta{OffsetNS: int64(offset), BoundNS: int64(bound), Status: st, AgeMS: 250, MaxDriftPPM: 50},
		Node:  gossip.NodeState{Reachable: reachable, Paused: paused},
	}
}

func membersCluster(t *testing.T) *testcluster.Cluster {
	c := testcluster.New(t, 3, testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
		c.AddStandIn(t, "ledger-1", agentMeta("ledger", 300*time.Microsecond, 2*time.Millisecond, clock.Synchronized, pb.PausedState_PAUSED_STATE_UNPAUSED, true))
		l2 := agentMeta("ledger", -1500*time.Microsecond, 4*time.Millisecond, clock.Synchronized, pb.PausedState_PAUSED_STATE_PAUSED, true)
		l2.OpID, l2.LeaseRemainingMS = "op-42", 9000
		c.AddStandIn(t, "ledger-2", l2)
		c.AddStandIn(t, "auditor-1", agentMeta("auditor", 0, 30*time.Millisecond, clock.Stale, pb.PausedState_PAUSED_STATE_UNKNOWN, false))
	}))
	c.WaitForLeader(t)
	// Wait until every server sees all six members alive.
	for _, s := range c.Servers() {
		testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
			alive := 0
			for _, m := range s.Members() {
				if m.Status == gossip.StatusAlive {
					alive++
				}
			}
			return alive == 6, fmt.Sprintf("%s sees %d alive members", s.ID(), alive)
		})
	}
	return c
}

func TestMembersCommand(t *testing.T) {
	c := membersCluster(t)
	// From every server, leader or follower, the full list.
	for i := range c.Servers() {
		addr := c.Server(i).GRPCAddr()
		out, err := runCoordCLI(t, "members", "--addr", addr)
		if err != nil {
			t.Fatalf("members via %s: %v", c.Server(i).ID(), err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 7 {
			t.Fatalf("members via %s printed %d lines:\n%s", c.Server(i).ID(), len(lines), out)
		}
		wantHeader := []string{"NAME", "ROLE", "CLUSTER", "ADDRESS", "OFFSET", "±BOUND", "STATUS", "AGE", "NODE", "OP"}
		if got := strings.Fields(lines[0]); strings.Join(got, " ") != strings.Join(wantHeader, " ") {
			t.Fatalf("header = %q", lines[0])
		}
		rows := map[string][]string{}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			rows[f[0]] = f
		}
		tests := []struct {
			name string
			want []string // role, cluster, (addr skipped), offset, bound, status, age, node, op...
		}{
			{"ledger-1", []string{"ledger", "ledger", "+0.3ms", "±2*", "synchronized", "", "unpaused", "-"}},
			{"ledger-2", []string{"ledger", "ledger", "-1.5ms", "±4*", "synchronized", "", "paused", "op-42"}},
			{"auditor-1", []string{"auditor", "auditor", "0ns", "±30*", "stale", "", "unreachable", "-"}},
			{"server-1", []string{"server", "-", "-", "-", "alive", "-", "healthy,*", "-"}},
		}
		for _, tc := range tests {
			f, ok := rows[tc.name]
			if !ok {
				t.Fatalf("no row for %s:\n%s", tc.name, out)
			}
			got := append(f[1:3:3], f[4:]...)
			for j, w := range tc.want {
				if w == "" {
					continue // age moves with time
				}
				if prefix, ok := strings.CutSuffix(w, "*"); ok {
					// The bound is grown to now: the gossiped figure or a
					// hair more; a server's last contact moves with time.
					if !strings.HasPrefix(at(got, j), prefix) {
						t.Fatalf("%s row = %q; column %d = %q, want %s…", tc.name, f, j, at(got, j), prefix)
					}
					continue
				}
				if j >= len(got) || got[j] != w {
					t.Fatalf("%s row = %q; column %d = %q, want %q", tc.name, f, j, at(got, j), w)
				}
			}
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<missing>"
}

func TestMembersCommandJSON(t *testing.T) {
	c := membersCluster(t)
	f := c.Followers()[0]
	out, err := runCoordCLI(t, "members", "--addr", f.GRPCAddr(), "-o", "json", "--cluster", "ledger")
	if err != nil {
		t.Fatal(err)
	}
	// Proto field names, not JSON camelCase.
	for _, key := range []string{`"served_by"`, `"offset_ns"`, `"error_bound_ns"`, `"node_state"`, `"op_id"`} {
		if !strings.Contains(out, key) {
			t.Fatalf("json lacks %s:\n%s", key, out)
		}
	}
	var resp pb.ListMembersResponse
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("output is not a ListMembersResponse: %v\n%s", err, out)
	}
	if len(resp.GetMembers()) != 2 || resp.GetServedBy() != c.WaitForLeader(t).ID() {
		t.Fatalf("members = %v", &resp)
	}
	l2 := resp.GetMembers()[1]
	if l2.GetName() != "ledger-2" || l2.GetClock().GetOffsetNs() != -1500e3 || l2.GetNodeState().GetPaused() != pb.PausedState_PAUSED_STATE_PAUSED || l2.GetOpId() != "op-42" {
		t.Fatalf("ledger-2 = %v", l2)
	}
	// --stale answers from the asked server.
	out, err = runCoordCLI(t, "members", "--addr", f.GRPCAddr(), "-o", "json", "--stale")
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil || resp.GetServedBy() != f.ID() || len(resp.GetMembers()) != 6 {
		t.Fatalf("stale members via %s: %v %v", f.ID(), &resp, err)
	}
}

func TestClientFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"members", "-o", "yaml"}, `--output "yaml": want table or json`},
		{[]string{"members", "--addr", "127.0.0.1:1", "--timeout", "2s"}, "cannot reach a coordinator server at 127.0.0.1:1"},
		{[]string{"operator", "raft", "remove-peer"}, "accepts 1 arg"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := runCoordCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClientAddrFromEnv(t *testing.T) {
	c := testcluster.New(t, 1)
	c.WaitForLeader(t)
	t.Setenv("STILLPOINT_ADDR", c.Server(0).GRPCAddr())
	out, err := runCoordCLI(t, "operator", "raft", "list-peers")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "server-1") || !strings.Contains(out, "leader") {
		t.Fatalf("list-peers via env addr:\n%s", out)
	}
}

func TestOperatorRaftCommands(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitForLeader(t)
	f := c.Followers()[0]
	out, err := runCoordCLI(t, "operator", "raft", "list-peers", "--addr", f.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "ID ADDRESS STATE VOTER LAST-CONTACT HEALTH" {
		t.Fatalf("list-peers:\n%s", out)
	}
	leaders := 0
	for _, l := range lines[1:] {
		fs := strings.Fields(l)
		if fs[2] == "leader" {
			leaders++
			if fs[0] != leader.ID() {
				t.Fatalf("list-peers names %s leader, want %s", fs[0], leader.ID())
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders in:\n%s", leaders, out)
	}

	out, err = runCoordCLI(t, "operator", "raft", "transfer-leader", f.ID(), "--addr", leader.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "Leadership transferred to "+f.ID() {
		t.Fatalf("transfer-leader: %q", out)
	}
	if nl := c.WaitForLeader(t); nl != f {
		t.Fatalf("leader is %s, want %s", nl.ID(), f.ID())
	}

	out, err = runCoordCLI(t, "operator", "raft", "transfer-leader", "-o", "json", "--addr", f.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	var tr pb.TransferLeadershipResponse
	if err := protojson.Unmarshal([]byte(out), &tr); err != nil || tr.GetNewLeader() == "" || tr.GetNewLeader() == f.ID() {
		t.Fatalf("transfer-leader json = %q (%v)", out, err)
	}

	// remove-peer of a killed server.
	c.WaitForLeader(t)
	victim := c.Followers()[0]
	c.Kill(c.Index(victim))
	survivor := c.Servers()[0]
	out, err = runCoordCLI(t, "operator", "raft", "remove-peer", victim.ID(), "--addr", survivor.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "Removed Raft peer "+victim.ID() {
		t.Fatalf("remove-peer: %q", out)
	}
	if _, err := runCoordCLI(t, "operator", "raft", "remove-peer", "nope", "--addr", survivor.GRPCAddr()); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("remove unknown peer: %v", err)
	}
}

func TestMembersRemoveCommand(t *testing.T) {
	var l2 *testcluster.StandIn
	c := testcluster.New(t, 1, testcluster.WithExtra(func(t testing.TB, c *testcluster.Cluster) {
		c.AddStandIn(t, "ledger-1", agentMeta("ledger", 0, time.Millisecond, clock.Synchronized, pb.PausedState_PAUSED_STATE_UNPAUSED, true))
		l2 = c.AddStandIn(t, "ledger-2", agentMeta("ledger", 0, time.Millisecond, clock.Synchronized, pb.PausedState_PAUSED_STATE_UNPAUSED, true))
	}))
	leader := c.WaitForLeader(t)
	addr := leader.GRPCAddr()
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		r := leader.FSM().Roster("ledger")
		return len(r) == 2, fmt.Sprintf("ledger roster = %v", r)
	})
	if _, err := runCoordCLI(t, "members", "remove", "ledger-1", "--addr", addr); err == nil || !strings.Contains(err.Error(), "ledger-1 is alive in gossip") {
		t.Fatalf("removing live ledger-1: %v, want a refusal naming it", err)
	}
	if _, err := runCoordCLI(t, "members", "remove", "server-1", "--addr", addr); err == nil || !strings.Contains(err.Error(), "remove-peer") {
		t.Fatalf("removing a server: %v, want a pointer to remove-peer", err)
	}
	if _, err := runCoordCLI(t, "members", "remove", "nobody", "--addr", addr); err == nil || !strings.Contains(err.Error(), "nobody is on no cluster's roster") {
		t.Fatalf("removing an unknown node: %v", err)
	}
	// ledger-2's agent crashes: it stays on the roster, as failed.
	if err := l2.Pool.Shutdown(); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		r, ok := leader.FSM().Member("ledger-2")
		return ok && r.GetStatus() == pb.MemberRecordStatus_MEMBER_RECORD_STATUS_FAILED, fmt.Sprintf("ledger-2 record = %v", r)
	})
	out, err := runCoordCLI(t, "members", "remove", "ledger-2", "--reason", "host retired", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "removed ledger-2 from the roster of cluster ledger") {
		t.Fatalf("output = %q", out)
	}
	// A full reconcile does not put the dead agent back.
	if err := leader.ReconcileNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := leader.FSM().Roster("ledger"); len(r) != 1 || r[0].GetName() != "ledger-1" {
		t.Fatalf("ledger roster after remove = %v", r)
	}
	rec := leader.FSM().Audit(1)
	if len(rec) != 1 || rec[0].GetAction() != "roster-remove" || !strings.Contains(rec[0].GetActor(), "127.0.0.1") || !strings.Contains(rec[0].GetDetail(), "host retired") {
		t.Fatalf("audit = %v", rec)
	}
}

// TestRaftHealthCommands: list-peers and members show a killed follower
// unhealthy on the leader with its last contact, the live servers healthy,
// in the tables and in JSON.
func TestRaftHealthCommands(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitForLeader(t)
	victim := c.Followers()[0]
	vid := victim.ID()
	c.Kill(c.Index(victim))
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		leader := c.WaitForLeader(t)
		out, err := runCoordCLI(t, "operator", "raft", "list-peers", "--addr", leader.GRPCAddr())
		if err != nil {
			return false, err.Error()
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 {
			return false, "list-peers:\n" + out
		}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) != 6 {
				return false, "list-peers row " + l
			}
			id, contact, health := f[0], f[4], f[5]
			switch {
			case id == leader.ID():
				if contact != "now" || health != "healthy" {
					return false, "leader row " + l
				}
			case id == vid:
				// Known and stale, or unknown to a leader elected since.
				if health != "unhealthy" && !(health == "unknown" && contact == "-") {
					return false, "killed follower row " + l
				}
			default:
				if health != "healthy" || contact == "-" {
					return false, "live follower row " + l
				}
			}
		}
		return true, ""
	})

	leader := c.WaitForLeader(t)
	out, err := runCoordCLI(t, "operator", "raft", "list-peers", "-o", "json", "--addr", leader.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"last_contact_ms"`, `"healthy"`} {
		if !strings.Contains(out, key) {
			t.Fatalf("list-peers json lacks %s:\n%s", key, out)
		}
	}
	var peers pb.ListRaftPeersResponse
	if err := protojson.Unmarshal([]byte(out), &peers); err != nil {
		t.Fatalf("output is not a ListRaftPeersResponse: %v\n%s", err, out)
	}
	for _, p := range peers.GetPeers() {
		if p.GetHealthy() == (p.GetId() == vid) {
			t.Fatalf("peer %s healthy=%v in:\n%s", p.GetId(), p.GetHealthy(), out)
		}
	}

	out, err = runCoordCLI(t, "members", "--addr", leader.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 10 || f[1] != "server" {
			continue
		}
		want := "healthy,"
		if f[0] == vid {
			want = "unhealthy,"
		}
		if f[0] == leader.ID() {
			want = "healthy,now"
		}
		if f[0] == vid && f[8] == "-" {
			continue // unknown to a leader elected since the kill
		}
		if !strings.HasPrefix(f[8], want) {
			t.Fatalf("members row %q: NODE %q, want %s…\n%s", l, f[8], want, out)
		}
	}
	out, err = runCoordCLI(t, "members", "-o", "json", "--addr", leader.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"raft_last_contact_ms"`) || !strings.Contains(out, `"raft_healthy"`) {
		t.Fatalf("members json lacks raft health:\n%s", out)
	}
}
