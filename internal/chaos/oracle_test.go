package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func logs(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

func drained(ms int) string {
	return fmt.Sprintf(`{"level":"info","msg":"paused and drained","node_id":"ledger-1","drained_unix_ns":%d}`, at(ms).UnixNano())
}

func ended(from, to int) string {
	return fmt.Sprintf(`{"level":"info","msg":"paused interval ended","node_id":"ledger-1","start_unix_ns":%d,"end_unix_ns":%d}`,
		at(from).UnixNano(), at(to).UnixNano())
}

func TestParseIntervals(t *testing.T) {
	got := ParseIntervals(logs(
		"simnode ledger-1 (ledger) serving rpc.Admin on 127.0.0.1:50053",
		drained(100), `{"msg":"paused","node_id":"ledger-1"}`, ended(100, 400),
		"not json {", drained(1000),
	), at(5000))
	want := []Interval{{Start: at(100), End: at(400)}, {Start: at(1000), End: at(5000), Open: true}}
	if len(got) != len(want) {
		t.Fatalf("got %d intervals %v, want %v", len(got), got, want)
	}
	for i := range want {
		if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) || got[i].Open != want[i].Open {
			t.Errorf("interval %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCheckWindow(t *testing.T) {
	ivs := map[string][]Interval{
		"a": {{Start: at(100), End: at(900)}},
		"b": {{Start: at(100), End: at(450)}, {Start: at(460), End: at(900)}}, // restarted at 450
	}
	cases := []struct {
		name string
		w    Window
		want int
	}{
		{"inside both", Window{OpID: "op", Start: at(200), End: at(400), Restore: at(300), Targets: []string{"a", "b"}}, 0},
		{"restore point in the restart gap", Window{OpID: "op", Start: at(400), End: at(500), Restore: at(455), Targets: []string{"a", "b"}}, 1},
		{"window straddles the restart", Window{OpID: "op", Start: at(400), End: at(700), Restore: at(550), Targets: []string{"a", "b"}}, 1},
		{"target never paused", Window{OpID: "op", Start: at(200), End: at(400), Restore: at(300), Targets: []string{"a", "c"}}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if v := CheckWindow(c.w, ivs); len(v) != c.want {
				t.Errorf("violations %q, want %d", v, c.want)
			}
		})
	}
}

func TestCheckPausedLength(t *testing.T) {
	lease, slack := 15*time.Second, 2*time.Second
	long := []Interval{{Start: at(0), End: at(30_000)}}
	if v, longest := CheckPausedLength("n", long, lease, slack, nil); len(v) != 1 || longest != 30*time.Second {
		t.Errorf("agent alive, paused 30s: violations %q longest %v, want 1 and 30s", v, longest)
	}
	down := []Downtime{{From: at(5_000), To: at(20_000)}}
	if v, _ := CheckPausedLength("n", long, lease, slack, down); len(v) != 0 {
		t.Errorf("agent down 15s of it: violations %q, want none", v)
	}
	outside := []Downtime{{From: at(40_000), To: at(60_000)}}
	if v, _ := CheckPausedLength("n", long, lease, slack, outside); len(v) != 1 {
		t.Errorf("downtime after the interval: violations %q, want 1", v)
	}
	if v, _ := CheckPausedLength("n", []Interval{{Start: at(0), End: at(16_000), Open: true}}, lease, slack, nil); len(v) != 0 {
		t.Errorf("16s within slack: violations %q, want none", v)
	}
}

func TestCheckResumedHold(t *testing.T) {
	if v := CheckResumedHold("op", 2, at(10_000), at(11_000), 0, 3*time.Second); len(v) != 0 {
		t.Errorf("ended 1s late: %q", v)
	}
	if v := CheckResumedHold("op", 2, at(10_000), at(18_000), 0, 3*time.Second); len(v) != 1 {
		t.Errorf("hold restarted (8s late): %q, want 1 violation", v)
	}
	if v := CheckResumedHold("op", 2, at(10_000), at(18_000), 6*time.Second, 3*time.Second); len(v) != 0 {
		t.Errorf("8s late after 6s without quorum: %q", v)
	}
	if v := CheckResumedHold("op", 1, at(10_000), at(30_000), 0, 3*time.Second); len(v) != 0 {
		t.Errorf("one leader is not a resumed hold: %q", v)
	}
}

func TestCheckCatalog(t *testing.T) {
	acked := map[string]time.Time{"op-1": at(0), "op-2": at(1)}
	if v := CheckCatalog(acked, map[string]bool{"op-1": true, "op-2": true, "op-3": true}); len(v) != 0 {
		t.Errorf("all present: %q", v)
	}
	if v := CheckCatalog(acked, map[string]bool{"op-1": true}); len(v) != 1 || !strings.Contains(v[0], "op-2") {
		t.Errorf("op-2 lost: %q, want one violation naming op-2", v)
	}
}
