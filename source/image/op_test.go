package image

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
)

// fakeRef is the ops.Ref a fake load returns.
type fakeRef struct{ name string }

func (r *fakeRef) ID() string                    { return r.name }
func (r *fakeRef) Release(context.Context) error { return nil }

// loads records the snapshots a fake load was asked for.
type loads struct {
	mu    sync.Mutex
	names []string
}

func (l *loads) load(_ context.Context, name string) (ops.Ref, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names = append(l.names, name)
	return &fakeRef{name: name}, nil
}

func imageOp(ref string) graph.Op {
	p := amd64
	return graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: ref}}, Platform: &p}
}

func TestOpExec(t *testing.T) {
	needRoot(t)
	t.Parallel()
	s := startServer(t)
	s.push(t, "busybox:1", testutil.BusyboxImage(t, testutil.HostPlatform()))
	s.requireAuth("bob", "pw")
	e := newEnv(t, nil)
	creds := func(context.Context, string) (authn.AuthConfig, bool, error) {
		return authn.AuthConfig{Username: "bob", Password: "pw"}, true, nil
	}
	res, err := e.p.WithCredentials(creds).ResolveImageConfig(t.Context(), s.host+"/busybox:1", amd64)
	if err != nil {
		t.Fatal(err)
	}
	gop := imageOp(res.Ref)
	vertex := digest.FromString("vertex")
	var l loads
	op, err := NewOp(gop, e.p, l.load, WithOpCredentials(creds), WithVertex(vertex))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := op.CacheMap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cm.Digest != gop.Digest() {
		t.Errorf("CacheMap digest %s, want the op digest %s", cm.Digest, gop.Digest())
	}

	var mu sync.Mutex
	var logs strings.Builder
	w := progress.WriterFunc(func(ev progress.Event) {
		if ev.Log == nil || ev.Log.Vertex != vertex {
			t.Errorf("unexpected progress event %+v", ev)
			return
		}
		mu.Lock()
		logs.Write(ev.Log.Data)
		mu.Unlock()
	})
	ref, err := op.Exec(progress.WithWriter(t.Context(), w), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.names) != 1 || ref.ID() != l.names[0] {
		t.Fatalf("Exec returned %v after loading %v", ref, l.names)
	}
	if _, err := readFile(t, e, l.names[0], "bin/busybox"); err != nil {
		t.Errorf("the loaded snapshot has no /bin/busybox: %v", err)
	}
	out := logs.String()
	t.Logf("progress:\n%s", out)
	for _, want := range []string{" done\n", "extracting sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress %q lacks %q", out, want)
		}
	}

	// Without the client's credentials the registry says no.
	noCreds, err := NewOp(imageOp(s.host+"/busybox:1"), e.p, l.load)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noCreds.CacheMap(t.Context()); !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), s.host) {
		t.Errorf("CacheMap without credentials: %v", err)
	}
}

// TestOpUnpinned: a tag ref resolves in CacheMap, so the key follows the
// tag.
func TestOpUnpinned(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	e := newEnv(t, nil)
	var l loads
	keyOf := func() digest.Digest {
		op, err := NewOp(imageOp(s.host+"/app:1"), e.p, l.load)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := op.CacheMap(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return cm.Digest
	}
	s.push(t, "app:1", imageOf(t, nil, layerOf(t, types.OCILayer, map[string]string{"v": "1"})))
	k1 := keyOf()
	if k1 == imageOp(s.host+"/app:1").Digest() || keyOf() != k1 {
		t.Errorf("tag key %s: want it stable and not the bare op digest", k1)
	}
	s.push(t, "app:1", imageOf(t, nil, layerOf(t, types.OCILayer, map[string]string{"v": "2"})))
	if keyOf() == k1 {
		t.Error("moving the tag did not change the key")
	}
}

func TestOpZeroLayers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	e := newEnv(t, nil)
	d := s.push(t, "empty:1", imageOf(t, nil))
	var l loads
	op, err := NewOp(imageOp(d.String()), e.p, l.load)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := op.Exec(t.Context(), nil)
	if err != nil || ref != nil || len(l.names) != 0 {
		t.Errorf("Exec of an empty image = %v, %v (loaded %v); want nil, nil", ref, err, l.names)
	}
}

func TestOpInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var l loads
	if _, err := NewOp(graph.Op{Exec: &graph.ExecOp{}}, e.p, l.load); !errdefs.IsInvalidArgument(err) {
		t.Errorf("NewOp(exec op) = %v, want invalid argument", err)
	}
	if _, err := NewOp(imageOp("busybox"), e.p, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("NewOp without load = %v, want invalid argument", err)
	}
	op, err := NewOp(imageOp("busybox@sha256:"+strings.Repeat("a", 64)), e.p, l.load)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Exec(t.Context(), []ops.Ref{&fakeRef{}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Exec with an input = %v, want invalid argument", err)
	}
}
