package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// pathElem is one step of a key path: a key name, or (index >= 0) an
// element of the array reached so far.
type pathElem struct {
	name  string
	index int
}

// keyPath locates a value in a TOML document, with array indexes:
// cache.registry[0].type, registry."docker.io".mirrors[1].
type keyPath []pathElem

// key returns p extended by the key names.
func (p keyPath) key(names ...string) keyPath {
	out := make(keyPath, len(p), len(p)+len(names))
	copy(out, p)
	for _, n := range names {
		out = append(out, pathElem{name: n, index: -1})
	}
	return out
}

// at returns p extended by an array index.
func (p keyPath) at(i int) keyPath {
	out := make(keyPath, len(p), len(p)+1)
	copy(out, p)
	return append(out, pathElem{index: i})
}

// parent returns p without its last element.
func (p keyPath) parent() keyPath {
	if len(p) == 0 {
		return nil
	}
	return p[:len(p)-1]
}

// String is the canonical form used as a map key.
func (p keyPath) String() string {
	var b strings.Builder
	for i, e := range p {
		if e.index >= 0 {
			b.WriteString("[" + strconv.Itoa(e.index) + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKey(e.name))
	}
	return b.String()
}

// names returns the key names of p without the indexes.
func (p keyPath) names() []string {
	var out []string
	for _, e := range p {
		if e.index < 0 {
			out = append(out, e.name)
		}
	}
	return out
}

// Display renders p the way a user finds it in the file: the table header
// as written, then the key. "[[cache.registry]] type", "[grpc] address",
// "root".
func (p keyPath) Display() string {
	last := -1
	for i, e := range p {
		if e.index < 0 {
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	name := quoteKey(p[last].name)
	table := p[:last]
	if len(table) == 0 {
		return name
	}
	header := strings.Join(quoteAll(table.names()), ".")
	if table[len(table)-1].index >= 0 {
		return "[[" + header + "]] " + name
	}
	return "[" + header + "] " + name
}

// Header renders p as the table header that opens it:
// [registry."docker.io"], [[registry.config]].
func (p keyPath) Header() string {
	h := strings.Join(quoteAll(p.names()), ".")
	if len(p) > 0 && p[len(p)-1].index >= 0 {
		return "[[" + h + "]]"
	}
	return "[" + h + "]"
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quoteKey(n)
	}
	return out
}

// quoteKey quotes a key name unless TOML allows it bare.
func quoteKey(s string) string {
	if s == "" {
		return `""`
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return strconv.Quote(s)
		}
	}
	return s
}

// positions maps key paths of one document to the lines they are on.
type positions struct {
	lines  map[string]int    // keyPath.String() → 1-based line
	byLine map[int][]keyPath // paths of the keys and headers that start on a line
}

// lineOf returns the line of p, or of its nearest ancestor the document
// has, or 0.
func (ps *positions) lineOf(p keyPath) int {
	if ps == nil {
		return 0
	}
	for ; len(p) > 0; p = p.parent() {
		if l, ok := ps.lines[p.String()]; ok {
			return l
		}
	}
	return 0
}

// has reports whether the document sets p.
func (ps *positions) has(p keyPath) bool {
	if ps == nil {
		return false
	}
	_, ok := ps.lines[p.String()]
	return ok
}

// find returns the path on line whose key names are names.
func (ps *positions) find(line int, names []string) (keyPath, bool) {
	if ps == nil {
		return nil, false
	}
	for _, p := range ps.byLine[line] {
		if equalStrings(p.names(), names) {
			return p, true
		}
	}
	return nil, false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// indexPositions walks the document's syntax tree and records where each
// key is. It returns nil for a document that does not parse (the decoder
// reports that error itself).
func indexPositions(doc []byte) *positions {
	ps := &positions{lines: map[string]int{}, byLine: map[int][]keyPath{}}
	var p unstable.Parser
	p.Reset(doc)
	arrays := map[string]int{} // array-table path → elements seen
	var table keyPath
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			it := e.Key()
			var parts []*unstable.Node
			for it.Next() {
				parts = append(parts, it.Node())
			}
			if e.Kind == unstable.ArrayTable && len(parts) > 0 {
				// [[a.b]] starts a new element of a.b: resolve a, then
				// count b's elements.
				table = resolveTable(parts[:len(parts)-1], arrays).key(string(parts[len(parts)-1].Data))
				k := table.String()
				n := arrays[k]
				arrays[k] = n + 1
				table = table.at(n)
			} else {
				table = resolveTable(parts, arrays)
			}
			if len(parts) > 0 {
				ps.record(table, lineAt(&p, parts[0]))
			}
		case unstable.KeyValue:
			ps.keyValue(&p, table, e)
		}
	}
	if p.Error() != nil {
		return nil
	}
	return ps
}

// resolveTable turns header parts into a path, stepping into the last
// element of any array table on the way ([[a]] then [a.b] is a[n].b).
func resolveTable(parts []*unstable.Node, arrays map[string]int) keyPath {
	var t keyPath
	for _, n := range parts {
		t = t.key(string(n.Data))
		if c, ok := arrays[t.String()]; ok && c > 0 {
			t = t.at(c - 1)
		}
	}
	return t
}

// keyValue records a key = value expression under base, recursing into
// arrays and inline tables.
func (ps *positions) keyValue(p *unstable.Parser, base keyPath, kv *unstable.Node) {
	it := kv.Key()
	path := base
	line := 0
	for it.Next() {
		n := it.Node()
		path = path.key(string(n.Data))
		if line == 0 {
			line = lineAt(p, n)
		}
		ps.record(path, line)
	}
	ps.value(p, path, kv.Value(), line)
}

func (ps *positions) value(p *unstable.Parser, path keyPath, v *unstable.Node, line int) {
	switch v.Kind {
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			el := it.Node()
			l := lineAt(p, el)
			if l == 0 {
				l = line
			}
			ps.record(path.at(i), l)
			ps.value(p, path.at(i), el, l)
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if n := it.Node(); n.Kind == unstable.KeyValue {
				ps.keyValue(p, path, n)
			}
		}
	}
}

func (ps *positions) record(path keyPath, line int) {
	k := path.String()
	if _, ok := ps.lines[k]; ok || line == 0 {
		return
	}
	ps.lines[k] = line
	ps.byLine[line] = append(ps.byLine[line], path)
}

// lineAt returns the 1-based line of a node, or 0 when the node carries no
// position (container values).
func lineAt(p *unstable.Parser, n *unstable.Node) int {
	if n.Raw.Length == 0 {
		return 0
	}
	return p.Shape(n.Raw).Start.Line
}
