package agent

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
)

// tlsWatchInterval is how often the key files are checked for a change.
const tlsWatchInterval = 5 * time.Second

// newGRPCServer builds the AgentService listener: with a CA, every caller
// must present a certificate of the cluster CA (unless verify_incoming is
// false), and every method — Pause, Unpause, RenewLease, RunHook, Status —
// is served only to a certificate with role server. A client or agent
// certificate is refused PERMISSION_DENIED before the node is touched.
func (a *Agent) newGRPCServer(src *tlsx.Source) (*grpc.Server, error) {
	name := "agent " + a.cfg.NodeName
	switch {
	case src == nil:
		a.log.Warn("AgentService is plaintext: anyone who reaches its port can pause this node; set grpc.tls with a CA (stillpoint tls)", zap.String("listen", a.cfg.GRPC.Listen))
	case !src.HasCA():
		a.log.Warn("AgentService TLS has no ca_file: callers are not authenticated and anyone who reaches its port can pause this node", zap.String("listen", a.cfg.GRPC.Listen))
	case !a.cfg.GRPC.TLS.VerifiesIncoming():
		a.log.Warn("AgentService verify_incoming is false: a caller without a certificate can pause this node", zap.String("listen", a.cfg.GRPC.Listen))
	}
	return grpcx.NewSecureServer(grpcx.ServerSetup{
		Name:      name,
		TLS:       a.cfg.GRPC.TLS,
		Source:    src,
		Authorize: grpcx.RequireRoles(name, tlsx.RoleServer),
		Logger:    a.log.With(zap.String("component", "grpc")),
	})
}

// ReloadTLS reads the AgentService and admin-link certificates, keys and
// CAs again (SIGHUP). Connections made from now on use them; open ones are
// kept. A file that cannot be loaded leaves the old set in force and is
// named in the error.
func (a *Agent) ReloadTLS() error {
	var errs []error
	for i, src := range a.tls {
		if src == nil {
			continue
		}
		what := [...]string{"grpc.tls", "admin.tls"}[i]
		if err := src.Reload(); err != nil {
			a.log.Error("TLS reload failed; keeping the certificates in force", zap.String("section", what), zap.Error(err))
			errs = append(errs, err)
			continue
		}
		a.logReloaded(what, src)
	}
	return errors.Join(errs...)
}

func (a *Agent) logReloaded(what string, src *tlsx.Source) {
	fields := []zap.Field{zap.String("section", what)}
	if c := src.Certificate(); c != nil {
		fields = append(fields, zap.String("serial", c.SerialNumber.Text(16)), zap.Time("not_after", c.NotAfter))
	}
	a.log.Info("TLS certificates reloaded", fields...)
}

// watchTLS reloads a section whose files changed.
func (a *Agent) watchTLS(ctx context.Context) {
	done := make(chan struct{})
	n := 0
	for i, src := range a.tls {
		if src == nil {
			continue
		}
		what := [...]string{"grpc.tls", "admin.tls"}[i]
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			src.Watch(ctx, tlsWatchInterval, func(err error) {
				if err != nil {
					a.log.Error("TLS files changed but cannot be loaded; keeping the certificates in force", zap.String("section", what), zap.Error(err))
					return
				}
				a.logReloaded(what, src)
			})
		}()
	}
	for range n {
		<-done
	}
}
