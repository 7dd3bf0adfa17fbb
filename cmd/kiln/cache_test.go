package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache/remote"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
)

func TestCacheLsRemote(t *testing.T) {
	srv := redistest.Start(t)
	idx, err := cacheredis.New(cacheredis.Options{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	put := func(key, writer, build string) remote.Record {
		r := remote.Record{Key: digest.FromString(key), Writer: writer, Created: time.Now().UTC(),
			Layers: []remote.Layer{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("b" + key), Size: 2048, DiffID: digest.FromString("d" + key)}}}
		if err := idx.Put(context.Background(), r, build); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := put("a", "aaaa", "build-1")
	b := put("b", "bbbb", "build-2")

	code, out, errOut := kiln("cache", "ls", "--remote", "--redis-addr", srv.Addr)
	if code != 0 {
		t.Fatalf("kiln cache ls: %d %s", code, errOut)
	}
	for _, want := range []string{"KEY", a.Key.Encoded()[:12], b.Key.Encoded()[:12], "aaaa", "bbbb", "2.05kB"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "2 records of 2 keys") {
		t.Errorf("summary: %q", errOut)
	}

	code, out, errOut = kiln("cache", "ls", "--remote", "--redis-addr", srv.Addr, "--build", "build-2", "--format", "json")
	if code != 0 {
		t.Fatalf("kiln cache ls --build: %d %s", code, errOut)
	}
	var rows []cacheLsRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Key != b.Key.String() || rows[0].Writer != "bbbb" || rows[0].Layers != 1 {
		t.Errorf("--build build-2: %+v", rows)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cache", "ls"}, "pass --remote"},
		{[]string{"cache", "ls", "--remote", "--redis-addr", srv.Addr, "--build", "nope"}, `no build "nope"`},
		{[]string{"cache", "ls", "--remote", "--redis-addr", srv.Addr, "--format", "yaml"}, "want table or json"},
		{[]string{"cache", "ls", "--remote", "--config", "/nonexistent/kilnd.toml"}, "does not exist"},
	} {
		code, _, errOut := kiln(tt.args...)
		if code == 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("kiln %v: exit %d, stderr %q; want %q", tt.args, code, errOut, tt.want)
		}
	}
}
