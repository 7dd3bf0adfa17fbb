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
// bin/tools, building it with hack/lib.sh's ensure_dockerfile_frontend
// when it is missing (a few minutes; hack/test.sh does it up front). It
// skips the test if the binary cannot be made (no network to the module
// proxy).
func DockerfileFrontend(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "tools", "dockerfile-frontend")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("bash", "-c", ". hack/lib.sh && ensure_go && ensure_dockerfile_frontend")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Skipf("BuildKit's dockerfile-frontend cannot be built (hack/lib.sh ensure_dockerfile_frontend): %v\n%s", err, out.String())
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
