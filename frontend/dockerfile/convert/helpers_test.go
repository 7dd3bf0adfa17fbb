package convert

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/graph"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

// fakeResolver answers from fixed configs (by normalised reference) and
// counts calls per reference and platform. A reference it does not know
// resolves to an empty config; one in fail is a not-found error.
type fakeResolver struct {
	configs map[string]string // ref -> config JSON
	fail    map[string]bool

	mu    sync.Mutex
	calls map[string]int // "ref|platform" -> calls
}

func (f *fakeResolver) ResolveImageConfig(_ context.Context, ref string, p ocispec.Platform) (imageconfig.Resolved, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[ref+"|"+platforms.Format(p)]++
	f.mu.Unlock()
	if f.fail[ref] {
		return imageconfig.Resolved{}, errdefs.NotFoundf("%s: not found", ref)
	}
	cfg := f.configs[ref]
	if cfg == "" {
		cfg = "{}"
	}
	d := digest.FromString(ref + "|" + platforms.Format(p))
	return imageconfig.Resolved{Ref: ref + "@" + d.String(), Digest: d, Config: []byte(cfg)}, nil
}

func (f *fakeResolver) callCount(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

// convertOpts tweak the request of a test conversion.
type convertOpt func(*frontend.Request)

func withArgs(kv ...string) convertOpt {
	return func(r *frontend.Request) {
		if r.BuildArgs == nil {
			r.BuildArgs = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			r.BuildArgs[kv[i]] = kv[i+1]
		}
	}
}

func withTarget(t string) convertOpt { return func(r *frontend.Request) { r.Target = t } }

func withResolver(res frontend.ImageResolver) convertOpt {
	return func(r *frontend.Request) { r.Resolver = res }
}

// newRequest is the request the tests start from: build on linux/amd64.
func newRequest(opts ...convertOpt) frontend.Request {
	req := frontend.Request{
		DockerfileName: "Dockerfile",
		BuildPlatform:  amd64,
		ContextName:    "context",
		Resolver:       &fakeResolver{},
	}
	for _, o := range opts {
		o(&req)
	}
	return req
}

// convertErr converts src for platform and returns the error, if any.
func convertErr(src string, platform ocispec.Platform, opts ...convertOpt) (*frontend.Image, []frontend.Warning, error) {
	df, err := instructions.Parse(context.Background(), []byte(src), "Dockerfile")
	if err != nil {
		return nil, nil, err
	}
	c, err := New(df, newRequest(opts...))
	if err != nil {
		return nil, nil, err
	}
	return c.Convert(context.Background(), platform)
}

// mustConvert converts src for linux/amd64.
func mustConvert(t *testing.T, src string, opts ...convertOpt) *frontend.Image {
	t.Helper()
	img, _, err := convertErr(src, amd64, opts...)
	if err != nil {
		t.Fatalf("convert:\n%s\nerror: %v", src, err)
	}
	if err := graph.Validate(img.Root); err != nil {
		t.Fatalf("invalid graph: %v", err)
	}
	return img
}

// vertices returns the vertices reachable from root in topological order.
func vertices(root *graph.Vertex) []*graph.Vertex {
	var out []*graph.Vertex
	_ = graph.Walk([]*graph.Vertex{root}, func(v *graph.Vertex) error {
		out = append(out, v)
		return nil
	})
	return out
}

// byName returns the vertex whose name contains s.
func byName(t *testing.T, root *graph.Vertex, s string) *graph.Vertex {
	t.Helper()
	var found *graph.Vertex
	for _, v := range vertices(root) {
		if strings.Contains(v.Meta.Name, s) {
			if found != nil && found.Digest() != v.Digest() {
				t.Fatalf("two vertices named %q: %q and %q", s, found.Meta.Name, v.Meta.Name)
			}
			found = v
		}
	}
	if found == nil {
		t.Fatalf("no vertex named %q in %v", s, names(root))
	}
	return found
}

// names lists the vertex names of the graph, in order.
func names(root *graph.Vertex) []string {
	var out []string
	for _, v := range vertices(root) {
		out = append(out, v.Meta.Name)
	}
	return out
}

// digestsByStep maps each vertex's StepID (or name, for vertices without
// one) to its digest.
func digestsByStep(root *graph.Vertex) map[string]digest.Digest {
	m := map[string]digest.Digest{}
	for _, v := range vertices(root) {
		k := v.Meta.StepID
		if k == "" {
			k = v.Meta.Name
		}
		m[k] = v.Digest()
	}
	return m
}

// changed returns the names of the steps whose digests differ.
func changed(a, b *graph.Vertex) []string {
	da, db := digestsByStep(a), digestsByStep(b)
	var out []string
	for _, v := range vertices(b) {
		k := v.Meta.StepID
		if k == "" {
			k = v.Meta.Name
		}
		if da[k] != db[k] {
			out = append(out, v.Meta.Name)
		}
	}
	return out
}

// errorText returns err's message, or "" for nil.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
