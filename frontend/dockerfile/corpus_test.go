package dockerfile

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
)

// TestCorpus converts every Dockerfile of the parser conformance corpus:
// each either converts to a valid graph or fails with an invalid-argument
// error, never a panic.
func TestCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "conformance", "dockerfile-parser", "testfiles*", "*", "Dockerfile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	converted := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		req := request(string(src))
		req.DockerfileName = f
		req.BuildArgs = map[string]string{"HTTP_PROXY": "http://p"}
		res, err := New().Solve(context.Background(), req)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: error without the invalid-argument class: %v", f, err)
			}
			continue
		}
		converted++
		for _, img := range res.Images {
			if err := graph.Validate(img.Root); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
	if converted < len(files)/2 {
		t.Errorf("only %d of %d corpus files converted", converted, len(files))
	}
}
