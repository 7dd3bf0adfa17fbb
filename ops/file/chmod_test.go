package file

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestParseChmod(t *testing.T) {
	cases := []struct {
		spec    string
		in      uint32
		isDir   bool
		want    uint32
		wantErr bool
	}{
		{spec: "0755", in: 0o600, want: 0o755},
		{spec: "644", in: 0o777, isDir: true, want: 0o644},
		{spec: "4755", in: 0o644, want: 0o4755},
		{spec: "u+x", in: 0o644, want: 0o744},
		{spec: "u+x,go-w", in: 0o666, want: 0o744},
		{spec: "go-rwx", in: 0o755, want: 0o700},
		{spec: "a+X", in: 0o644, want: 0o644},
		{spec: "a+X", in: 0o644, isDir: true, want: 0o755},
		{spec: "a+X", in: 0o744, want: 0o755},
		{spec: "+x", in: 0o644, want: 0o755},
		{spec: "u=rw,g=r,o=r", in: 0o777, want: 0o644},
		{spec: "a=", in: 0o777, want: 0},
		{spec: "g=u", in: 0o750, want: 0o770},
		{spec: "o=g", in: 0o751, want: 0o755},
		{spec: "u+s,g+s", in: 0o755, want: 0o6755},
		{spec: "+t", in: 0o777, isDir: true, want: 0o1777},
		{spec: "u+t", in: 0o777, want: 0o777},
		{spec: "u+x-w", in: 0o644, want: 0o544},
		{spec: "ug+rw,o=", in: 0o604, want: 0o660},
		{spec: "", wantErr: true},
		{spec: "0788", wantErr: true},
		{spec: "01234567", wantErr: true},
		{spec: "u", wantErr: true},
		{spec: "u+q", wantErr: true},
		{spec: "x+r", wantErr: true},
		{spec: "u+x,", wantErr: true},
		{spec: "g=uo", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%o/dir=%v", tc.spec, tc.in, tc.isDir), func(t *testing.T) {
			f, err := parseChmod(tc.spec)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseChmod(%q) = nil error, want one", tc.spec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f(tc.in, tc.isDir); got != tc.want {
				t.Errorf("parseChmod(%q)(%o, dir=%v) = %o, want %o", tc.spec, tc.in, tc.isDir, got, tc.want)
			}
		})
	}
}

func TestCleanRel(t *testing.T) {
	cases := []struct {
		in, want string
		escape   bool
	}{
		{"a.txt", "a.txt", false},
		{"/a/b/", "a/b", false},
		{"./a/./b", "a/b", false},
		{".", "", false},
		{"/", "", false},
		{"", "", false},
		{"a/../b", "b", false},
		{"..", "", true},
		{"../x", "", true},
		{"/../x", "", true},
		{"a/../../x", "", true},
	}
	for _, tc := range cases {
		got, err := cleanRel(tc.in)
		if tc.escape {
			if !errors.Is(err, errEscape) {
				t.Errorf("cleanRel(%q) = %q, %v; want an escape error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("cleanRel(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestResolveStrict(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"dir", "dir2"} {
		if err := os.Mkdir(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "dir/f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"in": "dir", "dir2/up": "../dir/f", "abs": "/etc", "dir/out": "../..",
		"loop1": "loop2", "loop2": "loop1", "dangling": "missing/x",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		rel, want string
		err       error
	}{
		{"dir/f", "dir/f", nil},
		{"in/f", "dir/f", nil},
		{"dir2/up", "dir/f", nil},
		{"in/../dir/f", "dir/f", nil},
		{"nope/../x", "x", nil},
		{"dangling", "missing/x", nil},
		{"abs", "", errEscape},
		{"abs/passwd", "", errEscape},
		{"dir/out", "", errEscape},
		{"dir/out/etc", "", errEscape},
		{"..", "", errEscape},
	}
	for _, tc := range cases {
		got, err := resolveStrict(root, tc.rel)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("resolveStrict(%q) = %q, %v; want %v", tc.rel, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("resolveStrict(%q) = %q, %v; want %q", tc.rel, got, err, tc.want)
		}
	}
	if _, err := resolveStrict(root, "loop1"); err == nil {
		t.Error("resolveStrict of a link loop: no error")
	}
	// The chroot resolver keeps everything inside.
	got, err := resolveChroot(root, "abs/passwd")
	if err != nil || got != "etc/passwd" {
		t.Errorf("resolveChroot(abs/passwd) = %q, %v; want etc/passwd", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, got)); !os.IsNotExist(err) {
		t.Errorf("resolveChroot result exists unexpectedly: %v", err)
	}
}

func TestIsTarHeader(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "x", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	archive := buf.Bytes()
	if !isTarHeader(archive[:512]) {
		t.Error("a tar header is not recognized")
	}
	bad := append([]byte(nil), archive[:512]...)
	bad[0] ^= 0xff
	if isTarHeader(bad) {
		t.Error("a header with a wrong checksum is recognized")
	}
	if isTarHeader(make([]byte, 512)) || isTarHeader([]byte("short")) {
		t.Error("zeros or short input recognized as a tar header")
	}
}

func TestSplitPivot(t *testing.T) {
	for in, want := range map[string][2]string{
		"a/b/c":     {"", "a/b/c"},
		"a/./b/c":   {"a", "b/c"},
		"./a/b":     {"", "a/b"},
		"x/./y/./z": {"x/./y", "z"},
	} {
		p, k := splitPivot(in)
		if p != want[0] || k != want[1] {
			t.Errorf("splitPivot(%q) = %q, %q; want %q, %q", in, p, k, want[0], want[1])
		}
	}
}
