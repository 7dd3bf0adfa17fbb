package graph

import (
	"encoding/json"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func exampleGraph() *Vertex {
	base := NewVertex(Op{
		Source:   &SourceOp{Image: &ImageSource{Ref: "docker.io/library/busybox:latest@sha256:0000000000000000000000000000000000000000000000000000000000000001"}},
		Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"},
	}, Meta{Name: "[1/3] FROM busybox"})
	ctx := NewVertex(Op{Source: &SourceOp{Local: &LocalSource{Name: "context", ExcludePatterns: []string{"*.tmp"}}}}, Meta{})
	run := NewVertex(Op{Exec: &ExecOp{
		Args: []string{"/bin/sh", "-c", "echo hi > /hello.txt"},
		Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cwd:  "/",
		Root: 0,
	}}, Meta{Name: "[2/3] RUN echo hi"}, base)
	mode := uint32(0o644)
	cp := NewVertex(Op{File: &FileOp{Base: 0, Actions: []FileAction{{Copy: &CopyAction{Input: 1, Src: []string{"a.txt"}, Dest: "/a.txt"}}, {Mkfile: &MkfileAction{Path: "/b", Mode: mode, Data: []byte("x")}}}}}, Meta{Name: "[3/3] COPY a.txt /a.txt"}, run, ctx)
	return cp
}

// TestDigestGolden pins the digests of a small graph. If this test fails, the
// encoding of ops changed and every cache key with it: that must be a
// deliberate decision (bump digestPrefix), never an accident.
func TestDigestGolden(t *testing.T) {
	v := exampleGraph()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"copy op", v.Op.Digest().String(), "sha256:30dd1c60ec85a630f3ab17e23d839dffdaf17ff6b572e37ebf3b0f7d71182d63"},
		{"copy vertex", v.Digest().String(), "sha256:b9ac60d403b514eba40b0bd894b3e818a86d3b6f77f1cde840f5df7c1a74f3a7"},
		{"exec op", v.Inputs[0].Op.Digest().String(), "sha256:e2d941c0b588d71adb8d3d3b18dabfb684cdb9bd0e4ed271abe4e4d5319cc3e4"},
		{"image op", v.Inputs[0].Inputs[0].Op.Digest().String(), "sha256:a9f39e12d59f9d3966dc61c9a6ec5f836b920716dcb08875f1f135b31e48ef81"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s digest = %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

func TestDigestIgnoresMetaAndProxy(t *testing.T) {
	a := Op{Exec: &ExecOp{Args: []string{"true"}, ProxyEnv: []string{"HTTP_PROXY=http://a"}}}
	b := Op{Exec: &ExecOp{Args: []string{"true"}, ProxyEnv: []string{"HTTP_PROXY=http://b"}}}
	if a.Digest() != b.Digest() {
		t.Errorf("proxy env changed the op digest")
	}
	if a.Exec.ProxyEnv[0] != "HTTP_PROXY=http://a" {
		t.Errorf("Digest modified the op")
	}
	va := NewVertex(a, Meta{Name: "x"})
	vb := NewVertex(a, Meta{Name: "y", IgnoreCache: true})
	if va.Digest() != vb.Digest() {
		t.Errorf("meta changed the vertex digest")
	}
	c := Op{Exec: &ExecOp{Args: []string{"false"}}}
	if a.Digest() == c.Digest() {
		t.Errorf("different args gave the same digest")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	v := exampleGraph()
	b, err := json.Marshal(Marshal(v))
	if err != nil {
		t.Fatal(err)
	}
	var def Definition
	if err := json.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	roots, err := Unmarshal(def)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].Digest() != v.Digest() {
		t.Fatalf("round trip changed the graph: %v", roots)
	}
	if len(def.Vertices) != 4 {
		t.Errorf("got %d vertices, want 4", len(def.Vertices))
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		v       *Vertex
		wantErr bool
	}{
		{"ok", exampleGraph(), false},
		{"no kind", NewVertex(Op{}, Meta{}), true},
		{"two kinds", NewVertex(Op{Exec: &ExecOp{Args: []string{"x"}}, Merge: &MergeOp{}}, Meta{}), true},
		{"exec bad root", NewVertex(Op{Exec: &ExecOp{Args: []string{"x"}, Root: 2}}, Meta{}), true},
		{"exec scratch", NewVertex(Op{Exec: &ExecOp{Args: []string{"x"}, Root: NoInput}}, Meta{}), false},
		{"source with input", NewVertex(Op{Source: &SourceOp{Local: &LocalSource{Name: "c"}}}, Meta{}, exampleGraph()), true},
		{"copy bad input", NewVertex(Op{File: &FileOp{Base: NoInput, Actions: []FileAction{{Copy: &CopyAction{Input: 0}}}}}, Meta{}), true},
		{"empty merge", NewVertex(Op{Merge: &MergeOp{}}, Meta{}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.v)
			if (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

// Bytes that are not UTF-8 count in the digest: JSON alone would write
// both as U+FFFD.
func TestDigestKeepsInvalidUTF8(t *testing.T) {
	t.Parallel()
	cp := func(dest string) Op {
		return Op{File: &FileOp{Actions: []FileAction{{Copy: &CopyAction{Input: 1, Src: []string{"a"}, Dest: dest}}}}}
	}
	ex := func(arg string) Op { return Op{Exec: &ExecOp{Args: []string{"/bin/sh", "-c", arg}}} }
	pairs := []struct {
		name string
		a, b Op
	}{
		{"copy destination", cp("/caf\xe9"), cp("/caf\xe8")},
		{"exec arg", ex("echo \xfe"), ex("echo \xff")},
		{"invalid and U+FFFD", ex("echo \xff"), ex("echo \uFFFD")},
		{"escaped form written out", ex("echo \xff"), ex("\x00" + `"echo \xff"`)},
	}
	for _, p := range pairs {
		if p.a.Digest() == p.b.Digest() {
			t.Errorf("%s: the two ops share a digest", p.name)
		}
	}
	orig := ex("echo \xff")
	_ = orig.Digest()
	if orig.Exec.Args[2] != "echo \xff" {
		t.Errorf("Digest modified the op: %q", orig.Exec.Args[2])
	}
}
