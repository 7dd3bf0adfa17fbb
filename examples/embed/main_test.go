package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
)

// The example builds a Dockerfile and an LLB definition in process.
func TestEmbed(t *testing.T) {
	testroot.RequireSlow(t, "runs real builds")
	host := testutil.StartRegistry(t)
	base := host + "/library/busybox:latest"
	testutil.PushImage(t, base, testutil.BusyboxImage(t, testutil.HostPlatform()))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\nRUN echo from a Dockerfile > /hello.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	tests := []struct {
		name, llb, want string
	}{
		{"dockerfile", "", "from a Dockerfile\n"},
		{"llb", base, "built from LLB\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.tar")
			var log strings.Builder
			if err := run(context.Background(), options{root: root, out: out, llbRef: tc.llb, dir: dir}, &log); err != nil {
				t.Fatalf("run: %v\n%s", err, log.String())
			}
			if got := tarFile(t, out, "hello.txt"); got != tc.want {
				t.Errorf("hello.txt = %q, want %q", got, tc.want)
			}
			if tc.llb != "" && tarFile(t, out, "src/Dockerfile") == "" {
				t.Error("the LLB result lacks the copied context")
			}
		})
	}
}

func tarFile(t *testing.T, file, name string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}
