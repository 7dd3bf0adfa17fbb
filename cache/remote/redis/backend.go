package redis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/config"
)

// Type is the [[cache.registry]] type of a Redis index.
const Type = "redis"

// Backend is [[cache.registry]] type = "redis": the shared cache index
// at redis-addr (redis://[user:password@]host:port[/db], rediss:// for
// TLS), whose entries live ttl (0: forever).
func Backend() remote.Backend {
	return remote.Backend{Index: parseIndex}
}

func parseIndex(p *config.TableParser) (remote.IndexFunc, error) {
	var o Options
	p.StringFunc("redis-addr", func(s string) error {
		if err := checkAddr(s); err != nil {
			return err
		}
		o.Addr = s
		return nil
	})
	p.Duration("ttl", &o.TTL)
	if err := p.Parse(); err != nil {
		return nil, err
	}
	if o.Addr == "" {
		return nil, p.Table().Errorf("redis-addr", `missing: a redis cache needs redis-addr = "redis://host:6379"`)
	}
	return func(ctx context.Context, d remote.Deps) (remote.Index, error) {
		o := o
		o.Logger = d.Logger
		idx, err := New(o)
		if err != nil {
			return nil, err
		}
		// Say at start whether the index answers; builds go on without
		// it either way.
		go func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := idx.Ping(pctx); err != nil {
				d.Logger.Warn("shared cache index does not answer; builds use the local cache until it does", "redis", idx.Addr(), "error", err)
			} else {
				d.Logger.Info("shared cache", "redis", idx.Addr(), "writer", d.Writer)
			}
		}()
		return idx, nil
	}, nil
}

// checkAddr accepts redis://[user:pass@]host:port[/db] and rediss://.
func checkAddr(s string) error {
	u, err := url.Parse(s)
	shown := config.RedactURL(s)
	if err != nil {
		return fmt.Errorf("bad redis address %s: want redis://[user:password@]host:port[/db]", shown)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return fmt.Errorf("bad redis address %s: scheme must be redis:// or rediss://", shown)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return fmt.Errorf("bad redis address %s: want redis://[user:password@]host:port[/db]", shown)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("bad redis address %s: port %q is not a number from 1 to 65535", shown, port)
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return fmt.Errorf("bad redis address %s: database %q is not a number", shown, db)
		}
	}
	return nil
}
