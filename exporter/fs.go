package exporter

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/platforms"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/snapshot"
)

// FilesystemOptions configures NewFilesystem (type=local and type=tar).
type FilesystemOptions struct {
	// PlatformSplit puts each platform's files under a directory named
	// after it (linux_amd64/, linux_arm_v7/). Nil means: when the result
	// has more than one platform. Without it, several platforms' files
	// are written to one tree, later platforms over earlier ones.
	PlatformSplit *bool
	// Dest and Tar are where and how the client writes the stream (dest=,
	// and for type=local tar=); the exporter only carries them.
	Dest string
	Tar  bool
}

// NewFilesystem returns the exporter that streams the result's final
// filesystem as a tar to deps.Writer; the client extracts it (local) or
// saves it (tar). With a SOURCE_DATE_EPOCH, file times are clamped to it.
func NewFilesystem(deps Deps, o FilesystemOptions) (Exporter, error) {
	if deps.Writer == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("filesystem exporter: no output stream"))
	}
	if deps.Layers == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("filesystem exporter: no snapshotter"))
	}
	return &fsExporter{deps: deps, opts: o}, nil
}

type fsExporter struct {
	deps Deps
	opts FilesystemOptions
}

var _ Exporter = (*fsExporter)(nil)

func (e *fsExporter) Export(ctx context.Context, r Result) (resp Response, err error) {
	if err := checkResult(r); err != nil {
		return nil, err
	}
	split := len(r.Images) > 1
	if e.opts.PlatformSplit != nil {
		split = *e.opts.PlatformSplit
	}
	w, finish, err := openWriter(e.deps.Writer)
	if err != nil {
		return nil, err
	}
	defer func() { err = finish(err) }()
	tw := tar.NewWriter(w)
	for _, img := range r.Images {
		prefix := ""
		if split {
			prefix = platformDir(img) + "/"
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: prefix, Mode: 0o755, ModTime: e.dirTime(r), Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, fmt.Errorf("export filesystem: %w", err)
			}
		}
		if err := e.writeImage(ctx, tw, img, prefix); err != nil {
			return nil, fmt.Errorf("export filesystem of %s: %w", platformString(img.Platform), err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("export filesystem: %w", err)
	}
	return Response{}, nil
}

func (e *fsExporter) dirTime(r Result) time.Time {
	if e.deps.SourceDateEpoch != nil {
		return e.deps.SourceDateEpoch.UTC()
	}
	return r.created()
}

// platformDir names a platform's directory as BuildKit does: linux_amd64,
// linux_arm_v7.
func platformDir(img Image) string {
	return strings.ReplaceAll(platforms.Format(img.Platform), "/", "_")
}

func (e *fsExporter) writeImage(ctx context.Context, tw *tar.Writer, img Image, prefix string) error {
	switch ref := img.Ref.(type) {
	case nil:
		return nil // an empty filesystem
	case ops.Dir:
		return e.writeTree(ctx, tw, linkScope{dir: ref.Dir()}, prefix)
	default:
		name := ref.ID()
		if name == "" {
			return errdefs.Invalidf("the result (a %T) is neither a snapshot nor a directory", ref)
		}
		var sn snapshots.Snapshotter = e.deps.Layers.Snapshotter()
		return snapshot.WithViewLayers(ctx, sn, name, func(dir string, layers []string) error {
			return e.writeTree(ctx, tw, linkScope{dir: dir, layers: layers}, prefix)
		})
	}
}

// writeTree writes the tree at scope.dir into tw under prefix, through
// containerd's tar writer (which handles hard links, devices, xattrs and
// file capabilities); hard links scope does not keep become copies.
func (e *fsExporter) writeTree(ctx context.Context, tw *tar.Writer, scope linkScope, prefix string) error {
	dir := scope.dir
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// An empty "before" tree makes every file a change.
		err := archive.WriteDiff(ctx, pw, "", dir)
		pw.CloseWithError(err)
		done <- err
	}()
	err := e.copyEntries(ctx, tw, pr, prefix, &scope)
	pr.CloseWithError(errors.New("filesystem tar reader stopped"))
	if werr := <-done; err == nil {
		err = werr
	}
	return err
}

// copyEntries copies a tar stream into tw, moving entries under prefix
// and clamping times to the epoch.
func (e *fsExporter) copyEntries(ctx context.Context, tw *tar.Writer, r io.Reader, prefix string, scope *linkScope) error {
	tr := tar.NewReader(r)
	epoch := e.deps.SourceDateEpoch
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		copyLink := false
		if hdr.Typeflag == tar.TypeLink {
			target := scope.link(hdr.Name, hdr.Linkname)
			copyLink = target == ""
			hdr.Linkname = prefix + target
		}
		name := hdr.Name
		hdr.Name = prefix + hdr.Name
		hdr.Uname, hdr.Gname = "", ""
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if epoch != nil && hdr.ModTime.After(*epoch) {
			hdr.ModTime = epoch.UTC()
		}
		hdr.Format = tar.FormatPAX
		if copyLink {
			if err := scope.writeCopy(tw, hdr, name); err != nil {
				return fmt.Errorf("write %s: %w", hdr.Name, err)
			}
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			if _, err := io.Copy(tw, tr); err != nil {
				return fmt.Errorf("write %s: %w", hdr.Name, err)
			}
		}
	}
}
