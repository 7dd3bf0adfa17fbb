package exporter

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/snapshot"
)

func TestExportFilesystem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "docker.io/library/busybox")
	multi := f.multiResult(t)
	single := Result{Images: multi.Images[:1]}

	// A hard link in the top layer, to check link targets move with the
	// entries. (The tar holds the first name in walk order, arm-link.txt,
	// as the file and arm.txt as the link.)
	key := "build-link"
	if _, err := f.sn.Prepare(ctx, key, multi.Images[1].Ref.ID()); err != nil {
		t.Fatal(err)
	}
	err := snapshot.WithActive(ctx, f.sn, key, func(dir string) error {
		return os.Link(filepath.Join(dir, "app/arm.txt"), filepath.Join(dir, "app/arm-link.txt"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sn.Commit(ctx, "kiln-r-link", key); err != nil {
		t.Fatal(err)
	}
	multi.Images[1].Ref = &fakeRef{id: "kiln-r-link"}

	ctxDir := t.TempDir()
	if err := writeFiles(ctxDir, map[string]string{"ctx.txt": "from a directory\n", "sub/": ""}); err != nil {
		t.Fatal(err)
	}
	host := multi.Images[0].Platform
	tests := []struct {
		name    string
		typ     string
		attrs   map[string]string
		res     Result
		epoch   bool
		want    map[string]string // path → content ("" for non-files)
		absent  []string
		link    [2]string // hard link name → target
		entries int       // exact count, when set
	}{
		{name: "local", typ: TypeLocal, attrs: map[string]string{"dest": "out"}, res: single,
			want: map[string]string{"app/a.txt": "first layer\n", "app/b.txt": "second layer\n", "etc/passwd": "", "bin/busybox": ""}, absent: []string{"app/arm.txt"}},
		{name: "tar with epoch", typ: TypeTar, attrs: map[string]string{"dest": "-"}, res: single, epoch: true,
			want: map[string]string{"app/a.txt": "first layer\n"}},
		{name: "multi-platform subdirectories", typ: TypeLocal, attrs: map[string]string{"dest": "out"}, res: multi,
			want:   map[string]string{"linux_amd64/": "", "linux_arm64_v8/": "", "linux_amd64/app/b.txt": "second layer\n", "linux_arm64_v8/app/arm-link.txt": "arm\n"},
			absent: []string{"linux_amd64/app/arm.txt", "linux_arm64_v8/app/b.txt", "app/a.txt"},
			link:   [2]string{"linux_arm64_v8/app/arm.txt", "linux_arm64_v8/app/arm-link.txt"}},
		{name: "platform-split=false", typ: TypeTar, attrs: map[string]string{"dest": "-", "platform-split": "false"}, res: multi,
			want: map[string]string{"app/b.txt": "second layer\n", "app/arm-link.txt": "arm\n"}, link: [2]string{"app/arm.txt", "app/arm-link.txt"}},
		{name: "directory result", typ: TypeLocal, attrs: map[string]string{"dest": "out"}, res: Result{Images: []Image{{Platform: host, Ref: &dirRef{dir: ctxDir}}}},
			want: map[string]string{"ctx.txt": "from a directory\n", "sub/": ""}, entries: 2},
		{name: "empty result", typ: TypeTar, attrs: map[string]string{"dest": "-"}, res: Result{Images: []Image{{Platform: host}}}, entries: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w bufWriter
			deps := f.writerDeps(&w)
			if tc.epoch {
				deps.SourceDateEpoch = epochPtr(1_000_000_000)
			}
			e, err := parse(tc.typ, tc.attrs, deps)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Export(ctx, tc.res); err != nil {
				t.Fatal(err)
			}
			if !w.closed || w.err != nil {
				t.Fatalf("writer closed=%v err=%v", w.closed, w.err)
			}
			entries := readTar(t, w.Bytes())
			got := map[string]tarEntry{}
			for _, en := range entries {
				got[en.hdr.Name] = en
				if tc.epoch && en.hdr.ModTime.After(*deps.SourceDateEpoch) {
					t.Errorf("%s: time %v after the epoch", en.hdr.Name, en.hdr.ModTime)
				}
			}
			for p, data := range tc.want {
				en, ok := got[p]
				if !ok {
					t.Errorf("no %s in %v", p, entryNames(entries))
					continue
				}
				if data != "" && string(en.data) != data {
					t.Errorf("%s = %q, want %q", p, en.data, data)
				}
			}
			for _, p := range tc.absent {
				if _, ok := got[p]; ok {
					t.Errorf("%s should not be there", p)
				}
			}
			if tc.link[0] != "" {
				en := got[tc.link[0]]
				if en.hdr == nil || en.hdr.Typeflag != tar.TypeLink || en.hdr.Linkname != tc.link[1] {
					t.Errorf("%s: %+v, want a hard link to %s", tc.link[0], en.hdr, tc.link[1])
				}
			}
			if tc.entries > 0 || tc.want == nil {
				if len(entries) != tc.entries {
					t.Errorf("%d entries, want %d: %v", len(entries), tc.entries, entryNames(entries))
				}
			}
			for _, en := range entries {
				if strings.HasPrefix(en.hdr.Name, "/") || strings.Contains(en.hdr.Name, "..") {
					t.Errorf("entry name %q", en.hdr.Name)
				}
			}
		})
	}
}

func TestExportFilesystemMissingSnapshot(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "docker.io/library/busybox")
	var w bufWriter
	e, err := NewFilesystem(f.writerDeps(&w), FilesystemOptions{Dest: "out"})
	if err != nil {
		t.Fatal(err)
	}
	res := Result{Images: []Image{f.image("kiln-r-gone", ocispec.Platform{})}}
	_, err = e.Export(context.Background(), res)
	if err == nil || !strings.Contains(err.Error(), "kiln-r-gone") {
		t.Fatalf("Export error %v, want one naming the snapshot", err)
	}
	if !w.closed || w.err == nil {
		t.Errorf("the client stream was not closed with the error (closed=%v err=%v)", w.closed, w.err)
	}
}
