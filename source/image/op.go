package image

import (
	"context"
	"fmt"
	"time"

	units "github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/registry"
)

// LoadFunc returns a handle on a committed snapshot by name; the worker
// passes (*worker.Snapshots).Load.
type LoadFunc func(ctx context.Context, snapshotName string) (ops.Ref, error)

// Op is the ops.Op of a graph.ImageSource: its result is the image's root
// filesystem (the top snapshot of its layers), or nil for an image without
// layers.
type Op struct {
	src      graph.ImageSource
	digest   digest.Digest
	platform ocispec.Platform
	p        *Puller
	load     LoadFunc
	vertex   digest.Digest
}

var _ ops.Op = (*Op)(nil)

// OpOption configures an Op.
type OpOption func(*Op)

// WithOpCredentials has the op pull with a build's client credentials
// (the engine adapts session.Credentials to a registry.CredentialFunc).
func WithOpCredentials(creds registry.CredentialFunc) OpOption {
	return func(o *Op) { o.p = o.p.WithCredentials(creds) }
}

// WithVertex names the vertex whose progress the op reports layer
// downloads under (as log lines, "sha256:abcd… 1.2MB / 4.5MB"). Without it
// the op reports none.
func WithVertex(d digest.Digest) OpOption {
	return func(o *Op) { o.vertex = d }
}

// NewOp returns the op for op, which must be an image source. Its
// platform is op.Platform, or the host's when that is nil. load turns the
// image's top snapshot into the op's result.
func NewOp(op graph.Op, p *Puller, load LoadFunc, opts ...OpOption) (*Op, error) {
	if op.Source == nil || op.Source.Image == nil {
		return nil, errdefs.Invalidf("image source op: op is a %q op, not an image source", op.Kind())
	}
	if p == nil || load == nil {
		return nil, errdefs.Invalidf("image source op: nil puller or load func")
	}
	var pl ocispec.Platform
	if op.Platform != nil {
		pl = *op.Platform
	}
	o := &Op{src: *op.Source.Image, digest: op.Digest(), platform: normalizePlatform(pl), p: p, load: load}
	for _, opt := range opts {
		opt(o)
	}
	if o.p == p {
		// Cache credential answers per op run even without client ones.
		o.p = p.WithCredentials(nil)
	}
	return o, nil
}

// CacheMap implements ops.Op. The frontend pins image refs by digest, so
// the op digest alone is the key. A ref that is not pinned (a tag) is
// resolved first and its manifest digest joins the key, so that a moved
// tag is a cache miss.
func (o *Op) CacheMap(ctx context.Context) (*ops.CacheMap, error) {
	t, err := parseTarget(o.src.Ref)
	if err != nil {
		return nil, err
	}
	if t.digest != "" {
		return &ops.CacheMap{Digest: o.digest}, nil
	}
	r, err := o.p.resolve(ctx, o.src.Ref, o.platform)
	if err != nil {
		return nil, err
	}
	o.src.Ref = r.t.pinned(r.desc.Digest)
	return &ops.CacheMap{Digest: digest.FromString(o.digest.String() + "\x00" + r.desc.Digest.String())}, nil
}

// Exec implements ops.Op: it pulls the image and returns its top snapshot,
// or nil for an image without layers. It takes no inputs.
func (o *Op) Exec(ctx context.Context, inputs []ops.Ref) (ops.Ref, error) {
	if len(inputs) != 0 {
		return nil, errdefs.Invalidf("image source %s: takes no inputs, got %d", o.src.Ref, len(inputs))
	}
	var opts []PullOption
	if o.vertex != "" {
		opts = append(opts, WithProgress(o.reporter(progress.FromContext(ctx))))
	}
	img, err := o.p.Pull(ctx, o.src.Ref, o.platform, opts...)
	if err != nil {
		return nil, err
	}
	if img.ChainID == "" {
		return nil, nil
	}
	ref, err := o.load(ctx, img.ChainID)
	if err != nil {
		return nil, fmt.Errorf("image source %s: %w", img.Ref, err)
	}
	return ref, nil
}

// reporter turns pull progress into log lines of the op's vertex, like
// buildx's plain output.
func (o *Op) reporter(w progress.Writer) func(Progress) {
	return func(p Progress) {
		short := p.Layer.String()
		if len(short) > 19 {
			short = short[:19] // "sha256:" and 12 hex digits
		}
		var line string
		switch p.Status {
		case StatusDownloading:
			line = fmt.Sprintf("%s %s / %s\n", short, size(p.Current), size(p.Total))
		case StatusDownloaded:
			line = fmt.Sprintf("%s %s / %s done\n", short, size(p.Total), size(p.Total))
		case StatusExtracted:
			line = fmt.Sprintf("extracting %s done\n", short)
		default:
			return
		}
		w.Write(progress.Event{Log: &progress.Log{Vertex: o.vertex, Stream: 2, Data: []byte(line), Time: time.Now()}})
	}
}

func size(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
