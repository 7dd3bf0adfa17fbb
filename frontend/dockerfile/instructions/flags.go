package instructions

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// flagKind is the kind of value an instruction flag takes.
type flagKind int

const (
	boolFlag   flagKind = iota // --link, --link=true, --link=false
	stringFlag                 // --from=x, at most once
	listFlag                   // --mount=..., repeatable
)

type flagDef struct {
	name string
	kind flagKind
}

// flagValues are the parsed flags of one instruction. The maps are
// internal; every command exposes its flags as typed fields.
type flagValues struct {
	strs  map[string]string
	lists map[string][]string
	bools map[string]bool
	set   map[string]bool
}

func (f *flagValues) str(name string) string    { return f.strs[name] }
func (f *flagValues) list(name string) []string { return f.lists[name] }
func (f *flagValues) boolean(name string) bool  { return f.bools[name] }
func (f *flagValues) isSet(name string) bool    { return f.set[name] }

// parseFlags checks the raw "--name[=value]" flags of instruction cmd
// against defs.
func parseFlags(cmd string, raw []string, defs ...flagDef) (*flagValues, error) {
	f := &flagValues{
		strs:  map[string]string{},
		lists: map[string][]string{},
		bools: map[string]bool{},
		set:   map[string]bool{},
	}
	for _, r := range raw {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(r, "--"), "=")
		var def *flagDef
		for i := range defs {
			if defs[i].name == name {
				def = &defs[i]
			}
		}
		if def == nil {
			return nil, unknownFlagError(cmd, name, defs)
		}
		if f.set[name] && def.kind != listFlag {
			return nil, fmt.Errorf("%s: flag --%s is given more than once", cmd, name)
		}
		f.set[name] = true
		switch def.kind {
		case boolFlag:
			switch strings.ToLower(value) {
			case "", "true":
				if hasValue && value == "" {
					return nil, fmt.Errorf("%s: flag --%s expects true or false, got an empty value", cmd, name)
				}
				f.bools[name] = true
			case "false":
				f.bools[name] = false
			default:
				return nil, fmt.Errorf("%s: flag --%s expects true or false, got %q", cmd, name, value)
			}
		case stringFlag, listFlag:
			if !hasValue {
				return nil, fmt.Errorf("%s: flag --%s needs a value (--%s=...)", cmd, name, name)
			}
			if def.kind == stringFlag {
				f.strs[name] = value
			} else {
				f.lists[name] = append(f.lists[name], value)
			}
		}
	}
	return f, nil
}

func unknownFlagError(cmd, name string, defs []flagDef) error {
	if len(defs) == 0 {
		return fmt.Errorf("%s does not take flags, got --%s", cmd, name)
	}
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.name
	}
	sort.Strings(names)
	hint := ""
	if s, ok := suggest(name, names); ok {
		hint = fmt.Sprintf(" (did you mean --%s?)", s)
	}
	return fmt.Errorf("%s: unknown flag --%s%s; valid flags: --%s", cmd, name, hint, strings.Join(names, ", --"))
}

// suggest returns the candidate nearest to word, if it is near enough to be
// a likely typo. The comparison ignores case.
func suggest(word string, candidates []string) (string, bool) {
	w := strings.ToLower(word)
	wn := utf8.RuneCountInString(w)
	limit := 1
	switch n := wn; {
	case n > 8:
		limit = 3
	case n > 4:
		limit = 2
	}
	best, bestDist := "", -1
	for _, c := range candidates {
		if diff := wn - utf8.RuneCountInString(c); diff > limit || diff < -limit {
			continue // the distance is at least the difference in length
		}
		d := editDistance(w, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 || bestDist > limit || bestDist == 0 && best == word {
		return "", false
	}
	return best, true
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// characters each cost one. Re-implemented: ten lines, no library in
// go.mod offers it.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
