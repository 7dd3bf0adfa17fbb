package exporter

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/registry"
)

// pushJobs is how many blobs one push uploads at a time.
const pushJobs = 4

// push pushes the built image to each name (or, by digest, to each name's
// repository).
func (e *imageExporter) push(ctx context.Context, b *built) error {
	for _, ref := range e.names {
		target := ref
		if e.opts.PushByDigest {
			target = ref.Context().Digest(b.target.Digest.String())
		}
		if err := pushBuilt(ctx, e.deps, target, b, e.opts.Insecure); err != nil {
			return err
		}
	}
	return nil
}

// pushBuilt pushes b to ref through the resolver. Blobs the registry has
// are skipped (go-containerregistry asks with HEAD first), base layers
// pulled from another repository of the same registry are mounted from
// it, and blobs upload pushJobs at a time.
func pushBuilt(ctx context.Context, deps Deps, ref name.Reference, b *built, insecure bool) error {
	t, err := taggable(ctx, deps.Layers.Content(), b, ref.Context().RegistryStr())
	if err != nil {
		return fmt.Errorf("push %s: %w", registry.NormalizedName(ref), err)
	}
	extra := []remote.Option{remote.WithJobs(pushJobs)}
	if !insecure {
		if idx, ok := t.(v1.ImageIndex); ok {
			return deps.Resolver.WriteIndex(ctx, ref, idx, extra...)
		}
		return deps.Resolver.Write(ctx, ref, t.(v1.Image), extra...)
	}
	// registry.insecure=true: the resolver knows only the daemon's
	// per-host settings, so override its transport for this push: plain
	// HTTP allowed, TLS certificates not verified.
	pref, opts, err := deps.Resolver.PushOptions(ctx, ref)
	if err != nil {
		return err
	}
	pref, err = insecureRef(pref)
	if err != nil {
		return registry.WrapError("push", ref, err)
	}
	opts = append(opts, extra...)
	opts = append(opts, remote.WithTransport(insecureTransport()))
	if err := remote.Push(pref, t, opts...); err != nil {
		return registry.WrapError("push", ref, err)
	}
	return nil
}

func insecureRef(ref name.Reference) (name.Reference, error) {
	switch r := ref.(type) {
	case name.Digest:
		return name.NewDigest(r.String(), name.Insecure)
	default:
		return name.NewTag(ref.String(), name.Insecure)
	}
}

func insecureTransport() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // registry.insecure=true asked for it
	return t
}

// taggable returns b as a go-containerregistry image or index over the
// content store. Layers pulled from a repository on registry reg are
// mountable from there.
func taggable(ctx context.Context, cs content.Store, b *built, reg string) (remote.Taggable, error) {
	imgs := make([]*contentImage, len(b.images))
	for i, bi := range b.images {
		layers := make([]v1.Layer, len(bi.layers))
		for j, lb := range bi.layers {
			l := layer.ContentLayer(ctx, cs, lb.Desc, lb.DiffID)
			if src := mountSource(lb.Source, reg); src != nil {
				l = &remote.MountableLayer{Layer: l, Reference: src}
			}
			layers[j] = l
		}
		img, err := newContentImage(bi.manifestJSON, bi.manifest.MediaType, bi.configJSON, layers)
		if err != nil {
			return nil, err
		}
		imgs[i] = img
	}
	if b.indexJSON == nil {
		return imgs[0], nil
	}
	return newContentIndex(b.indexJSON, b.target.MediaType, imgs)
}

// mountSource returns the repository to mount a layer from when pushing to
// registry reg: its source repository, if that is on reg.
func mountSource(source, reg string) name.Reference {
	if source == "" {
		return nil
	}
	ref, err := name.ParseReference(source)
	if err != nil || ref.Context().RegistryStr() != reg {
		return nil
	}
	return ref
}
