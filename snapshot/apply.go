package snapshot

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/kiln-build/kiln/core/errdefs"
)

// ApplyOpt configures Apply.
type ApplyOpt func(*applyOptions)

type applyOptions struct {
	overlay bool
	lowers  []string
}

// WithOverlayUpper says that Apply's root is the upper directory of an
// overlay whose lower directories are lowers (topmost first). OCI
// whiteouts then become overlay whiteouts (0/0 character devices) and
// opaque directories (trusted.overlay.opaque=y) instead of deletions, and
// directories Apply has to create take their owner, mode and times from
// the same directory in the lowers.
func WithOverlayUpper(lowers []string) ApplyOpt {
	return func(o *applyOptions) {
		o.overlay = true
		o.lowers = lowers
	}
}

// Apply unpacks the uncompressed layer tar r onto the directory root and
// returns the digest of everything read from r (the layer's diffID).
// Whiteouts delete what they name (see WithOverlayUpper for overlay upper
// directories).
//
// No entry can change anything outside root: entry and hard-link names
// that climb out of root with ".." are rejected, and symlinks met while
// resolving a path (absolute ones, and chains of them) are resolved as if
// root were "/" (containerd's archive.Apply with continuity's RootPath).
func Apply(ctx context.Context, root string, r io.Reader, opts ...ApplyOpt) (digest.Digest, error) {
	var o applyOptions
	for _, opt := range opts {
		opt(&o)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("apply layer: %w", err)
	}
	if fi, err := os.Stat(root); err != nil {
		return "", fmt.Errorf("apply layer: %w", err)
	} else if !fi.IsDir() {
		return "", errdefs.Invalidf("apply layer: %s is not a directory", root)
	}
	d := digest.Canonical.Digester()
	tee := io.TeeReader(r, d.Hash())
	aopts := []archive.ApplyOpt{archive.WithFilter(checkEntry)}
	if o.overlay {
		aopts = append(aopts,
			archive.WithConvertWhiteout(archive.OverlayConvertWhiteout),
			archive.WithParents(o.lowers))
	}
	if _, err := archive.Apply(ctx, root, tee, aopts...); err != nil {
		return "", fmt.Errorf("apply layer to %s: %w", root, err)
	}
	// The tar's end-of-archive padding belongs to the diffID too.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return "", fmt.Errorf("apply layer to %s: read trailer: %w", root, err)
	}
	return d.Digest(), nil
}

// checkEntry rejects entries whose name or hard-link target leaves the
// root through "..". (archive.Apply would clamp them to the root; a layer
// that tries is broken or hostile, and the user should hear about it.)
func checkEntry(hdr *tar.Header) (bool, error) {
	if escapes(hdr.Name) {
		return false, errdefs.Invalidf("layer entry %q: path leaves the layer root", hdr.Name)
	}
	if hdr.Typeflag == tar.TypeLink && escapes(hdr.Linkname) {
		return false, errdefs.Invalidf("layer entry %q: hard link to %q leaves the layer root", hdr.Name, hdr.Linkname)
	}
	return true, nil
}

func escapes(name string) bool {
	clean := filepath.Clean(filepath.FromSlash(name))
	return clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator))
}

// UnpackOpt configures Unpack.
type UnpackOpt func(*unpackOptions)

type unpackOptions struct {
	diffID digest.Digest
}

// WithDiffID gives the diffID the layer must have (from the image
// config's rootfs.diff_ids). Unpack then skips layers it already has
// without reading them, and rejects a layer whose tar does not match.
func WithDiffID(d digest.Digest) UnpackOpt {
	return func(o *unpackOptions) { o.diffID = d }
}

// Unpack applies the uncompressed layer tar layer on top of the committed
// snapshot parent ("" for a base layer) and commits the result under the
// layer's chain ID (image-spec identity.ChainID), which it returns. parent
// must itself be a chain ID, as Unpack names snapshots. If a snapshot of
// that name exists already, Unpack keeps it; two concurrent Unpacks of one
// layer both succeed.
func Unpack(ctx context.Context, sn snapshots.Snapshotter, parent string, layer io.Reader, opts ...UnpackOpt) (name string, err error) {
	var o unpackOptions
	for _, opt := range opts {
		opt(&o)
	}
	var chain []digest.Digest
	if parent != "" {
		p, err := digest.Parse(parent)
		if err != nil {
			return "", errdefs.Invalidf("unpack: parent %q is not a chain ID: %v", parent, err)
		}
		chain = append(chain, p)
	}
	if o.diffID != "" {
		if err := o.diffID.Validate(); err != nil {
			return "", errdefs.Invalidf("unpack: diffID %q: %v", o.diffID, err)
		}
		name := identity.ChainID(append(chain, o.diffID)).String()
		if _, err := sn.Stat(ctx, name); err == nil {
			return name, nil
		}
	}

	key := tempKey("unpack")
	mounts, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		return "", fmt.Errorf("unpack on %q: %w", parent, classify(err))
	}
	defer func() {
		if err != nil {
			_ = sn.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	diffID, err := applyToMounts(ctx, sn, mounts, layer)
	if err != nil {
		return "", fmt.Errorf("unpack on %q: %w", parent, err)
	}
	if o.diffID != "" && diffID != o.diffID {
		return "", errdefs.WithClass(errdefs.ErrFailedPrecondition,
			fmt.Errorf("unpack on %q: layer tar has diffID %s, want %s", parent, diffID, o.diffID))
	}
	name = identity.ChainID(append(chain, diffID)).String()
	if err := sn.Commit(ctx, name, key); err != nil {
		if !errdefs.IsAlreadyExists(classify(err)) {
			return "", fmt.Errorf("unpack: commit %s: %w", name, classify(err))
		}
		// Someone unpacked the same layer first: keep theirs.
		if rerr := sn.Remove(ctx, key); rerr != nil {
			return "", fmt.Errorf("unpack: remove duplicate of %s: %w", name, classify(rerr))
		}
	}
	return name, nil
}

// applyToMounts applies a layer to an active snapshot. Overlay upper and
// bind-mounted directories are written directly, without mounting.
func applyToMounts(ctx context.Context, sn snapshots.Snapshotter, mounts []mount.Mount, layer io.Reader) (digest.Digest, error) {
	if len(mounts) == 1 {
		m := mounts[0]
		switch m.Type {
		case "bind", "rbind":
			return Apply(ctx, m.Source, layer)
		case "overlay":
			if upper, lowers, ok := overlayDirs(m.Options); ok {
				return Apply(ctx, upper, layer, WithOverlayUpper(lowers))
			}
		}
	}
	var diffID digest.Digest
	err := withMounts(mountRootOf(sn), mounts, func(dir string) error {
		var err error
		diffID, err = Apply(ctx, dir, layer)
		return err
	})
	return diffID, err
}

// overlayDirs returns the upper and lower directories of a writable
// overlay mount. It declines mounts with options it does not know how to
// honour when writing the upper directory directly (userxattr keeps
// whiteout xattrs in user.*, which archive's overlay conversion does not).
func overlayDirs(options []string) (upper string, lowers []string, ok bool) {
	for _, opt := range options {
		switch {
		case strings.HasPrefix(opt, "upperdir="):
			upper = strings.TrimPrefix(opt, "upperdir=")
		case strings.HasPrefix(opt, "lowerdir="):
			lowers = strings.Split(strings.TrimPrefix(opt, "lowerdir="), ":")
		case opt == "userxattr", strings.HasPrefix(opt, "uidmap="), strings.HasPrefix(opt, "gidmap="):
			return "", nil, false
		}
	}
	return upper, lowers, upper != "" && len(lowers) > 0
}
