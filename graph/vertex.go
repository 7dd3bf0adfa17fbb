package graph

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// Vertex is one step of a build: an Op and the vertices whose outputs it
// takes as inputs, in order. Every vertex has exactly one output, a
// filesystem. Vertices are immutable once built; share them freely.
type Vertex struct {
	Op     Op
	Inputs []*Vertex
	Meta   Meta

	once   sync.Once
	digest digest.Digest
}

// Meta describes a vertex for people and for the solver's policy; none of it
// is part of the digest.
type Meta struct {
	// Name is what progress shows, e.g. "[build 2/4] RUN make".
	Name string `json:"name,omitempty"`
	// Location is the source of the step (the Dockerfile and its lines).
	Location *Location `json:"location,omitempty"`
	// IgnoreCache makes the solver run the step even if a cache record
	// exists (--no-cache, --no-cache-filter).
	IgnoreCache bool `json:"ignoreCache,omitempty"`
	// StepID identifies "the same step" across builds even when its
	// definition changes (the build context, the Dockerfile, the stage and
	// the instruction's position). The solver uses it to find the previous
	// record of a step and explain a cache miss.
	StepID string `json:"stepId,omitempty"`
}

// Location is a range of lines in a source file, 1-based and inclusive.
type Location struct {
	File  string `json:"file"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// NewVertex returns a vertex running op on inputs.
func NewVertex(op Op, meta Meta, inputs ...*Vertex) *Vertex {
	return &Vertex{Op: op, Inputs: inputs, Meta: meta}
}

// Digest identifies the vertex's definition: its op digest and its inputs'
// digests, in order. Two vertices with the same digest compute the same
// thing. It does not include the content of sources (that is the solver's
// cache key).
func (v *Vertex) Digest() digest.Digest {
	v.once.Do(func() {
		h := sha256.New()
		h.Write([]byte("kiln/vertex/v1\x00"))
		h.Write([]byte(v.Op.Digest()))
		for _, in := range v.Inputs {
			h.Write([]byte{0})
			h.Write([]byte(in.Digest()))
		}
		v.digest = digest.NewDigest(digest.SHA256, h)
	})
	return v.digest
}

// Walk calls fn for every vertex reachable from roots, each once, inputs
// before the vertices that use them (a topological order). The order is
// deterministic for a given graph.
func Walk(roots []*Vertex, fn func(*Vertex) error) error {
	seen := map[digest.Digest]bool{}
	var visit func(v *Vertex) error
	visit = func(v *Vertex) error {
		d := v.Digest()
		if seen[d] {
			return nil
		}
		seen[d] = true
		for _, in := range v.Inputs {
			if err := visit(in); err != nil {
				return err
			}
		}
		return fn(v)
	}
	for _, r := range roots {
		if r == nil {
			continue
		}
		if err := visit(r); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks every vertex reachable from roots.
func Validate(roots ...*Vertex) error {
	return Walk(roots, func(v *Vertex) error {
		if err := v.Op.Validate(len(v.Inputs)); err != nil {
			return fmt.Errorf("vertex %s (%s): %w", v.Digest(), v.Meta.Name, err)
		}
		return nil
	})
}

// Definition is the serialisable form of a graph: vertices in topological
// order, inputs by digest. `kiln debug graph --format json` prints it.
type Definition struct {
	Vertices []DefVertex `json:"vertices"`
	Roots    []string    `json:"roots"`
}

// DefVertex is one vertex of a Definition.
type DefVertex struct {
	Digest   digest.Digest   `json:"digest"`
	OpDigest digest.Digest   `json:"opDigest"`
	Op       Op              `json:"op"`
	Inputs   []digest.Digest `json:"inputs,omitempty"`
	Meta     Meta            `json:"meta"`
}

// Marshal returns the Definition of the graph reachable from roots.
func Marshal(roots ...*Vertex) Definition {
	var def Definition
	_ = Walk(roots, func(v *Vertex) error {
		dv := DefVertex{Digest: v.Digest(), OpDigest: v.Op.Digest(), Op: v.Op, Meta: v.Meta}
		for _, in := range v.Inputs {
			dv.Inputs = append(dv.Inputs, in.Digest())
		}
		def.Vertices = append(def.Vertices, dv)
		return nil
	})
	for _, r := range roots {
		if r != nil {
			def.Roots = append(def.Roots, r.Digest().String())
		}
	}
	return def
}

// Unmarshal rebuilds the graph of a Definition and returns its roots. The
// digests in the definition are checked against the rebuilt vertices.
func Unmarshal(def Definition) ([]*Vertex, error) {
	byDigest := map[digest.Digest]*Vertex{}
	for _, dv := range def.Vertices {
		v := &Vertex{Op: dv.Op, Meta: dv.Meta}
		for _, in := range dv.Inputs {
			iv, ok := byDigest[in]
			if !ok {
				return nil, fmt.Errorf("vertex %s: input %s is not defined before it", dv.Digest, in)
			}
			v.Inputs = append(v.Inputs, iv)
		}
		if got := v.Digest(); got != dv.Digest {
			return nil, fmt.Errorf("vertex %s: digest mismatch, computed %s", dv.Digest, got)
		}
		byDigest[dv.Digest] = v
	}
	var roots []*Vertex
	for _, r := range def.Roots {
		v, ok := byDigest[digest.Digest(r)]
		if !ok {
			return nil, fmt.Errorf("root %s is not defined", r)
		}
		roots = append(roots, v)
	}
	return roots, nil
}

// MarshalJSON encodes the graph reachable from v as a Definition.
func (v *Vertex) MarshalJSON() ([]byte, error) {
	return json.Marshal(Marshal(v))
}
