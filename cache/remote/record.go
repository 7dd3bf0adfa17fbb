package remote

import (
	"encoding/json"
	"slices"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
)

// Record is a step's result as remote caches keep it: the cache key, the
// layer chain of the result (bottom first) and the key's inputs. It holds
// digests, sizes and times only: no command, environment, path or name, so
// nothing secret-derived leaves the daemon through it.
type Record struct {
	Key    digest.Digest `json:"key"`
	Layers []Layer       `json:"layers"`
	// Created is when the writer recorded it.
	Created time.Time `json:"created"`
	// Writer identifies the daemon that wrote it (a random id kept in
	// its root); records of different writers never replace each other.
	Writer string `json:"writer,omitempty"`
	// Inputs are the key's components, to explain misses and to list a
	// build's records.
	Inputs *Inputs `json:"inputs,omitempty"`
}

// Layer is one layer blob of a record's chain.
type Layer struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	DiffID    digest.Digest `json:"diffID"`
}

// Descriptor returns the layer's blob descriptor.
func (l Layer) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
}

// Inputs are the digests a cache key was computed from.
type Inputs struct {
	Op     digest.Digest `json:"op"`
	Inputs []Input       `json:"inputs,omitempty"`
}

// Input is one input's part of a key: its key and, for a content-keyed
// input (the build context), the digest of the part the step reads.
type Input struct {
	Key     digest.Digest `json:"key"`
	Content digest.Digest `json:"content,omitempty"`
}

// InputsOf keeps the digests of a local record's components and drops the
// rest (the op's JSON, input names, file paths).
func InputsOf(c *cache.Components) *Inputs {
	if c == nil {
		return nil
	}
	in := &Inputs{Op: c.OpDigest}
	for _, i := range c.Inputs {
		x := Input{Key: i.Key}
		if i.Content != nil {
			x.Content = i.Content.Digest
		}
		in.Inputs = append(in.Inputs, x)
	}
	return in
}

// Size is the total size of the record's layer blobs.
func (r Record) Size() int64 {
	var n int64
	for _, l := range r.Layers {
		n += l.Size
	}
	return n
}

// ChainIDs returns the chain ID of each layer: the names the importer
// gives the snapshots it unpacks.
func (r Record) ChainIDs() []digest.Digest {
	ids := make([]digest.Digest, len(r.Layers))
	for i, l := range r.Layers {
		ids[i] = l.DiffID
	}
	return identity.ChainIDs(ids)
}

// layerMediaTypes are the blob media types a record may name.
var layerMediaTypes = []string{
	ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
	"application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar",
}

// Validate checks what a record read from outside the daemon must hold
// before anything uses it.
func (r Record) Validate() error {
	if err := r.Key.Validate(); err != nil {
		return errdefs.Invalidf("cache record: key %q: %v", r.Key, err)
	}
	if len(r.Layers) == 0 {
		return errdefs.Invalidf("cache record %s: no layers", r.Key)
	}
	for i, l := range r.Layers {
		if err := l.Digest.Validate(); err != nil {
			return errdefs.Invalidf("cache record %s: layer %d: digest %q: %v", r.Key, i+1, l.Digest, err)
		}
		if err := l.DiffID.Validate(); err != nil {
			return errdefs.Invalidf("cache record %s: layer %d: diffID %q: %v", r.Key, i+1, l.DiffID, err)
		}
		if l.Size < 0 {
			return errdefs.Invalidf("cache record %s: layer %d: negative size", r.Key, i+1)
		}
		if !slices.Contains(layerMediaTypes, l.MediaType) {
			return errdefs.Invalidf("cache record %s: layer %d: media type %q is not a layer", r.Key, i+1, l.MediaType)
		}
	}
	return nil
}

// sameResult reports whether a and b describe the same result (the same
// key and layers), whoever wrote them.
func sameResult(a, b Record) bool {
	if a.Key != b.Key || len(a.Layers) != len(b.Layers) {
		return false
	}
	for i := range a.Layers {
		if a.Layers[i].Digest != b.Layers[i].Digest {
			return false
		}
	}
	return true
}

// Merge returns the union of record sets: a record already present (same
// key and layers) is kept once, with the newer creation time. Records are
// sorted by key, then newest first, so one set always encodes alike.
func Merge(sets ...[]Record) []Record {
	var out []Record
	for _, set := range sets {
	next:
		for _, r := range set {
			for i, o := range out {
				if sameResult(o, r) {
					if r.Created.After(o.Created) {
						out[i] = r
					}
					continue next
				}
			}
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Created.After(out[j].Created)
	})
	return out
}

// ConfigMediaType is the media type of a cache manifest's config blob (the
// records); ArtifactType marks the manifest as Kiln's build cache.
const (
	ConfigMediaType = "application/vnd.kiln.cache.config.v1+json"
	ArtifactType    = "application/vnd.kiln.cache.v1"
)

// Config is the config blob of a cache manifest.
type Config struct {
	Version int      `json:"version"`
	Records []Record `json:"records"`
}

const configVersion = 1

// EncodeConfig returns the config blob of records.
func EncodeConfig(records []Record) ([]byte, error) {
	return json.Marshal(Config{Version: configVersion, Records: records})
}

// DecodeConfig reads a config blob and drops (reporting) the records that
// do not validate.
func DecodeConfig(b []byte) ([]Record, []error, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, nil, errdefs.Invalidf("cache config: %v", err)
	}
	if c.Version != configVersion {
		return nil, nil, errdefs.Invalidf("cache config version %d: this kiln reads version %d", c.Version, configVersion)
	}
	var out []Record
	var bad []error
	for _, r := range c.Records {
		if err := r.Validate(); err != nil {
			bad = append(bad, err)
			continue
		}
		out = append(out, r)
	}
	return out, bad, nil
}

// byKey indexes records by key, newest first.
func byKey(records []Record) map[digest.Digest][]Record {
	m := map[digest.Digest][]Record{}
	for _, r := range records {
		m[r.Key] = append(m[r.Key], r)
	}
	for _, rs := range m {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Created.After(rs[j].Created) })
	}
	return m
}

func shortDigest(d digest.Digest) string {
	s := d.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}
