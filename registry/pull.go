package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/core/errdefs"
)

// pull runs do against each pull endpoint of ref in turn (mirrors, then the
// origin) until one succeeds. A mirror's failure is logged and the next
// endpoint tried; the origin's failure is returned as an *Error listing the
// mirrors' failures too. Cancellation stops at once.
func (r *Resolver) pull(ctx context.Context, ref name.Reference, what string, do func(ep endpoint, opts []remote.Option) error) error {
	eps, err := r.endpoints(ref, true)
	if err != nil {
		return err
	}
	var mirrorErrs []*Error
	for _, ep := range eps {
		opts, cred, err := r.remoteOptions(ctx, ep)
		if err == nil {
			err = do(ep, opts)
		}
		if err == nil {
			if len(mirrorErrs) > 0 || ep.mirror {
				r.log.DebugContext(ctx, "registry pull answered", "ref", NormalizedName(ref), "registry", ep.host, "mirror", ep.mirror)
			}
			return nil
		}
		e := r.classifyAt(ctx, "pull", ref, ep, cred, what, err)
		if ctx.Err() != nil || errors.Is(e, errdefs.ErrCanceled) {
			return e
		}
		if !ep.mirror {
			e.Mirrors = mirrorErrs
			return e
		}
		r.log.WarnContext(ctx, "registry mirror failed, trying the next", slog.String("ref", NormalizedName(ref)),
			slog.String("mirror", ep.host), slog.String("error", e.reason))
		mirrorErrs = append(mirrorErrs, e)
	}
	// endpoints always ends with the origin.
	return errdefs.WithClass(errdefs.ErrInternal, errors.New("registry: no endpoint for "+NormalizedName(ref)))
}

// Descriptor is a manifest Get fetched, with the endpoint that served it.
// The embedded remote.Descriptor's Image and ImageIndex methods fetch the
// rest from that endpoint.
type Descriptor struct {
	*remote.Descriptor
	// Source is the reference on the registry that answered: a mirror's
	// or the origin's.
	Source name.Reference
}

// Get fetches ref's manifest (an image or an index) from the first of its
// mirrors or its origin that has it. extra options (e.g. remote.WithPlatform
// for Image on an index) are added after the resolver's own; do not pass
// transport or auth.
func (r *Resolver) Get(ctx context.Context, ref name.Reference, extra ...remote.Option) (*Descriptor, error) {
	var desc *Descriptor
	err := r.pull(ctx, ref, "manifest", func(ep endpoint, opts []remote.Option) error {
		d, err := remote.Get(ep.ref, append(opts, extra...)...)
		if err == nil {
			desc = &Descriptor{Descriptor: d, Source: ep.ref}
		}
		return err
	})
	return desc, err
}

// Head returns the descriptor (media type, size, digest) of ref's manifest
// without fetching it: the cheap way to resolve a tag to a digest.
func (r *Resolver) Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	var desc *v1.Descriptor
	err := r.pull(ctx, ref, "manifest", func(ep endpoint, opts []remote.Option) error {
		d, err := remote.Head(ep.ref, opts...)
		desc = d
		return err
	})
	return desc, err
}

// Image returns the image ref names for platform: ref's own image, or the
// platform's entry when ref is an index. Its layers are fetched lazily from
// the endpoint that answered; wrap errors from them with WrapError.
func (r *Resolver) Image(ctx context.Context, ref name.Reference, platform v1.Platform) (v1.Image, error) {
	var img v1.Image
	err := r.pull(ctx, ref, "manifest", func(ep endpoint, opts []remote.Option) error {
		d, err := remote.Get(ep.ref, append(opts, remote.WithPlatform(platform))...)
		if err != nil {
			return err
		}
		img, err = d.Image()
		if err != nil && d.MediaType.IsIndex() {
			if perr := missingPlatform(d, platform); perr != nil {
				return perr
			}
		}
		return err
	})
	return img, err
}

// platformError says an index has no image for the wanted platform.
type platformError struct {
	want v1.Platform
	have []string
}

func (e *platformError) Error() string {
	return fmt.Sprintf("no %s image in the index (it has %s)", e.want.String(), strings.Join(e.have, ", "))
}

// missingPlatform returns a *platformError when no entry of the index d
// satisfies platform (entries without a platform count as linux/amd64, as
// go-containerregistry treats them), and nil otherwise.
func missingPlatform(d *remote.Descriptor, platform v1.Platform) error {
	raw, err := d.RawManifest()
	if err != nil {
		return nil
	}
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	have := make([]string, 0, len(m.Manifests))
	for _, c := range m.Manifests {
		p := v1.Platform{OS: "linux", Architecture: "amd64"}
		if c.Platform != nil {
			p = *c.Platform
		}
		if p.Satisfies(platform) {
			return nil
		}
		have = append(have, p.String())
	}
	return &platformError{want: platform, have: have}
}

// Index returns the index ref names. It is an error (from the registry
// library) when ref is a single image.
func (r *Resolver) Index(ctx context.Context, ref name.Reference) (v1.ImageIndex, error) {
	var idx v1.ImageIndex
	err := r.pull(ctx, ref, "manifest", func(ep endpoint, opts []remote.Option) error {
		d, err := remote.Get(ep.ref, opts...)
		if err != nil {
			return err
		}
		idx, err = d.ImageIndex()
		return err
	})
	return idx, err
}

// blobExister is the part of go-containerregistry's remote layer that checks
// for a blob with a HEAD request.
type blobExister interface {
	Exists() (bool, error)
}

// Layer returns the blob ref names from the first mirror or origin that has
// it (checked with a HEAD request); its content is fetched lazily from
// there. go-containerregistry reports a remote layer's media type as
// Docker's; take the real one from the manifest.
func (r *Resolver) Layer(ctx context.Context, ref name.Digest) (v1.Layer, error) {
	var layer v1.Layer
	err := r.pull(ctx, ref, "blob", func(ep endpoint, opts []remote.Option) error {
		l, err := remote.Layer(ep.ref.(name.Digest), opts...)
		if err != nil {
			return err
		}
		if ex, ok := l.(blobExister); ok {
			found, err := ex.Exists()
			if err != nil {
				return err
			}
			if !found {
				return &transport.Error{StatusCode: http.StatusNotFound, Errors: []transport.Diagnostic{{Code: transport.BlobUnknownErrorCode}}}
			}
		}
		layer = l
		return nil
	})
	return layer, err
}
