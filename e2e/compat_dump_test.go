package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// The dump of a build result is a deterministic text listing of what a
// user of the image sees: the image config and history, then each layer
// the build added (entries sorted by path, with type, mode, owner, size,
// content, link targets and hard links), and, for type=local outputs, the
// tree written to disk. Everything that legitimately differs between two
// builders or two runs is normalised away:
//
//   - times: history and config "created", layer and file mtimes newer
//     than compatEpochLimit ("new"; older times are the context's and are
//     printed);
//   - digests of layers, configs and manifests (the listing is the
//     content);
//   - the busybox base layer, printed as "base layer".
//
// Deliberate differences from BuildKit are listed in compatNormalise.

// compatCtxTime is the modification time of every file of a case's build
// context; compatEpochLimit separates times a build kept (from the
// context or an image) from times it made.
var (
	compatCtxTime    = time.Unix(1600000000, 0)
	compatEpochLimit = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

// baseInfo is what dumps leave out: the base image's layers (by diff ID,
// with their entries) and its files (as entry.String prints them).
type baseInfo struct {
	layers map[v1.Hash][]entry
	files  map[string]bool
}

func newBaseInfo(img v1.Image) (*baseInfo, error) {
	b := &baseInfo{layers: map[v1.Hash][]entry{}, files: map[string]bool{}}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		id, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		entries, err := dumpTar(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		b.layers[id] = entries
		for _, e := range entries {
			b.files[e.String()] = true
		}
	}
	return b, nil
}

// dumpOCI dumps an OCI layout tarball (type=oci output), printing the
// base image's layers as such.
func dumpOCI(file string, base *baseInfo) (string, error) {
	dir, err := os.MkdirTemp("", "kiln-compat-oci-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := untarPlain(file, dir); err != nil {
		return "", err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return "", fmt.Errorf("read OCI layout: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", err
	}
	if len(im.Manifests) != 1 {
		return "", fmt.Errorf("OCI layout has %d manifests, want 1", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	raw, err := img.RawConfigFile()
	if err != nil {
		return "", err
	}
	if err := dumpConfig(&b, raw); err != nil {
		return "", err
	}
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	state := layerState{}
	for i, l := range layers {
		id, err := l.DiffID()
		if err != nil {
			return "", err
		}
		if entries, ok := base.layers[id]; ok {
			fmt.Fprintf(&b, "\n## layer %d: base layer\n", i)
			state.apply(entries)
			continue
		}
		fmt.Fprintf(&b, "\n## layer %d\n", i)
		rc, err := l.Uncompressed()
		if err != nil {
			return "", err
		}
		entries, err := dumpTar(rc)
		rc.Close()
		if err != nil {
			return "", fmt.Errorf("layer %d: %w", i, err)
		}
		b.WriteString(strings.Join(state.apply(entries), ""))
	}
	return b.String(), nil
}

// layerState is the filesystem the layers so far make: path → entry line.
type layerState map[string]string

// apply applies a layer's entries and returns the lines that describe its
// effect, sorted by path: each entry that differs from what the layers
// below have there, and "PATH removed" for each path it deletes. Two
// differs can write the same change differently, and both forms are valid
// OCI layers: a directory emptied and refilled is an opaque directory or a
// whiteout per removed child, and a file copied up unchanged (when a hard
// link to it was made) may or may not be in the layer. The listing is the
// same for both.
func (s layerState) apply(entries []entry) []string {
	prev := make(map[string]string, len(s))
	for k, v := range s {
		prev[k] = v
	}
	own := map[string]bool{}
	for _, e := range entries {
		if !isWhiteout(e.path) {
			own[e.path] = true
		}
	}
	removed := map[string]bool{}
	remove := func(p string) {
		for q := range s {
			if q == p || strings.HasPrefix(q, p+"/") {
				if !own[q] {
					removed[q] = true
				}
				delete(s, q)
			}
		}
	}
	for _, e := range entries {
		dir, base := path.Split(e.path)
		switch {
		case base == ".wh..wh..opq":
			d := strings.TrimSuffix(dir, "/")
			for q := range s {
				if strings.HasPrefix(q, d+"/") {
					remove(q)
				}
			}
		case strings.HasPrefix(base, ".wh."):
			remove(dir + strings.TrimPrefix(base, ".wh."))
		}
	}
	var out []string
	for _, e := range entries {
		if isWhiteout(e.path) {
			continue
		}
		line := e.String()
		if old, ok := prev[e.path]; !ok || old != line || e.kind == "hardlink" {
			out = append(out, line)
		}
		s[e.path] = line
	}
	for p := range removed {
		out = append(out, p+" removed\n")
	}
	sort.Strings(out)
	return out
}

func isWhiteout(p string) bool { return strings.HasPrefix(path.Base(p), ".wh.") }

// dumpConfig writes the image config without its times and layer digests.
func dumpConfig(b *strings.Builder, raw []byte) error {
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	delete(cfg, "created")
	hist, _ := cfg["history"].([]any)
	delete(cfg, "history")
	if rf, ok := cfg["rootfs"].(map[string]any); ok {
		ids, _ := rf["diff_ids"].([]any)
		rf["diff_ids"] = len(ids)
	}
	compatNormalise(cfg)
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	b.WriteString("## config\n")
	b.Write(out)
	b.WriteString("\n\n## history\n")
	for _, h := range hist {
		m, _ := h.(map[string]any)
		empty, _ := m["empty_layer"].(bool)
		kind := "layer"
		if empty {
			kind = "empty"
		}
		fmt.Fprintf(b, "%s %q comment=%q", kind, m["created_by"], m["comment"])
		if a, ok := m["author"]; ok {
			fmt.Fprintf(b, " author=%q", a)
		}
		b.WriteString("\n")
	}
	return nil
}

// compatNormalise removes from a decoded image config what differs from
// BuildKit on purpose. Nothing yet.
func compatNormalise(cfg map[string]any) {}

// dumpTar lists the entries of a layer tarball, sorted by path.
func dumpTar(r io.Reader) ([]entry, error) {
	tr := tar.NewReader(r)
	var entries []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		e := entry{path: strings.TrimSuffix(name, "/"), mode: uint32(hdr.Mode) & 0o7777, uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime}
		switch hdr.Typeflag {
		case tar.TypeDir:
			e.kind = "dir"
		case tar.TypeReg, tar.TypeRegA:
			e.kind = "file"
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			e.content = describeContent(data)
		case tar.TypeSymlink:
			e.kind, e.target = "symlink", hdr.Linkname
		case tar.TypeLink:
			e.kind, e.hardlink = "hardlink", strings.TrimPrefix(hdr.Linkname, "./")
		case tar.TypeChar, tar.TypeBlock:
			e.kind = fmt.Sprintf("dev(%c %d,%d)", hdr.Typeflag, hdr.Devmajor, hdr.Devminor)
		case tar.TypeFifo:
			e.kind = "fifo"
		default:
			e.kind = fmt.Sprintf("type(%c)", hdr.Typeflag)
		}
		for k := range hdr.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				e.xattrs = append(e.xattrs, x)
			}
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	return entries, nil
}

// dumpDir lists a directory written by a type=local output, leaving out
// the entries listed exactly so in base (the base image's files). Hard
// links are groups of paths sharing an inode inside the tree.
func dumpDir(root string, base map[string]bool) (string, error) {
	type ino struct{ dev, ino uint64 }
	first := map[ino]string{}
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{path: filepath.ToSlash(rel), mode: uint32(fi.Mode().Perm()), uid: int(st.Uid), gid: int(st.Gid), mtime: fi.ModTime()}
		e.mode |= uint32(st.Mode) & 0o7000
		switch {
		case fi.IsDir():
			e.kind = "dir"
		case fi.Mode().IsRegular():
			e.kind = "file"
			if st.Nlink > 1 {
				k := ino{uint64(st.Dev), st.Ino}
				if f, ok := first[k]; ok {
					e.kind, e.hardlink = "hardlink", f
					break
				}
				first[k] = e.path
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.content = describeContent(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.kind, e.target = "symlink", t
		case fi.Mode()&fs.ModeNamedPipe != 0:
			e.kind = "fifo"
		case fi.Mode()&fs.ModeDevice != 0:
			e.kind = fmt.Sprintf("dev(%d,%d)", unixMajor(st.Rdev), unixMinor(st.Rdev))
		default:
			e.kind = "other"
		}
		if line := e.String(); !base[line] {
			lines = append(lines, line)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return strings.Join(lines, ""), nil
}

func unixMajor(dev uint64) uint64 { return (dev >> 8) & 0xfff }
func unixMinor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xfff00) }

// entry is one file of a layer or tree.
type entry struct {
	path     string
	kind     string
	mode     uint32
	uid, gid int
	content  string
	target   string // symlink
	hardlink string // first path of the inode
	mtime    time.Time
	xattrs   []string
}

func (e entry) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %04o %d:%d", e.path, e.kind, e.mode, e.uid, e.gid)
	if e.content != "" {
		b.WriteString(" " + e.content)
	}
	if e.target != "" {
		b.WriteString(" -> " + e.target)
	}
	if e.hardlink != "" {
		b.WriteString(" => " + e.hardlink)
	}
	// Directory times are left out: BuildKit's are not reproducible (the
	// same build gave a COPY destination directory the source's time in
	// one run and the time of the copy in the next).
	if e.kind != "symlink" && e.kind != "hardlink" && e.kind != "dir" {
		b.WriteString(" mtime=" + describeTime(e.mtime))
	}
	if len(e.xattrs) > 0 {
		sort.Strings(e.xattrs)
		b.WriteString(" xattrs=" + strings.Join(e.xattrs, ","))
	}
	b.WriteString("\n")
	return b.String()
}

// describeContent shows short printable contents as a quoted string and
// anything else as its size and digest.
func describeContent(data []byte) string {
	if len(data) <= 48 && bytes.IndexFunc(data, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) < 0 {
		return strconv.Quote(string(data))
	}
	sum := sha256.Sum256(data)
	return fmt.Sprintf("size=%d sha256:%s", len(data), hex.EncodeToString(sum[:6]))
}

// describeTime prints a time the build kept, or "new" for one it made.
func describeTime(t time.Time) string {
	switch {
	case t.Equal(compatCtxTime):
		return "ctx"
	case t.Unix() == 0:
		return "0"
	case t.Before(compatEpochLimit):
		return t.UTC().Format(time.RFC3339)
	}
	return "new"
}
