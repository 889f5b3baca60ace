package coordinator

import (
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/ui"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// mountUI serves the read-only web UI at /ui/ (coordinator/ui), reading
// through this server's own CoordinatorService methods, behind uiAuth.
func (s *Server) mountUI(mux *http.ServeMux) error {
	h, err := ui.New(s, ui.Config{NodeID: s.cfg.NodeID})
	if err != nil {
		return err
	}
	mux.Handle("/ui/", s.uiAuth(h))
	mux.Handle("/ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	return nil
}

// UITokenCookie holds a token for the web UI (set by /ui/login).
const UITokenCookie = "stillpoint_token"

// uiMethod is the API method whose role the UI's pages need: they only
// read, so a read token opens them.
const uiMethod = pb.CoordinatorService_ListOperations_FullMethodName

// uiAuth checks every /ui/ request the way the gRPC interceptor checks
// uiMethod: the token comes from the Authorization header ("Bearer
// spt_...") or the stillpoint_token cookie. The pages' reads then carry
// the token and the resolved caller, so a follower forwards them to the
// leader like any API call. With ACLs off every request passes.
func (s *Server) uiAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ui/style.css":
			next.ServeHTTP(w, r)
			return
		case "/ui/login":
			s.uiLogin(w, r)
			return
		}
		md := metadata.MD{}
		if h := r.Header.Get("Authorization"); h != "" {
			md.Set("authorization", h)
		} else if c, err := r.Cookie(UITokenCookie); err == nil && c.Value != "" {
			md.Set("authorization", "Bearer "+c.Value)
		}
		ctx := metadata.NewIncomingContext(r.Context(), md)
		if addr, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
			ctx = peer.NewContext(ctx, &peer.Peer{Addr: addr})
		}
		c, ref := s.authorizeCall(ctx, uiMethod)
		if ref != nil {
			s.refused(ctx, "http "+r.Method+" "+r.URL.Path, ref)
			uiRefuse(w, r, ref.err)
			return
		}
		next.ServeHTTP(w, r.WithContext(withCaller(ctx, c)))
	})
}

var uiLoginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Stillpoint</title><link rel="stylesheet" href="/ui/style.css"></head>
<body><header><span class="brand">Stillpoint</span></header><main>
<h1>A read token is needed</h1>
<p class="error">{{.}}</p>
<form method="post" action="/ui/login"><label>Token <input type="password" name="token" size="60" autocomplete="off"></label> <button type="submit">Open the UI</button></form>
<p class="muted">Create one with <code>stillpoint acl token create --role read</code>. Scripts send <code>Authorization: Bearer spt_…</code> instead.</p>
</main></body></html>`))

// uiRefuse answers a refused request: 401/403 with the reason, as JSON for
// scripts or as the sign-in page.
func uiRefuse(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusUnauthorized
	if status.Code(err) == codes.PermissionDenied {
		code = http.StatusForbidden
	}
	msg := status.Convert(err).Message()
	if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("WWW-Authenticate", `Bearer realm="stillpoint"`)
	w.WriteHeader(code)
	_ = uiLoginPage.Execute(w, msg)
}

// uiLogin takes a token from the sign-in form into an HttpOnly cookie.
func (s *Server) uiLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if err := CheckTokenSecret(tok); err != nil {
		uiRefuse(w, r, apiStatus(codes.Unauthenticated, pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_TOKEN, nil, err.Error()).Err())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: UITokenCookie, Value: tok, Path: "/ui/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

var _ ui.Source = (*Server)(nil)
