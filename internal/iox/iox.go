// Package iox holds the small io adapters several packages need: a writer
// that counts and hashes what passes through it, and a reader and a writer
// that stop a copy when a context ends.
package iox

import (
	"context"
	"io"

	digest "github.com/opencontainers/go-digest"
)

// DigestWriter passes writes on to W, hashing them with the canonical
// digest algorithm and counting them.
type DigestWriter struct {
	W io.Writer
	d digest.Digester
	n int64
}

// NewDigestWriter returns a DigestWriter over w.
func NewDigestWriter(w io.Writer) *DigestWriter {
	return NewDigestWriterFor(w, digest.Canonical)
}

// NewDigestWriterFor returns a DigestWriter over w hashing with alg.
func NewDigestWriterFor(w io.Writer, alg digest.Algorithm) *DigestWriter {
	return &DigestWriter{W: w, d: alg.Digester()}
}

// Write implements io.Writer; only what w accepted is hashed and counted.
func (d *DigestWriter) Write(p []byte) (int, error) {
	n, err := d.W.Write(p)
	d.d.Hash().Write(p[:n])
	d.n += int64(n)
	return n, err
}

// Digest is the digest of what was written.
func (d *DigestWriter) Digest() digest.Digest { return d.d.Digest() }

// Size is how many bytes were written.
func (d *DigestWriter) Size() int64 { return d.n }

// ContextReader returns a reader that fails with ctx's cause once ctx is
// done.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx: ctx, r: r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ContextWriter returns a writer that fails with ctx's cause once ctx is
// done.
func ContextWriter(ctx context.Context, w io.Writer) io.Writer { return &ctxWriter{ctx: ctx, w: w} }

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
