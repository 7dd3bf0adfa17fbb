package engine

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// The custom frontend of examples/frontend (docs/extending.md) builds
// into an image, and a Kilnfile naming it builds with it.
func TestGatewayExampleFrontend(t *testing.T) {
	h, _ := gatewayHarness(t, SyntaxPolicy{})
	bin := filepath.Join(t.TempDir(), "kilnfile")
	if err := testutil.GoBuild(bin, "github.com/kiln-build/kiln/examples/frontend", "CGO_ENABLED=0"); err != nil {
		t.Fatal(err)
	}
	host, _, _ := strings.Cut(h.base, "/")
	ref := host + "/kilnfile:1"
	h.pushBinary(t, bin, ref)

	kilnfile := "# syntax=" + ref + "\nFROM " + h.base + "\nFILE /hello.txt Hello from a custom frontend\nRUN echo \"$MESSAGE\" > /message\nCMD cat /hello.txt /message\n"
	req := Request{Dockerfile: []byte(kilnfile), BuildArgs: map[string]string{"MESSAGE": "built by Kiln"}}
	tree := h.buildTree(t, req)
	for _, p := range []string{"hello.txt", "message", "bin/busybox"} {
		if _, ok := tree[p]; !ok {
			t.Errorf("%s missing from the result", p)
		}
	}
	cfg := h.imageConfig(t, "kilnfile-app:1", Request{Dockerfile: []byte(kilnfile), BuildArgs: req.BuildArgs})
	if got := strings.Join(cfg.Config.Cmd, " "); got != "/bin/sh -c cat /hello.txt /message" {
		t.Errorf("Cmd = %q", got)
	}
}
