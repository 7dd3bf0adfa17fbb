// Package depcheck keeps Kiln's import direction honest
// (docs/architecture.md). Table places every package of the module in a
// layer; its test checks that each package imports only Kiln packages of
// lower layers (and, where a row says, only the ones it lists), that gRPC
// stays at the edge, that BuildKit's known tangles stay out, and that the
// table and the module list the same packages.
package depcheck
