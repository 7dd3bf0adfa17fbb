package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
)

// Annotations naming an image in an OCI layout's index.json.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = ocispec.AnnotationRefName
)

// maxMetadataFile bounds the JSON files of an archive read into memory.
const maxMetadataFile = 16 << 20

// Import stores img's blobs (layers, config, manifest, as they are) in the
// content store and names it in the image store. A later FROM name (or
// Pull of it) uses it without a registry.
func (p *Puller) Import(ctx context.Context, as string, img v1.Image) (imagestore.Image, error) {
	full, err := p.importName(as)
	if err != nil {
		return imagestore.Image{}, err
	}
	desc, err := p.writeImage(ctx, img)
	if err != nil {
		return imagestore.Image{}, fmt.Errorf("import %s: %w", imagestore.FamiliarName(full), err)
	}
	return p.store(ctx, full, desc)
}

// ImportIndex is Import for a multi-platform image: every image of idx is
// stored, and the name points at the index.
func (p *Puller) ImportIndex(ctx context.Context, as string, idx v1.ImageIndex) (imagestore.Image, error) {
	full, err := p.importName(as)
	if err != nil {
		return imagestore.Image{}, err
	}
	desc, err := p.writeIndex(ctx, idx)
	if err != nil {
		return imagestore.Image{}, fmt.Errorf("import %s: %w", imagestore.FamiliarName(full), err)
	}
	return p.store(ctx, full, desc)
}

func (p *Puller) importName(as string) (string, error) {
	if p.images == nil {
		return "", errdefs.WithClass(errdefs.ErrFailedPrecondition, errors.New("import: the puller has no image store"))
	}
	return imagestore.NormalizeName(as)
}

func (p *Puller) store(ctx context.Context, full string, desc ocispec.Descriptor) (imagestore.Image, error) {
	if err := p.images.Put(ctx, imagestore.Image{Name: full, Target: desc}); err != nil {
		return imagestore.Image{}, err
	}
	return p.images.Get(ctx, full)
}

// writeBlob stores r as desc unless the store has it.
func (p *Puller) writeBlob(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	if ok, err := content.Exists(ctx, p.cs, desc.Digest); err != nil || ok {
		return err
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	return content.WriteBlob(ctx, p.cs, "", rc, desc)
}

func (p *Puller) writeImage(ctx context.Context, img v1.Image) (ocispec.Descriptor, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return ocispec.Descriptor{}, errdefs.Invalidf("manifest: %v", err)
	}
	for _, l := range m.Layers {
		h, err := v1.NewHash(l.Digest.String())
		if err != nil {
			return ocispec.Descriptor{}, errdefs.Invalidf("layer digest %q: %v", l.Digest, err)
		}
		err = p.writeBlob(ctx, l, func() (io.ReadCloser, error) {
			layer, err := img.LayerByDigest(h)
			if err != nil {
				return nil, err
			}
			return layer.Compressed()
		})
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	err = p.writeBlob(ctx, m.Config, func() (io.ReadCloser, error) {
		b, err := img.RawConfigFile()
		return io.NopCloser(bytes.NewReader(b)), err
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: manifestMediaType(string(mt), raw), Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := content.WriteBlob(ctx, p.cs, "", bytes.NewReader(raw), desc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	return desc, nil
}

func (p *Puller) writeIndex(ctx context.Context, idx v1.ImageIndex) (ocispec.Descriptor, error) {
	raw, err := idx.RawManifest()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("index: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("index: %w", err)
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err == nil {
				_, err = p.writeImage(ctx, img)
			}
			if err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("image %s: %w", d.Digest, err)
			}
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err == nil {
				_, err = p.writeIndex(ctx, child)
			}
			if err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("index %s: %w", d.Digest, err)
			}
		}
	}
	mt, err := idx.MediaType()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: manifestMediaType(string(mt), raw), Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := content.WriteBlob(ctx, p.cs, "", bytes.NewReader(raw), desc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("index: %w", err)
	}
	return desc, nil
}

// ImportArchive loads the images of a tar archive at path: an OCI image
// layout (`docker buildx build --output type=oci`, `docker save` since
// Docker 25) or an older `docker save` archive (manifest.json with
// <id>/layer.tar). Each image is named by its annotation
// (io.containerd.image.name, or org.opencontainers.image.ref.name when that
// is a full reference) or RepoTags; name, if not empty, names an archive of
// exactly one image instead.
//
// Blobs go straight from the archive into the content store, each checked
// against its digest; nothing of the archive is written anywhere else.
func (p *Puller) ImportArchive(ctx context.Context, path, as string) ([]imagestore.Image, error) {
	if p.images == nil {
		return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, errors.New("import: the puller has no image store"))
	}
	meta, err := p.scanArchive(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	switch {
	case meta["index.json"] != nil:
		imgs, err := p.importLayout(ctx, meta["index.json"], as)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		return imgs, nil
	case meta["manifest.json"] != nil:
		imgs, err := p.importDockerSave(ctx, path, meta["manifest.json"], as)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		return imgs, nil
	}
	return nil, errdefs.Invalidf("import %s: not an OCI layout or docker save archive (no index.json or manifest.json)", path)
}

// scanArchive reads the archive once: blobs/<alg>/<hex> entries go into the
// content store, index.json and manifest.json are returned.
func (p *Puller) scanArchive(ctx context.Context, file string) (map[string][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	meta := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return meta, nil
		}
		if err != nil {
			return nil, errdefs.Invalidf("read archive: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		clean := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		switch {
		case clean == "index.json" || clean == "manifest.json":
			if hdr.Size > maxMetadataFile {
				return nil, errdefs.Invalidf("%s: %d bytes is too large", clean, hdr.Size)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, errdefs.Invalidf("read %s: %v", clean, err)
			}
			meta[clean] = b
		case strings.HasPrefix(clean, "blobs/"):
			parts := strings.Split(clean, "/")
			if len(parts) != 3 {
				continue
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
			if err := d.Validate(); err != nil {
				return nil, errdefs.Invalidf("%s: not a blob name: %v", clean, err)
			}
			if err := content.WriteBlob(ctx, p.cs, "", tr, ocispec.Descriptor{Digest: d, Size: hdr.Size}); err != nil {
				return nil, fmt.Errorf("%s: %w", clean, err)
			}
		}
	}
}

// importLayout names the images index.json lists.
func (p *Puller) importLayout(ctx context.Context, indexJSON []byte, as string) ([]imagestore.Image, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(indexJSON, &idx); err != nil {
		return nil, errdefs.Invalidf("index.json: %v", err)
	}
	if len(idx.Manifests) == 0 {
		return nil, errdefs.Invalidf("index.json lists no images")
	}
	if as != "" && len(idx.Manifests) != 1 {
		return nil, errdefs.Invalidf("the archive has %d images; a name can only be given to one (name them in the archive)", len(idx.Manifests))
	}
	var out []imagestore.Image
	for i, d := range idx.Manifests {
		n := as
		if n == "" {
			n = layoutName(d.Annotations)
		}
		if n == "" {
			return nil, errdefs.Invalidf("image %d of index.json (%s) has no name: give one", i+1, d.Digest)
		}
		full, err := imagestore.NormalizeName(n)
		if err != nil {
			return nil, err
		}
		if err := p.checkComplete(ctx, d, 0); err != nil {
			return nil, fmt.Errorf("image %s: %w", imagestore.FamiliarName(full), err)
		}
		img, err := p.store(ctx, full, ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// layoutName returns the image name an index.json entry's annotations give.
func layoutName(a map[string]string) string {
	if n := a[annotationContainerdName]; n != "" {
		return n
	}
	// The OCI annotation may be a bare tag ("latest"): only a full
	// reference names an image.
	if n := a[annotationRefName]; strings.ContainsAny(n, "/:") {
		if _, err := name.ParseReference(n); err == nil {
			return n
		}
	}
	return ""
}

// checkComplete checks that the content store has desc and, for a
// manifest, its config and layers; for an index, every child it has is
// complete and it has at least one.
func (p *Puller) checkComplete(ctx context.Context, desc ocispec.Descriptor, depth int) error {
	raw, err := content.ReadBlob(ctx, p.cs, desc)
	if errdefs.IsNotFound(err) {
		return errdefs.Invalidf("the archive lacks %s", desc.Digest)
	}
	if err != nil {
		return err
	}
	if desc.MediaType == "" {
		desc.MediaType = sniffMediaType(raw)
	}
	switch {
	case isIndex(desc.MediaType):
		if depth > 2 {
			return errdefs.Invalidf("indexes nested more than 2 deep")
		}
		var idx ocispec.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			return errdefs.Invalidf("index %s: %v", desc.Digest, err)
		}
		complete := 0
		for _, c := range idx.Manifests {
			if ok, err := content.Exists(ctx, p.cs, c.Digest); err != nil || !ok {
				continue // a platform left out of the archive
			}
			if err := p.checkComplete(ctx, c, depth+1); err != nil {
				return err
			}
			complete++
		}
		if complete == 0 {
			return errdefs.Invalidf("the archive has none of the images of index %s", desc.Digest)
		}
	case isManifest(desc.MediaType):
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return errdefs.Invalidf("manifest %s: %v", desc.Digest, err)
		}
		for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			ok, err := content.Exists(ctx, p.cs, b.Digest)
			if err != nil {
				return err
			}
			if !ok {
				return errdefs.Invalidf("the archive lacks blob %s of manifest %s", b.Digest, desc.Digest)
			}
		}
	default:
		// Attestations and other artifacts are kept as they are.
	}
	return nil
}

// importDockerSave imports an older docker save archive with
// go-containerregistry's tarball reader.
func (p *Puller) importDockerSave(ctx context.Context, file string, manifestJSON []byte, as string) ([]imagestore.Image, error) {
	var m tarball.Manifest
	if err := json.Unmarshal(manifestJSON, &m); err != nil {
		return nil, errdefs.Invalidf("manifest.json: %v", err)
	}
	if len(m) == 0 {
		return nil, errdefs.Invalidf("manifest.json lists no images")
	}
	if as != "" && len(m) != 1 {
		return nil, errdefs.Invalidf("the archive has %d images; a name can only be given to one", len(m))
	}
	opener := func() (io.ReadCloser, error) { return os.Open(file) }
	var out []imagestore.Image
	for i, d := range m {
		names := d.RepoTags
		var tag *name.Tag
		if len(names) > 0 {
			t, err := name.NewTag(names[0])
			if err != nil {
				return nil, errdefs.Invalidf("manifest.json: image %d: tag %q: %v", i+1, names[0], err)
			}
			tag = &t
		} else if len(m) != 1 {
			return nil, errdefs.Invalidf("manifest.json: image %d has no RepoTags: give the archive one image or tag them", i+1)
		}
		if as != "" {
			names = []string{as}
		}
		if len(names) == 0 {
			return nil, errdefs.Invalidf("manifest.json: the image has no RepoTags: give it a name")
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, errdefs.Invalidf("image %d: %v", i+1, err)
		}
		for _, n := range names {
			stored, err := p.Import(ctx, n, img)
			if err != nil {
				return nil, err
			}
			out = append(out, stored)
		}
	}
	return out, nil
}
