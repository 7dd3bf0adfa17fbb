// Package graph is Kiln's build IR: the graph of steps a frontend produces
// and the solver runs.
//
// A Vertex is an Op plus ordered inputs (other vertices). Every vertex has
// one output, a filesystem. Op kinds are Source (image, local context, git,
// http), Exec (a command in a container), File (copy, mkdir, mkfile, rm,
// symlink) and Merge (stack inputs like layers).
//
// Op.Digest is a stable hash of the op's definition alone; Vertex.Digest
// adds the inputs' digests. Both are stable across runs, processes and map
// orders (JSON encoding with fields in declaration order and sorted map
// keys); a golden test pins them. The solver's cache key builds on the op
// digest, adding the inputs' cache keys and the content of what a step reads
// (see docs/dev/solver.md).
//
// This package imports no other Kiln package.
package graph
