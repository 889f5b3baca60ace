package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
)

// reloadOnHUP calls reload on every SIGHUP until ctx ends or stop is
// called. The signal is registered before it returns, so a SIGHUP sent
// after that never kills the process.
func reloadOnHUP(ctx context.Context, log *zap.Logger, reload func() error) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading TLS certificates and keys")
				if err := reload(); err != nil {
					log.Error("SIGHUP reload incomplete; the sections named keep their old certificates", zap.Error(err))
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}
