package coordinator

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// setupHTTP listens on Config.HTTPAddr and serves /metrics (this server's
// coordinator metrics, plus Config.MetricsGatherer: raft, memberlist and Go
// runtime metrics in the binary), /healthz, /readyz and the web UI under
// /ui/.
func (s *Server) setupHTTP() error {
	s.metricsReg = prometheus.NewRegistry()
	s.metricsReg.MustRegister(coordinatorCollector{s})
	if s.cfg.HTTPAddr == "" {
		return nil
	}
	lis, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("server %s: HTTP listen on %s: %w", s.cfg.NodeID, s.cfg.HTTPAddr, err)
	}
	gatherers := prometheus.Gatherers{s.metricsReg}
	if s.cfg.MetricsGatherer != nil {
		gatherers = append(gatherers, s.cfg.MetricsGatherer)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(s.log), ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", s.serveHealthz)
	mux.HandleFunc("/readyz", s.serveReadyz)
	if err := s.mountUI(mux); err != nil {
		_ = lis.Close()
		return err
	}
	s.httpLis = lis
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.httpSrv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server stopped", zap.Error(err))
		}
	}()
	return nil
}

// HTTPAddr is where /metrics, /healthz and /readyz are served ("" when
// Config.HTTPAddr is empty).
func (s *Server) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// MetricsRegistry holds this server's coordinator metrics.
func (s *Server) MetricsRegistry() *prometheus.Registry { return s.metricsReg }

// refuseWhileShuttingDown answers 503 once the server is shutting down and
// reports whether it did.
func (s *Server) refuseWhileShuttingDown(w http.ResponseWriter) bool {
	select {
	case <-s.shutdownCh:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return true
	default:
		return false
	}
}

// serveHealthz: the process is up and not shutting down.
func (s *Server) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	if s.refuseWhileShuttingDown(w) {
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
}

// serveReadyz: this server can serve the API: it knows a leader, and if it
// is the leader its term is established (duties running).
func (s *Server) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	if s.refuseWhileShuttingDown(w) {
		return
	}
	leaderID, _ := s.Leader()
	switch {
	case leaderID == "":
		http.Error(w, fmt.Sprintf("server %s knows no Raft leader (state %s)", s.cfg.NodeID, s.raft.State()), http.StatusServiceUnavailable)
		return
	case s.raft.State() == raft.Leader:
		if _, ok := s.LeaderEpoch(); !ok {
			http.Error(w, fmt.Sprintf("server %s is leader but its term is not established yet", s.cfg.NodeID), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = fmt.Fprintf(w, "ready: %s, leader %s\n", s.raft.State(), leaderID)
}
