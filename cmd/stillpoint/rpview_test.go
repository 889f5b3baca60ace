package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func testRestorePoints() (valid, invalid *pb.RestorePoint) {
	t0 := time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)
	w := &pb.RestoreWindow{
		Start: timestamppb.New(t0), End: timestamppb.New(t0.Add(20 * time.Millisecond)),
		RestorePoint: timestamppb.New(t0.Add(10 * time.Millisecond)), UncertaintyNs: int64(10 * time.Millisecond), WidthNs: int64(20 * time.Millisecond),
	}
	valid = &pb.RestorePoint{OpId: "op-good", Cluster: "ledger", Window: w, Targets: []string{"ledger-1", "ledger-2"}, HoldNs: int64(25 * time.Millisecond)}
	invalid = &pb.RestorePoint{OpId: "op-bad", Cluster: "ledger", Window: w, Targets: []string{"ledger-1", "ledger-2"},
		Invalid: true, InvalidReason: "ledger-2: node came back unpaused during op op-bad",
		InvalidatedAt: &pb.StampedTime{LocalTime: timestamppb.New(t0.Add(time.Hour))}, InvalidatedBy: "agent ledger-2 (recorded by server-1)"}
	return valid, invalid
}

func TestRestorePointViewsShowInvalidation(t *testing.T) {
	valid, invalid := testRestorePoints()
	var b bytes.Buffer
	if err := restorePointsTable(&b, []*pb.RestorePoint{invalid, valid}, "Asia/Tokyo"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "VALID") {
		t.Fatalf("list:\n%s", b.String())
	}
	if f := strings.Fields(lines[1]); f[0] != "op-bad" || f[5] != "NO" {
		t.Errorf("invalid row = %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "op-good" || f[5] != "yes" {
		t.Errorf("valid row = %q", lines[2])
	}
	if !strings.Contains(lines[3], "op-bad is INVALID: ledger-2: node came back unpaused") {
		t.Errorf("no reason under the table: %q", lines[3])
	}

	b.Reset()
	if err := printRestorePoint(&b, invalid, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Status         INVALID: do not restore to this point", "ledger-2: node came back unpaused during op op-bad",
		"  learned      2026-11-24T11:15:00", "  reported by  agent ledger-2 (recorded by server-1)", "Restore point  2026-11-24T10:15:00.01"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := printRestorePoint(&b, valid, ""); err != nil || !strings.Contains(b.String(), "Status         valid") {
		t.Fatalf("show of a valid entry (%v):\n%s", err, b.String())
	}

	b.Reset()
	if err := printJSON(&b, invalid); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"invalid"`, `"invalid_reason"`, `"invalidated_at"`, `"invalidated_by"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("json lacks %s:\n%s", key, b.String())
		}
	}
	var back pb.RestorePoint
	if err := protojson.Unmarshal(b.Bytes(), &back); err != nil || !back.GetInvalid() {
		t.Fatalf("json round trip: %v %v", err, &back)
	}
}
