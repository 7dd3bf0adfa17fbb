package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// layoutTar returns an OCI layout of a random image as a tar stream, as
// kilnd sends it, and the image's manifest digest.
func layoutTar(t *testing.T) ([]byte, string) {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755})
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), d.String()
}

// entryTar is a tar stream of the given files.
func entryTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func env(attrs map[string]string) func(string) string {
	a, _ := json.Marshal(attrs)
	return func(k string) string {
		return map[string]string{"KILN_EXPORTER_VERSION": "1", "KILN_EXPORTER_NAME": "archive", "KILN_EXPORTER_ATTRS": string(a)}[k]
	}
}

func TestStoresLayout(t *testing.T) {
	stream, manifest := layoutTar(t)
	for _, tt := range []struct {
		name, dest string
	}{
		{name: "directory", dest: "app"},
		{name: "tarball", dest: "app.tar"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), tt.dest)
			var out bytes.Buffer
			if err := run(env(map[string]string{"dest": dest, "name": "app:1", "compression": "zstd", "annotation.org.x": "1"}), bytes.NewReader(stream), &out); err != nil {
				t.Fatal(err)
			}
			var resp map[string]string
			if err := json.Unmarshal(out.Bytes(), &resp); err != nil || resp["location"] != dest {
				t.Errorf("response %q (%v), want location %s", out.String(), err, dest)
			}
			dir := dest
			if strings.HasSuffix(dest, ".tar") {
				got, err := os.ReadFile(dest)
				if err != nil || !bytes.Equal(got, stream) {
					t.Fatalf("%s does not hold the stream (%v)", dest, err)
				}
				return
			}
			idx, err := layout.ImageIndexFromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != manifest {
				t.Fatalf("index %+v, want the manifest %s", im.Manifests, manifest)
			}
			img, err := idx.Image(im.Manifests[0].Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRefuses(t *testing.T) {
	stream, _ := layoutTar(t)
	const hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")
	layoutFiles := map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`, "index.json": `{}`}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range layoutFiles {
			m[a] = b
		}
		return m
	}
	tmp := t.TempDir()
	existing := filepath.Join(tmp, "exists")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		attrs  map[string]string
		stream []byte
		want   string
	}{
		{name: "no dest", attrs: map[string]string{}, stream: stream, want: `dest must be an absolute path on the daemon's machine, got "" (-o type=archive,dest=/srv/images/app)`},
		{name: "relative dest", attrs: map[string]string{"dest": "out"}, stream: stream, want: `dest must be an absolute path`},
		{name: "unknown attribute", attrs: map[string]string{"dest": "/x", "compress": "yes"}, stream: stream, want: `unknown attribute "compress" (valid: dest, and those of type=oci`},
		{name: "dest exists", attrs: map[string]string{"dest": existing}, stream: stream, want: "exists already"},
		{name: "blob with a wrong digest", stream: entryTar(t, with("blobs/sha256/"+hello, "bye")), want: "blob blobs/sha256/" + hello + " has digest sha256:"},
		{name: "entry outside the layout", stream: entryTar(t, with("../escape", "x")), want: `layout entry "../escape" is outside the layout`},
		{name: "no index.json", stream: entryTar(t, map[string]string{"oci-layout": "{}"}), want: "layout has no index.json"},
		{name: "not a tar stream", stream: []byte("not a tarball, not at all, no ........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................"), want: "read layout"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := tt.attrs
			dest := filepath.Join(tmp, "out"+string(rune('a'+i)))
			if attrs == nil {
				attrs = map[string]string{"dest": dest}
			}
			err := run(env(attrs), bytes.NewReader(tt.stream), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if _, err := os.Stat(dest); err == nil {
				t.Errorf("%s was made by a failed export", dest)
			}
		})
	}
	// Nothing half-written is left next to the destinations.
	left, _ := filepath.Glob(filepath.Join(tmp, ".exporter-plugin-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
