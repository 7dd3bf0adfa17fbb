package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tarOf(t *testing.T, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func blobEntry(data string) [2]string {
	sum := sha256.Sum256([]byte(data))
	return [2]string{"blobs/sha256/" + hex.EncodeToString(sum[:]), data}
}

func TestExtractCache(t *testing.T) {
	dir := t.TempDir()
	blob := blobEntry("layer")
	if err := extractCache(dir, bytes.NewReader(tarOf(t, blob, [2]string{"oci-layout", "{}"}, [2]string{"index.json", `{"manifests":[]}`}))); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(blob[0]))); err != nil || string(b) != "layer" {
		t.Errorf("blob = %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "index.json")); string(b) != `{"manifests":[]}` {
		t.Errorf("index.json = %q", b)
	}
	// A second export replaces index.json and keeps the blobs.
	if err := extractCache(dir, bytes.NewReader(tarOf(t, blob, [2]string{"index.json", `{"manifests":[1]}`}))); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "index.json")); string(b) != `{"manifests":[1]}` {
		t.Errorf("index.json = %q", b)
	}

	for _, tt := range []struct {
		name  string
		entry [2]string
		want  string
	}{
		{"wrong content", [2]string{blobEntry("a")[0], "b"}, "does not match its name"},
		{"escape", [2]string{"../evil", "x"}, `unexpected entry "../evil"`},
		{"other file", [2]string{"blobs/sha256/../../etc/passwd", "x"}, "unexpected entry"},
		{"not a digest", [2]string{"blobs/sha256/abc", "x"}, "unexpected entry"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			err := extractCache(d, bytes.NewReader(tarOf(t, tt.entry)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("extractCache = %v, want %q", err, tt.want)
			}
			var files []string
			_ = filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					files = append(files, p)
				}
				return nil
			})
			if len(files) != 0 {
				t.Errorf("a refused entry left %v", files)
			}
		})
	}
}
