package exporter

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/snapshot"
)

// linkScope decides which hard links of a result's filesystem a
// filesystem export keeps. Kiln's COPY lends a build-context file's inode
// to every snapshot that copies it unchanged, so two steps that copy the
// same file leave two paths sharing an inode in the merged view. Those are
// copies to the user, as in BuildKit: editing one must not change the
// other. A link is kept only when both names come from the same layer,
// where the step that made it wrote them as one file (a hard link in the
// build context, or ln in a RUN step).
type linkScope struct {
	dir    string   // the mounted view
	layers []string // its layer directories, topmost first; nil: keep all
	// firsts maps (the first name of an inode, a layer) to the name that
	// was written as a file for that layer, so that the other names of
	// the layer link to it.
	firsts map[layerName]string
}

type layerName struct {
	name  string
	layer int
}

// link decides the hard link name → target (tar names, target written
// before): it returns the name to link to, or "" when name must be
// written as a file of its own.
func (s *linkScope) link(name, target string) string {
	if len(s.layers) == 0 {
		return target
	}
	a, okA := s.layerOf(name)
	b, okB := s.layerOf(target)
	if !okA || !okB || a == b {
		return target
	}
	key := layerName{target, a}
	if first, ok := s.firsts[key]; ok {
		return first
	}
	if s.firsts == nil {
		s.firsts = map[layerName]string{}
	}
	s.firsts[key] = name
	return ""
}

// layerOf returns the index of the layer that holds the regular file rel.
func (s *linkScope) layerOf(rel string) (int, bool) {
	p, ok := snapshot.LayerFile(s.layers, tarRel(rel))
	if !ok {
		return 0, false
	}
	for i, l := range s.layers {
		if strings.HasPrefix(p, l+string(filepath.Separator)) {
			return i, true
		}
	}
	return 0, false
}

// tarRel is a tar entry name as a relative path.
func tarRel(name string) string {
	return strings.TrimPrefix(strings.TrimPrefix(name, "./"), "/")
}

// writeCopy writes the hard-link entry hdr as a regular file with the
// content of name (its name in the view).
func (s *linkScope) writeCopy(tw *tar.Writer, hdr *tar.Header, name string) error {
	f, err := os.OpenFile(filepath.Join(s.dir, filepath.FromSlash(tarRel(name))), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", hdr.Name)
	}
	hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeReg, "", fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("%s changed while it was read", hdr.Name)
	}
	return err
}
