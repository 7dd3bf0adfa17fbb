package exporter

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/snapshot"
)

// TestExportFilesystemLinksPerLayer: names that share an inode because
// the COPY fast path lent one file to two layers come out as separate
// files (issue 12 item 6); names linked within one layer stay linked,
// to the first name of that layer.
func TestExportFilesystemLinksPerLayer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	if f.sn.Kind() != snapshot.KindOverlay {
		t.Skip("the fast path, and so layers sharing inodes, needs overlayfs")
	}
	lower := f.commit(t, "", map[string]string{"one/a.txt": "shared\n"})
	lowerUpper, err := f.sn.UpperDir(ctx, lower)
	if err != nil {
		t.Fatal(err)
	}
	key := "build-links"
	if _, err := f.sn.Prepare(ctx, key, lower); err != nil {
		t.Fatal(err)
	}
	upper, err := f.sn.UpperDir(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// As the fast path does: the lower layer's file linked into this
	// layer's upper directory twice, and a file linked within the layer.
	if err := os.MkdirAll(filepath.Join(upper, "two"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{
		{filepath.Join(lowerUpper, "one/a.txt"), "two/a.txt"},
		{filepath.Join(lowerUpper, "one/a.txt"), "two/z.txt"},
	} {
		if err := os.Link(l[0], filepath.Join(upper, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(upper, "two/x"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(upper, "two/x"), filepath.Join(upper, "two/y")); err != nil {
		t.Fatal(err)
	}
	if err := f.sn.Commit(ctx, "kiln-r-links", key); err != nil {
		t.Fatal(err)
	}

	var w bufWriter
	e, err := NewFilesystem(f.writerDeps(&w), FilesystemOptions{Dest: "out"})
	if err != nil {
		t.Fatal(err)
	}
	res := Result{Images: []Image{f.image("kiln-r-links", ocispec.Platform{})}}
	res.Images[0].Ref = &fakeRef{id: "kiln-r-links"}
	if _, err := e.Export(ctx, res); err != nil {
		t.Fatal(err)
	}
	got := map[string]tarEntry{}
	for _, en := range readTar(t, w.Bytes()) {
		got[en.hdr.Name] = en
	}
	links := map[string]string{}
	for name, en := range got {
		if en.hdr.Typeflag == tar.TypeLink {
			links[name] = en.hdr.Linkname
		}
	}
	// Walk order: one/a.txt, two/a.txt, two/x, two/y, two/z.txt.
	want := map[string]string{"two/y": "two/x", "two/z.txt": "two/a.txt"}
	if len(links) != len(want) {
		t.Errorf("hard links %v, want %v", links, want)
	}
	for n, target := range want {
		if links[n] != target {
			t.Errorf("%s links to %q, want %q (all links: %v)", n, links[n], target, links)
		}
	}
	if en := got["two/a.txt"]; en.hdr == nil || en.hdr.Typeflag != tar.TypeReg || string(en.data) != "shared\n" {
		t.Errorf("two/a.txt = %+v %q, want a regular file with the shared content", en.hdr, en.data)
	}
}
