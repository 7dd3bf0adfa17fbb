package exporter

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/kiln-build/kiln/internal/iox"

	"github.com/google/go-containerregistry/pkg/name"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/registry"
)

// TarballOptions configures NewTarball (type=oci and type=docker).
type TarballOptions struct {
	// Docker adds docker load's manifest.json and repositories to the OCI
	// layout (type=docker); the image then holds one platform only.
	Docker bool
	// Names are the image's names: index.json annotations
	// (io.containerd.image.name, org.opencontainers.image.ref.name) and,
	// for Docker, manifest.json's RepoTags.
	Names  []string
	Format ImageFormat
	// Dest and Tar are where and how the client writes the stream (dest=,
	// tar=); the exporter only carries them.
	Dest string
	Tar  bool
}

// NewTarball returns the exporter that streams the image as an OCI image
// layout tarball to deps.Writer: oci-layout, blobs/sha256/<hex> as each
// blob is ready, then index.json (and, for Docker, manifest.json and
// repositories).
func NewTarball(deps Deps, o TarballOptions) (Exporter, error) {
	if err := o.Format.Validate(); err != nil {
		return nil, err
	}
	if deps.Layers == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("tarball exporter: no layer store"))
	}
	refs, err := parseNames(o.Names)
	if err != nil {
		return nil, err
	}
	if deps.Writer == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("tarball exporter: no output stream"))
	}
	return &tarballExporter{deps: deps, opts: o, names: refs}, nil
}

type tarballExporter struct {
	deps  Deps
	opts  TarballOptions
	names []name.Reference
}

var _ Exporter = (*tarballExporter)(nil)

func (e *tarballExporter) Export(ctx context.Context, r Result) (resp Response, err error) {
	if err := checkResult(r); err != nil {
		return nil, err
	}
	if e.opts.Docker && len(r.Images) > 1 {
		return nil, errdefs.Invalidf("type=docker: a docker image tarball holds one platform, the build made %d: use type=oci for a multi-platform tarball, or build one --platform", len(r.Images))
	}
	w, finish, err := openWriter(e.deps.Writer)
	if err != nil {
		return nil, err
	}
	defer func() { err = finish(err) }()

	modTime := time.Unix(0, 0).UTC()
	if e.deps.SourceDateEpoch != nil {
		modTime = e.deps.SourceDateEpoch.UTC()
	}
	ts := &tarStream{tw: tar.NewWriter(w), modTime: modTime}
	if err := ts.file("oci-layout", []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`)); err != nil {
		return nil, err
	}
	if err := ts.dir("blobs/"); err != nil {
		return nil, err
	}
	if err := ts.dir("blobs/sha256/"); err != nil {
		return nil, err
	}
	cs := e.deps.Layers.Content()
	sink := func(ctx context.Context, desc ocispec.Descriptor) error { return ts.blob(ctx, cs, desc) }
	b, err := newBuilder(e.deps, e.opts.Format, r).build(ctx, r, sink)
	if err != nil {
		return nil, err
	}
	if err := ts.json("index.json", e.layoutIndex(b)); err != nil {
		return nil, err
	}
	if e.opts.Docker {
		if err := e.writeDockerFiles(ts, b); err != nil {
			return nil, err
		}
	}
	if err := ts.tw.Close(); err != nil {
		return nil, fmt.Errorf("export tarball: %w", err)
	}
	return imageResponse(b, e.opts.Names)
}

// layoutIndex is the OCI layout's index.json: the target once per name,
// or once without a name.
func (e *tarballExporter) layoutIndex(b *built) ocispec.Index {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	if b.indexJSON == nil {
		idx.Annotations = annotationsFor(e.opts.Format.Annotations, AnnotateIndex, nil)
	}
	if len(e.names) == 0 {
		idx.Manifests = []ocispec.Descriptor{b.target}
		return idx
	}
	for _, ref := range e.names {
		d := b.target
		d.Annotations = map[string]string{}
		for k, v := range b.target.Annotations {
			d.Annotations[k] = v
		}
		d.Annotations["io.containerd.image.name"] = registry.NormalizedName(ref)
		d.Annotations[ocispec.AnnotationRefName] = ref.Identifier()
		idx.Manifests = append(idx.Manifests, d)
	}
	return idx
}

// dockerManifest is one entry of docker save's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// writeDockerFiles writes manifest.json and repositories, which docker
// load reads. repositories (the pre-1.10 format) maps each name to the
// hex digest of the top layer blob; current loaders use manifest.json.
func (e *tarballExporter) writeDockerFiles(ts *tarStream, b *built) error {
	img := b.images[0]
	m := dockerManifest{Config: blobPath(img.config), RepoTags: []string{}, Layers: []string{}}
	for _, l := range img.layers {
		m.Layers = append(m.Layers, blobPath(l.Desc))
	}
	repos := map[string]map[string]string{}
	top := img.config.Digest.Encoded()
	if n := len(img.layers); n > 0 {
		top = img.layers[n-1].Desc.Digest.Encoded()
	}
	for _, ref := range e.names {
		familiar := imagestore.FamiliarName(registry.NormalizedName(ref))
		m.RepoTags = append(m.RepoTags, familiar)
		repo := imagestore.FamiliarName(registry.NormalizedName(ref.Context().Tag("latest")))
		repo = repo[:len(repo)-len(":latest")]
		if repos[repo] == nil {
			repos[repo] = map[string]string{}
		}
		repos[repo][ref.Identifier()] = top
	}
	if err := ts.json("manifest.json", []dockerManifest{m}); err != nil {
		return err
	}
	return ts.json("repositories", repos)
}

func blobPath(d ocispec.Descriptor) string {
	return path.Join("blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
}

// tarStream writes tar entries with fixed times, owners and modes, so that
// one image always gives the same tarball.
type tarStream struct {
	tw      *tar.Writer
	modTime time.Time
}

func (t *tarStream) header(name string, typ byte, mode, size int64) error {
	hdr := &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: t.modTime, Format: tar.FormatPAX}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("export tarball: write %s: %w", name, err)
	}
	return nil
}

func (t *tarStream) dir(name string) error { return t.header(name, tar.TypeDir, 0o755, 0) }

func (t *tarStream) file(name string, data []byte) error {
	if err := t.header(name, tar.TypeReg, 0o644, int64(len(data))); err != nil {
		return err
	}
	if _, err := t.tw.Write(data); err != nil {
		return fmt.Errorf("export tarball: write %s: %w", name, err)
	}
	return nil
}

func (t *tarStream) json(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.file(name, data)
}

// blob copies a content-store blob into the tarball.
func (t *tarStream) blob(ctx context.Context, cs content.Store, desc ocispec.Descriptor) error {
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("export tarball: read blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("export tarball: blob %s has %d bytes, its descriptor says %d", desc.Digest, ra.Size(), desc.Size))
	}
	p := blobPath(desc)
	if err := t.header(p, tar.TypeReg, 0o644, desc.Size); err != nil {
		return err
	}
	if _, err := io.Copy(t.tw, iox.ContextReader(ctx, io.NewSectionReader(ra, 0, desc.Size))); err != nil {
		return fmt.Errorf("export tarball: write %s: %w", p, err)
	}
	return nil
}
