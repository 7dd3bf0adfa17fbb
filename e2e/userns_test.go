package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testutil"
)

// [rootless] enabled: RUN steps run as root in a user namespace, an
// unprivileged user on the host, and the image keeps the ids the steps
// saw (a layer made that way is the same as one made without it).
func TestRunInUserNamespace(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		var ma, mi int
		if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err == nil && (ma < 5 || ma == 5 && mi < 19) {
			t.Skipf("skipping: steps in a user namespace need Linux 5.19, this is %d.%d", ma, mi)
		}
	}
	kilnd, kiln := binaries(t)
	reg := testutil.StartDistribution(t, testutil.DistributionOptions{})
	testutil.PushImage(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t, testutil.HostPlatform()), reg.RemoteOptions()...)
	// The steps' root must pass through the directories down to kilnd's
	// root (t.TempDir's are private).
	for d := os.TempDir(); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("skipping: %s (mode %o) is not traversable by the steps' root", d, fi.Mode().Perm())
		}
		if d == "/" || d == "." {
			break
		}
	}
	base, err := os.MkdirTemp("", "kiln-userns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	e := &bldEnv{t: t, kiln: kiln, kilnd: kilnd, reg: reg, root: filepath.Join(base, "root")}
	e.cfg = fmt.Sprintf("[worker.oci]\nmax-parallelism = 2\n[registry.\"docker.io\"]\nmirrors = [%q]\n[registry.%q]\nhttp = true\n[rootless]\nenabled = true\nuid-map = \"0:100000:65536\"\ngid-map = \"0:100000:65536\"\n", reg.Host, reg.Host)
	e.start()

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.txt": "app\n",
		"tok":     "s3cret",
		"Dockerfile": `FROM busybox
RUN id -u > /uid && cat /proc/self/uid_map > /map && echo made > /made
COPY --chown=1000:1000 app.txt /home/app/app.txt
RUN --mount=type=cache,target=/cache echo cached > /cache/c && cp /cache/c /from-cache
RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" = s3cret && echo ok > /secret-ok
RUN --mount=type=bind,source=app.txt,target=/mnt/app.txt cp /mnt/app.txt /bound
USER 1000:1000
WORKDIR /home/app/work
RUN id -u > uid && cat ../app.txt > copy
`,
	})
	out := filepath.Join(t.TempDir(), "image.tar")
	if r := e.build(dir, "--secret", "id=tok,src="+filepath.Join(dir, "tok"), "-o", "type=tar,dest="+out); r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.stderr)
	}
	files, owners := readTar(t, out)
	if files["uid"] != "0\n" || strings.Join(strings.Fields(files["map"]), " ") != "0 100000 65536" {
		t.Errorf("RUN as root saw uid %q, map %q; want 0 mapped to host 100000", files["uid"], files["map"])
	}
	if files["secret-ok"] != "ok\n" || files["bound"] != "app\n" {
		t.Errorf("secret mount: %q, bind mount of the context: %q", files["secret-ok"], files["bound"])
	}
	if files["from-cache"] != "cached\n" {
		t.Errorf("/from-cache = %q: the cache mount was not writable", files["from-cache"])
	}
	if files["home/app/work/uid"] != "1000\n" || files["home/app/work/copy"] != "app\n" {
		t.Errorf("USER 1000: uid %q, copy %q", files["home/app/work/uid"], files["home/app/work/copy"])
	}
	for name, want := range map[string]string{"made": "0:0", "home/app/app.txt": "1000:1000", "home/app/work/uid": "1000:1000", "home/app/work": "1000:1000"} {
		if owners[name] != want {
			t.Errorf("%s is owned by %q in the result, want %s", name, owners[name], want)
		}
	}
}

// readTar returns the regular files of a tar and every entry's uid:gid.
func readTar(t *testing.T, path string) (map[string]string, map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	files, owners := map[string]string{}, map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/"), "/")
		owners[name] = fmt.Sprintf("%d:%d", h.Uid, h.Gid)
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[name] = string(b)
		}
	}
	return files, owners
}
