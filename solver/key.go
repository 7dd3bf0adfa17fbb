package solver

import (
	"crypto/sha256"
	"encoding/json"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/graph"
)

// keyPrefix versions cache keys. Bump it when the key derivation changes,
// or when an op's result for the same definition and inputs does (v2: COPY
// as BuildKit, issue 12: owners kept by COPY --from, new directories 0755,
// hard links of the context kept).
const keyPrefix = "kiln/v2\x00"

// cacheKey derives a vertex's cache key from its op digest and its inputs'
// parts (docs/dev/solver.md).
func cacheKey(opDigest digest.Digest, inputs []cache.Input) digest.Digest {
	h := sha256.New()
	h.Write([]byte(keyPrefix))
	h.Write([]byte(opDigest))
	for _, in := range inputs {
		h.Write([]byte{0})
		h.Write([]byte(in.Key))
		if in.Content != nil {
			h.Write([]byte{1})
			h.Write([]byte(in.Content.Digest))
		}
	}
	return digest.NewDigest(digest.SHA256, h)
}

// components returns the record components of v's key.
func components(v *graph.Vertex, opDigest digest.Digest, inputs []cache.Input) *cache.Components {
	op, _ := json.Marshal(v.Op.ForDigest())
	return &cache.Components{OpDigest: opDigest, Op: op, Inputs: inputs}
}
