package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/pkg/archive"
)

// extractor unpacks a tar stream (a type=local output) into a directory as
// it arrives. archive.Apply keeps every entry inside the directory (no
// ../, no absolute links followed out of it). As with buildctl, the files
// belong to the user running kiln (root's are root's): a type=local output
// is build artefacts, and type=tar keeps the image's owners. Directories
// are writable while their contents arrive and get their own modes at the
// end (a 0555 directory of the image is not an error, as it is with
// buildctl run by a user).
type extractor struct {
	pw   *io.PipeWriter
	done chan error
}

func newExtractor(dir string) (*extractor, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	e := &extractor{pw: pw, done: make(chan error, 1)}
	go func() {
		err := applyAsUser(dir, pr)
		_, _ = io.Copy(io.Discard, pr)
		e.done <- err
	}()
	return e, nil
}

func (e *extractor) Write(p []byte) (int, error) { return e.pw.Write(p) }

func (e *extractor) Close() error {
	e.pw.Close()
	return <-e.done
}

func (e *extractor) CloseWithError(err error) error {
	e.pw.CloseWithError(err)
	<-e.done
	return nil
}

// applyAsUser extracts r into dir without changing owners, with every
// directory writable by its owner until the end.
func applyAsUser(dir string, r io.Reader) error {
	pr, pw := io.Pipe()
	modes := map[string]os.FileMode{}
	go func() {
		pw.CloseWithError(userWritableDirs(r, pw, modes))
	}()
	_, err := archive.Apply(context.Background(), dir, pr, archive.WithNoSameOwner())
	pr.CloseWithError(errors.New("extraction stopped"))
	if err != nil {
		return err
	}
	return restoreDirModes(dir, modes)
}

// userWritableDirs copies a tar stream, adding u+rwx to directories and
// recording their own modes (by clean relative name) in modes.
func userWritableDirs(r io.Reader, w io.Writer, modes map[string]os.FileMode) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeDir {
			if name := path.Clean(strings.TrimPrefix(hdr.Name, "/")); name != "." && !strings.HasPrefix(name, "../") && name != ".." {
				modes[name] = hdr.FileInfo().Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
			}
			hdr.Mode |= 0o700
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// restoreDirModes gives the directories their own modes, deepest first,
// through an os.Root (no name leaves dir).
func restoreDirModes(dir string, modes map[string]os.FileMode) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	names := make([]string, 0, len(modes))
	for n := range modes {
		names = append(names, n)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		fi, err := root.Lstat(n)
		if err != nil || !fi.IsDir() {
			continue // replaced by a later entry
		}
		if err := root.Chmod(n, modes[n]); err != nil {
			return err
		}
	}
	return nil
}
