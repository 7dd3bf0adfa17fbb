package redis

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
	"github.com/kiln-build/kiln/core/errdefs"
)

func record(key, writer string, layers ...string) remote.Record {
	r := remote.Record{Key: digest.FromString(key), Writer: writer, Created: time.Unix(1700000000, 0).UTC()}
	for _, l := range layers {
		r.Layers = append(r.Layers, remote.Layer{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("blob " + l), Size: int64(len(l)), DiffID: digest.FromString("tar " + l)})
	}
	return r
}

func newIndex(t *testing.T, addr string, ttl time.Duration) *Index {
	t.Helper()
	x, err := New(Options{Addr: addr, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func TestPutGetMergesWriters(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b := newIndex(t, srv.Addr, time.Hour), newIndex(t, srv.Addr, time.Hour)

	if _, err := a.Get(ctx, digest.FromString("k")); !errdefs.IsNotFound(err) {
		t.Fatalf("Get of a missing key = %v, want not found", err)
	}
	ra := record("k", "aaaa", "base", "a")
	rb := record("k", "bbbb", "base", "b")
	if err := a.Put(ctx, ra, "build-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, rb, "build-2"); err != nil {
		t.Fatal(err)
	}
	// A writer rewriting its own record replaces only its own.
	ra2 := record("k", "aaaa", "base", "a2")
	if err := a.Put(ctx, ra2, "build-1"); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, digest.FromString("k"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Writer < got[j].Writer })
	if diff := cmp.Diff([]remote.Record{ra2, rb}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}

	var listed []string
	if err := a.List(ctx, "build-2", func(r remote.Record) error {
		listed = append(listed, r.Writer)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(listed)
	// The build lists the key; the key holds both writers' records.
	if diff := cmp.Diff([]string{"aaaa", "bbbb"}, listed); diff != "" {
		t.Errorf("List(build-2) writers (-want +got):\n%s", diff)
	}
	if err := a.List(ctx, "no-such-build", func(remote.Record) error { return nil }); !errdefs.IsNotFound(err) {
		t.Errorf("List of an unknown build = %v, want not found", err)
	}
	u, err := a.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Keys != 1 || u.Records != 2 {
		t.Errorf("Usage = %+v, want 1 key and 2 records", u)
	}
}

func TestConcurrentWritersKeepAllRecords(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const writers, keys = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		x := newIndex(t, srv.Addr, time.Hour)
		wg.Go(func() {
			for k := range keys {
				// Half the keys are shared by every writer, half are
				// each writer's own.
				key := "shared-" + string(rune('a'+k%26)) + string(rune('a'+k/26))
				if k%2 == 1 {
					key = "own-" + string(rune('a'+w)) + "-" + string(rune('a'+k%26)) + string(rune('a'+k/26))
				}
				if err := x.Put(ctx, record(key, strings.Repeat(string(rune('a'+w)), 4), "l"+key), ""); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	u, err := newIndex(t, srv.Addr, 0).Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(writers * keys); u.Records != want {
		t.Errorf("records = %d, want %d (every writer's)", u.Records, want)
	}
}

func TestTTLRefreshedByHit(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	x := newIndex(t, srv.Addr, 2*time.Hour)
	r := record("k", "aaaa", "l")
	if err := x.Put(ctx, r, ""); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: srv.HostPort})
	defer c.Close()
	if err := c.Expire(ctx, recPrefix+r.Key.String(), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Get(ctx, r.Key); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.TTL(ctx, recPrefix+r.Key.String()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < time.Hour {
		t.Errorf("TTL after a hit = %s, want it refreshed to about 2h", ttl)
	}
	if err := c.Expire(ctx, recPrefix+r.Key.String(), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := x.Touch(ctx, r.Key, "b"); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := c.TTL(ctx, recPrefix+r.Key.String()).Result(); ttl < time.Hour {
		t.Errorf("TTL after Touch = %s, want about 2h", ttl)
	}
}

func TestIndexHoldsDigestsOnly(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	x := newIndex(t, srv.Addr, 0)
	r := record("k", "aaaa", "l")
	r.Inputs = &remote.Inputs{Op: digest.FromString("op"), Inputs: []remote.Input{{Key: digest.FromString("in"), Content: digest.FromString("files")}}}
	if err := x.Put(ctx, r, "build-x"); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: srv.HostPort})
	defer c.Close()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	want := []string{buildPrefix + "build-x", recPrefix + r.Key.String()}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	v, err := c.HGet(ctx, recPrefix+r.Key.String(), "aaaa").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"key"`, `"layers"`, `"created"`, `"writer"`, `"inputs"`} {
		if !strings.Contains(v, field) {
			t.Errorf("record %s lacks %s", v, field)
		}
	}
	for _, bad := range []string{"args", "env", "name", "path", "description"} {
		if strings.Contains(strings.ToLower(v), bad) {
			t.Errorf("record %s holds %q", v, bad)
		}
	}
}

func TestUnreachableFailsFastAndBreaks(t *testing.T) {
	srv := redistest.Start(t)
	addr := srv.Addr
	srv.Stop() // nothing listens there now
	ctx := context.Background()
	x, err := New(Options{Addr: addr, Cooldown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	start := time.Now()
	_, err = x.Get(ctx, digest.FromString("k"))
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("Get with redis down = %v, want unavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the first failing call took %s; timeouts must bound it", d)
	}
	if x.Available() {
		t.Error("the breaker did not open after a failure")
	}
	start = time.Now()
	for range 100 {
		if err := x.Put(ctx, record("k", "aaaa", "l"), ""); !errdefs.IsUnavailable(err) {
			t.Fatalf("Put while broken = %v", err)
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("100 calls while broken took %s; they should not touch the network", d)
	}
}

func TestBreakerRecovers(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	x, err := New(Options{Addr: srv.Addr, Cooldown: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := x.Ping(ctx); !errdefs.IsUnavailable(err) {
		t.Fatalf("Ping after redis stopped = %v", err)
	}
	srv2, err := redistest.StartServer(srv.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := x.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the index did not recover after redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// What a person asks for (kiln cache ls, kiln du) tries Redis even while
// the breaker is open, and a success closes the breaker for the builds.
func TestListTriesThroughAnOpenBreaker(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	x, err := New(Options{Addr: srv.Addr, Cooldown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.Put(ctx, record("k", "aaaa", "l"), "b1"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := x.Ping(ctx); !errdefs.IsUnavailable(err) {
		t.Fatalf("Ping after redis stopped = %v", err)
	}
	if x.Available() {
		t.Fatal("the breaker is closed after a failure")
	}
	srv2, err := redistest.StartServer(srv.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop()
	// A fresh server: the record is gone, but the call goes through.
	if _, err := x.Get(ctx, digest.FromString("k")); !errdefs.IsUnavailable(err) {
		t.Fatalf("a build's Get with the breaker open (an hour) = %v, want it skipped", err)
	}
	if _, err := x.Usage(ctx); err != nil {
		t.Fatalf("Usage with the breaker open and redis back: %v", err)
	}
	if !x.Available() {
		t.Error("a successful Usage did not close the breaker")
	}
}

func TestCallerCancellationDoesNotBreak(t *testing.T) {
	srv := redistest.Start(t)
	x := newIndex(t, srv.Addr, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := x.Get(ctx, digest.FromString("k")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context = %v", err)
	}
	if !x.Available() {
		t.Error("a caller's cancellation opened the breaker")
	}
}

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"redis://localhost:6379", "redis://localhost:6379"},
		{"redis://user:s3cret@cache:6379/2", "redis://user:****@cache:6379/2"},
		{"rediss://:s3cret@cache:6380", "rediss://:****@cache:6380"},
	} {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := New(Options{Addr: "http://user:s3cret@cache:6379"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("New with a bad scheme = %v; want an error without the password", err)
	}
}
