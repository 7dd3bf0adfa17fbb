package layer

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/flight"
	"github.com/kiln-build/kiln/internal/iox"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/labels"
	"github.com/kiln-build/kiln/snapshot"
)

// Maker makes the blob of each layer once and remembers it in the
// snapshot's labels. One Maker serves the whole daemon; it is safe for
// concurrent use.
type Maker struct {
	cs       content.Store
	sn       snapshots.Snapshotter
	sem      chan struct{}
	flights  flight.Group[Blob]
	diffHook func(name string) // called before each Diff (tests count them)
}

// Option configures a Maker.
type Option func(*Maker)

// WithMaxParallel sets how many layers are diffed or converted at once
// (default: the number of CPUs, at least 2). Each also compresses on
// several cores.
func WithMaxParallel(n int) Option {
	return func(l *Maker) { l.sem = make(chan struct{}, max(n, 1)) }
}

// WithDiffHook calls hook with the snapshot's name before each diff
// (tests count the diffs).
func WithDiffHook(hook func(name string)) Option {
	return func(l *Maker) { l.diffHook = hook }
}

// NewMaker returns a Maker that reads snapshots from sn and keeps blobs in
// cs.
func NewMaker(cs content.Store, sn snapshots.Snapshotter, opts ...Option) *Maker {
	l := &Maker{cs: cs, sn: sn, sem: make(chan struct{}, max(2, runtime.NumCPU()))}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Content returns the content store the blobs are in.
func (l *Maker) Content() content.Store { return l.cs }

// Snapshotter returns the snapshotter the layers come from.
func (l *Maker) Snapshotter() snapshots.Snapshotter { return l.sn }

// Blob is a layer's blob in the content store.
type Blob struct {
	// Compression is Gzip, Zstd or Uncompressed.
	Compression string
	// Desc is the blob's descriptor; its media type is the one it was
	// stored with (exporters set their own).
	Desc ocispec.Descriptor
	// DiffID is the digest of the uncompressed layer tar.
	DiffID digest.Digest
	// Source is the repository a base image layer was pulled from
	// ("docker.io/library/busybox"), "" for layers the build made.
	Source string
}

// BlobOptions says which blob Blob should return.
type BlobOptions struct {
	Compression Compression
	// SourceDateEpoch clamps the file times of layers that are diffed. It
	// does not apply to base image layers (snapshots with a source label),
	// which are exported as they were pulled.
	SourceDateEpoch *time.Time
}

// Chain returns the committed snapshots of name's parent chain, bottom
// first, ending with name: one per layer.
func (l *Maker) Chain(ctx context.Context, name string) ([]string, error) {
	var chain []string
	for n := name; n != ""; {
		info, err := l.sn.Stat(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("layers of %s: %w", name, err)
		}
		if info.Kind != snapshots.KindCommitted {
			return nil, errdefs.Invalidf("layers of %s: snapshot %s is not committed", name, n)
		}
		chain = append(chain, n)
		n = info.Parent
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// Blob returns the blob of the layer the committed snapshot name adds to
// its parent. In order, it uses: the labelled blob in the wanted
// compression; unless Force, a labelled blob in another compression; a
// labelled blob of another compression converted (its diffID kept); or the
// snapshot's diff, compressed. Blobs it makes are stored in the content
// store and labelled on the snapshot. Concurrent calls for one blob share
// the work. Labelled blobs missing from the content store (gc) are made
// again.
func (l *Maker) Blob(ctx context.Context, name string, o BlobOptions) (Blob, error) {
	if err := o.Compression.Validate(); err != nil {
		return Blob{}, err
	}
	key := name + "\x00" + o.Compression.Name() + "\x00" + strconv.FormatBool(o.Compression.Force)
	if o.SourceDateEpoch != nil {
		key += "\x00" + strconv.FormatInt(o.SourceDateEpoch.Unix(), 10)
	}
	return l.flights.Do(ctx, key, func(ctx context.Context, _ *flight.Call) (Blob, error) {
		b, err := l.blob(ctx, name, o)
		if err != nil {
			return Blob{}, fmt.Errorf("layer %s: %w", name, err)
		}
		return b, nil
	})
}

// labelKeys are the label names one kind of blob of a snapshot is recorded
// under: the plain ones of core/labels, or for layers diffed with a
// SOURCE_DATE_EPOCH, epoch-specific ones (a clamped tar is another layer).
type labelKeys struct {
	diffID string
	blob   func(comp string) string
}

var plainKeys = labelKeys{diffID: labels.DiffID, blob: labels.Blob}

// epochKeys are "kiln.io/layer.sde-<unix seconds>.diffid" and
// ".blob.<compression>".
func epochKeys(epoch time.Time) labelKeys {
	prefix := "kiln.io/layer.sde-" + strconv.FormatInt(epoch.Unix(), 10)
	return labelKeys{
		diffID: prefix + ".diffid",
		blob:   func(comp string) string { return prefix + ".blob." + comp },
	}
}

func (l *Maker) blob(ctx context.Context, name string, o BlobOptions) (Blob, error) {
	info, err := l.sn.Stat(ctx, name)
	if err != nil {
		return Blob{}, err
	}
	if info.Kind != snapshots.KindCommitted {
		return Blob{}, errdefs.Invalidf("snapshot %s is not committed", name)
	}
	source := info.Labels[labels.Source]
	keys := plainKeys
	var diffOpts []snapshot.DiffOpt
	if o.SourceDateEpoch != nil && source == "" {
		keys = epochKeys(*o.SourceDateEpoch)
		diffOpts = append(diffOpts, snapshot.WithSourceDateEpoch(*o.SourceDateEpoch))
	}
	want := o.Compression.Name()
	if b, ok, err := l.labelled(ctx, info, keys, want); err != nil || ok {
		return b, err
	}
	for _, c := range Compressions() {
		if c == want {
			continue
		}
		b, ok, err := l.labelled(ctx, info, keys, c)
		if err != nil {
			return Blob{}, err
		}
		if !ok {
			continue
		}
		if !o.Compression.Force {
			return b, nil
		}
		return l.convert(ctx, info, keys, b, o.Compression)
	}
	return l.diff(ctx, info, keys, o.Compression, diffOpts)
}

// labelled returns the blob of compression comp the snapshot's labels
// name, if it is in the content store.
func (l *Maker) labelled(ctx context.Context, info snapshots.Info, keys labelKeys, comp string) (Blob, bool, error) {
	diffID, err := digest.Parse(info.Labels[keys.diffID])
	if err != nil {
		return Blob{}, false, nil
	}
	v, ok := info.Labels[keys.blob(comp)]
	if !ok {
		return Blob{}, false, nil
	}
	desc, err := ParseBlobLabel(v)
	if err != nil {
		return Blob{}, false, nil // unreadable: make it again
	}
	ok, err = content.Exists(ctx, l.cs, desc.Digest)
	if err != nil || !ok {
		return Blob{}, false, err
	}
	return Blob{Compression: comp, Desc: desc, DiffID: diffID, Source: info.Labels[labels.Source]}, true, nil
}

// ParseBlobLabel reads "<media type>|<digest>|<size>".
func ParseBlobLabel(v string) (ocispec.Descriptor, error) {
	parts := strings.Split(v, "|")
	if len(parts) != 3 {
		return ocispec.Descriptor{}, fmt.Errorf("blob label %q: want media type|digest|size", v)
	}
	d, err := digest.Parse(parts[1])
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("blob label %q: %w", v, err)
	}
	size, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || size < 0 {
		return ocispec.Descriptor{}, fmt.Errorf("blob label %q: bad size", v)
	}
	return ocispec.Descriptor{MediaType: parts[0], Digest: d, Size: size}, nil
}

// BlobLabel is the value of a core/labels.Blob label for d:
// "<media type>|<digest>|<size>".
func BlobLabel(d ocispec.Descriptor) string {
	return fmt.Sprintf("%s|%s|%d", d.MediaType, d.Digest, d.Size)
}

func (l *Maker) acquire(ctx context.Context) (func(), error) {
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// diff writes the snapshot's layer tar through the compressor into the
// content store and labels the snapshot with the result.
func (l *Maker) diff(ctx context.Context, info snapshots.Info, keys labelKeys, comp Compression, opts []snapshot.DiffOpt) (Blob, error) {
	release, err := l.acquire(ctx)
	if err != nil {
		return Blob{}, err
	}
	defer release()
	if l.diffHook != nil {
		l.diffHook(info.Name)
	}
	var diffID digest.Digest
	desc, err := l.ingest(ctx, info.Name, comp, func(w io.Writer) error {
		var err error
		diffID, _, err = snapshot.Diff(ctx, l.sn, info.Name, w, opts...)
		return err
	})
	if err != nil {
		return Blob{}, err
	}
	b := Blob{Compression: comp.Name(), Desc: desc, DiffID: diffID, Source: info.Labels[labels.Source]}
	return b, l.label(ctx, info, keys, b)
}

// convert recompresses the blob from into comp, checking that its tar is
// the layer's diffID.
func (l *Maker) convert(ctx context.Context, info snapshots.Info, keys labelKeys, from Blob, comp Compression) (Blob, error) {
	release, err := l.acquire(ctx)
	if err != nil {
		return Blob{}, err
	}
	defer release()
	desc, err := l.ingest(ctx, info.Name, comp, func(w io.Writer) error {
		ra, err := l.cs.ReaderAt(ctx, from.Desc)
		if err != nil {
			return fmt.Errorf("read blob %s: %w", from.Desc.Digest, err)
		}
		defer ra.Close()
		tr, err := Decompress(ctrcontent.NewReader(ra))
		if err != nil {
			return fmt.Errorf("blob %s: %w", from.Desc.Digest, err)
		}
		defer tr.Close()
		d := digest.Canonical.Digester()
		if _, err := io.Copy(io.MultiWriter(w, d.Hash()), iox.ContextReader(ctx, tr)); err != nil {
			return fmt.Errorf("convert blob %s: %w", from.Desc.Digest, err)
		}
		if d.Digest() != from.DiffID {
			return errdefs.WithClass(errdefs.ErrFailedPrecondition,
				fmt.Errorf("blob %s holds a tar with digest %s, its label says %s", from.Desc.Digest, d.Digest(), from.DiffID))
		}
		return nil
	})
	if err != nil {
		return Blob{}, err
	}
	b := Blob{Compression: comp.Name(), Desc: desc, DiffID: from.DiffID, Source: from.Source}
	return b, l.label(ctx, info, keys, b)
}

// ingest stores in the content store what write writes, compressed with
// comp, and returns the blob's descriptor (with the OCI layer media type).
func (l *Maker) ingest(ctx context.Context, name string, comp Compression, write func(io.Writer) error) (desc ocispec.Descriptor, err error) {
	ref := "kiln-export-" + comp.Name() + "-" + randomHex()
	cw, err := l.cs.Writer(ctx, ctrcontent.WithRef(ref))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("open blob writer: %w", err)
	}
	defer func() {
		if err != nil {
			_ = l.cs.Abort(context.WithoutCancel(ctx), ref)
		}
		_ = cw.Close()
	}()
	// The content writer hashes what it gets: its digest and offset name
	// the blob (no second hash of the compressed stream here).
	bw := bufio.NewWriterSize(cw, 1<<20)
	zw, err := comp.Compressor(bw)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := write(zw); err != nil {
		_ = zw.Close()
		return ocispec.Descriptor{}, err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write blob: %w", err)
	}
	st, err := cw.Status()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write blob: %w", err)
	}
	desc = ocispec.Descriptor{MediaType: MediaType(comp.Name(), true), Digest: cw.Digest(), Size: st.Offset}
	if err := cw.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, fmt.Errorf("commit blob %s: %w", desc.Digest, err)
	}
	return desc, nil
}

// label records b on the snapshot. If the snapshot's recorded diffID
// changes (its old blobs were gone and the diff differs), the blob labels
// of the other compressions, which belong to the old diffID, are emptied.
func (l *Maker) label(ctx context.Context, info snapshots.Info, keys labelKeys, b Blob) error {
	set := map[string]string{
		keys.diffID:              b.DiffID.String(),
		keys.blob(b.Compression): BlobLabel(b.Desc),
	}
	if old := info.Labels[keys.diffID]; old != "" && old != b.DiffID.String() {
		for _, c := range Compressions() {
			if c != b.Compression {
				set[keys.blob(c)] = "" // emptied: no longer a blob
			}
		}
	}
	upd := snapshots.Info{Name: info.Name, Labels: map[string]string{}}
	paths := make([]string, 0, len(set))
	for k, v := range set {
		if v != "" {
			upd.Labels[k] = v
		}
		paths = append(paths, "labels."+k)
	}
	if _, err := l.sn.Update(ctx, upd, paths...); err != nil {
		return fmt.Errorf("label snapshot %s: %w", info.Name, err)
	}
	return nil
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
