package snapshot_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/snapshot"
)

// tarEntry is one entry of a hand-made layer tar.
type tarEntry struct {
	name, link string
	typ        byte
	body       string
}

func reg(name, body string) tarEntry { return tarEntry{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) tarEntry       { return tarEntry{name: name, typ: tar.TypeDir} }
func slink(name, target string) tarEntry {
	return tarEntry{name: name, link: target, typ: tar.TypeSymlink}
}
func hlink(name, target string) tarEntry {
	return tarEntry{name: name, link: target, typ: tar.TypeLink}
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hostState is what the tests check is untouched outside the apply root.
type hostState struct {
	Files map[string]string // path relative to the host dir → content or "dir/"
	Nlink uint64            // link count of the victim file
}

func readHost(t *testing.T, host string) hostState {
	t.Helper()
	s := hostState{Files: map[string]string{}}
	err := filepath.Walk(host, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(host, p)
		switch {
		case fi.IsDir():
			s.Files[rel] = "dir/"
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s.Files[rel] = string(b)
		default:
			s.Files[rel] = fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(host, "victim"))
	if err != nil {
		t.Fatal(err)
	}
	s.Nlink = uint64(fi.Sys().(*syscall.Stat_t).Nlink)
	return s
}

// TestApplyContainsEscapes feeds Apply layers that try to write, link or
// delete outside the directory they are applied to, and checks each is
// rejected or kept inside, with the host directory untouched.
func TestApplyContainsEscapes(t *testing.T) {
	requireRoot(t) // overlay whiteouts are device nodes; owners are kept
	type outcome int
	const (
		rejected  outcome = iota // invalid-argument error
		contained                // applies; what it wrote is inside root
		failed                   // some error; nothing written outside
	)
	tests := []struct {
		name    string
		entries func(host string) []tarEntry
		want    outcome
		inside  string // for contained: path under root that got the write
	}{
		{"dotdot name", func(string) []tarEntry {
			return []tarEntry{reg("../host/victim", "pwned")}
		}, rejected, ""},
		{"dotdot inside name", func(string) []tarEntry {
			return []tarEntry{reg("a/../../host/victim", "pwned")}
		}, rejected, ""},
		{"dotdot whiteout", func(string) []tarEntry {
			return []tarEntry{reg("../host/.wh.victim", "")}
		}, rejected, ""},
		{"absolute name", func(host string) []tarEntry {
			return []tarEntry{reg(host+"/victim", "pwned")}
		}, contained, "{host}/victim"},
		{"absolute symlink then file through it", func(host string) []tarEntry {
			return []tarEntry{slink("etc", host), reg("etc/victim", "pwned")}
		}, contained, "{host}/victim"},
		{"relative symlink climbing out, then file through it", func(string) []tarEntry {
			return []tarEntry{slink("up", "../../../../host"), reg("up/victim", "pwned")}
		}, contained, "host/victim"},
		{"symlink chain", func(host string) []tarEntry {
			return []tarEntry{slink("l1", "l2"), slink("l2", "l3/../../.."+host), dir("l3"), reg("l1/victim", "pwned")}
		}, contained, "{host}/victim"},
		{"symlink to host file, then file of that name", func(host string) []tarEntry {
			return []tarEntry{slink("x", host+"/victim"), reg("x", "pwned")}
		}, contained, "x"},
		{"symlink to host dir, then dir and file of that name", func(host string) []tarEntry {
			return []tarEntry{slink("d", host+"/dir"), dir("d"), reg("d/keep", "pwned")}
		}, contained, "d/keep"},
		{"hard link climbing out", func(string) []tarEntry {
			return []tarEntry{hlink("h", "../host/victim")}
		}, rejected, ""},
		{"hard link to absolute host path", func(host string) []tarEntry {
			return []tarEntry{hlink("h", host+"/victim")}
		}, failed, ""},
		{"hard link through a symlink", func(host string) []tarEntry {
			return []tarEntry{slink("s", host), hlink("h", "s/victim")}
		}, failed, ""},
		{"whiteout through a symlink", func(host string) []tarEntry {
			return []tarEntry{slink("d", host), reg("d/.wh.victim", "")}
		}, contained, ""},
		{"opaque marker through a symlink", func(host string) []tarEntry {
			return []tarEntry{slink("d", host+"/dir"), reg("d/.wh..wh..opq", "")}
		}, contained, ""},
		// The literal attack: inside the root, /etc is the link itself,
		// so resolving it loops and the entry fails.
		{"etc -> /etc then etc/<file>", func(string) []tarEntry {
			return []tarEntry{slink("etc", "/etc"), reg("etc/kiln-escape-test", "pwned")}
		}, failed, ""},
		{"hostetc -> /etc then hostetc/<file>", func(string) []tarEntry {
			return []tarEntry{slink("hostetc", "/etc"), reg("hostetc/kiln-escape-test", "pwned")}
		}, contained, "etc/kiln-escape-test"},
	}
	modes := []struct {
		name string
		opts func(lower string) []snapshot.ApplyOpt
	}{
		{"plain", func(string) []snapshot.ApplyOpt { return nil }},
		{"overlay upper", func(lower string) []snapshot.ApplyOpt {
			return []snapshot.ApplyOpt{snapshot.WithOverlayUpper([]string{lower})}
		}},
	}
	for _, mode := range modes {
		for _, tc := range tests {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				tmp := t.TempDir()
				host := filepath.Join(tmp, "host")
				root := filepath.Join(tmp, "a", "b", "root")
				lower := filepath.Join(tmp, "lower")
				for _, d := range []string{filepath.Join(host, "dir"), root, lower} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(host, "victim"), []byte("host data"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(host, "dir", "keep"), []byte("host keep"), 0o644); err != nil {
					t.Fatal(err)
				}
				before := readHost(t, host)
				layer := makeTar(t, tc.entries(host)...)
				_, err := snapshot.Apply(context.Background(), root, bytes.NewReader(layer), mode.opts(lower)...)

				if diff := cmp.Diff(before, readHost(t, host)); diff != "" {
					t.Errorf("host directory changed (-before +after):\n%s", diff)
				}
				if _, serr := os.Lstat("/etc/kiln-escape-test"); serr == nil {
					_ = os.Remove("/etc/kiln-escape-test")
					t.Error("the layer wrote /etc/kiln-escape-test on the host")
				}
				switch tc.want {
				case rejected:
					if !errdefs.IsInvalidArgument(err) {
						t.Errorf("Apply = %v; want an invalid-argument error", err)
					}
				case failed:
					if err == nil {
						t.Error("Apply succeeded; want an error")
					}
				case contained:
					if err != nil {
						t.Fatalf("Apply = %v; want it applied inside the root", err)
					}
					if tc.inside != "" {
						p := filepath.Join(root, strings.ReplaceAll(tc.inside, "{host}", host))
						if b, err := os.ReadFile(p); err != nil || string(b) != "pwned" {
							t.Errorf("contained write: %s = %q, %v; want the layer's content there", p, b, err)
						}
					}
				}
			})
		}
	}
}

func TestApplyDiffIDAndErrors(t *testing.T) {
	requireRoot(t) // Apply keeps the owners in the tar
	t.Parallel()
	ctx := context.Background()
	layer := makeTar(t, dir("etc"), reg("etc/os-release", "ID=kiln\n"))
	got, err := snapshot.Apply(ctx, t.TempDir(), bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	if want := digest.FromBytes(layer); got != want {
		t.Errorf("Apply diffID = %s, want the digest of the whole tar %s", got, want)
	}
	if _, err := snapshot.Apply(ctx, t.TempDir(), bytes.NewReader(layer[:700])); err == nil {
		t.Error("Apply of a truncated tar succeeded")
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Apply(ctx, notDir, bytes.NewReader(layer)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Apply onto a file = %v; want invalid argument", err)
	}
}

// tempSnapshots lists the snapshots Unpack must not leave behind.
func nonCommitted(ctx context.Context, t *testing.T, sn snapshots.Snapshotter) []string {
	t.Helper()
	var out []string
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted {
			out = append(out, info.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUnpack(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sn := newSnapshotter(t, kind)
			base := makeTar(t, dir("bin"), reg("bin/sh", "shell"), reg("etc/gone", "x"))
			top := makeTar(t, reg("etc/.wh.gone", ""), reg("bin/ls", "ls"))
			baseID, topID := digest.FromBytes(base), digest.FromBytes(top)

			n1, err := snapshot.Unpack(ctx, sn, "", bytes.NewReader(base), snapshot.WithDiffID(baseID))
			if err != nil {
				t.Fatal(err)
			}
			// Known layers are not read again.
			again, err := snapshot.Unpack(ctx, sn, "", failingReader{}, snapshot.WithDiffID(baseID))
			if err != nil || again != n1 {
				t.Errorf("Unpack of a present layer = %s, %v; want %s without reading", again, err, n1)
			}
			// A layer that is not what the image config says is refused.
			_, err = snapshot.Unpack(ctx, sn, n1, bytes.NewReader(top), snapshot.WithDiffID(baseID))
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("Unpack with the wrong diffID = %v; want failed precondition", err)
			}
			_, err = snapshot.Unpack(ctx, sn, n1, bytes.NewReader(top[:600]))
			if err == nil {
				t.Error("Unpack of a truncated layer succeeded")
			}
			_, err = snapshot.Unpack(ctx, sn, "not-a-chain-id", bytes.NewReader(top))
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Unpack on a parent that is no chain ID = %v; want invalid argument", err)
			}
			if left := nonCommitted(ctx, t, sn); len(left) > 0 {
				t.Errorf("failed unpacks left snapshots behind: %v", left)
			}

			// Concurrent unpacks of one layer all succeed with one result.
			const n = 4
			names := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					names[i], errs[i] = snapshot.Unpack(ctx, sn, n1, bytes.NewReader(top))
				}()
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil || names[i] != names[0] {
					t.Errorf("concurrent Unpack %d = %s, %v", i, names[i], errs[i])
				}
			}
			var committed []string
			if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
				committed = append(committed, info.Name)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			slices.Sort(committed)
			want := []string{n1, names[0]}
			slices.Sort(want)
			if diff := cmp.Diff(want, committed); diff != "" {
				t.Errorf("snapshots after concurrent unpacks (-want +got):\n%s", diff)
			}
			if _, id := diffLayer(ctx, t, sn, names[0]); id == "" {
				t.Error("no diff")
			}
			got := statView(ctx, t, sn, names[0])
			if _, ok := got["etc/gone"]; ok {
				t.Error("etc/gone survived its whiteout")
			}
			if got["bin/ls"].Type != "reg" || got["bin/sh"].Type != "reg" {
				t.Errorf("unpacked tree = %v", got)
			}
			_ = topID
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, fmt.Errorf("reader must not be read") }
