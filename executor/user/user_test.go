package user

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
)

const passwd = `root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
`

const group = `root:x:0:
staff:x:50:app
wheel:x:10:app,root
app:x:1000:
`

func rootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolve(t *testing.T) {
	t.Parallel()
	dir := rootfs(t, map[string]string{"etc/passwd": passwd, "etc/group": group})
	tests := []struct {
		spec string
		want User
	}{
		// The primary group comes first in AdditionalGIDs, as BuildKit
		// gives a step (issue 12 item 7).
		{"", User{UID: 0, GID: 0, AdditionalGIDs: []uint32{0, 10}, Home: "/root"}},
		{"root", User{UID: 0, GID: 0, AdditionalGIDs: []uint32{0, 10}, Home: "/root"}},
		{"app", User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{1000, 50, 10}, Home: "/home/app"}},
		{"1000", User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{1000, 50, 10}, Home: "/home/app"}},
		{"app:staff", User{UID: 1000, GID: 50, AdditionalGIDs: []uint32{50}, Home: "/home/app"}},
		{"1000:50", User{UID: 1000, GID: 50, AdditionalGIDs: []uint32{50}, Home: "/home/app"}},
		{"app:4243", User{UID: 1000, GID: 4243, AdditionalGIDs: []uint32{4243}, Home: "/home/app"}},
		{"4242", User{UID: 4242, GID: 0, AdditionalGIDs: []uint32{0}}},
		{"4242:4243", User{UID: 4242, GID: 4243, AdditionalGIDs: []uint32{4243}}},
		{"4242:staff", User{UID: 4242, GID: 50, AdditionalGIDs: []uint32{50}}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			got, err := Resolve(dir, tc.spec)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.spec, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Resolve(%q) (-want +got):\n%s", tc.spec, diff)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	dir := rootfs(t, map[string]string{"etc/passwd": passwd, "etc/group": group})
	tests := []struct {
		spec  string
		want  string // in the message
		class error
	}{
		{"nosuch", "unable to find user nosuch", errdefs.ErrNotFound},
		{"app:nogroup", "unable to find group nogroup", errdefs.ErrNotFound},
		{"99999999999", "uids and gids must be in range", errdefs.ErrInvalidArgument},
		{"1:99999999999", "uids and gids must be in range", errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			_, err := Resolve(dir, tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Resolve(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
			}
			if !errors.Is(err, tc.class) {
				t.Errorf("Resolve(%q) error %v is not %v", tc.spec, err, tc.class)
			}
		})
	}
}

func TestResolveWithoutFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	got, err := Resolve(dir, "1000:1000")
	if err != nil {
		t.Fatalf("numeric ids need no passwd: %v", err)
	}
	if diff := cmp.Diff(User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{1000}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := Resolve(dir, "app"); err == nil || !strings.Contains(err.Error(), "app") {
		t.Errorf("Resolve(app) without /etc/passwd = %v, want an error naming app", err)
	}
}

func TestResolveStaysInsideRoot(t *testing.T) {
	t.Parallel()
	// A passwd outside the root filesystem that a symlink tries to reach.
	outside := rootfs(t, map[string]string{"passwd": "evil:x:7:7::/:/bin/sh\n"})

	t.Run("relative symlink out", func(t *testing.T) {
		t.Parallel()
		dir := rootfs(t, map[string]string{"etc/group": group})
		rel := strings.Repeat("../", 20) + strings.TrimPrefix(outside, "/") + "/passwd"
		if err := os.Symlink(rel, filepath.Join(dir, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		if u, err := Resolve(dir, "evil"); err == nil {
			t.Fatalf("Resolve(evil) = %+v through a symlink out of the root", u)
		}
	})
	t.Run("absolute symlink out", func(t *testing.T) {
		t.Parallel()
		dir := rootfs(t, map[string]string{"etc/group": group})
		if err := os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(dir, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		if u, err := Resolve(dir, "evil"); err == nil {
			t.Fatalf("Resolve(evil) = %+v through a symlink out of the root", u)
		}
	})
	t.Run("absolute symlink inside", func(t *testing.T) {
		t.Parallel()
		dir := rootfs(t, map[string]string{"etc/group": group, "data/passwd": passwd})
		if err := os.Symlink("/data/passwd", filepath.Join(dir, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		u, err := Resolve(dir, "app")
		if err != nil || u.UID != 1000 {
			t.Fatalf("Resolve(app) = %+v, %v; want uid 1000 through /etc/passwd -> /data/passwd", u, err)
		}
	})
}

func TestResolveRejectsNonRegularFile(t *testing.T) {
	t.Parallel()
	dir := rootfs(t, map[string]string{"etc/group": group})
	// Reading a FIFO would block forever.
	if err := syscall.Mkfifo(filepath.Join(dir, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Resolve(dir, "app")
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Resolve with a FIFO passwd = %v, want \"not a regular file\"", err)
	}
}
