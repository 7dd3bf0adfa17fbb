package testutil

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// DockerfileFrontend returns the path of BuildKit's Dockerfile frontend
// binary (statically built, pinned by hack/lib.sh) in the repository's
// bin/tools; see BuildKitTool.
func DockerfileFrontend(t testing.TB) string {
	t.Helper()
	return BuildKitTool(t, "dockerfile-frontend")
}

// BuildKitTool returns the path of one of the BuildKit tools hack/lib.sh
// pins and builds into the repository's bin/tools (buildctl, buildx,
// dockerfile-frontend), building them with ensure_buildkit_tools when
// they are missing or not the pinned versions (a few minutes; hack/test.sh starts it in the
// background, and this waits for that build). It skips the test if they
// cannot be made (no network to the module proxy).
func BuildKitTool(t testing.TB, name string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "tools", name)
	// ensure_buildkit_tools returns at once when bin/tools holds the
	// pinned versions; otherwise it builds them, or waits for the build
	// hack/test.sh started.
	cmd := exec.Command("bash", "-c", ". hack/lib.sh && ensure_go && ensure_buildkit_tools")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Skipf("BuildKit's %s cannot be built (hack/lib.sh ensure_buildkit_tools): %v\n%s", name, err, out.String())
	}
	return bin
}

// repoRoot finds the directory holding the module's go.mod, up from the
// current directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/kiln-build/kiln\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testutil: the kiln module's root is not above the current directory")
		}
		dir = parent
	}
}
