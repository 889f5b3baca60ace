package ui

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

const evil = `<script>alert(1)</script>`

// fakeSource answers with fixed messages.
type fakeSource struct {
	drift   *pb.GetDriftResponse
	ops     []*pb.Operation
	alarms  []*pb.Alarm
	members []*pb.Member
	audit   []*pb.AuditRecord
}

func (f *fakeSource) GetDrift(context.Context, *pb.GetDriftRequest) (*pb.GetDriftResponse, error) {
	return f.drift, nil
}
func (f *fakeSource) ListOperations(context.Context, *pb.ListOperationsRequest) (*pb.ListOperationsResponse, error) {
	return &pb.ListOperationsResponse{Operations: f.ops}, nil
}
func (f *fakeSource) GetOperation(_ context.Context, r *pb.GetOperationRequest) (*pb.GetOperationResponse, error) {
	for _, op := range f.ops {
		if op.GetOpId() == r.GetOpId() {
			return &pb.GetOperationResponse{Operation: op}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "operation %s not found", r.GetOpId())
}
func (f *fakeSource) ListAlarms(context.Context, *pb.ListAlarmsRequest) (*pb.ListAlarmsResponse, error) {
	return &pb.ListAlarmsResponse{Alarms: f.alarms}, nil
}
func (f *fakeSource) ListMembers(context.Context, *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	return &pb.ListMembersResponse{Members: f.members}, nil
}
func (f *fakeSource) ListRaftPeers(context.Context, *pb.ListRaftPeersRequest) (*pb.ListRaftPeersResponse, error) {
	return &pb.ListRaftPeersResponse{Peers: []*pb.RaftPeer{{Id: "server-1", Leader: true, Voter: true}}}, nil
}
func (f *fakeSource) ListAudit(context.Context, *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
	return &pb.ListAuditResponse{Records: f.audit}, nil
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func stamp(t time.Time, off, bound time.Duration) *pb.StampedTime {
	return &pb.StampedTime{LocalTime: timestamppb.New(t.Add(-off)), Estimate: &pb.ClockEstimate{OffsetNs: int64(off), ErrorBoundNs: int64(bound), Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED}}
}

func clock(off, bound time.Duration, st pb.ClockStatus) *pb.ClockEstimate {
	return &pb.ClockEstimate{OffsetNs: int64(off), ErrorBoundNs: int64(bound), Status: st}
}

func fixture() *fakeSource {
	ms := time.Millisecond
	cfg := &pb.RuntimeConfig{MaxErrorBoundNs: int64(10 * ms), MaxDriftNs: int64(100 * ms)}
	completed := &pb.Operation{
		OpId: "op-1", Cluster: "ledger", State: pb.OperationState_OPERATION_STATE_COMPLETED, HoldNs: int64(30 * ms),
		CreatedAt: stamp(t0, 0, ms), EndedAt: stamp(t0.Add(310*ms), 0, ms),
		Targets: []*pb.TargetRecord{
			{Node: evil, AckedAt: stamp(t0.Add(10*ms), 2*ms, ms), UnpauseSentAt: stamp(t0.Add(300*ms), 2*ms, ms)},
			{Node: "ledger-2", AckedAt: stamp(t0.Add(12*ms), 0, 3*ms), UnpauseSentAt: stamp(t0.Add(290*ms), 0, 3*ms)},
		},
		Window: &pb.RestoreWindow{Start: timestamppb.New(t0.Add(15 * ms)), End: timestamppb.New(t0.Add(287 * ms)),
			RestorePoint: timestamppb.New(t0.Add(151 * ms)), UncertaintyNs: int64(136 * ms), WidthNs: int64(272 * ms)},
		Backup: &pb.BackupRun{Plan: &pb.BackupPlan{Name: "nightly"}, Hooks: []*pb.HookRun{{
			StepId: "ledger-databases/0", Group: "ledger-databases", Ref: &pb.HookRef{Agent: "ledger-2", Hook: "pg-dump"},
			State: pb.HookState_HOOK_STATE_SUCCEEDED, StartedAt: stamp(t0.Add(20*ms), 0, ms), EndedAt: stamp(t0.Add(200*ms), 0, ms),
			DurationNs: int64(180 * ms), OutputTail: []byte("wrote /backups/x.dump\n" + evil),
		}}},
	}
	invalid := &pb.Operation{
		OpId: "op-2", Cluster: "ledger", State: pb.OperationState_OPERATION_STATE_INVALID, Reason: "ledger-2 came back unpaused " + evil,
		CreatedAt: stamp(t0.Add(time.Minute), 0, ms),
		Targets:   []*pb.TargetRecord{{Node: "ledger-2", NodeInterrupted: true, AckedAt: stamp(t0.Add(time.Minute+10*ms), 0, ms), UnpauseSentAt: stamp(t0.Add(time.Minute+200*ms), 0, ms)}},
	}
	return &fakeSource{
		drift: &pb.GetDriftResponse{Config: cfg, SpreadNs: map[string]int64{"ledger": int64(42 * ms)}, Entries: []*pb.DriftEntry{
			{Member: &pb.Member{Name: evil, Cluster: "ledger", Clock: clock(2*ms, ms, pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED)}, Admissible: true},
			{Member: &pb.Member{Name: "ledger-2", Cluster: "ledger", Clock: clock(-40*ms, 12*ms, pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED)}, Reasons: []string{"error bound 12ms > max 10ms"}},
			{Member: &pb.Member{Name: "ledger-3", Cluster: "ledger", Clock: clock(0, 0, pb.ClockStatus_CLOCK_STATUS_STALE)}, Reasons: []string{"clock stale"}},
		}},
		ops:     []*pb.Operation{invalid, completed},
		alarms:  []*pb.Alarm{{Id: "a1", Kind: "error_bound_critical", Severity: "critical", Active: true, Node: "ledger-2", Message: "bound " + evil, RaisedAt: stamp(t0, 0, ms)}},
		members: []*pb.Member{{Name: evil, Role: "ledger", Cluster: "ledger", Status: pb.MemberStatus_MEMBER_STATUS_ALIVE}, {Name: "server-1", Role: "server"}},
		audit:   []*pb.AuditRecord{{Action: "pause_refused", Actor: "cli", Detail: "pause refused for cluster ledger: " + evil, At: stamp(t0, 0, ms)}},
	}
}

func get(t *testing.T, h http.Handler, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b), rec.Header()
}

func newHandler(t *testing.T, src Source) *Handler {
	t.Helper()
	h, err := New(src, Config{NodeID: "server-1"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Every page prints agent-controlled strings (node names, reasons, alarm
// messages, hook output) escaped.
func TestEveryPageEscapes(t *testing.T) {
	h := newHandler(t, fixture())
	for _, p := range []string{"/ui/", "/ui/clocks", "/ui/ops", "/ui/ops/op-1", "/ui/ops/op-2", "/ui/alarms", "/ui/members"} {
		code, body, hdr := get(t, h, p)
		if code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
			continue
		}
		if !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
			t.Errorf("%s: content type %q", p, hdr.Get("Content-Type"))
		}
		if strings.Contains(body, "<script") {
			t.Errorf("%s: a <script> element reached the page", p)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the escaped agent string is not shown", p)
		}
	}
}

func TestClockChartGeometry(t *testing.T) {
	charts := ClockCharts(fixture().drift)
	if len(charts) != 1 || len(charts[0].Rows) != 3 {
		t.Fatalf("charts %+v", charts)
	}
	c := charts[0]
	// Median of the synchronized offsets (+2ms, -40ms): -19ms.
	if !c.HasMedian || c.Median != "-19ms" {
		t.Errorf("median %q, want -19ms over the synchronized nodes only", c.Median)
	}
	if !(c.DriftX0 < c.MedianX && c.MedianX < c.DriftX1) {
		t.Errorf("drift band [%v, %v] does not hold the median %v", c.DriftX0, c.DriftX1, c.MedianX)
	}
	classes := map[string]string{}
	for _, r := range c.Rows {
		classes[r.Node] = r.Class
		if !(r.BarX0 <= r.PointX && r.PointX <= r.BarX1) {
			t.Errorf("%s: point %v outside its bar [%v, %v]", r.Node, r.PointX, r.BarX0, r.BarX1)
		}
	}
	if classes[evil] != "ok" || classes["ledger-2"] != "bad" || classes["ledger-3"] != "bad" {
		t.Errorf("classes %v", classes)
	}
	// ledger-2's bound (12ms) exceeds ε_max (10ms): its bar is wider than
	// its limit track.
	r := c.Rows[1]
	if r.Node != "ledger-2" || !(r.BarX0 < r.LimX0 && r.BarX1 > r.LimX1) || !r.BoundOverMax {
		t.Errorf("ledger-2 bar [%v, %v] vs limit [%v, %v]", r.BarX0, r.BarX1, r.LimX0, r.LimX1)
	}
}

func TestOpChartGeometry(t *testing.T) {
	op := fixture().ops[1]
	c := NewOpChart(op, time.UTC, chartWidth)
	if !c.HasWindow || len(c.Rows) != 2 || len(c.Hooks) != 1 {
		t.Fatalf("chart %+v", c)
	}
	if !(c.WinX0 < c.RestoreX && c.RestoreX < c.WinX1) {
		t.Errorf("restore point %v outside window [%v, %v]", c.RestoreX, c.WinX0, c.WinX1)
	}
	for _, r := range c.Rows {
		if !(r.Ack.Lo < r.Ack.X && r.Ack.X < r.Ack.Hi && r.Unpause.Lo < r.Unpause.X && r.Unpause.X < r.Unpause.Hi) {
			t.Errorf("%s: whiskers %+v %+v not around their stamp", r.Node, r.Ack, r.Unpause)
		}
		// The window lies inside every target's interval with its bounds.
		if c.WinX0 < r.Ack.Lo || c.WinX1 > r.Unpause.Hi {
			t.Errorf("%s: window [%v, %v] outside [%v, %v]", r.Node, c.WinX0, c.WinX1, r.Ack.Lo, r.Unpause.Hi)
		}
	}
	// The true time of a stamp is local + offset: the first target's ack
	// at t0+10ms (local t0+8ms, offset +2ms).
	if got := c.Rows[0].Ack.Label; !strings.HasPrefix(got, "2026-11-24T10:00:00.010000000+00:00") {
		t.Errorf("ack label %q, want the true time t0+10ms", got)
	}
	inv := NewOpChart(fixture().ops[0], time.UTC, chartWidth)
	if inv.HasWindow {
		t.Error("an invalid op draws a window")
	}
}

func TestJSONIsTheAPIMessages(t *testing.T) {
	h := newHandler(t, fixture())
	for _, c := range []struct {
		url, accept string
		keys        []string
	}{
		{"/ui/?format=json", "", []string{"drift", "operations", "alarms"}},
		{"/ui/clocks", "application/json", []string{"drift"}},
		{"/ui/ops?format=json", "", []string{"operations", "refused"}},
		{"/ui/ops/op-1?format=json", "", []string{"operation"}},
		{"/ui/alarms?format=json", "", []string{"alarms"}},
		{"/ui/members?format=json", "", []string{"members", "raft_peers"}},
	} {
		code, body, hdr := get(t, h, c.url, "Accept", c.accept)
		if code != 200 || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s", c.url, code, hdr.Get("Content-Type"))
			continue
		}
		var out map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		for _, k := range c.keys {
			if _, ok := out[k]; !ok {
				t.Errorf("%s: no %q in %s", c.url, k, body)
			}
		}
	}
	_, body, _ := get(t, h, "/ui/ops/op-1?format=json")
	if !strings.Contains(body, `"restore_point": "2026-11-24T10:00:00.151Z"`) || !strings.Contains(body, `"op_id": "op-1"`) {
		t.Errorf("op JSON is not the Operation message (protojson): %s", body)
	}
}

func TestZoneAndErrors(t *testing.T) {
	h := newHandler(t, fixture())
	_, body, _ := get(t, h, "/ui/ops/op-1?tz=Asia/Tokyo")
	if !strings.Contains(html.UnescapeString(body), "2026-11-24T19:00:00.151000000+09:00 (Asia/Tokyo)") {
		t.Errorf("restore point not shown in Asia/Tokyo with its offset")
	}
	if code, body, _ := get(t, h, "/ui/ops?tz=Mars/Olympus"); code != 400 || !strings.Contains(body, "Mars/Olympus") {
		t.Errorf("bad zone: %d %s", code, body)
	}
	if code, _, _ := get(t, h, "/ui/ops/op-404"); code != 404 {
		t.Errorf("unknown op: %d, want 404", code)
	}
	if code, _, _ := get(t, h, "/ui/nope"); code != 404 {
		t.Errorf("unknown page: %d", code)
	}
	req := httptest.NewRequest(http.MethodPost, "/ui/ops", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

func TestStrip(t *testing.T) {
	ops := fixture().ops // invalid (t0+1m), completed (t0)
	s := NewStrip(ops, t0.Add(2*time.Minute), time.UTC, chartWidth)
	if len(s.Ops) != 2 {
		t.Fatalf("strip %+v", s)
	}
	inv, done := s.Ops[0], s.Ops[1]
	if inv.HasRP || !done.HasRP || done.Class != "ok" || inv.Class != "bad" {
		t.Errorf("strip ops %+v %+v: want the completed one with its restore point, the invalid one without", done, inv)
	}
	if !(done.X1 < inv.X0) {
		t.Errorf("the op a minute earlier (%v..%v) is not left of the later one (%v..%v)", done.X0, done.X1, inv.X0, inv.X1)
	}
	if !(done.X0 <= done.RPX && done.RPX <= done.X1+3) {
		t.Errorf("restore point %v outside its op %v..%v", done.RPX, done.X0, done.X1)
	}
	if w := inv.X1 - inv.X0; w < 3 {
		t.Errorf("a short op is %v wide: invisible", w)
	}
}

func TestDriftBand(t *testing.T) {
	ms := time.Millisecond
	// Within max_drift: the band holds every offset, and an offset just
	// past either edge would make the spread exceed max_drift.
	b := driftBand([]time.Duration{-10 * ms, 5 * ms, 30 * ms}, 5*ms, 100*ms)
	if b.over || b.lo != -70*ms || b.hi != 90*ms {
		t.Errorf("band %+v, want [-70ms, 90ms]", b)
	}
	// Over max_drift: median ± max_drift/2, flagged.
	b = driftBand([]time.Duration{0, 2 * ms, 150 * ms}, 2*ms, 100*ms)
	if !b.over || b.lo != -48*ms || b.hi != 52*ms || !strings.Contains(b.title, "offset spread 150ms > max_drift 100ms") {
		t.Errorf("band %+v, want over, median 2ms ± 50ms", b)
	}
	if b := driftBand(nil, 0, 100*ms); b.lo != 0 || b.hi != 0 {
		t.Errorf("no offsets: %+v", b)
	}
}

func TestOpChartRunningOp(t *testing.T) {
	old := now
	t.Cleanup(func() { now = old })
	now = func() time.Time { return t0.Add(time.Second) }
	op := fixture().ops[1]
	op.State, op.Window = pb.OperationState_OPERATION_STATE_HOLDING, nil
	for _, tg := range op.GetTargets() {
		tg.UnpauseSentAt = nil
	}
	c := NewOpChart(op, time.UTC, chartWidth)
	if c.HasWindow {
		t.Error("a holding op draws a window")
	}
	for _, r := range c.Rows {
		if !r.Open || !(r.OpenX > r.Ack.X) || math.Abs(r.OpenX-c.PlotX1) > 40 {
			t.Errorf("%s: open %v bar %v..%v, want from its ack to now (near the right end %v)", r.Node, r.Open, r.Ack.X, r.OpenX, c.PlotX1)
		}
	}
	_, body, _ := get(t, newHandler(t, &fakeSource{ops: []*pb.Operation{op}}), "/ui/ops/op-1")
	if !strings.Contains(body, `<meta http-equiv="refresh" content="2">`) || strings.Count(body, `class="paused open"`) != 2 {
		t.Errorf("a holding op's page does not refresh itself or draw its open bars:\n%s", body)
	}
}
