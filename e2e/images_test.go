package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestImagesBuildRun is the user's path: import a base image, build on it,
// run the result, and manage the local store.
func TestImagesBuildRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.importBusybox()

	r := e.ok("images")
	if !strings.Contains(r.stdout, "REPOSITORY") || !strings.Contains(r.stdout, "busybox") || !strings.Contains(r.stdout, "linux/") {
		t.Errorf("kiln images after import:\n%s", r.stdout)
	}

	// The product brief's example.
	example, err := filepath.Abs(filepath.Join("..", "examples", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	e.ok("build", "--progress", "plain", "-t", "my-hello-app", example)
	r = e.ok("run", "my-hello-app")
	if r.stdout != "Hello, Kiln!\n" || r.stderr != "" {
		t.Errorf("kiln run my-hello-app: want stdout %q and no stderr; got %s", "Hello, Kiln!\n", r)
	}

	// A richer one: COPY, RUN, WORKDIR and CMD.
	e.buildHello("hello-app")
	r = e.ok("run", "hello-app")
	if r.stdout != "Hello, Kiln!\n" {
		t.Errorf("kiln run hello-app: stdout %q, want %q\n%s", r.stdout, "Hello, Kiln!\n", r)
	}

	t.Run("list", func(t *testing.T) {
		r := e.ok("image", "ls", "--format", "json")
		var names []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var row struct {
				Name            string
				Repository, Tag string
				Digest          string
				Platforms       []string
				Size            int64
			}
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatalf("kiln image ls --format json line %q: %v", line, err)
			}
			if !strings.HasPrefix(row.Digest, "sha256:") || row.Size <= 0 || len(row.Platforms) != 1 {
				t.Errorf("image row %+v", row)
			}
			names = append(names, row.Repository+":"+row.Tag)
		}
		if strings.Join(names, ",") != "busybox:latest,hello-app:latest,my-hello-app:latest" {
			t.Errorf("images %v", names)
		}
	})

	t.Run("run", func(t *testing.T) {
		tests := []struct {
			name   string
			stdin  []byte
			args   []string
			code   int
			stdout string
			stderr string // substring
		}{
			{name: "exit code", args: []string{"hello-app", "sh", "-c", "echo out; echo err >&2; exit 3"}, code: 3, stdout: "out\n", stderr: "err\n"},
			{name: "image workdir and env", args: []string{"-e", "GREETING=hi", "hello-app", "sh", "-c", `echo "$GREETING from $PWD, $(cat built.txt)"`}, stdout: "hi from /app, built by kiln\n"},
			{name: "flags override", args: []string{"--workdir", "/tmp", "--user", "nobody", "hello-app", "sh", "-c", "pwd; id -un"}, stdout: "/tmp\nnobody\n"},
			{name: "entrypoint", args: []string{"--entrypoint", "/bin/echo", "hello-app", "a", "b"}, stdout: "a b\n"},
			{name: "network none", args: []string{"--network", "none", "busybox", "sh", "-c", "ls /sys/class/net"}, stdout: "lo\n"},
			{name: "stdin", stdin: []byte("piped\n"), args: []string{"-i", "busybox", "cat"}, stdout: "piped\n"},
			{name: "filesystem is fresh", args: []string{"hello-app", "sh", "-c", "test ! -e /left-over && touch /left-over"}},
			{name: "filesystem is fresh again", args: []string{"hello-app", "sh", "-c", "test ! -e /left-over"}},
			{name: "unknown image", args: []string{"no-such-image"}, code: 1, stderr: `error: image "no-such-image:latest" not found in kilnd's image store (kiln images lists them)`},
			{name: "missing command", args: []string{"hello-app", "/no/such/binary"}, code: 127, stderr: "error: run hello-app:latest: "},
			{name: "not executable", args: []string{"hello-app", "/etc/passwd"}, code: 126, stderr: "permission denied"},
			{name: "unknown user", args: []string{"--user", "nosuchuser", "hello-app", "id"}, code: 126, stderr: "nosuchuser"},
			{name: "bad network", args: []string{"--network", "bridge", "busybox"}, code: 1, stderr: `--network "bridge"`},
			{name: "relative workdir", args: []string{"--workdir", "tmp", "busybox"}, code: 1, stderr: "absolute path"},
			{name: "no image", args: nil, code: 1, stderr: "kiln run takes at least 1 argument(s)"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := e.run(tc.stdin, append([]string{"run"}, tc.args...)...)
				if r.code != tc.code || (tc.stdout != "" && r.stdout != tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
					t.Errorf("kiln run %s: want exit %d, stdout %q, stderr containing %q; got %s",
						strings.Join(tc.args, " "), tc.code, tc.stdout, tc.stderr, r)
				}
			})
		}
	})

	t.Run("tag inspect rm", func(t *testing.T) {
		e.ok("image", "tag", "hello-app", "hello:v1")
		r := e.ok("image", "inspect", "hello:v1")
		var got []struct {
			Name     string
			Digest   string
			Manifest struct{ Layers []any }
			Config   struct {
				Architecture string
				Config       struct{ Cmd []string }
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("inspect output: %v\n%s", err, r.stdout)
		}
		if len(got) != 1 || got[0].Name != "hello:v1" || strings.Join(got[0].Config.Config.Cmd, " ") != "cat hello.txt" ||
			len(got[0].Manifest.Layers) < 3 || got[0].Config.Architecture == "" {
			t.Errorf("inspect hello:v1 = %+v", got)
		}
		r = e.ok("image", "inspect", "--format", "{{index .Config.config.Cmd 0}}", "hello:v1")
		if r.stdout != "cat\n" {
			t.Errorf("inspect --format: %q", r.stdout)
		}
		r = e.ok("run", "hello:v1")
		if r.stdout != "Hello, Kiln!\n" {
			t.Errorf("run hello:v1: %s", r)
		}
		r = e.run(nil, "image", "rm", "hello:v1", "nope")
		if r.code != 1 || !strings.Contains(r.stdout, "Untagged: hello:v1") || !strings.Contains(r.stderr, `error: image "nope:latest" not found in kilnd's image store`) {
			t.Errorf("kiln image rm hello:v1 nope: %s", r)
		}
		e.fails(1, `image "hello:v1" not found in kilnd's image store`, "run", "hello:v1")
		e.fails(1, `image "hello:v1" not found`, "image", "inspect", "hello:v1")
		e.fails(1, `image "ghost:latest" not found`, "image", "tag", "ghost", "x")
		e.fails(1, "invalid", "image", "tag", "hello-app", "UPPER:case")
		e.fails(1, "takes 2 argument(s) (SOURCE TARGET), got 1", "image", "tag", "hello-app")
		// hello-app is unharmed by the removal of another name.
		if r := e.ok("run", "hello-app"); r.stdout != "Hello, Kiln!\n" {
			t.Errorf("run after rm of another name: %s", r)
		}
	})

	t.Run("save and import", func(t *testing.T) {
		dir := t.TempDir()
		ociTar := filepath.Join(dir, "hello-oci.tar")
		dockerTar := filepath.Join(dir, "hello-docker.tar")
		e.ok("image", "save", "hello-app", "-o", ociTar)
		e.ok("image", "save", "--format", "docker", "-o", dockerTar, "hello-app")

		// The OCI layout, unpacked, is a valid image.
		layoutDir := filepath.Join(dir, "layout")
		untar(t, ociTar, layoutDir)
		idx, err := layout.ImageIndexFromPath(layoutDir)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].Annotations["io.containerd.image.name"] != "docker.io/library/hello-app:latest" {
			t.Fatalf("index.json manifests: %+v", im.Manifests)
		}
		img, err := idx.Image(im.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("saved OCI image: %v", err)
		}

		// The docker archive loads with go-containerregistry's tarball reader.
		tag, _ := name.NewTag("hello-app:latest")
		dimg, err := tarball.ImageFromPath(dockerTar, &tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(dimg); err != nil {
			t.Errorf("saved docker image: %v", err)
		}
		// (the tarball reader makes a manifest of its own: compare configs)
		c1, _ := img.ConfigName()
		c2, _ := dimg.ConfigName()
		if c1 != c2 {
			t.Errorf("the two saves hold different images: configs %s and %s", c1, c2)
		}

		// Both load back: by the name in the archive, or as another name.
		e.ok("image", "import", dockerTar, "from-docker")
		if r := e.ok("run", "from-docker"); r.stdout != "Hello, Kiln!\n" {
			t.Errorf("run from-docker: %s", r)
		}
		data, err := os.ReadFile(ociTar)
		if err != nil {
			t.Fatal(err)
		}
		r := e.run(data, "image", "import", "-", "from-stdin")
		if r.code != 0 || !strings.Contains(r.stdout, "Loaded image: from-stdin:latest") {
			t.Errorf("import from stdin: %s", r)
		}

		// Saving to a terminal or an unknown image fails clearly.
		e.fails(1, `image "ghost:latest" not found in kilnd's image store`, "image", "save", "ghost", "-o", filepath.Join(dir, "x.tar"))
		if _, err := os.Stat(filepath.Join(dir, "x.tar")); !os.IsNotExist(err) {
			t.Errorf("a failed save left its file (%v)", err)
		}
		e.fails(1, `--format "zip"`, "image", "save", "--format", "zip", "hello-app", "-o", filepath.Join(dir, "y.tar"))
	})

	t.Run("import rootfs", func(t *testing.T) {
		dir := t.TempDir()
		rootfs := filepath.Join(dir, "rootfs.tar.gz")
		writeRootfs(t, rootfs, e.busy)
		r := e.ok("image", "import", "-m", "my rootfs", rootfs, "my-rootfs:1")
		if !strings.Contains(r.stdout, "Loaded image: my-rootfs:1") {
			t.Errorf("import rootfs: %s", r)
		}
		if r := e.ok("run", "my-rootfs:1", "/bin/sh", "-c", "cat /greeting"); r.stdout != "from a rootfs\n" {
			t.Errorf("run my-rootfs:1: %s", r)
		}
		// No CMD in a rootfs image.
		e.fails(1, "has no command to run", "run", "my-rootfs:1")
		r = e.ok("image", "inspect", "--format", "{{.Config.os}} {{(index .Config.history 0).comment}}", "my-rootfs:1")
		if r.stdout != "linux my rootfs\n" {
			t.Errorf("rootfs config: %q", r.stdout)
		}

		e.fails(1, "the image needs a name: kiln image import rootfs.tar.gz NAME", "image", "import", rootfs)
		junk := filepath.Join(dir, "junk.tar")
		if err := os.WriteFile(junk, bytes.Repeat([]byte("not a tarball "), 200), 0o644); err != nil {
			t.Fatal(err)
		}
		e.fails(1, "import junk.tar: not a tar archive", "image", "import", junk, "junk")
		e.fails(1, "no such file or directory", "image", "import", filepath.Join(dir, "missing.tar"))
		empty := filepath.Join(dir, "empty.tar")
		if err := os.WriteFile(empty, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		e.fails(1, "the file is empty", "image", "import", empty, "x")
	})
}

// untar extracts the regular files and directories of a tarball.
func untar(t *testing.T, file, dir string) {
	t.Helper()
	if err := untarPlain(file, dir); err != nil {
		t.Fatal(err)
	}
}

// writeRootfs writes a gzipped root filesystem tarball: the busybox
// fixture's layer plus /greeting.
func writeRootfs(t *testing.T, file, busyboxTar string) {
	t.Helper()
	tag, _ := name.NewTag("busybox:latest")
	img, err := tarball.ImageFromPath(busyboxTar, &tag)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("busybox layers: %v (%d)", err, len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	greeting := []byte("from a rootfs\n")
	if err := tw.WriteHeader(&tar.Header{Name: "greeting", Mode: 0o644, Size: int64(len(greeting)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(greeting); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
