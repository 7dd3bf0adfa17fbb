package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/registry"
)

// Exporter writes a build result to one output.
type Exporter interface {
	// Export writes r and returns what it made, under the Key* names
	// (buildx's metadata keys).
	Export(ctx context.Context, r Result) (Response, error)
}

// Result is what a build produced: one image per platform.
type Result struct {
	Images []Image
	// Created is when the build made the result: the time in the image
	// configs and in history entries without one (unless a
	// SOURCE_DATE_EPOCH is set). Zero means the time of the export; Multi
	// sets it once for all its exporters, so that they describe the same
	// image.
	Created time.Time
	// Inline, when set, adds build cache metadata to each image config
	// (--cache-to type=inline), under imageconfig.InlineCacheKey.
	Inline InlineCache
}

// InlineCache makes the build cache metadata an image config carries
// (implemented in cache/remote).
type InlineCache interface {
	// CacheConfig returns the imageconfig.InlineCacheKey value for the
	// config of an image whose filesystem is the committed snapshot
	// named snapshot and whose layers are layers (bottom first, as the
	// manifest lists them), or nil for none.
	CacheConfig(ctx context.Context, snapshot string, layers []layer.Blob) (json.RawMessage, error)
}

// created returns r.Created, or now.
func (r Result) created() time.Time {
	if r.Created.IsZero() {
		return time.Now().UTC()
	}
	return r.Created.UTC()
}

// Image is the result for one platform.
type Image struct {
	Platform ocispec.Platform
	// Ref is the final filesystem: a committed snapshot (Ref.ID is its
	// name), or nil for an empty filesystem. Filesystem exporters also
	// accept refs that are plain directories (ops.Dir).
	Ref ops.Ref
	// Config is the image config the frontend computed, with one history
	// entry per instruction (EmptyLayer set for metadata-only ones) after
	// the base image's. RootFS is ignored: the exporter sets it.
	Config ocispec.Image
	// ConfigExt holds the Docker config fields ocispec.Image lacks
	// (Healthcheck, OnBuild, Shell); they are written into the config.
	ConfigExt imageconfig.ConfigExt
}

// Response describes what an export made, keyed by the Key* constants.
type Response map[string]string

// Response keys, as BuildKit and buildx name them.
const (
	// KeyDigest is the digest of the image manifest, or of the index for
	// several platforms.
	KeyDigest = "containerimage.digest"
	// KeyConfigDigest is the digest of the image config (one platform only).
	KeyConfigDigest = "containerimage.config.digest"
	// KeyDescriptor is the JSON OCI descriptor of the manifest or index.
	KeyDescriptor = "containerimage.descriptor"
	// KeyImageName is the comma-separated list of names the image got.
	KeyImageName = "image.name"
)

// ImageStore is where type=image stores named images (*imagestore.Store).
type ImageStore interface {
	Put(ctx context.Context, img imagestore.Image) error
}

// Deps is what exporters need from the daemon and from the build. Which
// fields an exporter needs depends on its type; the factories and the New*
// constructors say when one is missing.
type Deps struct {
	// Layers makes layer blobs. It is required by every image exporter and
	// should be one value per daemon, so that concurrent exports share
	// their work.
	Layers *layer.Maker
	// Images stores named images (type=image with store=true).
	Images ImageStore
	// Resolver pushes images (push=true); the engine passes the build's
	// view of it (Resolver.WithCredentials with the client's credentials).
	Resolver *registry.Resolver
	// Writer opens the stream a client-side output (oci, docker, local,
	// tar) is written to. The exporter calls it once per Export and closes
	// what it returns, with CloseWithError(err) when the writer has that
	// method and the export failed.
	Writer func() (io.WriteCloser, error)
	// SourceDateEpoch, when set, is the build's SOURCE_DATE_EPOCH: the
	// time every new layer's file times are clamped to and that the config
	// and history carry.
	SourceDateEpoch *time.Time
	// Tags are the build's kiln build -t names: outputs that name images
	// (image, registry, docker) add them to their name= names.
	Tags []string
}

// Multi returns an exporter that exports to each of es concurrently. Layer
// blobs are made once for all of them (see Layers). The first failure
// cancels the others; the error joins every failure. The response merges
// theirs: for a key two exporters both set differently, the earlier
// exporter's value wins, except image.name, whose names are joined.
func Multi(es ...Exporter) Exporter {
	if len(es) == 1 {
		return es[0]
	}
	return multi(es)
}

type multi []Exporter

var _ Exporter = multi(nil)

// errOtherOutput is the cause Multi cancels the other exports with when
// one fails.
var errOtherOutput = errors.New("export to another output failed")

func (m multi) Export(ctx context.Context, r Result) (Response, error) {
	r.Created = r.created()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resps := make([]Response, len(m))
	errs := make([]error, len(m))
	var wg sync.WaitGroup
	for i, e := range m {
		wg.Go(func() {
			resps[i], errs[i] = e.Export(ctx, r)
			if errs[i] != nil {
				cancel(errOtherOutput)
			}
		})
	}
	wg.Wait()
	// Report the failures, not the cancellations they caused.
	siblingFailed := errors.Is(context.Cause(ctx), errOtherOutput)
	var failed, all []error
	for _, err := range errs {
		if err == nil {
			continue
		}
		all = append(all, err)
		if !errors.Is(err, errOtherOutput) && !(siblingFailed && errors.Is(err, context.Canceled)) {
			failed = append(failed, err)
		}
	}
	switch {
	case len(failed) > 0:
		return nil, errors.Join(failed...)
	case len(all) > 0:
		return nil, all[0]
	}
	return mergeResponses(resps), nil
}

func mergeResponses(resps []Response) Response {
	out := Response{}
	var names []string
	seen := map[string]bool{}
	for _, r := range resps {
		for k, v := range r {
			if k == KeyImageName {
				for _, n := range strings.Split(v, ",") {
					if n != "" && !seen[n] {
						seen[n] = true
						names = append(names, n)
					}
				}
				continue
			}
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	if len(names) > 0 {
		out[KeyImageName] = strings.Join(names, ",")
	}
	return out
}

// checkResult validates the result an image exporter got.
func checkResult(r Result) error {
	if len(r.Images) == 0 {
		return errdefs.Invalidf("export: the build produced no image")
	}
	seen := map[string]bool{}
	for _, img := range r.Images {
		p := img.Platform
		if p.OS == "" || p.Architecture == "" {
			return errdefs.Invalidf("export: image for platform %q: os and architecture must be set", platformString(p))
		}
		s := platformString(p)
		if seen[s] {
			return errdefs.Invalidf("export: two images for platform %s", s)
		}
		seen[s] = true
	}
	return nil
}

// platformString formats p as "os/arch[/variant]".
func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// openWriter opens the client stream and returns a finish function that
// closes it, reporting err to the reader when it can.
func openWriter(open func() (io.WriteCloser, error)) (io.Writer, func(err error) error, error) {
	if open == nil {
		return nil, nil, errdefs.WithClass(errdefs.ErrInternal, errors.New("export: no output stream to write to"))
	}
	w, err := open()
	if err != nil {
		return nil, nil, fmt.Errorf("export: open output: %w", err)
	}
	finish := func(err error) error {
		if err != nil {
			if cw, ok := w.(interface{ CloseWithError(error) error }); ok {
				_ = cw.CloseWithError(err)
			} else {
				_ = w.Close()
			}
			return err
		}
		if cerr := w.Close(); cerr != nil {
			return fmt.Errorf("export: close output: %w", cerr)
		}
		return nil
	}
	return w, finish, nil
}
