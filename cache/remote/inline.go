package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/layer"
)

// Inline is the --cache-to type=inline exporter of one build: it keeps the
// steps whose results are layers of the build result, and the image
// exporter asks it (exporter.InlineCache, asserted in its tests) for the records to put into each
// image config. An inline record names its layers by count: the first n
// layers of the image it is in. `--cache-from type=registry,ref=IMAGE`
// reads them back.
type Inline struct {
	layers *layer.Maker
	writer string

	mu    sync.Mutex
	steps []cache.ExportStep
}

var _ cache.Exporter = (*Inline)(nil)

// NewInline returns the inline cache exporter of one build.
func NewInline(layers *layer.Maker, writer string) *Inline {
	return &Inline{layers: layers, writer: writer}
}

// Begin implements cache.Exporter.
func (i *Inline) Begin(context.Context, cache.Build) (cache.ExportSession, error) {
	return inlineSession{i}, nil
}

type inlineSession struct{ i *Inline }

func (s inlineSession) Add(st cache.ExportStep) {
	if !st.InResult {
		releaseRef(st.Ref)
		return
	}
	s.i.mu.Lock()
	s.i.steps = append(s.i.steps, st)
	s.i.mu.Unlock()
}

// Finish implements cache.ExportSession; the records were written with the
// image (the engine exports the image before it finishes cache exports).
func (s inlineSession) Finish(context.Context) error {
	s.Discard()
	return nil
}

func (s inlineSession) Discard() {
	s.i.mu.Lock()
	steps := s.i.steps
	s.i.steps = nil
	s.i.mu.Unlock()
	for _, st := range steps {
		releaseRef(st.Ref)
	}
}

// inlineConfig is the value of the image config's
// imageconfig.InlineCacheKey field.
type inlineConfig struct {
	Version int            `json:"version"`
	Records []inlineRecord `json:"records"`
}

type inlineRecord struct {
	Key digest.Digest `json:"key"`
	// Layers is how many of the image's layers, from the bottom, make
	// the result.
	Layers  int       `json:"layers"`
	Created time.Time `json:"created"`
	Inputs  *Inputs   `json:"inputs,omitempty"`
}

// CacheConfig implements exporter.InlineCache: the records of the steps
// whose snapshot chains are a prefix of the image's (snapshot's).
func (i *Inline) CacheConfig(ctx context.Context, snapshot string, layers []layer.Blob) (json.RawMessage, error) {
	if snapshot == "" {
		return nil, nil
	}
	chain, err := i.layers.Chain(ctx, snapshot)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	steps := slices.Clone(i.steps)
	i.mu.Unlock()
	cfg := inlineConfig{Version: configVersion}
	seen := map[digest.Digest]bool{}
	for _, st := range steps {
		var names []string
		switch h, isHit := st.Hit.(*Hit); {
		case st.Ref != nil && st.Ref.ID() != "":
			if names, err = i.layers.Chain(ctx, st.Ref.ID()); err != nil {
				return nil, err
			}
		case isHit:
			for _, id := range h.Record.ChainIDs() {
				names = append(names, id.String())
			}
		default:
			continue
		}
		n := len(names)
		if n == 0 || n > len(chain) || n > len(layers) || !slices.Equal(names, chain[:n]) || seen[st.Record.Key] {
			continue
		}
		seen[st.Record.Key] = true
		cfg.Records = append(cfg.Records, inlineRecord{
			Key: st.Record.Key, Layers: n, Created: time.Now().UTC(), Inputs: InputsOf(st.Record.Components),
		})
	}
	if len(cfg.Records) == 0 {
		return nil, nil
	}
	slices.SortFunc(cfg.Records, func(a, b inlineRecord) int {
		if a.Layers != b.Layers {
			return a.Layers - b.Layers
		}
		if a.Key < b.Key {
			return -1
		}
		return 1
	})
	return json.Marshal(cfg)
}

// DecodeInline reads the inline cache of an image config (the value of
// imageconfig.InlineCacheKey) into records over the image's layers and diff
// IDs.
func DecodeInline(raw json.RawMessage, layers []ocispec.Descriptor, diffIDs []digest.Digest) ([]Record, error) {
	var cfg inlineConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, errdefs.Invalidf("inline cache: %v", err)
	}
	if cfg.Version != configVersion {
		return nil, errdefs.Invalidf("inline cache version %d: this kiln reads version %d", cfg.Version, configVersion)
	}
	if len(layers) != len(diffIDs) {
		return nil, errdefs.Invalidf("inline cache: the image has %d layers and %d diff IDs", len(layers), len(diffIDs))
	}
	var out []Record
	for _, r := range cfg.Records {
		if r.Layers <= 0 || r.Layers > len(layers) {
			return nil, errdefs.Invalidf("inline cache record %s: %d layers, the image has %d", r.Key, r.Layers, len(layers))
		}
		rec := Record{Key: r.Key, Created: r.Created, Inputs: r.Inputs}
		for j := 0; j < r.Layers; j++ {
			l := layers[j]
			rec.Layers = append(rec.Layers, Layer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffID: diffIDs[j]})
		}
		if err := rec.Validate(); err != nil {
			return nil, fmt.Errorf("inline cache: %w", err)
		}
		out = append(out, rec)
	}
	return out, nil
}
