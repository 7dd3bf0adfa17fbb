// Package depcheck holds the test that keeps Kiln's import direction
// honest (docs/architecture.md): imports point down only, the bottom
// packages import no other Kiln package, and gRPC stays at the edge.
package depcheck
