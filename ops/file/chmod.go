package file

import (
	"fmt"
	"strconv"
	"strings"
)

// Permission bits as chmod(1) names them.
const (
	modeSetuid = 0o4000
	modeSetgid = 0o2000
	modeSticky = 0o1000
	modePerm   = 0o7777
)

// modeFunc maps the permission bits (with setuid, setgid and sticky) of a
// copied entry to the ones it gets.
type modeFunc func(perm uint32, isDir bool) uint32

// parseChmod parses a --chmod value: octal ("0755", "644") or symbolic as
// chmod(1) ("u+x,go-w", "a+X", "u=rw,g=r,o=r", "g=u"). A symbolic clause
// without a "who" applies to everyone; unlike chmod(1) no umask is
// involved, as in BuildKit.
func parseChmod(s string) (modeFunc, error) {
	if s == "" {
		return nil, fmt.Errorf("empty mode")
	}
	if s[0] >= '0' && s[0] <= '9' {
		if len(s) > 4 {
			return nil, fmt.Errorf("invalid mode %q: more than 4 octal digits", s)
		}
		v, err := strconv.ParseUint(s, 8, 32)
		if err != nil {
			return nil, fmt.Errorf("invalid mode %q: not an octal number", s)
		}
		m := uint32(v)
		return func(uint32, bool) uint32 { return m }, nil
	}
	var clauses []clause
	for _, c := range strings.Split(s, ",") {
		cl, err := parseClause(c)
		if err != nil {
			return nil, fmt.Errorf("invalid mode %q: %w", s, err)
		}
		clauses = append(clauses, cl)
	}
	return func(perm uint32, isDir bool) uint32 {
		for _, c := range clauses {
			perm = c.apply(perm, isDir)
		}
		return perm & modePerm
	}, nil
}

// clause is one comma-separated part of a symbolic mode: who, then one or
// more operations.
type clause struct {
	mask uint32 // the bits "who" may change
	ops  []modeOp
}

type modeOp struct {
	op    byte   // '+', '-' or '='
	perms string // letters from "rwxXst"
	from  byte   // 'u', 'g' or 'o' for a copy ("g=u"), else 0
}

// whoMask is the bits each "who" letter covers: its rwx bits plus the
// special bit chmod(1) ties to it.
var whoMask = map[byte]uint32{
	'u': modeSetuid | 0o700,
	'g': modeSetgid | 0o070,
	'o': modeSticky | 0o007,
	'a': modePerm,
}

func parseClause(c string) (clause, error) {
	var cl clause
	i := 0
	for ; i < len(c) && strings.IndexByte("ugoa", c[i]) >= 0; i++ {
		cl.mask |= whoMask[c[i]]
	}
	if cl.mask == 0 {
		cl.mask = modePerm
	}
	if i == len(c) {
		return clause{}, fmt.Errorf("clause %q has no operator (+, - or =)", c)
	}
	for i < len(c) {
		op := c[i]
		if op != '+' && op != '-' && op != '=' {
			return clause{}, fmt.Errorf("clause %q: unexpected %q", c, op)
		}
		i++
		j := i
		for j < len(c) && strings.IndexByte("+-=", c[j]) < 0 {
			j++
		}
		perms := c[i:j]
		mo := modeOp{op: op}
		switch {
		case len(perms) == 1 && strings.IndexByte("ugo", perms[0]) >= 0:
			mo.from = perms[0]
		case strings.Trim(perms, "rwxXst") == "":
			mo.perms = perms
		default:
			return clause{}, fmt.Errorf("clause %q: %q is not a permission (want letters from rwxXst, or one of u, g, o)", c, perms)
		}
		cl.ops = append(cl.ops, mo)
		i = j
	}
	return cl, nil
}

// apply applies the clause to perm; X is evaluated against the mode as the
// previous operations left it (GNU chmod does the same).
func (c clause) apply(perm uint32, isDir bool) uint32 {
	for _, o := range c.ops {
		var v uint32
		if o.from != 0 {
			var bits uint32
			switch o.from {
			case 'u':
				bits = perm >> 6 & 7
			case 'g':
				bits = perm >> 3 & 7
			case 'o':
				bits = perm & 7
			}
			v = bits<<6 | bits<<3 | bits
		}
		for _, p := range []byte(o.perms) {
			switch p {
			case 'r':
				v |= 0o444
			case 'w':
				v |= 0o222
			case 'x':
				v |= 0o111
			case 'X':
				if isDir || perm&0o111 != 0 {
					v |= 0o111
				}
			case 's':
				v |= modeSetuid | modeSetgid
			case 't':
				v |= modeSticky
			}
		}
		v &= c.mask
		switch o.op {
		case '+':
			perm |= v
		case '-':
			perm &^= v
		case '=':
			perm = perm&^c.mask | v
		}
	}
	return perm
}
