package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// quietLibrary stops go-redis from printing its own lines ("redis:
// pool.go:…: failed to dial …") on stderr, in kiln's output and beside
// kilnd's structured log: every failure they describe reaches the caller
// as an error, which Kiln reports once, in its own words. The lines go to
// slog's default logger at debug level instead. go-redis has one logger
// per process, so this is done once.
var quietLibrary = sync.OnceFunc(func() { goredis.SetLogger(debugLogger{}) })

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis", "message", fmt.Sprintf(format, v...))
}
