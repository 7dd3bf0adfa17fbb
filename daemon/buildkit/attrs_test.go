package buildkit

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	controlapi "github.com/moby/buildkit/api/services/control"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/frontend"
)

func TestParseDockerfileAttrs(t *testing.T) {
	t.Parallel()
	attrs := map[string]string{
		"filename": "docker/Dockerfile.dev", "dockerfilekey": "df", "contextkey": "ctx",
		"target": "test", "platform": "linux/amd64,linux/arm64",
		"build-arg:A": "1", "build-arg:SOURCE_DATE_EPOCH": "1700000000", "label:org.x": "y",
		"no-cache": "base,test", "add-hosts": "db=10.0.0.1,cache=10.0.0.2",
		"force-network-mode": "none", "image-resolve-mode": "pull",
		"context:shared": "local:shared", "context:base": "docker-image://busybox:1",
		"cache-imports": `[{"Type":"registry","Attrs":{"ref":"r/c"}}]`,
		"cmdline":       "x", "frontend.caps": "moby.buildkit.frontend.contexts", "vcs:revision": "abc",
		"sharedkey:localdir:shared": "k", "attest:sbom": "disabled=true", "multi-platform": "true",
	}
	var req engine.Request
	o, err := parseDockerfileAttrs(attrs, &req)
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Request{
		Target: "test", Platforms: []string{"linux/amd64,linux/arm64"},
		BuildArgs: map[string]string{"A": "1", "SOURCE_DATE_EPOCH": "1700000000"}, Labels: map[string]string{"org.x": "y"},
		NoCacheFilter: []string{"base", "test"}, AddHosts: []string{"db=10.0.0.1", "cache=10.0.0.2"},
		Network: "none", Pull: true,
		NamedContexts: map[string]frontend.NamedContext{"shared": {Local: "shared"}, "base": {Image: "busybox:1"}},
	}
	if d := cmp.Diff(want, req); d != "" {
		t.Errorf("request (-want +got):\n%s", d)
	}
	if o.filename != "docker/Dockerfile.dev" || o.dockerfileDir != "df" || o.contextDir != "ctx" {
		t.Errorf("opts = %+v", o)
	}
	if len(o.cacheImports) != 1 || o.cacheImports[0].Type != "registry" {
		t.Errorf("cache imports = %v", o.cacheImports)
	}
}

func TestParseDockerfileAttrsErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		class error
	}{
		{"unknown option", map[string]string{"colour": "blue"}, errdefs.ErrInvalidArgument},
		{"bad network", map[string]string{"force-network-mode": "bridge"}, errdefs.ErrInvalidArgument},
		{"bad resolve mode", map[string]string{"image-resolve-mode": "sometimes"}, errdefs.ErrInvalidArgument},
		{"bad cache-imports", map[string]string{"cache-imports": "{"}, errdefs.ErrInvalidArgument},
		{"bad named context", map[string]string{"context:x": "somewhere"}, errdefs.ErrInvalidArgument},
		{"provenance", map[string]string{"attest:provenance": "mode=max"}, errdefs.ErrUnimplemented},
		{"git context", map[string]string{"context": "https://github.com/a/b.git"}, errdefs.ErrUnimplemented},
		{"git named context", map[string]string{"context:x": "git@github.com:a/b.git"}, errdefs.ErrUnimplemented},
		{"oci layout context", map[string]string{"context:x": "oci-layout://dir"}, errdefs.ErrUnimplemented},
		{"subrequest", map[string]string{"requestid": "frontend.outline"}, errdefs.ErrUnimplemented},
		{"frontend image option", map[string]string{"source": "docker/dockerfile:1"}, errdefs.ErrInvalidArgument},
		{"shm-size", map[string]string{"shm-size": "1048576"}, errdefs.ErrUnimplemented},
		{"frontend input", map[string]string{"input-metadata:context": "{}"}, errdefs.ErrUnimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseDockerfileAttrs(tc.attrs, &engine.Request{})
			if !errors.Is(err, tc.class) {
				t.Errorf("err = %v, want class %v", err, tc.class)
			}
		})
	}
}

func TestCacheOptions(t *testing.T) {
	t.Parallel()
	req := &controlapi.SolveRequest{Cache: &controlapi.CacheOptions{
		Imports: []*controlapi.CacheOptionsEntry{
			{Type: "local", Attrs: map[string]string{"src": "/c", "tag": "latest", "digest": "sha256:" + sixtyFour}},
		},
		Exports:              []*controlapi.CacheOptionsEntry{{Type: "inline"}},
		ImportRefsDeprecated: []string{"reg/old:cache"},
		ExportRefDeprecated:  "reg/new:cache",
	}}
	var ereq engine.Request
	cacheOptions(req, nil, &ereq)
	from := ereq.CacheFrom
	if len(from) != 2 || from[0].Type != "local" || from[0].Attrs["digest"] == "" || from[0].Attrs["tag"] != "" ||
		from[1].Type != "registry" || from[1].Attrs["ref"] != "reg/old:cache" {
		t.Errorf("cache from = %+v", from)
	}
	if req.Cache.Imports[0].Attrs["tag"] != "latest" {
		t.Errorf("cacheOptions changed the request's attributes: %v", req.Cache.Imports[0].Attrs)
	}
	if to := ereq.CacheTo; len(to) != 2 || to[0].Type != "inline" || to[1].Type != "registry" || to[1].Attrs["ref"] != "reg/new:cache" {
		t.Errorf("cache to = %+v", to)
	}
	// The frontend's cache-imports apply when the request has none.
	o := &dockerfileOpts{cacheImports: []*controlapi.CacheOptionsEntry{{Type: "registry", Attrs: map[string]string{"ref": "r/c"}}}}
	ereq = engine.Request{}
	cacheOptions(&controlapi.SolveRequest{}, o, &ereq)
	if len(ereq.CacheFrom) != 1 || ereq.CacheFrom[0].Attrs["ref"] != "r/c" {
		t.Errorf("cache-imports: %+v", ereq.CacheFrom)
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
