package snapshot_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/snapshot"
)

var kinds = []string{snapshot.KindOverlay, snapshot.KindNative}

func newSnapshotter(t *testing.T, kind string) *snapshot.Snapshotter {
	t.Helper()
	requireRoot(t)
	sn, err := snapshot.New(t.TempDir(), kind)
	if kind == snapshot.KindOverlay && errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Skipf("overlayfs does not mount here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sn.Close() })
	return sn
}

// commitLayer makes the committed snapshot name on parent by running ops
// through the mounted active snapshot, as a RUN step would.
func commitLayer(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, name, parent string, ops ...fsOp) {
	t.Helper()
	key := "build-" + name
	if _, err := sn.Prepare(ctx, key, parent); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.WithActive(ctx, sn, key, func(dir string) error { return apply(dir, ops...) }); err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	if err := sn.Commit(ctx, name, key); err != nil {
		t.Fatal(err)
	}
}

func statView(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, name string) map[string]entry {
	t.Helper()
	var tree map[string]entry
	if err := snapshot.WithView(ctx, sn, name, func(dir string) error {
		tree = statTree(t, dir)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return tree
}

func diffLayer(ctx context.Context, t *testing.T, sn snapshots.Snapshotter, name string, opts ...snapshot.DiffOpt) ([]byte, digest.Digest) {
	t.Helper()
	var buf bytes.Buffer
	d, n, err := snapshot.Diff(ctx, sn, name, &buf, opts...)
	if err != nil {
		t.Fatalf("Diff(%s): %v", name, err)
	}
	if d != digest.FromBytes(buf.Bytes()) || n != int64(buf.Len()) {
		t.Fatalf("Diff(%s) = %s, %d; the tar written is %s, %d bytes", name, d, n, digest.FromBytes(buf.Bytes()), buf.Len())
	}
	return buf.Bytes(), d
}

func tarHeaders(t *testing.T, p []byte) []*tar.Header {
	t.Helper()
	var hdrs []*tar.Header
	tr := tar.NewReader(bytes.NewReader(p))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
	}
}

var old = time.Date(2010, 1, 2, 3, 4, 5, 0, time.UTC)

// baseOps makes one of every file type and attribute a layer can hold.
func baseOps() []fsOp {
	return []fsOp{
		file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
		xattr("etc/passwd", "user.kiln", []byte("v1")),
		mkdir("empty", 0o700),
		file("bin/busybox", "\x7fELF busybox", 0o755),
		hardlink("bin/busybox", "bin/ls"),
		symlink("busybox", "bin/sh"),
		symlink("/etc/passwd", "abs-link"),
		file("bin/su", "setuid", os.ModeSetuid|0o755),
		file("bin/ping", "ping", 0o755),
		xattr("bin/ping", "security.capability", capNetBindService()),
		mkdir("run", 0o755),
		mknod("run/fifo", unix.S_IFIFO|0o644, 0, 0),
		mkdir("dev", 0o755),
		mknod("dev/null", unix.S_IFCHR|0o666, 1, 3),
		mknod("dev/loop0", unix.S_IFBLK|0o660, 7, 0),
		file("home/user/data", "mine", 0o640),
		chown("home/user", 1000, 1001),
		chown("home/user/data", 1000, 1001),
		file("old", "from 2010", 0o644),
		mtime("old", old),
		file("gone", "deleted above", 0o644),
		file("deldir/sub/f", "deleted dir", 0o644),
		file("keep/stay", "stays", 0o644),
		file("keep/gone", "goes", 0o644),
		file("opq/old", "hidden by opaque dir", 0o644),
		file("opq/sub/deep", "hidden too", 0o644),
		file("mod", "before", 0o644),
		file("chm", "mode changes", 0o644),
		file("own", "owner changes", 0o644),
		file("f2d", "file, then dir", 0o644),
		file("d2f/x", "dir, then file", 0o644),
	}
}

// topOps changes, replaces and deletes things from baseOps.
func topOps() []fsOp {
	return []fsOp{
		remove("gone"),
		remove("deldir"),
		remove("keep/gone"),
		remove("opq"),
		mkdir("opq", 0o755),
		file("opq/new", "only me", 0o644),
		file("mod", "after", 0o644),
		xattr("mod", "user.kiln", []byte("v2")),
		chmod("chm", 0o600),
		chown("own", 2000, 2000),
		file("new/a", "A", 0o644),
		hardlink("new/a", "new/b"),
		symlink("../etc/passwd", "new/rel"),
		remove("f2d"),
		file("f2d/x", "now a dir", 0o644),
		remove("d2f"),
		file("d2f", "now a file", 0o644),
	}
}

// TestDiffApplyRoundTrip diffs two layers made with real file operations
// and checks that applying the tars, to a plain directory and through
// Unpack into a fresh snapshotter, gives back exactly the tree the
// snapshotter shows.
func TestDiffApplyRoundTrip(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sn := newSnapshotter(t, kind)
			commitLayer(ctx, t, sn, "base", "", baseOps()...)
			commitLayer(ctx, t, sn, "top", "base", topOps()...)
			wantBase := statView(ctx, t, sn, "base")
			want := statView(ctx, t, sn, "top")
			// Spot-check the ground truth itself.
			if want["bin/ping"].Xattrs["security.capability"] == "" || want["bin/su"].Mode&os.ModeSetuid == 0 ||
				want["dev/loop0"].Type != "block" || want["new/b"].LinkSet != "new/a" {
				t.Fatalf("snapshot lacks the attributes under test: %+v", want)
			}
			baseTar, baseID := diffLayer(ctx, t, sn, "base")
			topTar, topID := diffLayer(ctx, t, sn, "top")

			t.Run("ApplyToDir", func(t *testing.T) {
				dir := t.TempDir()
				for _, l := range []struct {
					tar  []byte
					id   digest.Digest
					want map[string]entry
				}{{baseTar, baseID, wantBase}, {topTar, topID, want}} {
					got, err := snapshot.Apply(ctx, dir, bytes.NewReader(l.tar))
					if err != nil {
						t.Fatal(err)
					}
					if got != l.id {
						t.Errorf("Apply returned diffID %s, want %s", got, l.id)
					}
					if diff := cmp.Diff(l.want, statTree(t, dir)); diff != "" {
						t.Errorf("tree after Apply (-want +got):\n%s", diff)
					}
				}
			})

			t.Run("Unpack", func(t *testing.T) {
				sn2 := newSnapshotter(t, kind)
				n1, err := snapshot.Unpack(ctx, sn2, "", bytes.NewReader(baseTar))
				if err != nil {
					t.Fatal(err)
				}
				n2, err := snapshot.Unpack(ctx, sn2, n1, bytes.NewReader(topTar))
				if err != nil {
					t.Fatal(err)
				}
				if n1 != baseID.String() || n2 != identity.ChainID([]digest.Digest{baseID, topID}).String() {
					t.Errorf("Unpack names = %s, %s; want the chain IDs", n1, n2)
				}
				if diff := cmp.Diff(wantBase, statView(ctx, t, sn2, n1)); diff != "" {
					t.Errorf("unpacked base (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(want, statView(ctx, t, sn2, n2)); diff != "" {
					t.Errorf("unpacked top (-want +got):\n%s", diff)
				}
				// Diffing what was unpacked gives the same layers back.
				if _, id := diffLayer(ctx, t, sn2, n1); id != baseID {
					t.Errorf("diff of unpacked base = %s, want %s", id, baseID)
				}
				if _, id := diffLayer(ctx, t, sn2, n2); id != topID {
					t.Errorf("diff of unpacked top = %s, want %s", id, topID)
				}
			})
		})
	}
}

// TestDiffTarForm checks the entries of a layer tar: OCI whiteouts, no
// unchanged files, no host names or times, xattrs kept.
func TestDiffTarForm(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sn := newSnapshotter(t, kind)
			commitLayer(ctx, t, sn, "base", "", baseOps()...)
			commitLayer(ctx, t, sn, "top", "base", topOps()...)
			p, _ := diffLayer(ctx, t, sn, "top")
			byName := map[string]*tar.Header{}
			for _, h := range tarHeaders(t, p) {
				byName[strings.TrimSuffix(h.Name, "/")] = h
				if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
					t.Errorf("%s: uname %q gname %q atime %v ctime %v; want none", h.Name, h.Uname, h.Gname, h.AccessTime, h.ChangeTime)
				}
				for k := range h.PAXRecords {
					if !strings.HasPrefix(k, "SCHILY.xattr.") {
						t.Errorf("%s: PAX record %s; want only xattrs", h.Name, k)
					}
				}
				if h.Typeflag == tar.TypeChar && h.Devmajor == 0 && h.Devminor == 0 {
					t.Errorf("%s: overlay whiteout device in the layer", h.Name)
				}
				if h.ModTime.Nanosecond() != 0 {
					t.Errorf("%s: sub-second mtime %v", h.Name, h.ModTime)
				}
			}
			for _, name := range []string{".wh.gone", ".wh.deldir", "keep/.wh.gone", "mod", "chm", "own", "new/a", "new/b", "new/rel", "opq/new", "f2d/x", "d2f"} {
				if byName[name] == nil {
					t.Errorf("layer lacks %s", name)
				}
			}
			if kind == snapshot.KindOverlay && byName["opq/.wh..wh..opq"] == nil {
				t.Error("layer lacks the opaque marker opq/.wh..wh..opq")
			}
			for _, name := range []string{"keep/stay", "etc/passwd", "bin/busybox", "opq/old", "gone", "deldir/sub/f"} {
				if byName[name] != nil {
					t.Errorf("layer has %s, which this layer did not change", name)
				}
			}
			if h := byName["new/b"]; h != nil && (h.Typeflag != tar.TypeLink || h.Linkname != "new/a") {
				t.Errorf("new/b = type %c link %q; want a hard link to new/a", h.Typeflag, h.Linkname)
			}
			if h := byName["mod"]; h != nil && h.PAXRecords["SCHILY.xattr.user.kiln"] != "v2" {
				t.Errorf("mod xattrs = %v; want user.kiln=v2", h.PAXRecords)
			}
			if h := byName["own"]; h != nil && (h.Uid != 2000 || h.Gid != 2000) {
				t.Errorf("own = %d:%d; want 2000:2000", h.Uid, h.Gid)
			}
		})
	}
}

// TestDiffReproducible builds the same layers twice with different file
// times and checks that the time options make the layers identical.
func TestDiffReproducible(t *testing.T) {
	epoch := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	later := time.Now().Add(3 * time.Hour)
	touched := []string{"mod", "chm", "own", "new", "new/a", "new/rel", "opq", "opq/new", "f2d", "f2d/x", "d2f", "keep"}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sn := newSnapshotter(t, kind)
			commitLayer(ctx, t, sn, "a-base", "", baseOps()...)
			commitLayer(ctx, t, sn, "a-top", "a-base", topOps()...)
			// The second build happens "three hours later".
			commitLayer(ctx, t, sn, "b-base", "", append(baseOps(), touchAll(later), mtime("old", old))...)
			bTop := topOps()
			for _, p := range touched {
				bTop = append(bTop, mtime(p, later))
			}
			commitLayer(ctx, t, sn, "b-top", "b-base", bTop...)

			for _, layer := range []string{"base", "top"} {
				_, plainA := diffLayer(ctx, t, sn, "a-"+layer)
				_, plainB := diffLayer(ctx, t, sn, "b-"+layer)
				if plainA == plainB {
					t.Errorf("%s: layers built at different times have one digest without a time option; the test proves nothing", layer)
				}
				tarA, clampA := diffLayer(ctx, t, sn, "a-"+layer, snapshot.WithSourceDateEpoch(epoch))
				_, clampB := diffLayer(ctx, t, sn, "b-"+layer, snapshot.WithSourceDateEpoch(epoch))
				if clampA != clampB {
					t.Errorf("%s: WithSourceDateEpoch digests differ: %s vs %s", layer, clampA, clampB)
				}
				for _, h := range tarHeaders(t, tarA) {
					if h.ModTime.After(epoch) {
						t.Errorf("%s: %s mtime %v after the epoch", layer, h.Name, h.ModTime)
					}
					if h.Name == "old" && !h.ModTime.Equal(old) {
						t.Errorf("%s: old mtime %v; clamping must keep older times (%v)", layer, h.ModTime, old)
					}
				}
				tarF, fixedA := diffLayer(ctx, t, sn, "a-"+layer, snapshot.WithFixedModTime(epoch))
				_, fixedB := diffLayer(ctx, t, sn, "b-"+layer, snapshot.WithFixedModTime(epoch))
				if fixedA != fixedB {
					t.Errorf("%s: WithFixedModTime digests differ", layer)
				}
				for _, h := range tarHeaders(t, tarF) {
					if !h.ModTime.Equal(epoch) {
						t.Errorf("%s: %s mtime %v, want exactly %v", layer, h.Name, h.ModTime, epoch)
					}
				}
			}
		})
	}
}

func TestDiffErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sn := newSnapshotter(t, snapshot.KindOverlay)
	commitLayer(ctx, t, sn, "base", "", file("f", "x", 0o644))
	if _, err := sn.View(ctx, "look", "base"); err != nil {
		t.Fatal(err)
	}
	_, _, err := snapshot.Diff(ctx, sn, "look", io.Discard)
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("Diff of a view = %v; want invalid argument", err)
	}
	_, _, err = snapshot.Diff(ctx, sn, "missing", io.Discard)
	if !errdefs.IsNotFound(err) {
		t.Errorf("Diff of a missing snapshot = %v; want not found", err)
	}
	// A failing writer fails the diff and leaves nothing mounted.
	boom := errors.New("disk full")
	_, _, err = snapshot.Diff(ctx, sn, "base", failWriter{boom})
	if !errors.Is(err, boom) {
		t.Errorf("Diff to a failing writer = %v; want its error", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }
