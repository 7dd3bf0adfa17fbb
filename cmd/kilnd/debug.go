package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/kiln-build/kiln/daemon/metrics"
	"github.com/kiln-build/kiln/engine"
)

// startDebug listens on addr ([debug] address) and serves the engine's
// metrics and Go's profiles until ctx ends. It fails at once when addr
// cannot be listened on.
func startDebug(ctx context.Context, addr string, eng *engine.Engine, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("[debug] address: %w", err)
	}
	src := metrics.Sources{
		History: eng.History(), Scheduler: eng.Scheduler(), GC: eng.Disk(), Exported: eng.ExportedBytes,
	}
	for _, sc := range eng.SharedCaches() {
		if idx, ok := sc.Index().(metrics.RedisIndex); ok {
			src.Redis = append(src.Redis, idx)
		}
	}
	m := metrics.New(ctx, src)
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener stopped", slog.Any("error", err))
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("debug listener: metrics at /metrics, profiles at /debug/pprof/", slog.String("address", ln.Addr().String()))
	return nil
}
