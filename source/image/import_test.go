package image

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/internal/testutil"
)

// tarDir writes dir as a tar file and returns its path. skip leaves out
// files whose relative path it returns true for; extra adds files.
func tarDir(t *testing.T, dir string, skip func(string) bool, extra map[string]string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "archive.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if skip != nil && skip(rel) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "./" + rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for n, s := range extra {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(s)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ociLayout writes an OCI layout holding img (named by the containerd
// annotation) and idx (named by the OCI ref annotation).
func ociLayout(t *testing.T, img v1.Image, imgName string, idx v1.ImageIndex, idxName string) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if img != nil {
		var opts []layout.Option
		if imgName != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{annotationContainerdName: imgName, annotationRefName: "1"}))
		}
		if err := p.AppendImage(img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	if idx != nil {
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: idxName})); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(imgs []imagestore.Image) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Name)
	}
	return out
}

func TestImportArchive(t *testing.T) {
	t.Parallel()
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	idx := testutil.BusyboxIndex(t)
	byArch := platformImages(t, idx)

	t.Run("oci layout", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		dir := ociLayout(t, img, "docker.io/library/imported:1", idx, "reg.local:5000/multi:2")
		got, err := e.p.ImportArchive(t.Context(), tarDir(t, dir, nil, nil), "")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"docker.io/library/imported:1", "reg.local:5000/multi:2"}, names(got)); diff != "" {
			t.Errorf("imported (-want +got):\n%s", diff)
		}
		res, err := e.p.ResolveImageConfig(t.Context(), "reg.local:5000/multi:2", arm64)
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != imageDigest(t, byArch["arm64"]) {
			t.Errorf("resolved %s, want the arm64 image", res.Digest)
		}
		if os.Geteuid() == 0 {
			pulled, err := e.p.Pull(t.Context(), "imported:1", amd64)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := readFile(t, e, pulled.ChainID, "bin/busybox"); err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("oci layout named by the caller", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		dir := ociLayout(t, img, "", nil, "")
		got, err := e.p.ImportArchive(t.Context(), tarDir(t, dir, nil, nil), "given:3")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"docker.io/library/given:3"}, names(got)); diff != "" {
			t.Errorf("imported (-want +got):\n%s", diff)
		}
		if got[0].Target.Digest != imageDigest(t, img) || got[0].Target.MediaType != string(types.OCIManifestSchema1) {
			t.Errorf("target %+v", got[0].Target)
		}
	})
	t.Run("docker save", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		out := filepath.Join(t.TempDir(), "save.tar")
		tag1, _ := name.NewTag("saved:1")
		tag2, _ := name.NewTag("other/saved:2")
		if err := tarball.MultiRefWriteToFile(out, map[name.Reference]v1.Image{tag1: img, tag2: img}); err != nil {
			t.Fatal(err)
		}
		got, err := e.p.ImportArchive(t.Context(), out, "")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"docker.io/library/saved:1", "docker.io/other/saved:2"}
		if diff := cmp.Diff(want, names(got), sortStrings); diff != "" {
			t.Errorf("imported (-want +got):\n%s", diff)
		}
		res, err := e.p.ResolveImageConfig(t.Context(), "saved:1", amd64)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Config) != string(rawConfig(t, img)) {
			t.Error("the saved image's config changed on import")
		}
	})
}

func TestImportArchiveErrors(t *testing.T) {
	t.Parallel()
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	named := ociLayout(t, img, "app:1", nil, "")
	unnamed := ociLayout(t, img, "", nil, "")
	wrong := digest.FromString("not these bytes")
	empty := tarDir(t, t.TempDir(), nil, map[string]string{"hello.txt": "hi"})

	tests := []struct {
		name  string
		path  string
		as    string
		class error
		msg   string
	}{
		{"not an archive", empty, "", errdefs.ErrInvalidArgument, "not an OCI layout or docker save archive"},
		{"missing layer", tarDir(t, named, func(p string) bool { return strings.HasSuffix(p, ld.Hex) }, nil), "", errdefs.ErrInvalidArgument, "the archive lacks blob " + ld.String()},
		{"corrupt blob", tarDir(t, named, nil, map[string]string{"blobs/sha256/" + wrong.Encoded(): "other bytes"}), "", errdefs.ErrFailedPrecondition, "blobs/sha256/" + wrong.Encoded()},
		{"unnamed", tarDir(t, unnamed, nil, nil), "", errdefs.ErrInvalidArgument, "has no name: give one"},
		{"bad name", tarDir(t, named, nil, nil), "Bad:Name", errdefs.ErrInvalidArgument, "invalid image reference"},
		{"missing file", filepath.Join(t.TempDir(), "nothere.tar"), "", fs.ErrNotExist, "nothere.tar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			_, err := e.p.ImportArchive(t.Context(), tt.path, tt.as)
			t.Log(err)
			if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want class %v containing %q", err, tt.class, tt.msg)
			}
			if imgs, _ := e.images.List(t.Context()); len(imgs) != 0 {
				t.Errorf("a failed import stored %v", names(imgs))
			}
		})
	}
}

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })
