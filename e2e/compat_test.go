package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/tools/txtar"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestCompat builds every case of testdata/compat with kilnd and compares
// the result, dumped as compat_dump_test.go describes, with the golden
// file BuildKit's result gave. hack/compat.sh regenerates the goldens: it
// runs this test with KILN_COMPAT_BUILDKIT set to a buildkitd address and
// KILN_COMPAT_BUILDCTL to a buildctl binary, which then builds each case
// with BuildKit and writes its dump instead of comparing.
//
// A case is a txtar archive: its comment holds options ("build-arg: K=V",
// "target: NAME", "local: true" to also dump a type=local output, and the
// deliberate differences below), its files are the build
// context (the Dockerfile included), and a file named "[setup]" lists what
// a text archive cannot say, one per line:
//
//	dir PATH [MODE]        an (empty) directory
//	mode PATH MODE         chmod (octal)
//	owner PATH UID:GID     lchown
//	symlink PATH TARGET
//	hardlink PATH EXISTING
//	fifo PATH
//	mtime PATH UNIXTIME    instead of the context's fixed time
//	tar FILE DIR           a tarball (gzipped if FILE ends in .gz) of the
//	                       files named "@archive/DIR/..." in the case
//
// Files named "@http/PATH" are served over HTTP on 127.0.0.1 (modified at
// the context's time); the build gets their base URL as the build
// argument HTTP, and the dump shows it as "http://HTTP".
//
// Where Kiln differs from BuildKit on purpose, the case says so and why
// (the golden stays BuildKit's):
//
//	ignore: REGEXP         lines matching are left out of both dumps
//	kiln-fails: REASON     Kiln refuses the build that BuildKit accepts
func TestCompat(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "compat", "*.txtar"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no compat cases: %v", err)
	}
	var b compatBuilder
	if addr := os.Getenv("KILN_COMPAT_BUILDKIT"); addr != "" {
		b = newBuildctlBuilder(t, addr, os.Getenv("KILN_COMPAT_BUILDCTL"))
	} else {
		b = &kilnBuilder{e: newBldEnv(t)}
	}
	base, err := newBaseInfo(testutil.BusyboxImage(t, testutil.HostPlatform()))
	if err != nil {
		t.Fatal(err)
	}
	web := newCompatWeb(t)
	t.Run("case", func(t *testing.T) {
		for _, file := range cases {
			name := strings.TrimSuffix(filepath.Base(file), ".txtar")
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := loadCompatCase(t, file)
				web.serve(c)
				got, log := c.run(t, b, base)
				golden := strings.TrimSuffix(file, ".txtar") + ".golden"
				if b.updates() {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("no golden for %s (run hack/compat.sh): %v", name, err)
				}
				if c.opts.kilnFails != "" {
					if got != "build fails\n" {
						t.Errorf("%s: the build succeeded; Kiln must refuse it (%s)", file, c.opts.kilnFails)
					}
					return
				}
				if d := lineDiff(c.filter(string(want)), c.filter(got)); d != "" {
					t.Errorf("%s: kiln differs from BuildKit (-buildkit +kiln):\n%s\nkiln's output:\n%s", file, d, tail(log, 3000))
				}
			})
		}
	})
}

// compatCase is one parsed case.
type compatCase struct {
	name    string
	httpURL string // base URL of the case's @http files, "" if none
	opts    compatOpts
	files   []txtar.File
	setup   []string
}

type compatOpts struct {
	buildArgs []string
	target    string
	local     bool
	ignore    []*regexp.Regexp
	kilnFails string
}

func loadCompatCase(t *testing.T, file string) *compatCase {
	t.Helper()
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c := &compatCase{name: strings.TrimSuffix(filepath.Base(file), ".txtar")}
	for i, line := range strings.Split(string(ar.Comment), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch {
		case !ok:
			t.Fatalf("%s:%d: want KEY: VALUE, got %q", file, i+1, line)
		case k == "build-arg":
			c.opts.buildArgs = append(c.opts.buildArgs, v)
		case k == "target":
			c.opts.target = v
		case k == "local":
			c.opts.local = v == "true"
		case k == "ignore":
			re, err := regexp.Compile(v)
			if err != nil {
				t.Fatalf("%s:%d: ignore: %v", file, i+1, err)
			}
			c.opts.ignore = append(c.opts.ignore, re)
		case k == "kiln-fails":
			c.opts.kilnFails = v
		default:
			t.Fatalf("%s:%d: unknown option %q", file, i+1, k)
		}
	}
	for _, f := range ar.Files {
		if f.Name == "[setup]" {
			for _, l := range strings.Split(string(f.Data), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					c.setup = append(c.setup, l)
				}
			}
			continue
		}
		c.files = append(c.files, f)
	}
	return c
}

// filter drops the lines of a dump that the case ignores.
func (c *compatCase) filter(dump string) string {
	if len(c.opts.ignore) == 0 {
		return dump
	}
	var keep []string
	for _, l := range strings.Split(dump, "\n") {
		drop := false
		for _, re := range c.opts.ignore {
			drop = drop || re.MatchString(l)
		}
		if !drop {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// writeContext writes the case's build context into dir.
func (c *compatCase) writeContext(t *testing.T, dir string) {
	t.Helper()
	staging := t.TempDir()
	for _, f := range c.files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if rel, ok := strings.CutPrefix(f.Name, "@archive/"); ok {
			p = filepath.Join(staging, filepath.FromSlash(rel))
		}
		if strings.HasPrefix(f.Name, "@http/") {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mtimes := map[string]time.Time{}
	for _, l := range c.setup {
		f := strings.Fields(l)
		if len(f) < 2 {
			t.Fatalf("%s: bad setup line %q", c.name, l)
		}
		p := filepath.Join(dir, filepath.FromSlash(f[1]))
		arg := func(i int) string {
			if len(f) <= i {
				t.Fatalf("%s: setup line %q needs %d arguments", c.name, l, i)
			}
			return f[i]
		}
		var err error
		switch f[0] {
		case "dir":
			if err = os.MkdirAll(p, 0o755); err == nil && len(f) > 2 {
				err = os.Chmod(p, os.FileMode(parseMode(t, f[2])))
			}
		case "mode":
			err = syscall.Chmod(p, parseMode(t, arg(2)))
		case "owner":
			u, g, _ := strings.Cut(arg(2), ":")
			uid, _ := strconv.Atoi(u)
			gid, _ := strconv.Atoi(g)
			err = os.Lchown(p, uid, gid)
		case "symlink":
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.Symlink(arg(2), p)
			}
		case "hardlink":
			err = os.Link(filepath.Join(dir, filepath.FromSlash(arg(2))), p)
		case "tar":
			err = writeTarball(p, filepath.Join(staging, filepath.FromSlash(arg(2))), func(h *tar.Header) {
				h.ModTime, h.Uname, h.Gname, h.Uid, h.Gid = compatCtxTime, "", "", 1000, 1000
			})
		case "fifo":
			err = syscall.Mkfifo(p, 0o644)
		case "mtime":
			n, perr := strconv.ParseInt(arg(2), 10, 64)
			if perr != nil {
				t.Fatalf("%s: %q: %v", c.name, l, perr)
			}
			mtimes[p] = time.Unix(n, 0)
		default:
			t.Fatalf("%s: unknown setup command %q", c.name, f[0])
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", c.name, l, err)
		}
	}
	// Every entry gets the fixed time (deepest first, so that setting a
	// child does not move its directory's time afterwards).
	var paths []string
	_ = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for _, p := range paths {
		tm, ok := mtimes[p]
		if !ok {
			tm = compatCtxTime
		}
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("%s: set time of %s: %v", c.name, p, err)
		}
	}
}

func parseMode(t *testing.T, s string) uint32 {
	t.Helper()
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		t.Fatalf("bad mode %q: %v", s, err)
	}
	return uint32(m)
}

// run builds the case with b and returns its dump ("build fails" when
// the build fails) and the builder's output.
func (c *compatCase) run(t *testing.T, b compatBuilder, base *baseInfo) (string, string) {
	t.Helper()
	ctxDir := filepath.Join(t.TempDir(), "context")
	if err := os.Mkdir(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.writeContext(t, ctxDir)
	out := t.TempDir()
	ociFile := filepath.Join(out, "image.tar")
	localDir := ""
	if c.opts.local {
		localDir = filepath.Join(out, "local")
	}
	o := c.opts
	if c.httpURL != "" {
		o.buildArgs = append(append([]string(nil), o.buildArgs...), "HTTP="+c.httpURL)
	}
	log, err := b.build(ctxDir, o, ociFile, localDir)
	if err != nil {
		return "build fails\n", log
	}
	dump, err := dumpOCI(ociFile, base)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if c.httpURL != "" {
		dump = strings.ReplaceAll(dump, c.httpURL, "http://HTTP")
	}
	if localDir != "" {
		ld, err := dumpDir(localDir, base.files)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		dump += "\n## type=local\n" + ld
	}
	return dump, log
}

// compatBuilder builds a case's context into an OCI tarball (and a
// directory with a type=local output when localDir is set).
type compatBuilder interface {
	build(ctxDir string, o compatOpts, ociFile, localDir string) (log string, err error)
	updates() bool // whether results become the goldens
}

type kilnBuilder struct{ e *bldEnv }

func (k *kilnBuilder) updates() bool { return false }

func (k *kilnBuilder) build(ctxDir string, o compatOpts, ociFile, localDir string) (string, error) {
	args := []string{"build", "--progress", "plain", "-o", "type=oci,dest=" + ociFile}
	if localDir != "" {
		args = append(args, "-o", "type=local,dest="+localDir)
	}
	for _, a := range o.buildArgs {
		args = append(args, "--build-arg", a)
	}
	if o.target != "" {
		args = append(args, "--target", o.target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := k.e.kilnCmd(ctx, append(args, ctxDir)...)
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	err := cmd.Run()
	return outb.String(), err
}

// buildctlBuilder builds with BuildKit's buildctl against a buildkitd.
type buildctlBuilder struct{ addr, bin string }

func newBuildctlBuilder(t *testing.T, addr, bin string) *buildctlBuilder {
	if bin == "" {
		t.Fatal("KILN_COMPAT_BUILDKIT is set: set KILN_COMPAT_BUILDCTL to the buildctl binary too")
	}
	return &buildctlBuilder{addr: addr, bin: bin}
}

func (b *buildctlBuilder) updates() bool { return true }

func (b *buildctlBuilder) build(ctxDir string, o compatOpts, ociFile, localDir string) (string, error) {
	args := []string{"--addr", b.addr, "build", "--progress", "plain", "--frontend", "dockerfile.v0",
		"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir,
		"--output", "type=oci,dest=" + ociFile}
	if localDir != "" {
		args = append(args, "--output", "type=local,dest="+localDir)
	}
	for _, a := range o.buildArgs {
		args = append(args, "--opt", "build-arg:"+a)
	}
	if o.target != "" {
		args = append(args, "--opt", "target="+o.target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, args...)
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("buildctl: %w", err)
	}
	return outb.String(), err
}

// compatWeb serves the @http files of every case on one local server,
// under /CASE/.
type compatWeb struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newCompatWeb(t *testing.T) *compatWeb {
	w := &compatWeb{files: map[string][]byte{}}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		data, ok := w.files[r.URL.Path]
		w.mu.Unlock()
		if !ok {
			http.NotFound(rw, r)
			return
		}
		http.ServeContent(rw, r, path.Base(r.URL.Path), compatCtxTime, bytes.NewReader(data))
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// serve publishes the case's @http files and sets its base URL.
func (w *compatWeb) serve(c *compatCase) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range c.files {
		if rel, ok := strings.CutPrefix(f.Name, "@http/"); ok {
			w.files["/"+c.name+"/"+rel] = f.Data
			c.httpURL = w.srv.URL + "/" + c.name
		}
	}
}
