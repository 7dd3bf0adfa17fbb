package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache/remote"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
	"github.com/kiln-build/kiln/daemon"
	"github.com/kiln-build/kiln/engine/sharedcache"
	"github.com/kiln-build/kiln/layer"
)

// startCacheDaemon serves the API in-process on a unix socket with a
// backend whose shared cache is the redis index at redisAddr ("" for no
// shared cache), and returns its address.
func startCacheDaemon(t *testing.T, redisAddr string) string {
	t.Helper()
	var caches []*remote.Shared
	if redisAddr != "" {
		idx, err := cacheredis.New(cacheredis.Options{Addr: redisAddr})
		if err != nil {
			t.Fatal(err)
		}
		blobs, err := remote.OpenFileStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := remote.NewShared(remote.SharedOptions{
			Name: "redis", Index: idx, Blobs: blobs, Writer: "kilnd-writer",
			Importer: remote.NewImporter(nil, nil, nil), Layers: layer.NewMaker(nil, nil), Local: remote.LocalBlobs(nil, ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		caches = []*remote.Shared{sc}
	}
	return startDaemon(t, daemon.WithServices(daemon.Services{CacheRecords: sharedcache.New(caches)}))
}

func TestCacheLsRemote(t *testing.T) {
	srv := redistest.Start(t)
	idx, err := cacheredis.New(cacheredis.Options{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	// Created well inside an hour, so both ways print the same "3h ago".
	created := time.Now().Add(-3*time.Hour - 30*time.Minute).UTC()
	put := func(key, writer, build string) remote.Record {
		r := remote.Record{Key: digest.FromString(key), Writer: writer, Created: created,
			Layers: []remote.Layer{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("b" + key), Size: 2048, DiffID: digest.FromString("d" + key)}}}
		if err := idx.Put(context.Background(), r, build); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := put("a", "aaaa", "build-1")
	b := put("b", "bbbb", "build-2")
	kilnd := startCacheDaemon(t, srv.Addr)

	// The same listing, read directly and through kilnd, prints alike.
	direct := []string{"--redis-addr", srv.Addr}
	through := []string{"--addr", kilnd}
	rowOf := func(r remote.Record) cacheLsRow {
		return cacheLsRow{Key: r.Key.String(), Writer: r.Writer, Layers: 1, Size: 2048, Created: created, Index: srv.Addr}
	}
	for _, tt := range []struct {
		name    string
		args    []string
		wantOut []string     // in stdout (table)
		rows    []cacheLsRow // stdout (json)
		wantErr string       // in stderr
	}{
		{
			name:    "table",
			args:    nil,
			wantOut: []string{"KEY", a.Key.Encoded()[:12], b.Key.Encoded()[:12], "aaaa", "bbbb", "2.05kB", "3h ago"},
			wantErr: "2 records of 2 keys in " + srv.Addr + " (4.1kB of layers",
		},
		{
			name:    "one build",
			args:    []string{"--build", "build-2"},
			wantOut: []string{b.Key.Encoded()[:12], "bbbb"},
			wantErr: "1 records of 1 keys in " + srv.Addr,
		},
		{
			name: "json",
			args: []string{"--format", "json"},
			rows: []cacheLsRow{rowOf(a), rowOf(b)},
		},
		{
			name: "json of one build",
			args: []string{"--build", "build-2", "--format", "json"},
			rows: []cacheLsRow{rowOf(b)},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var outs, errs []string
			for _, way := range [][]string{direct, through} {
				args := append(append([]string{"cache", "ls", "--remote"}, way...), tt.args...)
				code, out, errOut := kiln(args...)
				if code != 0 {
					t.Fatalf("kiln %v: exit %d: %s", args, code, errOut)
				}
				outs, errs = append(outs, out), append(errs, errOut)
			}
			if outs[0] != outs[1] || errs[0] != errs[1] {
				t.Errorf("direct and through kilnd differ:\n%s%s---\n%s%s", outs[0], errs[0], outs[1], errs[1])
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(outs[1], want) {
					t.Errorf("output lacks %q:\n%s", want, outs[1])
				}
			}
			if !strings.Contains(errs[1], tt.wantErr) {
				t.Errorf("summary %q lacks %q", errs[1], tt.wantErr)
			}
			if tt.rows != nil {
				var rows []cacheLsRow
				if err := json.Unmarshal([]byte(outs[1]), &rows); err != nil {
					t.Fatalf("json: %v\n%s", err, outs[1])
				}
				// Both records have the same time: newest first, then by key.
				want := tt.rows
				if len(want) == 2 && want[0].Key > want[1].Key {
					want = []cacheLsRow{want[1], want[0]}
				}
				if diff := cmp.Diff(want, rows); diff != "" {
					t.Errorf("rows (-want +got):\n%s", diff)
				}
			}
		})
	}

	empty := startCacheDaemon(t, srv.Addr+"/5")
	none := startCacheDaemon(t, "")
	for _, tt := range []struct {
		args    []string
		ok      bool
		wantOut string // in stdout
		wantErr string // in stderr
	}{
		{args: []string{"cache", "ls"}, wantErr: "pass --remote"},
		{args: []string{"cache", "ls", "--remote", "--redis-addr", srv.Addr, "--build", "nope"}, wantErr: `no build "nope"`},
		{args: []string{"cache", "ls", "--remote", "--addr", kilnd, "--build", "nope"}, wantErr: `no build "nope"`},
		{args: []string{"cache", "ls", "--remote", "--addr", kilnd, "--format", "yaml"}, wantErr: "want table or json"},
		{args: []string{"cache", "ls", "--remote", "--config", "/nonexistent/kilnd.toml"}, wantErr: "does not exist"},
		{args: []string{"cache", "ls", "--remote", "--addr", none}, wantErr: "kilnd has no shared cache: add [[cache.registry]] to kilnd.toml"},
		{args: []string{"cache", "ls", "--remote", "--addr", "unix:///nonexistent/kilnd.sock"}, wantErr: "To read the index without kilnd, pass --redis-addr"},
		{args: []string{"cache", "ls", "--remote", "--addr", empty}, ok: true, wantErr: "0 records of 0 keys in " + srv.Addr + "/5"},
		{args: []string{"cache", "ls", "--remote", "--addr", empty, "--format", "json"}, ok: true, wantOut: "[]"},
	} {
		code, out, errOut := kiln(tt.args...)
		if (code == 0) != tt.ok || !strings.Contains(errOut, tt.wantErr) || !strings.Contains(out, tt.wantOut) {
			t.Errorf("kiln %v: exit %d, stdout %q, stderr %q; want ok %v, %q in stdout, %q in stderr", tt.args, code, out, errOut, tt.ok, tt.wantOut, tt.wantErr)
		}
	}
}

func TestCacheLsRemoteEnvironment(t *testing.T) {
	srv := redistest.Start(t)
	kilnd := startCacheDaemon(t, srv.Addr)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := fmt.Sprintf("redis://:s3cret@%s", l.Addr())
	l.Close()

	for _, tt := range []struct {
		name      string
		host      string // $KILN_HOST
		redisAddr string // $KILN_REDIS_ADDR
		args      []string
		wantErr   string // in stderr; "" for success
	}{
		// $KILN_REDIS_ADDR reads the index directly: no kilnd needed.
		{name: "env reads directly", host: "unix:///nonexistent/kilnd.sock", redisAddr: srv.Addr, wantErr: ""},
		// --addr on the command line wins over $KILN_REDIS_ADDR.
		{name: "--addr wins", redisAddr: closed, args: []string{"--addr", kilnd}, wantErr: ""},
		// --redis-addr wins over everything.
		{name: "--redis-addr wins", host: kilnd, args: []string{"--addr", kilnd, "--redis-addr", closed}, wantErr: "connection refused"},
		// Neither: kilnd at $KILN_HOST.
		{name: "kilnd by default", host: kilnd, wantErr: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KILN_HOST", tt.host)
			t.Setenv(envRedisAddr, tt.redisAddr)
			code, _, errOut := kiln(append([]string{"cache", "ls", "--remote"}, tt.args...)...)
			switch {
			case tt.wantErr == "" && code != 0:
				t.Errorf("exit %d: %s", code, errOut)
			case tt.wantErr != "" && (code == 0 || !strings.Contains(errOut, tt.wantErr)):
				t.Errorf("exit %d, stderr %q; want an error with %q", code, errOut, tt.wantErr)
			}
			if strings.Contains(errOut, "s3cret") {
				t.Errorf("stderr shows the password: %q", errOut)
			}
		})
	}

	// The help shows no address from the environment (it may hold a
	// password).
	t.Setenv(envRedisAddr, closed)
	_, out, _ := kiln("cache", "ls", "--help")
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "--redis-addr") {
		t.Errorf("kiln cache ls --help:\n%s", out)
	}
}
