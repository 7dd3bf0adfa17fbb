package filesync

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// node is one entry of a test tree.
type node struct {
	Path   string
	Type   string // "dir", "file", "link"
	Mode   fs.FileMode
	Data   string // file content or its sha256 for big files
	Target string
	MTime  int64
}

// spec builds test trees; times are fixed so trees compare exactly.
var baseTime = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

func dir(p string, mode fs.FileMode) node { return node{Path: p, Type: "dir", Mode: mode} }
func file(p, data string, mode fs.FileMode) node {
	return node{Path: p, Type: "file", Data: data, Mode: mode}
}
func link(p, target string) node { return node{Path: p, Type: "link", Target: target} }

// writeTree creates nodes under root (in order; parents first).
func writeTree(t testing.TB, root string, nodes ...node) {
	t.Helper()
	for i, n := range nodes {
		full := filepath.Join(root, n.Path)
		mt := baseTime.Add(time.Duration(i) * time.Second)
		switch n.Type {
		case "dir":
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
		case "file":
			if err := os.WriteFile(full, []byte(n.Data), 0o644); err != nil {
				t.Fatal(err)
			}
		case "link":
			if err := os.Symlink(n.Target, full); err != nil {
				t.Fatal(err)
			}
		}
		if n.Type == "link" {
			if err := lutimes(full, mt.UnixNano()); err != nil {
				t.Fatal(err)
			}
		} else if n.Type == "file" {
			if err := os.Chmod(full, n.Mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(full, mt, mt); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Directory modes and times last: creating children changed them.
	for i := len(nodes) - 1; i >= 0; i-- {
		if n := nodes[i]; n.Type == "dir" {
			mt := baseTime.Add(time.Duration(i) * time.Second)
			if err := os.Chmod(filepath.Join(root, n.Path), n.Mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Join(root, n.Path), mt, mt); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readTree describes every entry under root, in walk order, skipping
// names in skip at the top level.
func readTree(t testing.TB, root string) []node {
	t.Helper()
	var out []node
	err := filepath.WalkDir(root, func(full string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if full == root {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(full[len(root)+1:])
		n := node{Path: rel, Mode: fi.Mode() & modeBits, MTime: fi.ModTime().UnixNano()}
		switch {
		case fi.IsDir():
			n.Type = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			n.Type = "link"
			n.Mode = 0
			if n.Target, err = os.Readlink(full); err != nil {
				return err
			}
		default:
			n.Type = "file"
			b, err := os.ReadFile(full)
			if err != nil {
				return err
			}
			if len(b) > 64 {
				sum := sha256.Sum256(b)
				n.Data = "sha256:" + hex.EncodeToString(sum[:])
			} else {
				n.Data = string(b)
			}
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails the test if dest does not mirror src.
func sameTree(t testing.TB, src, dest string) {
	t.Helper()
	if diff := cmp.Diff(readTree(t, src), readTree(t, dest)); diff != "" {
		t.Fatalf("dest differs from src (-src +dest):\n%s", diff)
	}
}

func paths(nodes []node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Path)
	}
	return out
}

// memTempDir returns a temporary directory on tmpfs when the machine has
// one: tests that create tens of thousands of files measure the sync, not
// the disk's inode allocation.
func memTempDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "kiln-filesync-")
		if err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}
