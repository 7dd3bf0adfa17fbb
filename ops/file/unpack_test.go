package file_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/graph"
)

// compressWith runs a compressor binary (bzip2, xz) on data.
func compressWith(t *testing.T, bin string, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		t.Skipf("%s not installed (Debian package %s)", bin, map[string]string{"bzip2": "bzip2", "xz": "xz-utils"}[bin])
	}
	cmd := exec.Command(bin, "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return out
}

func gzipped(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstded(t *testing.T, data []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(data, nil)
}

func TestUnpack(t *testing.T) {
	e := newEnv(t, kinds[0])
	archive := makeTar(t,
		tarEntry{name: "top/", typ: tar.TypeDir},
		tarEntry{name: "top/f.txt", body: "F"},
		tarEntry{name: "top/ln", link: "f.txt", typ: tar.TypeSymlink},
		tarEntry{name: "top/.wh.keep", body: "not a whiteout"},
	)
	// An archive whose o.txt has an owner.
	var ownedBuf bytes.Buffer
	tw := tar.NewWriter(&ownedBuf)
	_ = tw.WriteHeader(&tar.Header{Name: "o.txt", Mode: 0o640, Size: 1, Uid: 1234, Gid: 99, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("O"))
	_ = tw.Close()
	owned := ownedBuf.Bytes()
	e.context(
		rawFile("plain.tar", archive),
		rawFile("a.tgz", gzipped(t, archive)),
		rawFile("a.bz2", compressWith(t, "bzip2", archive)),
		rawFile("a.xz", compressWith(t, "xz", archive)),
		rawFile("a.zst", zstded(t, archive)),
		rawFile("fake.tar.gz", []byte("just text")),
		rawFile("text.gz", gzipped(t, []byte("compressed text"))),
		rawFile("owned.tar", owned),
	)
	base := e.base(wfile("etc/passwd", "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", 0o644))
	extracted := map[string]node{
		"out/top/f.txt":    reg(rw, root, "F"),
		"out/top/ln":       {Mode: "lrwxrwxrwx", Owner: root, Target: "f.txt"},
		"out/top/.wh.keep": reg(rw, root, "not a whiteout"),
	}
	add := func(src, dest string, mod ...func(*graph.CopyAction)) graph.FileAction {
		a := cp([]string{src}, dest, mod...)
		a.Copy.Unpack = true
		return a
	}
	cases := []struct {
		name   string
		action graph.FileAction
		want   map[string]node
		absent []string
	}{
		{"plain tar", add("plain.tar", "/out/"), extracted, []string{"out/plain.tar"}},
		{"gzip", add("a.tgz", "/out/"), extracted, nil},
		{"bzip2", add("a.bz2", "/out/"), extracted, nil},
		{"xz", add("a.xz", "/out/"), extracted, nil},
		{"zstd", add("a.zst", "/out/"), extracted, nil},
		{"destination without slash is a directory", add("a.tgz", "/out"), extracted, nil},
		{"not an archive despite its name", add("fake.tar.gz", "/out/"),
			map[string]node{"out/fake.tar.gz": reg(rw, root, "just text")}, nil},
		{"compressed file that is not a tar stays compressed", add("text.gz", "/out/"),
			map[string]node{"out/text.gz": reg(rw, root, string(gzipped(t, []byte("compressed text"))))}, nil},
		{"archive owners kept", add("owned.tar", "/out/"),
			map[string]node{"out/o.txt": reg("-rw-r-----", "1234:99", "O")}, nil},
		{"chown applies to extracted files", add("owned.tar", "/out/", chown("app", "")),
			map[string]node{"out/o.txt": reg("-rw-r-----", "1000:1000", "O"), "out": d(dir, "1000:1000")}, nil},
		{"COPY does not unpack", cp([]string{"plain.tar"}, "/out/"),
			map[string]node{"out/plain.tar": reg(rw, root, string(archive))}, []string{"out/top"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			checkTree(t, e.tree(e.mustRun(base, tc.action)), tc.want, tc.absent)
		})
	}
}
