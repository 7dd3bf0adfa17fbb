package solver

import (
	"errors"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
)

func TestChecksumErrorSaysWhereAPathWasLookedFor(t *testing.T) {
	t.Parallel()
	local := func(name string) *graph.Vertex {
		return graph.NewVertex(graph.Op{Source: &graph.SourceOp{Local: &graph.LocalSource{Name: name}}}, graph.Meta{})
	}
	stage := graph.NewVertex(graph.Op{Exec: &graph.ExecOp{Args: []string{"true"}, Root: -1}}, graph.Meta{Name: "[a 2/2] RUN true"})
	copyOf := func(in *graph.Vertex) *graph.Vertex {
		return graph.NewVertex(graph.Op{File: &graph.FileOp{Base: -1}}, graph.Meta{}, in)
	}
	missing := errdefs.NotFoundf("%q: not found", "/missing.txt")
	for _, tc := range []struct {
		name string
		v    *graph.Vertex
		in   string
		err  error
		want string
	}{
		{"main context", copyOf(local("context")), "[internal] load build context", missing,
			`"/missing.txt": not found in the build context (check the path, and that .dockerignore does not exclude it)`},
		{"named context", copyOf(local("shared")), "[context shared] load from client", missing,
			`"/missing.txt": not found in build context "shared" (check the path, and that .dockerignore does not exclude it)`},
		{"another stage", copyOf(stage), "[a 2/2] RUN true", missing, `"/missing.txt": not found in [a 2/2] RUN true`},
		{"other errors", copyOf(local("context")), "[internal] load build context", errors.New("disk on fire"),
			"checksum [internal] load build context: disk on fire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checksumError(tc.v, 0, tc.in, tc.err)
			if err.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", err, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap %v", err, tc.err)
			}
		})
	}
}
