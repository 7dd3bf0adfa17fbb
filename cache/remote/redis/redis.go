package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
)

// Key prefixes.
const (
	recPrefix   = "kiln:v1:rec:"
	buildPrefix = "kiln:v1:build:"
)

// defaultBuildTTL is how long a build's key list lives when records live
// forever (TTL 0).
const defaultBuildTTL = 7 * 24 * time.Hour

// Options configures New.
type Options struct {
	// Addr is redis://[user:password@]host:port[/db] or rediss:// (TLS).
	Addr string
	// TTL is how long a key lives after its last write or hit; 0 keeps
	// keys forever.
	TTL time.Duration
	// DialTimeout, OpTimeout and Cooldown default to 300 ms, 1 s and
	// 10 s. Cooldown is how long the breaker skips Redis after a failure.
	DialTimeout, OpTimeout, Cooldown time.Duration
	Logger                           *slog.Logger
}

// Index is a remote.Index in Redis. It is safe for concurrent use.
type Index struct {
	c    *goredis.Client
	addr string // for messages, without the password
	ttl  time.Duration
	op   time.Duration
	log  *slog.Logger

	mu        sync.Mutex
	cooldown  time.Duration
	openUntil time.Time
	lastErr   error
	// errors counts failed calls (kilnd's kiln_redis_errors_total).
	errors atomic.Uint64
}

var (
	_ remote.Index  = (*Index)(nil)
	_ remote.Lister = (*Index)(nil)
)

// New returns the index at o.Addr. It does not connect: the first call
// does (so a daemon starts while Redis is down).
func New(o Options) (*Index, error) {
	quietLibrary()
	opt, err := goredis.ParseURL(o.Addr)
	if err != nil {
		return nil, errdefs.Invalidf("redis address %s: %v", Redact(o.Addr), err)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 300 * time.Millisecond
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = time.Second
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	opt.DialTimeout = o.DialTimeout
	opt.DialerRetries = 1
	opt.ReadTimeout = o.OpTimeout
	opt.WriteTimeout = o.OpTimeout
	opt.PoolTimeout = o.OpTimeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1 // the breaker decides when to try again
	opt.PoolSize = 16
	opt.DisableIdentity = true
	opt.Protocol = 2
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &Index{
		c: goredis.NewClient(opt), addr: Redact(o.Addr), ttl: o.TTL, op: o.OpTimeout,
		log: o.Logger, cooldown: o.Cooldown,
	}, nil
}

// Redact returns a redis URL without its password.
func Redact(addr string) string {
	u, err := url.Parse(addr)
	if err != nil || u.User == nil {
		return addr
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "****")
	}
	return strings.Replace(u.String(), "%2A%2A%2A%2A", "****", 1)
}

// Close closes the connections.
func (x *Index) Close() error { return x.c.Close() }

// Addr returns the index's address without its password.
func (x *Index) Addr() string { return x.addr }

// Errors counts the calls to Redis that failed (timeouts included) since
// the index was made.
func (x *Index) Errors() uint64 { return x.errors.Load() }

// Available reports whether the breaker lets calls through.
func (x *Index) Available() bool { return x.Unavailable() == nil }

// Unavailable returns why the breaker skips Redis now, or nil.
func (x *Index) Unavailable() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if until := x.openUntil; time.Now().Before(until) {
		return errdefs.WithClass(errdefs.ErrUnavailable,
			fmt.Errorf("redis at %s is unavailable (%v); not retried for %s", x.addr, x.lastErr, time.Until(until).Round(time.Second)))
	}
	return nil
}

// Ping checks that Redis answers.
func (x *Index) Ping(ctx context.Context) error {
	return x.do(ctx, func(ctx context.Context) error { return x.c.Ping(ctx).Err() })
}

// do runs fn with the operation timeout, through the breaker.
func (x *Index) do(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := x.Unavailable(); err != nil {
		return err
	}
	return x.attempt(ctx, fn)
}

// attempt runs fn with the operation timeout even while the breaker is
// open: for what a person asked for (kiln cache ls, kiln du), which
// should see Redis as it is now, not as it was at the last failure. A
// success closes the breaker; a failure opens it.
func (x *Index) attempt(ctx context.Context, fn func(ctx context.Context) error) error {
	octx, cancel := context.WithTimeout(ctx, x.op)
	defer cancel()
	err := fn(octx)
	if err == nil || errors.Is(err, goredis.Nil) {
		x.mu.Lock()
		x.openUntil = time.Time{}
		x.mu.Unlock()
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx) // the caller gave up; Redis is not to blame
	}
	x.errors.Add(1)
	x.mu.Lock()
	if time.Now().After(x.openUntil) {
		x.log.Warn("shared cache index unavailable", "redis", x.addr, "error", err, "retry_in", x.cooldown)
	}
	x.openUntil = time.Now().Add(x.cooldown)
	x.lastErr = err
	x.mu.Unlock()
	return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("redis at %s: %w", x.addr, err))
}

func recKey(key digest.Digest) string { return recPrefix + key.String() }

// Get implements remote.Index.
func (x *Index) Get(ctx context.Context, key digest.Digest) ([]remote.Record, error) {
	var fields map[string]string
	err := x.do(ctx, func(ctx context.Context) error {
		var get *goredis.MapStringStringCmd
		_, err := x.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			get = p.HGetAll(ctx, recKey(key))
			if x.ttl > 0 {
				p.Expire(ctx, recKey(key), x.ttl) // a hit refreshes; a miss has no key to refresh
			}
			return nil
		})
		if err != nil {
			return err
		}
		fields = get.Val()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, cache.ErrNotFound
	}
	recs := make([]remote.Record, 0, len(fields))
	for writer, v := range fields {
		var r remote.Record
		if err := json.Unmarshal([]byte(v), &r); err != nil || r.Key != key || r.Validate() != nil {
			x.log.Debug("ignoring a bad record in the shared cache index", "key", key, "writer", writer)
			continue
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return nil, cache.ErrNotFound
	}
	return recs, nil
}

// Put implements remote.Index.
func (x *Index) Put(ctx context.Context, rec remote.Record, build string) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if rec.Writer == "" {
		return errdefs.Invalidf("redis index: a record needs its writer id")
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return x.do(ctx, func(ctx context.Context) error {
		_, err := x.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, recKey(rec.Key), rec.Writer, b)
			if x.ttl > 0 {
				p.Expire(ctx, recKey(rec.Key), x.ttl)
			}
			x.addToBuild(ctx, p, rec.Key, build)
			return nil
		})
		return err
	})
}

// Touch implements remote.Index.
func (x *Index) Touch(ctx context.Context, key digest.Digest, build string) error {
	if x.ttl <= 0 && build == "" {
		return nil
	}
	return x.do(ctx, func(ctx context.Context) error {
		_, err := x.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			if x.ttl > 0 {
				p.Expire(ctx, recKey(key), x.ttl)
			}
			x.addToBuild(ctx, p, key, build)
			return nil
		})
		return err
	})
}

func (x *Index) addToBuild(ctx context.Context, p goredis.Pipeliner, key digest.Digest, build string) {
	if build == "" {
		return
	}
	ttl := x.ttl
	if ttl <= 0 {
		ttl = defaultBuildTTL
	}
	p.SAdd(ctx, buildPrefix+build, key.String())
	p.Expire(ctx, buildPrefix+build, ttl)
}

// List implements remote.Lister: every record, or those of build's keys.
// It reads in batches, each with the operation timeout.
func (x *Index) List(ctx context.Context, build string, fn func(remote.Record) error) error {
	if build != "" {
		var keys []string
		if err := x.attempt(ctx, func(ctx context.Context) error {
			var err error
			keys, err = x.c.SMembers(ctx, buildPrefix+build).Result()
			return err
		}); err != nil {
			return err
		}
		if len(keys) == 0 {
			return errdefs.NotFoundf("the shared cache index has no build %q (unknown, or expired)", build)
		}
		for i := range keys {
			keys[i] = recPrefix + keys[i]
		}
		return x.emit(ctx, keys, fn)
	}
	var cursor uint64
	for {
		var keys []string
		if err := x.attempt(ctx, func(ctx context.Context) error {
			var err error
			keys, cursor, err = x.c.Scan(ctx, cursor, recPrefix+"*", 500).Result()
			return err
		}); err != nil {
			return err
		}
		if err := x.emit(ctx, keys, fn); err != nil {
			return err
		}
		if cursor == 0 {
			return nil
		}
	}
}

// emit reads the record hashes of keys and calls fn for each record.
func (x *Index) emit(ctx context.Context, keys []string, fn func(remote.Record) error) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 200)]
		keys = keys[len(batch):]
		var cmds []*goredis.MapStringStringCmd
		if err := x.attempt(ctx, func(ctx context.Context) error {
			cmds = cmds[:0]
			_, err := x.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, k := range batch {
					cmds = append(cmds, p.HGetAll(ctx, k))
				}
				return nil
			})
			return err
		}); err != nil {
			return err
		}
		for _, c := range cmds {
			for _, v := range c.Val() {
				var r remote.Record
				if json.Unmarshal([]byte(v), &r) != nil || r.Validate() != nil {
					continue
				}
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Usage implements what kiln du asks of an index (remote.Shared.Usage):
// it walks the index.
func (x *Index) Usage(ctx context.Context) (remote.IndexUsage, error) {
	var u remote.IndexUsage
	keys := map[digest.Digest]bool{}
	err := x.List(ctx, "", func(r remote.Record) error {
		if !keys[r.Key] {
			keys[r.Key] = true
			u.Keys++
		}
		u.Records++
		u.Bytes += r.Size()
		return nil
	})
	return u, err
}
