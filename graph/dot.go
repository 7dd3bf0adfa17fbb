package graph

import (
	"fmt"
	"io"
	"strings"
)

// WriteDot writes the graph reachable from roots in Graphviz dot syntax:
// one node per vertex labelled with its name (or kind) and short digest, and
// an edge from each input to its user.
func WriteDot(w io.Writer, roots ...*Vertex) error {
	var b strings.Builder
	b.WriteString("digraph kiln {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n")
	_ = Walk(roots, func(v *Vertex) error {
		label := v.Meta.Name
		if label == "" {
			label = v.Op.Kind()
		}
		d := v.Digest().Encoded()[:12]
		fmt.Fprintf(&b, "  %q [label=%q];\n", d, label+"\n"+d)
		for i, in := range v.Inputs {
			fmt.Fprintf(&b, "  %q -> %q [label=\"%d\"];\n", in.Digest().Encoded()[:12], d, i)
		}
		return nil
	})
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}
