package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/registry"
	"github.com/kiln-build/kiln/source/image"
)

// pushJobs is how many blobs one push uploads at a time.
const pushJobs = 4

// Options are what the service works with. Every field is required.
type Options struct {
	Content  content.Store
	Store    *imagestore.Store
	Puller   *image.Puller
	Resolver *registry.Resolver
	// TempDir holds uploads while they are imported (<root>/tmp).
	TempDir string
}

// Service runs the image commands. It is safe for concurrent use.
type Service struct {
	o Options
}

// New returns the service.
func New(o Options) *Service { return &Service{o: o} }

// Image describes a stored image.
type Image struct {
	// Name is the familiar name ("app:latest", "registry:5000/x:1").
	Name string
	// Digest is the manifest's or index's.
	Digest    digest.Digest
	MediaType string
	// Platforms are those of the manifests the store has.
	Platforms []string
	// Size counts each blob once.
	Size    int64
	Created time.Time
}

// List returns the stored images.
func (s *Service) List(ctx context.Context) ([]Image, error) {
	imgs, err := s.o.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, s.describe(ctx, img))
	}
	return out, nil
}

// describe describes a stored image.
func (s *Service) describe(ctx context.Context, img imagestore.Image) Image {
	plats, size := summarize(ctx, s.o.Content, img.Target)
	return Image{
		Name: imagestore.FamiliarName(img.Name), Digest: img.Target.Digest,
		MediaType: img.Target.MediaType, Platforms: plats, Size: size, Created: img.Created,
	}
}

// summarize returns the platforms of an image or index and the size of its
// blobs (a blob shared by two platforms counts once).
func summarize(ctx context.Context, cs content.Store, target ocispec.Descriptor) ([]string, int64) {
	seen := map[string]bool{}
	var plats []string
	var size int64
	add := func(d ocispec.Descriptor) {
		if !seen[d.Digest.String()] {
			seen[d.Digest.String()] = true
			size += d.Size
		}
	}
	var visit func(d ocispec.Descriptor)
	visit = func(d ocispec.Descriptor) {
		add(d)
		b, err := content.ReadBlob(ctx, cs, d)
		if err != nil {
			return
		}
		var m struct {
			Manifests []ocispec.Descriptor `json:"manifests"`
			Config    ocispec.Descriptor   `json:"config"`
			Layers    []ocispec.Descriptor `json:"layers"`
		}
		if json.Unmarshal(b, &m) != nil {
			return
		}
		for _, c := range m.Manifests {
			visit(c)
		}
		if m.Config.Digest == "" {
			return
		}
		add(m.Config)
		for _, l := range m.Layers {
			add(l)
		}
		if cb, err := content.ReadBlob(ctx, cs, m.Config); err == nil {
			var c ocispec.Image
			if json.Unmarshal(cb, &c) == nil && c.OS != "" {
				plats = append(plats, platforms.Format(c.Platform))
			}
		}
	}
	visit(target)
	return plats, size
}

// stored returns the stored image ref names, with the error users see
// for a name the store lacks.
func (s *Service) stored(ctx context.Context, ref string) (imagestore.Image, error) {
	img, err := s.o.Store.Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return imagestore.Image{}, notInStore(ref)
	}
	return img, err
}

// Stored returns the stored image ref names, pinned: the image store's
// entry, or an errdefs.ErrNotFound error that says so in the user's terms
// (image "foo:latest" not found in kilnd's image store).
func (s *Service) Stored(ctx context.Context, ref string) (imagestore.Image, error) {
	return s.stored(ctx, ref)
}

// notInStore is the error for an image name the store lacks:
// image "foo:latest" not found in kilnd's image store (kiln images lists them).
func notInStore(ref string) error {
	shown := ref
	if r, err := registry.ParseReference(ref); err == nil {
		shown = imagestore.FamiliarName(registry.NormalizedName(r))
	}
	return errdefs.NotFoundf("image %q not found in kilnd's image store (kiln images lists them)", shown)
}

// RemoveResult is what Remove did: the images the removed names pointed
// at, and why the other names were not removed.
type RemoveResult struct {
	Removed []Image
	Errors  []error
}

// Remove removes names from the store (the names, not the blobs: gc frees
// those). A name that cannot be removed is reported in the result and the
// others are still removed; only ctx ending is an error.
func (s *Service) Remove(ctx context.Context, names []string) (*RemoveResult, error) {
	if len(names) == 0 {
		return nil, errdefs.Invalidf("kiln image rm: name at least one image")
	}
	res := &RemoveResult{}
	for _, n := range names {
		img, err := s.stored(ctx, n)
		if err == nil && strings.Contains(n, "@") {
			// A digest reference names the image, not a tag to remove.
			err = errdefs.Invalidf("image %q: remove it by name (kiln image rm %s), not by digest", n, imagestore.FamiliarName(img.Name))
		}
		if err == nil {
			if err = s.o.Store.Delete(ctx, img.Name); errdefs.IsNotFound(err) {
				err = notInStore(n) // removed by someone else meanwhile
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			res.Errors = append(res.Errors, err)
			continue
		}
		res.Removed = append(res.Removed, s.describe(ctx, img))
	}
	return res, nil
}

// Tag gives the stored image source the name target too.
func (s *Service) Tag(ctx context.Context, source, target string) (Image, error) {
	if _, err := imagestore.NormalizeName(target); err != nil {
		return Image{}, err
	}
	if _, err := s.stored(ctx, source); err != nil {
		return Image{}, err
	}
	img, err := s.o.Store.Tag(ctx, source, target)
	if errdefs.IsNotFound(err) {
		return Image{}, notInStore(source)
	}
	if err != nil {
		return Image{}, err
	}
	return s.describe(ctx, img), nil
}

// Inspection is what Inspect reads of an image.
type Inspection struct {
	Image Image
	// Index is the index JSON of a multi-platform image.
	Index []byte
	// Manifests has one entry per platform the store has.
	Manifests []Manifest
	// Missing are the platforms the index lists that the store lacks
	// (only some were pulled).
	Missing []string
}

// Manifest is one platform's manifest and config, as stored.
type Manifest struct {
	Platform  string
	Digest    digest.Digest
	MediaType string
	Manifest  []byte // JSON
	Config    []byte // JSON
}

// Inspect reads the stored image name: its index, manifests and configs.
func (s *Service) Inspect(ctx context.Context, name string) (*Inspection, error) {
	img, err := s.stored(ctx, name)
	if err != nil {
		return nil, err
	}
	res := &Inspection{Image: s.describe(ctx, img)}
	shown := imagestore.FamiliarName(img.Name)
	if types.MediaType(img.Target.MediaType).IsIndex() {
		x, err := loadIndex(ctx, s.o.Content, img.Target)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", shown, err)
		}
		res.Index, res.Missing = x.raw, x.missing
		for _, m := range x.manifests {
			res.Manifests = append(res.Manifests, inspected(m))
		}
		return res, nil
	}
	m, err := loadManifest(ctx, s.o.Content, img.Target)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", shown, err)
	}
	res.Manifests = []Manifest{inspected(m)}
	return res, nil
}

func inspected(m *loadedManifest) Manifest {
	return Manifest{
		Platform: m.platform(), Digest: m.desc.Digest, MediaType: m.desc.MediaType,
		Manifest: m.raw, Config: m.config,
	}
}

// PushRequest is one image push.
type PushRequest struct {
	// Name is the stored image's name (a tag, not a digest); the
	// registry is the one it names.
	Name string
	// Credentials, when set, answer the registry's questions ahead of the
	// daemon's own credentials (the client's logins).
	Credentials registry.CredentialFunc
}

// PushResult is what a push wrote.
type PushResult struct {
	Ref    string // the pushed reference, normalised
	Digest digest.Digest
	Size   int64
}

// Push pushes a stored image to the registry its name says, through the
// daemon's resolver. A failed push leaves the store as it was.
func (s *Service) Push(ctx context.Context, req PushRequest) (*PushResult, error) {
	if strings.Contains(req.Name, "@") {
		return nil, errdefs.Invalidf("kiln image push %s: push a name (a tag), not a digest", req.Name)
	}
	img, err := s.stored(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	ref, err := registry.ParseReference(img.Name)
	if err != nil {
		return nil, err
	}
	shown := imagestore.FamiliarName(img.Name)
	resolver := s.o.Resolver.WithCredentials(req.Credentials)
	opts := []remote.Option{remote.WithJobs(pushJobs)}
	if types.MediaType(img.Target.MediaType).IsIndex() {
		x, err := loadIndex(ctx, s.o.Content, img.Target)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", shown, err)
		}
		if len(x.missing) > 0 {
			return nil, errdefs.WithClass(errdefs.ErrFailedPrecondition, fmt.Errorf(
				"push %s: its index lists %s, which kilnd's store does not have (only some platforms were pulled); a push needs every platform",
				shown, strings.Join(x.missing, ", ")))
		}
		idx, err := newStoreIndex(ctx, s.o.Content, x)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", shown, err)
		}
		if err := resolver.WriteIndex(ctx, ref, idx, opts...); err != nil {
			return nil, pushError(ref, err)
		}
	} else {
		m, err := loadManifest(ctx, s.o.Content, img.Target)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", shown, err)
		}
		v1img, err := storeImage(ctx, s.o.Content, m)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", shown, err)
		}
		if err := resolver.Write(ctx, ref, v1img, opts...); err != nil {
			return nil, pushError(ref, err)
		}
	}
	_, size := summarize(ctx, s.o.Content, img.Target)
	return &PushResult{Ref: registry.NormalizedName(ref), Digest: img.Target.Digest, Size: size}, nil
}

// pushError makes sure a failed push names the registry; the resolver's
// errors do, others (a blob missing from the store) get it here.
func pushError(ref name.Reference, err error) error {
	var re *registry.Error
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("push %s to %s: %w", registry.NormalizedName(ref), ref.Context().RegistryStr(), err)
}
