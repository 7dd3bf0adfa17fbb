package testutil

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testroot"
)

type tarEntry struct {
	hdr  *tar.Header
	body []byte
}

func layerEntries(t *testing.T, img v1.Image) ([]string, map[string]tarEntry) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	entries := map[string]tarEntry{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		entries[hdr.Name] = tarEntry{hdr: hdr, body: body}
	}
	return names, entries
}

func TestBusyboxImage(t *testing.T) {
	t.Parallel()
	bin, err := BusyboxBinary(hostArch())
	if errors.Is(err, errdefs.ErrNotFound) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	img, err := NewBusyboxImage(bin, HostPlatform())
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate: %v", err)
	}

	again, err := NewBusyboxImage(bin, HostPlatform())
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("digest not stable: %s then %s", d1, d2)
	}

	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("media type = %s, want OCI manifest", mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{DefaultPathEnv}, cf.Config.Env); diff != "" {
		t.Errorf("Env (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"sh"}, cf.Config.Cmd); diff != "" {
		t.Errorf("Cmd (-want +got):\n%s", diff)
	}
	if cf.OS != "linux" || cf.Architecture != hostArch() {
		t.Errorf("platform = %s/%s", cf.OS, cf.Architecture)
	}
	if len(cf.History) != 1 || !strings.Contains(cf.History[0].CreatedBy, "BusyBox v") {
		t.Errorf("history = %+v, want one entry naming the BusyBox version", cf.History)
	}
	if !cf.Created.Time.Equal(busyboxCreated) {
		t.Errorf("created = %v, want the fixed time", cf.Created)
	}

	names, entries := layerEntries(t, img)
	if !sort.StringsAreSorted(names) {
		t.Errorf("layer entries are not sorted")
	}
	for _, n := range names {
		if !entries[n].hdr.ModTime.Equal(busyboxCreated) {
			t.Errorf("%s: mtime %v, want the fixed time", n, entries[n].hdr.ModTime)
		}
	}
	checks := []struct {
		name     string
		typ      byte
		mode     int64
		linkname string
		contains string
	}{
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755},
		{name: "bin/sh", typ: tar.TypeSymlink, linkname: "busybox"},
		{name: "bin/echo", typ: tar.TypeSymlink, linkname: "busybox"},
		{name: "bin/cat", typ: tar.TypeSymlink, linkname: "busybox"},
		{name: "usr/bin/env", typ: tar.TypeSymlink, linkname: "../../bin/busybox"},
		{name: "sbin/ifconfig", typ: tar.TypeSymlink, linkname: "../bin/busybox"},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "root/", typ: tar.TypeDir, mode: 0o700},
		{name: "home/", typ: tar.TypeDir, mode: 0o755},
		{name: "var/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, contains: "nobody:x:65534:65534:"},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, contains: "root:x:0:0:"},
		{name: "etc/group", typ: tar.TypeReg, mode: 0o644, contains: "nogroup:x:65534:"},
	}
	for _, c := range checks {
		e, ok := entries[c.name]
		if !ok {
			t.Errorf("%s: missing from the layer", c.name)
			continue
		}
		if e.hdr.Typeflag != c.typ {
			t.Errorf("%s: type %c, want %c", c.name, e.hdr.Typeflag, c.typ)
		}
		if c.mode != 0 && e.hdr.Mode != c.mode {
			t.Errorf("%s: mode %o, want %o", c.name, e.hdr.Mode, c.mode)
		}
		if e.hdr.Linkname != c.linkname {
			t.Errorf("%s: link %q, want %q", c.name, e.hdr.Linkname, c.linkname)
		}
		if !strings.Contains(string(e.body), c.contains) {
			t.Errorf("%s: does not contain %q", c.name, c.contains)
		}
	}
	if _, ok := entries["etc/hosts"]; ok {
		t.Errorf("etc/hosts must not be in the image")
	}
	binBytes, _ := os.ReadFile(bin)
	if !bytes.Equal(entries["bin/busybox"].body, binBytes) {
		t.Errorf("bin/busybox differs from %s", bin)
	}
}

func TestBusyboxImageRuns(t *testing.T) {
	t.Parallel()
	testroot.Require(t, "chroot")
	img := BusyboxImage(t, HostPlatform())
	root := t.TempDir()
	_, entries := layerEntries(t, img)
	for name, e := range entries {
		p := filepath.Join(root, name)
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, e.body, os.FileMode(e.hdr.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(e.hdr.Linkname, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command("chroot", root, "/bin/sh", "-c", "echo hi from $(id -un) && env | sort | cat")
	cmd.Env = []string{DefaultPathEnv}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chroot sh: %v: %s", err, out)
	}
	if !strings.HasPrefix(string(out), "hi from root\n") {
		t.Errorf("output = %q", out)
	}
}

func TestBusyboxForeignArch(t *testing.T) {
	t.Parallel()
	arch := "arm64"
	if hostArch() == "arm64" {
		arch = "amd64"
	}
	img := BusyboxImage(t, v1.Platform{OS: "linux", Architecture: arch})
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != arch {
		t.Errorf("architecture = %q, want %q", cf.Architecture, arch)
	}
	_, entries := layerEntries(t, img)
	f, err := elf.NewFile(bytes.NewReader(entries["bin/busybox"].body))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{"arm64": elf.EM_AARCH64, "amd64": elf.EM_X86_64}[arch]
	if f.Machine != want {
		t.Errorf("bin/busybox is for %v, want %v", f.Machine, want)
	}
	if _, ok := entries["bin/sh"]; !ok {
		t.Errorf("no bin/sh applet link")
	}
}

func TestBusyboxIndex(t *testing.T) {
	t.Parallel()
	idx := BusyboxIndex(t)
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range m.Manifests {
		got = append(got, d.Platform.String())
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64/v8"}, got); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

func TestBusyboxBinaryMissing(t *testing.T) {
	t.Parallel()
	_, err := BusyboxBinary("kiln-no-such-arch")
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("err = %v, want not found", err)
	}
	if !strings.Contains(err.Error(), "apt-get download busybox-static:kiln-no-such-arch") {
		t.Errorf("error does not say how to get the binary: %v", err)
	}
}

func TestRelPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ dir, want string }{
		{".", "bin/busybox"},
		{"bin", "busybox"},
		{"sbin", "../bin/busybox"},
		{"usr/bin", "../../bin/busybox"},
	} {
		if got := relPath(tc.dir, "bin/busybox"); got != tc.want {
			t.Errorf("relPath(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

func TestExtractBusyboxDeb(t *testing.T) {
	t.Parallel()
	debs, _ := filepath.Glob(filepath.Join(KilnShareDir, "busybox-static*_arm64.deb"))
	if len(debs) == 0 {
		t.Skipf("skipping: no busybox-static arm64 .deb in %s", KilnShareDir)
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("skipping: no dpkg-deb")
	}
	got, err := extractBusyboxDeb(debs[0], "arm64")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("extracted binary is for %v", f.Machine)
	}
	// A second call reuses the extracted file.
	again, err := extractBusyboxDeb(debs[0], "arm64")
	if err != nil || again != got {
		t.Errorf("second extract = %q, %v; want %q", again, err, got)
	}
}
