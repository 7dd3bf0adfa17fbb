package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/registry"
)

// ImageOptions configures NewImage (type=image and type=registry).
type ImageOptions struct {
	// Names are the image's names ("app:1", "reg.local:5000/app"):
	// tags in the image store and push targets.
	Names []string
	// Store keeps the image in the image store under each name.
	Store bool
	// Push pushes the image to each name's registry (after storing it, so
	// a failed push leaves the local image).
	Push bool
	// PushByDigest pushes to each name's repository without a tag.
	PushByDigest bool
	// Insecure allows pushing over plain HTTP or to a registry whose TLS
	// certificate does not verify (registry.insecure=true).
	Insecure bool
	Format   ImageFormat
}

// NewImage returns the exporter that stores and/or pushes the built image.
func NewImage(deps Deps, o ImageOptions) (Exporter, error) {
	if err := o.Format.Validate(); err != nil {
		return nil, err
	}
	if deps.Layers == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("image exporter: no layer store"))
	}
	names, err := parseNames(o.Names)
	if err != nil {
		return nil, err
	}
	if o.Push && len(names) == 0 {
		return nil, errdefs.Invalidf("push=true needs a name to push to (name=registry/repository:tag, or kiln build -t)")
	}
	if o.Push && deps.Resolver == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("image exporter: push without a registry resolver"))
	}
	if o.Store && len(names) > 0 && deps.Images == nil {
		return nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("image exporter: store without an image store"))
	}
	return &imageExporter{deps: deps, opts: o, names: names}, nil
}

// parseNames checks image names: tags (a digest cannot name a new image).
func parseNames(names []string) ([]name.Reference, error) {
	var refs []name.Reference
	for _, n := range names {
		ref, err := registry.ParseReference(n)
		if err != nil {
			return nil, fmt.Errorf("name: %w", err)
		}
		if _, ok := ref.(name.Tag); !ok || strings.Contains(n, "@") {
			return nil, errdefs.Invalidf("name %q: an image name is a tag, not a digest", n)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

type imageExporter struct {
	deps  Deps
	opts  ImageOptions
	names []name.Reference
}

var _ Exporter = (*imageExporter)(nil)

func (e *imageExporter) Export(ctx context.Context, r Result) (Response, error) {
	b, err := newBuilder(e.deps, e.opts.Format, r).build(ctx, r, nil)
	if err != nil {
		return nil, err
	}
	resp, err := imageResponse(b, e.opts.Names)
	if err != nil {
		return nil, err
	}
	if e.opts.Store {
		for i, ref := range e.names {
			if err := e.deps.Images.Put(ctx, imagestore.Image{Name: registry.NormalizedName(ref), Target: b.target}); err != nil {
				return nil, fmt.Errorf("store image %s: %w", e.opts.Names[i], err)
			}
		}
	}
	if e.opts.Push {
		if err := e.push(ctx, b); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// imageResponse describes the built image under the buildx keys.
func imageResponse(b *built, names []string) (Response, error) {
	desc, err := json.Marshal(b.target)
	if err != nil {
		return nil, err
	}
	resp := Response{KeyDigest: b.target.Digest.String(), KeyDescriptor: string(desc)}
	if len(b.images) == 1 {
		resp[KeyConfigDigest] = b.images[0].config.Digest.String()
	}
	if len(names) > 0 {
		resp[KeyImageName] = strings.Join(names, ",")
	}
	return resp, nil
}
