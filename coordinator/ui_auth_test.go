package coordinator_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// uiDo sends req and returns the status and body.
func uiDo(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func uiReq(t *testing.T, base, path string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// TestUIAuth: with ACLs enabled the pages need a read token (Authorization
// header or the cookie the sign-in form sets), on a follower too (its reads
// forward to the leader with the token); without one, or with a revoked
// one, nothing is read and the refusal is audited.
func TestUIAuth(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithServerConfig(func(_ int, cfg *coordinator.Config) {
		cfg.ACL.Enabled = true
		cfg.HTTPAddr = "127.0.0.1:0"
	}))
	leader := c.WaitForLeader(t)
	follower := c.Server(c.Index(c.Followers()[0]))
	cl, _ := dialWithAddr(t, follower.GRPCAddr())
	ctx := ctxT(t, 60*time.Second)
	boot, err := cl.ACLBootstrap(ctx, &pb.ACLBootstrapRequest{Note: "ui test"})
	if err != nil {
		t.Fatal(err)
	}
	read, err := cl.CreateACLToken(withToken(ctx, boot.GetSecret()), &pb.CreateACLTokenRequest{Name: "ui", Role: pb.ACLRole_ACL_ROLE_READ})
	if err != nil {
		t.Fatal(err)
	}

	for _, s := range []*coordinator.Server{leader, follower} {
		base := "http://" + s.HTTPAddr()
		// No token: the sign-in page, no data.
		code, body, hdr := uiDo(t, uiReq(t, base, "/ui/ops"))
		if code != http.StatusUnauthorized || !strings.Contains(body, `action="/ui/login"`) || strings.Contains(body, "Refused pauses") {
			t.Fatalf("%s without a token: %d %s", s.ID(), code, body)
		}
		if hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", s.ID())
		}
		if code, body, _ := uiDo(t, uiReq(t, base, "/ui/members?format=json")); code != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
			t.Errorf("%s JSON without a token: %d %s", s.ID(), code, body)
		}
		// The stylesheet is not data.
		if code, _, _ := uiDo(t, uiReq(t, base, "/ui/style.css")); code != http.StatusOK {
			t.Errorf("%s style.css: %d", s.ID(), code)
		}
		// A read token in the header opens every page.
		for _, p := range []string{"/ui/", "/ui/clocks", "/ui/ops", "/ui/alarms", "/ui/members"} {
			code, body, _ := uiDo(t, uiReq(t, base, p, "Authorization", "Bearer "+read.GetSecret()))
			if code != http.StatusOK || strings.Contains(body, `class="error"`) {
				t.Errorf("%s %s with a read token: %d %s", s.ID(), p, code, body)
			}
		}
		// The sign-in form sets an HttpOnly cookie that opens the pages.
		form := url.Values{"token": {read.GetSecret()}}
		req, _ := http.NewRequest(http.MethodPost, base+"/ui/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		code, _, hdr = uiDo(t, req)
		cookie := hdr.Get("Set-Cookie")
		if code != http.StatusSeeOther || !strings.Contains(cookie, "stillpoint_token="+read.GetSecret()) || !strings.Contains(cookie, "HttpOnly") {
			t.Fatalf("%s login: %d, Set-Cookie %q", s.ID(), code, cookie)
		}
		if code, body, _ := uiDo(t, uiReq(t, base, "/ui/ops", "Cookie", "stillpoint_token="+read.GetSecret())); code != http.StatusOK || strings.Contains(body, `class="error"`) {
			t.Errorf("%s with the cookie: %d %s", s.ID(), code, body)
		}
	}

	if _, err := cl.RevokeACLToken(withToken(ctx, boot.GetSecret()), &pb.RevokeACLTokenRequest{AccessorId: read.GetToken().GetAccessorId()}); err != nil {
		t.Fatal(err)
	}
	// The leader knows of the revocation once it is committed (a follower's
	// replica may lag, but its reads forward to the leader, which refuses).
	base := "http://" + c.WaitForLeader(t).HTTPAddr()
	code, body, _ := uiDo(t, uiReq(t, base, "/ui/ops", "Authorization", "Bearer "+read.GetSecret()))
	if code != http.StatusUnauthorized || !strings.Contains(body, "unknown or revoked") {
		t.Errorf("revoked token: %d %s", code, body)
	}
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		for _, r := range c.WaitForLeader(t).FSM().Audit(0) {
			if r.GetAction() == coordinator.AuditRefused && strings.HasPrefix(r.GetMethod(), "http GET /ui/") {
				return true, ""
			}
		}
		return false, "no audited refusal of a UI request"
	})
}
