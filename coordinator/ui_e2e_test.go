package coordinator_test

import (
	"context"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/peertest"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// evilOutput is an agent-controlled string that must reach the page
// escaped. Agents refuse a node name with '<' (agent config validation),
// so it travels as a hook's output tail (the "banner" hook echoes it).
const evilOutput = `<script>alert(1)</script>`

// uiGet fetches a UI page from the server's HTTP listener.
func uiGet(t *testing.T, base, path string) string {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b)
}

func parseHTML(t *testing.T, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, c string) bool {
	for _, f := range strings.Fields(attr(n, "class")) {
		if f == c {
			return true
		}
	}
	return false
}

// elems finds the elements under n named tag (any tag when "") carrying
// class (any when "").
func elems(n *html.Node, tag, class string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (tag == "" || n.Data == tag) && (class == "" || hasClass(n, class)) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// checkNoScript: no script element on the page; with shown, the agent
// string is on it as text.
func checkNoScript(t *testing.T, page, body string, shown bool) {
	t.Helper()
	if strings.Contains(body, "<script") {
		t.Errorf("%s: a <script> element reached the page", page)
	}
	if shown && !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("%s: the hook output %s is not shown (escaped)", page, evilOutput)
	}
	if n := len(elems(parseHTML(t, body), "script", "")); n != 0 {
		t.Errorf("%s: %d script elements in the parsed page", page, n)
	}
}

// startUIDev is a dev cluster of the named nodes (auditor-* in cluster
// auditor, the rest in ledger; no workload: the pages are the subject);
// ledger agents also define the hook "banner", which prints evilOutput.
func startUIDev(t *testing.T, names []string) *devcluster.Cluster {
	t.Helper()
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Nodes = nil
		for _, n := range names {
			role := "ledger"
			if strings.HasPrefix(n, "auditor") {
				role = "auditor"
			}
			cfg.Nodes = append(cfg.Nodes, devcluster.NodeSpec{Name: n, Role: role, Cluster: role})
		}
		cfg.Workload.Enabled = false
		cfg.ExtraHooks = func(n devcluster.NodeSpec, _ string) []hook.Definition {
			if n.Role != "ledger" {
				return nil
			}
			return []hook.Definition{{Name: "banner", Command: "/bin/echo", Args: []string{"banner of", n.Name, evilOutput}, Timeout: 10 * time.Second}}
		}
	})
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		l := c.Leader()
		if l < 0 {
			return false, "no leader"
		}
		n := len(c.Servers()[l].FSM().Roster(""))
		return n == len(names), fmt.Sprintf("roster has %d of %d", n, len(names))
	})
	return c
}

// runUIBackup sets a plan whose ledger-databases group runs each agent's
// hook (agent=hook) and runs it to its end.
func runUIBackup(t *testing.T, c *devcluster.Cluster, cl pb.CoordinatorServiceClient, refs ...string) *pb.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var hooks []*pb.HookRef
	for _, r := range refs {
		a, h, _ := strings.Cut(r, "=")
		hooks = append(hooks, &pb.HookRef{Agent: a, Hook: h})
	}
	plan := &pb.BackupPlan{Name: "nightly", Clusters: []string{"ledger"},
		Groups: []*pb.HookGroup{{Name: "ledger-databases", Hooks: hooks}}}
	if _, err := cl.SetBackupPlan(ctx, &pb.SetBackupPlanRequest{Plan: plan}); err != nil {
		t.Fatal(err)
	}
	var op *pb.Operation
	for attempt := 1; ; attempt++ {
		waitAdmissible(t, c)
		resp, err := cl.StartBackup(ctx, &pb.StartBackupRequest{Plan: "nightly", RequestId: fmt.Sprintf("ui-backup-%d", attempt)})
		if err != nil {
			if attempt < pauseAttempts && (status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.Unavailable) {
				continue
			}
			t.Fatal(err)
		}
		op = watchEnd(t, c, resp.GetOperation().GetOpId(), 60*time.Second)
		if op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED || attempt >= pauseAttempts {
			return op
		}
		t.Logf("backup %s ended %s (%s); again", op.GetOpId(), op.GetState(), op.GetReason())
	}
}

// TestUIPagesAgainstDevCluster renders every page against a dev cluster
// after a completed pause, a backup, a refused pause and an invalid one,
// and checks the drawing: a bound bar per node on the clocks page, one
// window and one restore-point mark per completed op (none for the
// others), the refusal and the invalid op's reason, the backup's steps,
// the zone, the JSON, and a hook's output <script>alert(1)</script> shown
// escaped (node names cannot carry it: agents refuse '<' in a name).
func TestUIPagesAgainstDevCluster(t *testing.T) {
	names := []string{"ledger-1", "ledger-2", "ledger-3", "auditor-1"}
	c := startUIDev(t, names)
	cl := client(t, c, 0)
	ctx := context.Background()

	done := startPause(t, c, cl, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 100}, completed)
	backup := runUIBackup(t, c, cl, "ledger-1="+devcluster.HookSnapshot, "ledger-2=banner")

	// Refused: an ε_max no clock meets.
	var keep int64
	if err := c.UpdateRuntime(ctx, func(rc *pb.RuntimeConfig) { keep, rc.MaxErrorBoundNs = rc.GetMaxErrorBoundNs(), 1 }); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", RequestId: "ui-refused"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("pause with ε_max 1ns: %v, want refused", err)
	}
	if err := c.UpdateRuntime(ctx, func(rc *pb.RuntimeConfig) { rc.MaxErrorBoundNs = keep }); err != nil {
		t.Fatal(err)
	}

	// Invalid: a node restarts mid-hold and comes back unpaused.
	hold := startPause(t, c, cl, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 1500}, holding)
	if err := c.Node("ledger-2").Sim.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	invalid := watchEnd(t, c, hold.GetOpId(), 30*time.Second)
	if invalid.GetState() != pb.OperationState_OPERATION_STATE_INVALID {
		t.Fatalf("op %s ended %s (%s), want invalid", invalid.GetOpId(), invalid.GetState(), invalid.GetReason())
	}

	leader := c.Leader()
	base := "http://" + c.Servers()[leader].HTTPAddr()
	followerBase := "http://" + c.Servers()[(leader+1)%len(c.Servers())].HTTPAddr()

	// Clocks: one bound bar (and point) per node, in its cluster's chart.
	clocks := uiGet(t, base, "/ui/clocks")
	checkNoScript(t, "clocks", clocks, false)
	doc := parseHTML(t, clocks)
	charts := map[string]*html.Node{}
	for _, svg := range elems(doc, "svg", "clocks") {
		charts[attr(svg, "data-cluster")] = svg
	}
	for cluster, want := range map[string][]string{"ledger": {"ledger-1", "ledger-2", "ledger-3"}, "auditor": {"auditor-1"}} {
		svg := charts[cluster]
		if svg == nil {
			t.Fatalf("no clock chart for cluster %s", cluster)
		}
		var got []string
		for _, g := range elems(svg, "g", "node") {
			if len(elems(g, "rect", "bound")) != 1 || len(elems(g, "circle", "offset")) != 1 {
				t.Errorf("%s: node %q has not one bound bar and one offset point", cluster, attr(g, "data-node"))
			}
			got = append(got, attr(g, "data-node"))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s chart draws nodes %q, want %q", cluster, got, want)
		}
		if len(elems(svg, "rect", "bound")) != len(want) {
			t.Errorf("%s chart: %d bound bars, want %d", cluster, len(elems(svg, "rect", "bound")), len(want))
		}
		if len(elems(svg, "line", "median")) != 1 || len(elems(svg, "rect", "drift-band")) != 1 {
			t.Errorf("%s chart: no median line or max_drift band", cluster)
		}
	}

	// Ops: one window and one restore-point mark per completed op, none
	// for the others.
	list, err := cl.ListOperations(ctx, &pb.ListOperationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{base, followerBase} { // a follower forwards the reads
		ops := uiGet(t, b, "/ui/ops")
		checkNoScript(t, "ops", ops, false)
		doc = parseHTML(t, ops)
		timelines := map[string]*html.Node{}
		for _, svg := range elems(doc, "svg", "timeline") {
			timelines[attr(svg, "data-op")] = svg
		}
		completedOps := 0
		for _, op := range list.GetOperations() {
			svg := timelines[op.GetOpId()]
			if svg == nil {
				t.Errorf("%s: no timeline for op %s (%s)", b, op.GetOpId(), op.GetState())
				continue
			}
			want := 0
			if op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
				want = 1
				completedOps++
			}
			if n, m := len(elems(svg, "rect", "window")), len(elems(svg, "line", "restore-point")); n != want || m != want {
				t.Errorf("op %s (%s): %d windows and %d restore-point marks, want %d", op.GetOpId(), op.GetState(), n, m, want)
			}
			if n := len(elems(svg, "g", "target")); n != len(op.GetTargets()) {
				t.Errorf("op %s: %d target rows, want %d", op.GetOpId(), n, len(op.GetTargets()))
			}
		}
		if completedOps < 2 && backup.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
			t.Errorf("%d completed ops drawn, want the pause and the backup", completedOps)
		}
		if n := len(elems(doc, "rect", "op-span")); n != len(list.GetOperations()) {
			t.Errorf("the recent-ops strip draws %d ops, want %d", n, len(list.GetOperations()))
		}
		if n := len(elems(doc, "rect", "window")); n != completedOps {
			t.Errorf("%d windows on the page, %d completed ops", n, completedOps)
		}
		var refused []string
		for _, tbl := range elems(doc, "table", "refused") {
			for _, tr := range elems(tbl, "tr", "bad") {
				refused = append(refused, textOf(tr))
			}
		}
		if len(refused) != 1 || !strings.Contains(refused[0], "error bound") || !strings.Contains(refused[0], "> max 1ns") {
			t.Errorf("refused pauses listed: %q, want the one refused for its error bound", refused)
		}
		found := false
		for _, p := range elems(doc, "p", "reason") {
			if strings.Contains(textOf(p), invalid.GetReason()) {
				found = true
			}
		}
		if !found {
			t.Errorf("the invalid op's reason %q is not shown", invalid.GetReason())
		}
	}
	_ = done

	// The backup's page: its steps with their output, times in the zone
	// asked for with the offset, and the same drawing.
	page := uiGet(t, base, "/ui/ops/"+backup.GetOpId()+"?tz=Asia/Tokyo")
	doc = parseHTML(t, page)
	var steps []string
	for _, tbl := range elems(doc, "table", "hooks") {
		for _, tr := range elems(tbl, "tbody", "")[0:1] {
			for _, row := range elems(tr, "tr", "") {
				steps = append(steps, textOf(row))
			}
		}
	}
	if len(steps) != len(backup.GetBackup().GetHooks()) || len(steps) != 2 {
		t.Fatalf("backup page lists steps %q, want the op's %d hook runs", steps, len(backup.GetBackup().GetHooks()))
	}
	for i, out := range []string{"snapshot of ledger-1", "banner of ledger-2 " + evilOutput} {
		if !strings.Contains(steps[i], out) || !strings.Contains(steps[i], "ledger-databases") {
			t.Errorf("step %d %q: not ledger-databases with output %q", i, steps[i], out)
		}
	}
	checkNoScript(t, "backup op", page, true)
	if !strings.Contains(textOf(doc), "+09:00 (Asia/Tokyo)") {
		t.Error("the op page does not show times in Asia/Tokyo with the offset")
	}
	if backup.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED && len(elems(doc, "line", "restore-point")) != 1 {
		t.Error("the completed backup's page has no restore-point mark")
	}

	// JSON is the API message.
	raw := uiGet(t, followerBase, "/ui/ops/"+backup.GetOpId()+"?format=json")
	var fromUI pb.GetOperationResponse
	if err := protojson.Unmarshal([]byte(raw), &fromUI); err != nil {
		t.Fatalf("op JSON: %v\n%s", err, raw)
	}
	fromAPI, err := cl.GetOperation(ctx, &pb.GetOperationRequest{OpId: backup.GetOpId()})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&fromUI, fromAPI) {
		t.Errorf("op JSON differs from GetOperation:\n%v\n%v", &fromUI, fromAPI)
	}

	for _, p := range []string{"/ui/", "/ui/members", "/ui/alarms"} {
		checkNoScript(t, p, uiGet(t, base, p), false)
	}

	// A browser renders the pages: the bars are SVG elements of the DOM
	// it built, and the markup in the hook output stayed text.
	chromium := peertest.Binary(t, "chromium", "chromium")
	bdoc := parseHTML(t, runChromium(t, chromium, "--dump-dom", base+"/ui/clocks"))
	if n := len(elems(bdoc, "rect", "bound")); n != len(names) {
		t.Errorf("chromium's DOM of the clocks page has %d bound bars, want %d", n, len(names))
	}
	bdoc = parseHTML(t, runChromium(t, chromium, "--dump-dom", base+"/ui/ops/"+backup.GetOpId()))
	if n := len(elems(bdoc, "script", "")); n != 0 {
		t.Errorf("chromium's DOM of the backup page has %d script elements", n)
	}
	if !strings.Contains(textOf(bdoc), "banner of ledger-2 "+evilOutput) {
		t.Error("chromium does not show the hook output as text")
	}
}

// runChromium runs headless chromium with args and returns its stdout.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--force-device-scale-factor=1"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(all, " "), err, stderr.String())
	}
	return string(out)
}

// screenshot writes a PNG of url at the window size into path.
func screenshot(t *testing.T, bin, url, path string, w, h int) {
	t.Helper()
	runChromium(t, bin, fmt.Sprintf("--window-size=%d,%d", w, h), "--screenshot="+path, url)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	if st.Size() < 10_000 {
		t.Fatalf("screenshot %s is %d bytes: blank?", path, st.Size())
	}
}

// TestUIScreenshots has Debian's headless chromium take screenshots of
// the clocks page and a backup's op page of a dev cluster (one node's
// clock skewed by 2ms) and checks they are PNGs of the window size with a
// drawing on them. UPDATE_UI_SCREENSHOTS=1 writes them to docs/ (the
// README shows them).
func TestUIScreenshots(t *testing.T) {
	chromium := peertest.Binary(t, "chromium", "chromium")
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Nodes = []devcluster.NodeSpec{{Name: "ledger-1", Role: "ledger", Cluster: "ledger"}, {Name: "ledger-2", Role: "ledger", Cluster: "ledger"},
			{Name: "ledger-3", Role: "ledger", Cluster: "ledger"}, {Name: "auditor-1", Role: "auditor", Cluster: "auditor"}, {Name: "auditor-2", Role: "auditor", Cluster: "auditor"}}
		cfg.Skews = map[string]time.Duration{"ledger-3": 2 * time.Millisecond}
		cfg.Runtime = func(rc *pb.RuntimeConfig) {
			rc.LeaseNs, rc.MaxPauseWaitNs = int64(3*time.Second), int64(2*time.Second)
		}
	})
	testcluster.WaitFor(t, 30*time.Second, func() (bool, string) {
		l := c.Leader()
		return l >= 0 && len(c.Servers()[l].FSM().Roster("")) == 5, "roster incomplete"
	})
	cl := client(t, c, 0)
	op := runUIBackup(t, c, cl, "ledger-1="+devcluster.HookSnapshot, "ledger-2="+devcluster.HookSnapshot, "ledger-3="+devcluster.HookSnapshot)
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED {
		t.Fatalf("backup %s ended %s: %s", op.GetOpId(), op.GetState(), op.GetReason())
	}
	waitAdmissible(t, c)
	base := "http://" + c.Servers()[c.Leader()].HTTPAddr()
	dir := t.TempDir()
	if os.Getenv("UPDATE_UI_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "docs")
	}
	for _, s := range []struct {
		file, path string
		w, h       int
	}{
		{"ui-clocks.png", "/ui/clocks", 1000, 720},
		{"ui-op.png", "/ui/ops/" + op.GetOpId() + "?tz=Asia/Tokyo", 1000, 1100},
	} {
		path := filepath.Join(dir, s.file)
		screenshot(t, chromium, base+s.path, path, s.w, s.h)
		checkPNG(t, path, s.w, s.h)
	}
}

// checkPNG: a PNG of w×h with more than a blank page on it (enough
// coloured pixels: the drawing's bars, band and window).
func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("%s is %dx%d, want %dx%d", path, b.Dx(), b.Dy(), w, h)
	}
	coloured := 0
	for y := 0; y < h; y += 2 {
		for x := 0; x < w; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			hi, lo := max(r, g, b)>>8, min(r, g, b)>>8
			if hi-lo > 40 {
				coloured++
			}
		}
	}
	t.Logf("%s: %d coloured pixels sampled", path, coloured)
	if coloured < 1500 {
		t.Errorf("%s: %d coloured pixels sampled: the drawing is missing", path, coloured)
	}
}
