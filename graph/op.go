package graph

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Op is the definition of one build step. Exactly one of Source, Exec, File,
// Merge and Diff is set. Platform names the platform the step runs for (nil means
// the daemon's native platform); it is part of the definition because the
// same command gives different results on different architectures.
type Op struct {
	Source   *SourceOp         `json:"source,omitempty"`
	Exec     *ExecOp           `json:"exec,omitempty"`
	File     *FileOp           `json:"file,omitempty"`
	Merge    *MergeOp          `json:"merge,omitempty"`
	Diff     *DiffOp           `json:"diff,omitempty"`
	Platform *ocispec.Platform `json:"platform,omitempty"`
}

// Kind names the kind of the op: "source", "exec", "file", "merge", "diff"
// or "" when none is set.
func (o Op) Kind() string {
	switch {
	case o.Source != nil:
		return "source"
	case o.Exec != nil:
		return "exec"
	case o.File != nil:
		return "file"
	case o.Merge != nil:
		return "merge"
	case o.Diff != nil:
		return "diff"
	}
	return ""
}

// Validate checks that exactly one kind is set and that input references fit
// in n inputs.
func (o Op) Validate(n int) error {
	count := 0
	for _, set := range []bool{o.Source != nil, o.Exec != nil, o.File != nil, o.Merge != nil, o.Diff != nil} {
		if set {
			count++
		}
	}
	if count != 1 {
		return fmt.Errorf("op must have exactly one kind set, has %d", count)
	}
	checkInput := func(what string, i int, allowNone bool) error {
		if i == NoInput && allowNone {
			return nil
		}
		if i < 0 || i >= n {
			return fmt.Errorf("%s refers to input %d, op has %d inputs", what, i, n)
		}
		return nil
	}
	switch {
	case o.Source != nil:
		if n != 0 {
			return fmt.Errorf("source op must have no inputs, has %d", n)
		}
		return o.Source.validate()
	case o.Exec != nil:
		if len(o.Exec.Args) == 0 {
			return fmt.Errorf("exec op has no command")
		}
		for _, h := range o.Exec.ExtraHosts {
			if !h.Valid() {
				return fmt.Errorf("exec op: invalid extra host %q (%q)", h.Host, h.IP)
			}
		}
		if err := checkInput("exec root", o.Exec.Root, true); err != nil {
			return err
		}
		for _, m := range o.Exec.Mounts {
			if err := checkInput("mount "+m.Target, m.Input, true); err != nil {
				return err
			}
		}
		if err := o.Exec.validateOutput(); err != nil {
			return err
		}
	case o.File != nil:
		if err := checkInput("file base", o.File.Base, true); err != nil {
			return err
		}
		for _, a := range o.File.Actions {
			if a.Copy != nil {
				if err := checkInput("copy source", a.Copy.Input, false); err != nil {
					return err
				}
			}
			if a.PathCopy != nil {
				if err := checkInput("copy source", a.PathCopy.Input, false); err != nil {
					return err
				}
			}
		}
	case o.Merge != nil:
		if n == 0 {
			return fmt.Errorf("merge op has no inputs")
		}
	case o.Diff != nil:
		if n != 2 {
			return fmt.Errorf("diff op must have 2 inputs (lower, upper), has %d", n)
		}
	}
	return nil
}

// NoInput is the input index meaning "no input": an empty filesystem for a
// root or base, an empty directory for a mount.
const NoInput = -1

// digestPrefix versions the encoding of op definitions. Changing any type in
// this package in a way that changes the JSON encoding changes every digest;
// the golden test in digest_test.go catches that.
const digestPrefix = "kiln/op/v1\x00"

// Digest returns the stable digest of the op's definition alone: sha256 over
// a versioned prefix and the op's JSON encoding (struct fields in declaration
// order, map keys sorted by encoding/json, no pointers or times). Fields that
// must not affect caching (proxy variables) are cleared first; strings that
// are not valid UTF-8 are escaped so that their bytes count (escape.go).
func (o Op) Digest() digest.Digest {
	b, err := json.Marshal(forDigestJSON(o.ForDigest()))
	if err != nil {
		// Every type in Op is plain data; marshalling cannot fail.
		panic(fmt.Sprintf("graph: marshal op: %v", err))
	}
	h := sha256.New()
	h.Write([]byte(digestPrefix))
	h.Write(b)
	return digest.NewDigest(digest.SHA256, h)
}

// ForDigest returns a copy of o without the fields that are excluded from
// the cache key.
func (o Op) ForDigest() Op {
	if o.Exec != nil && len(o.Exec.ProxyEnv) > 0 {
		e := *o.Exec
		e.ProxyEnv = nil
		o.Exec = &e
	}
	return o
}
