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

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testroot"
	"github.com/kiln-build/kiln/internal/testutil"
)

// The example builds a Dockerfile and an LLB definition in process.
func TestEmbed(t *testing.T) {
	dir, base := fixture(t, "RUN echo from a Dockerfile > /hello.txt\n")
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

// The example's own cache type, registered through engine.Options only:
// one build exports its steps to a directory, a daemon with an empty root
// takes them from there.
func TestEmbedDirCache(t *testing.T) {
	dir, _ := fixture(t, "RUN echo cached in a directory > /hello.txt\n")
	cacheDir, empty := t.TempDir(), t.TempDir()
	// Each step is a build on a root of its own, so only the cache
	// directory can carry a step from one to the next.
	tests := []struct {
		name          string
		cacheTo, from string
		wantCached    bool
	}{
		{name: "export", cacheTo: cacheDir},
		{name: "import", from: cacheDir, wantCached: true},
		{name: "import and export again", from: cacheDir, cacheTo: cacheDir, wantCached: true},
		{name: "import from an empty directory", from: empty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.tar")
			var log strings.Builder
			o := options{root: t.TempDir(), out: out, dir: dir, cacheTo: tc.cacheTo, cacheFrom: tc.from}
			if err := run(context.Background(), o, &log); err != nil {
				t.Fatalf("run: %v\n%s", err, log.String())
			}
			if got := tarFile(t, out, "hello.txt"); got != "cached in a directory\n" {
				t.Errorf("hello.txt = %q", got)
			}
			cached := strings.Contains(log.String(), "CACHED (dir) [2/2] RUN")
			if cached != tc.wantCached {
				t.Errorf("RUN cached from the directory: %v, want %v\n%s", cached, tc.wantCached, log.String())
			}
			if tc.cacheTo != "" {
				if _, err := os.Stat(filepath.Join(tc.cacheTo, "records.json")); err != nil {
					t.Errorf("the export wrote no records: %v", err)
				}
			}
		})
	}
}

// The backend checks its own attributes; the engine names it among the
// valid types.
func TestDirBackendAttrs(t *testing.T) {
	t.Parallel()
	backends := remote.Backends{DirType: dirBackend()}
	tests := []struct {
		name   string
		export bool
		typ    string
		attrs  map[string]string
		want   string
	}{
		{name: "export", export: true, typ: "dir", attrs: map[string]string{"dest": "/c", "mode": "max"}},
		{name: "import", typ: "dir", attrs: map[string]string{"src": "/c"}},
		{name: "relative", export: true, typ: "dir", attrs: map[string]string{"dest": "c"}, want: "--cache-to type=dir: dest=c: want an absolute directory"},
		{name: "missing", typ: "dir", want: "--cache-from type=dir: src is required (src=DIRECTORY)"},
		{name: "mode on import", typ: "dir", attrs: map[string]string{"src": "/c", "mode": "max"}, want: `--cache-from type=dir: unknown attribute "mode" (valid: src)`},
		{name: "bad mode", export: true, typ: "dir", attrs: map[string]string{"dest": "/c", "mode": "all"}, want: "--cache-to type=dir: mode=all: want min or max"},
		{name: "unknown type", export: true, typ: "registry", want: `--cache-to: unknown cache type "registry" (valid types: dir)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.export {
				_, err = backends.ParseExport(tc.typ, tc.attrs)
			} else {
				_, err = backends.ParseImport(tc.typ, tc.attrs)
			}
			if tc.want == "" {
				if err != nil {
					t.Errorf("parse: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want || !errdefs.IsInvalidArgument(err) {
				t.Errorf("parse = %v, want %s", err, tc.want)
			}
		})
	}
}

// fixture skips a test that cannot run builds, pushes busybox to a test
// registry and writes a context whose Dockerfile is FROM it, then rest.
func fixture(t *testing.T, rest string) (dir, base string) {
	t.Helper()
	testroot.RequireSlow(t, "runs real builds")
	host := testutil.StartRegistry(t)
	base = host + "/library/busybox:latest"
	testutil.PushImage(t, base, testutil.BusyboxImage(t, testutil.HostPlatform()))
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\n"+rest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, base
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
