// Package ui is the coordinator's read-only web UI: server-rendered HTML
// with inline SVG drawn in Go (clocks around zero, pauses on a timeline
// with the restore point), and every page as JSON (the API messages) for
// scripts. It reads through the same CoordinatorService methods the gRPC
// API serves, so a page shows exactly what the API answers.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Source is what the pages read: the coordinator's read endpoints
// (*coordinator.Server satisfies it).
type Source interface {
	GetDrift(context.Context, *pb.GetDriftRequest) (*pb.GetDriftResponse, error)
	ListOperations(context.Context, *pb.ListOperationsRequest) (*pb.ListOperationsResponse, error)
	GetOperation(context.Context, *pb.GetOperationRequest) (*pb.GetOperationResponse, error)
	ListAlarms(context.Context, *pb.ListAlarmsRequest) (*pb.ListAlarmsResponse, error)
	ListMembers(context.Context, *pb.ListMembersRequest) (*pb.ListMembersResponse, error)
	ListRaftPeers(context.Context, *pb.ListRaftPeersRequest) (*pb.ListRaftPeersResponse, error)
	ListAudit(context.Context, *pb.ListAuditRequest) (*pb.ListAuditResponse, error)
}

// Config shapes the handler.
type Config struct {
	// NodeID names the serving server in the page footer.
	NodeID string
	// Refresh is how often list pages reload themselves (0: 10s; negative:
	// never).
	Refresh time.Duration
	// RecentOps is how many operations the ops page shows (0: 20).
	RecentOps int
	// Timeout bounds one page's reads (0: 10s).
	Timeout time.Duration
}

//go:embed templates/*.html templates/style.css
var assets embed.FS

// Handler serves /ui/ and below.
type Handler struct {
	src   Source
	cfg   Config
	pages map[string]*template.Template
	css   []byte
}

// New returns the UI handler, mounted at /ui/.
func New(src Source, cfg Config) (*Handler, error) {
	if cfg.Refresh == 0 {
		cfg.Refresh = 10 * time.Second
	}
	if cfg.RecentOps == 0 {
		cfg.RecentOps = 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	h := &Handler{src: src, cfg: cfg, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"f":    func(v float64) string { return fmt.Sprintf("%.1f", v) },
		"add":  func(a, b float64) float64 { return a + b },
		"sub":  func(a, b float64) float64 { return a - b },
		"enum": func(e interface{ String() string }) string { return e.String() },
	}
	for _, p := range []string{"overview", "clocks", "ops", "op", "alarms", "members"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/charts.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", p, err)
		}
		h.pages[p] = t
	}
	css, err := assets.ReadFile("templates/style.css")
	if err != nil {
		return nil, err
	}
	h.css = css
	return h, nil
}

// ServeHTTP routes /ui/... (read-only: GET and HEAD).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the UI is read-only: GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/ui")
	switch {
	case path == "" || path == "/":
		h.overview(w, r)
	case path == "/style.css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(h.css)
	case path == "/clocks":
		h.clocks(w, r)
	case path == "/ops":
		h.ops(w, r)
	case strings.HasPrefix(path, "/ops/"):
		h.op(w, r, strings.TrimPrefix(path, "/ops/"))
	case path == "/alarms":
		h.alarms(w, r)
	case path == "/members":
		h.members(w, r)
	default:
		http.Error(w, fmt.Sprintf("no UI page %s (pages: /ui/, /ui/clocks, /ui/ops, /ui/ops/OP_ID, /ui/alarms, /ui/members)", r.URL.Path), http.StatusNotFound)
	}
}

// wantsJSON: ?format=json, or an Accept header that asks for JSON.
func wantsJSON(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// zone is ?tz= (UTC when absent).
func zone(r *http.Request) (*time.Location, string, error) {
	name := r.URL.Query().Get("tz")
	if name == "" {
		return time.UTC, "", nil
	}
	loc, err := timefmt.LoadZone(name)
	if err != nil {
		return nil, name, err
	}
	return loc, name, nil
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	NodeID  string
	Refresh int
	TZ      string
	Now     string
	Errors  []string
	Data    any
}

func (h *Handler) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.cfg.Timeout)
}

// render writes the HTML page or, for JSON, the messages keyed by name.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, name string, p page, msgs map[string]proto.Message) {
	if wantsJSON(r) {
		out := map[string]json.RawMessage{}
		for k, m := range msgs {
			if m == nil {
				continue
			}
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			out[k] = b
		}
		if len(p.Errors) > 0 {
			errs, _ := json.Marshal(p.Errors)
			out["errors"] = errs
		}
		w.Header().Set("Content-Type", "application/json")
		if len(p.Errors) > 0 && len(out) == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return
	}
	p.NodeID = h.cfg.NodeID
	p.Nav = name
	if p.Refresh == 0 && h.cfg.Refresh > 0 {
		p.Refresh = int(h.cfg.Refresh / time.Second)
	}
	p.Now = timefmt.InZone(time.Now(), locOr(r))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'")
	if err := h.pages[name].Execute(w, p); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func locOr(r *http.Request) *time.Location {
	if loc, _, err := zone(r); err == nil {
		return loc
	}
	return time.UTC
}

// errText is an API error as a page shows it.
func errText(what string, err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s (%s)", what, s.Message(), s.Code())
	}
	return fmt.Sprintf("%s: %v", what, err)
}

// badZone answers 400 naming what ?tz= accepts.
func badZone(w http.ResponseWriter, name string, err error) {
	http.Error(w, fmt.Sprintf("?tz=%s: %v", name, err), http.StatusBadRequest)
}

// ---------------------------------------------------------------- pages

type overviewData struct {
	Clocks []ClockChart
	Ops    []OpView
	Alarms []AlarmView
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	loc, tzName, err := zone(r)
	if err != nil {
		badZone(w, tzName, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	p := page{Title: "Stillpoint", TZ: tzName}
	var d overviewData
	drift, err := h.src.GetDrift(ctx, &pb.GetDriftRequest{})
	if err != nil {
		p.Errors = append(p.Errors, errText("clocks", err))
	} else {
		d.Clocks = ClockCharts(drift)
	}
	ops, err := h.src.ListOperations(ctx, &pb.ListOperationsRequest{Limit: 5})
	if err != nil {
		p.Errors = append(p.Errors, errText("operations", err))
	}
	for _, op := range ops.GetOperations() {
		d.Ops = append(d.Ops, NewOpView(op, loc, chartWidth))
	}
	alarms, err := h.src.ListAlarms(ctx, &pb.ListAlarmsRequest{})
	if err != nil {
		p.Errors = append(p.Errors, errText("alarms", err))
	}
	d.Alarms = alarmViews(alarms.GetAlarms(), loc)
	p.Data = d
	h.render(w, r, "overview", p, map[string]proto.Message{"drift": drift, "operations": ops, "alarms": alarms})
}

func (h *Handler) clocks(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	p := page{Title: "Clocks"}
	drift, err := h.src.GetDrift(ctx, &pb.GetDriftRequest{Cluster: r.URL.Query().Get("cluster")})
	if err != nil {
		p.Errors = append(p.Errors, errText("clocks", err))
	}
	p.Data = struct {
		Charts []ClockChart
		Config *pb.RuntimeConfig
	}{ClockCharts(drift), drift.GetConfig()}
	h.render(w, r, "clocks", p, map[string]proto.Message{"drift": drift})
}

// RefusalView is a refused pause from the audit log.
type RefusalView struct {
	At, Actor, Detail string
}

func (h *Handler) ops(w http.ResponseWriter, r *http.Request) {
	loc, tzName, err := zone(r)
	if err != nil {
		badZone(w, tzName, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	p := page{Title: "Operations", TZ: tzName}
	ops, err := h.src.ListOperations(ctx, &pb.ListOperationsRequest{Cluster: r.URL.Query().Get("cluster"), Limit: int32(h.cfg.RecentOps)})
	if err != nil {
		p.Errors = append(p.Errors, errText("operations", err))
	}
	var views []OpView
	for _, op := range ops.GetOperations() {
		views = append(views, NewOpView(op, loc, chartWidth))
	}
	audit, err := h.src.ListAudit(ctx, &pb.ListAuditRequest{Limit: 200})
	if err != nil {
		p.Errors = append(p.Errors, errText("audit (refused pauses)", err))
	}
	refused := &pb.ListAuditResponse{}
	var rv []RefusalView
	for _, rec := range audit.GetRecords() {
		if rec.GetAction() != "pause_refused" {
			continue
		}
		refused.Records = append(refused.Records, rec)
		v := RefusalView{Actor: rec.GetActor(), Detail: rec.GetDetail()}
		if t, _, ok := trueTime(rec.GetAt()); ok {
			v.At = timefmt.InZone(t, loc)
		}
		rv = append(rv, v)
		if len(rv) == 10 {
			break
		}
	}
	p.Data = struct {
		Ops     []OpView
		Strip   Strip
		Refused []RefusalView
	}{views, NewStrip(ops.GetOperations(), time.Now(), loc, chartWidth), rv}
	h.render(w, r, "ops", p, map[string]proto.Message{"operations": ops, "refused": refused})
}

func (h *Handler) op(w http.ResponseWriter, r *http.Request, id string) {
	loc, tzName, err := zone(r)
	if err != nil {
		badZone(w, tzName, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	resp, err := h.src.GetOperation(ctx, &pb.GetOperationRequest{OpId: id})
	if err != nil {
		code := http.StatusBadGateway
		if s, ok := status.FromError(err); ok && s.Code() == 5 { // NotFound
			code = http.StatusNotFound
		}
		if wantsJSON(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": errText("operation "+id, err)})
			return
		}
		http.Error(w, errText("operation "+id, err), code)
		return
	}
	v := NewOpView(resp.GetOperation(), loc, chartWidth)
	p := page{Title: "Operation " + id, TZ: tzName, Data: v}
	if isTerminal(resp.GetOperation().GetState()) {
		p.Refresh = -1
	} else {
		p.Refresh = 2
	}
	h.render(w, r, "op", p, map[string]proto.Message{"operation": resp.GetOperation()})
}

func isTerminal(s pb.OperationState) bool {
	switch s {
	case pb.OperationState_OPERATION_STATE_COMPLETED, pb.OperationState_OPERATION_STATE_ABORTED, pb.OperationState_OPERATION_STATE_INVALID:
		return true
	}
	return false
}

// AlarmView is one alarm as the pages list it.
type AlarmView struct {
	Active                                 bool
	Severity, Kind, Cluster, Node, Message string
	Nodes                                  string
	Raised, Cleared                        string
}

func alarmViews(alarms []*pb.Alarm, loc *time.Location) []AlarmView {
	var out []AlarmView
	for _, a := range alarms {
		v := AlarmView{Active: a.GetActive(), Severity: a.GetSeverity(), Kind: a.GetKind(), Cluster: a.GetCluster(),
			Node: a.GetNode(), Message: a.GetMessage(), Nodes: strings.Join(a.GetNodes(), ", ")}
		if t, _, ok := trueTime(a.GetRaisedAt()); ok {
			v.Raised = timefmt.InZone(t, loc)
		}
		if t, _, ok := trueTime(a.GetClearedAt()); ok {
			v.Cleared = timefmt.InZone(t, loc)
		}
		out = append(out, v)
	}
	return out
}

func (h *Handler) alarms(w http.ResponseWriter, r *http.Request) {
	loc, tzName, err := zone(r)
	if err != nil {
		badZone(w, tzName, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	p := page{Title: "Alarms", TZ: tzName}
	alarms, err := h.src.ListAlarms(ctx, &pb.ListAlarmsRequest{IncludeCleared: true})
	if err != nil {
		p.Errors = append(p.Errors, errText("alarms", err))
	}
	p.Data = alarmViews(alarms.GetAlarms(), loc)
	h.render(w, r, "alarms", p, map[string]proto.Message{"alarms": alarms})
}

// MemberView is one member row.
type MemberView struct {
	Name, Role, Cluster, Gossip, GossipClass, Clock, ClockClass string
	Offset, Bound, Node, Op, MetaAge, Raft, RaftClass           string
}

func (h *Handler) members(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	p := page{Title: "Members"}
	members, err := h.src.ListMembers(ctx, &pb.ListMembersRequest{Cluster: r.URL.Query().Get("cluster")})
	if err != nil {
		p.Errors = append(p.Errors, errText("members", err))
	}
	peers, err := h.src.ListRaftPeers(ctx, &pb.ListRaftPeersRequest{})
	if err != nil {
		p.Errors = append(p.Errors, errText("raft peers", err))
	}
	byID := map[string]*pb.RaftPeer{}
	for _, pr := range peers.GetPeers() {
		byID[pr.GetId()] = pr
	}
	var rows []MemberView
	for _, m := range members.GetMembers() {
		v := MemberView{Name: m.GetName(), Role: m.GetRole(), Cluster: m.GetCluster(), Gossip: enumname.Of(m.GetStatus()),
			MetaAge: timefmt.Duration(time.Duration(m.GetMetaAgeMs()) * time.Millisecond), Op: m.GetOpId()}
		v.GossipClass = "bad"
		if m.GetStatus() == pb.MemberStatus_MEMBER_STATUS_ALIVE {
			v.GossipClass = "ok"
		}
		if ck := m.GetClock(); ck != nil {
			v.Clock = enumname.Of(ck.GetStatus())
			v.ClockClass = "bad"
			if ck.GetStatus() == pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
				v.ClockClass = "ok"
			}
			v.Offset = timefmt.Signed(time.Duration(ck.GetOffsetNs()))
			v.Bound = timefmt.PlusMinus(time.Duration(ck.GetErrorBoundNs()))
		}
		if ns := m.GetNodeState(); ns != nil && m.GetRole() != "server" {
			v.Node = enumname.Of(ns.GetPaused())
			if !ns.GetReachable() {
				v.Node = "unreachable"
			}
		}
		if pr, ok := byID[m.GetName()]; ok {
			switch {
			case pr.GetLeader():
				v.Raft = "leader"
			case pr.GetVoter():
				v.Raft = "follower (voter)"
			default:
				v.Raft = "non-voter"
			}
			v.RaftClass = "ok"
			if pr.LastContactMs != nil {
				v.Raft += fmt.Sprintf(", contact %s ago", timefmt.Duration(time.Duration(pr.GetLastContactMs())*time.Millisecond))
				if !pr.GetHealthy() {
					v.RaftClass = "bad"
				}
			}
		}
		rows = append(rows, v)
	}
	p.Data = rows
	h.render(w, r, "members", p, map[string]proto.Message{"members": members, "raft_peers": peers})
}
