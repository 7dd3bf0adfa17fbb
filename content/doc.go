// Package content is Kiln's content-addressed blob store: image manifests,
// configs and layer blobs, each kept under its digest.
//
// It is containerd's local content store (plugins/content/local) behind a
// thin wrapper that does three things containerd's store leaves to its
// caller:
//
//   - error classes: every error the store returns also matches the Kiln
//     classes in core/errdefs (errors.Is(err, errdefs.ErrNotFound)), while
//     still matching containerd's own classes for containerd helpers;
//   - restart hygiene: Open discards ingests left behind by a process that
//     died mid-write, so a half-written blob is never visible and never
//     resumed (DESIGN.md: incomplete work is discarded, never half-used);
//   - small helpers the rest of Kiln needs: WriteBlob (verified, atomic,
//     safe to call concurrently for one digest), ReadBlob, Exists, Usage.
//
// Layout on disk, under the directory given to Open (the worker passes
// <root>/content):
//
//	blobs/<alg>/<hex>   committed blobs, read-only files
//	ingest/<hash(ref)>/ in-flight writes: data, ref, total, timestamps
//
// A write lands in ingest/, is hashed as it streams, and becomes visible
// only by a rename into blobs/ after its size and digest were checked, so a
// blob is either complete and verified or absent.
//
// This package imports only core/errdefs from Kiln.
package content
