package redis

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
)

// go-redis's own lines about a failed dial go to slog at debug level, not
// to stderr. (Not parallel: it replaces slog's default logger.)
func TestLibraryLinesGoToTheDebugLog(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })

	srv := redistest.Start(t)
	addr := srv.Addr
	srv.Stop()
	x, err := New(Options{Addr: addr, Cooldown: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for range 3 {
		_, _ = x.Get(context.Background(), digest.FromString("k"))
		time.Sleep(5 * time.Millisecond)
	}
	if out := buf.String(); !strings.Contains(out, "level=DEBUG msg=go-redis") {
		t.Errorf("no go-redis line in the debug log:\n%s", out)
	}
}
