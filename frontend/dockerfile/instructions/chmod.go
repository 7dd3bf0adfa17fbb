package instructions

import (
	"fmt"
	"strconv"
	"strings"
)

// FileMode is a parsed --chmod value: an octal mode ("0755") or a chmod(1)
// symbolic mode ("u=rw,go=r", "a+X", "g-w").
type FileMode struct {
	// Octal is set for an octal value; Perm then holds its bits (at most
	// 07777).
	Octal bool
	Perm  uint32
	// Symbolic is the symbolic expression as given ("" for octal).
	Symbolic string
	clauses  []modeClause
}

// modeClause is one comma-separated part of a symbolic mode: who, then one
// or more operations.
type modeClause struct {
	who uint32 // mask of the permission bits concerned (u, g, o)
	ops []modeOp
}

type modeOp struct {
	op    byte   // '+', '-' or '='
	perms string // letters from "rwxXst", or one of "u", "g", "o" (copy)
}

const (
	whoU = 04700
	whoG = 02070
	whoO = 01007
	whoA = whoU | whoG | whoO
)

// ParseFileMode parses a --chmod value.
func ParseFileMode(s string) (*FileMode, error) {
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		v, err := strconv.ParseUint(s, 8, 32)
		if err != nil || v > 07777 {
			return nil, chmodError(s)
		}
		return &FileMode{Octal: true, Perm: uint32(v)}, nil
	}
	m := &FileMode{Symbolic: s}
	if s == "" {
		return nil, chmodError(s)
	}
	for _, part := range strings.Split(s, ",") {
		c, err := parseModeClause(part)
		if err != nil {
			return nil, chmodError(s)
		}
		m.clauses = append(m.clauses, c)
	}
	return m, nil
}

func chmodError(s string) error {
	return fmt.Errorf("invalid chmod parameter %q: it should be an octal string between 0 and 07777 or a symbolic mode such as u=rwx,go=rx", s)
}

func parseModeClause(s string) (modeClause, error) {
	var c modeClause
	i := 0
	for ; i < len(s) && strings.IndexByte("ugoa", s[i]) >= 0; i++ {
		switch s[i] {
		case 'u':
			c.who |= whoU
		case 'g':
			c.who |= whoG
		case 'o':
			c.who |= whoO
		case 'a':
			c.who |= whoA
		}
	}
	if c.who == 0 {
		c.who = whoA
	}
	if i == len(s) {
		return c, fmt.Errorf("no operator")
	}
	for i < len(s) {
		op := s[i]
		if op != '+' && op != '-' && op != '=' {
			return c, fmt.Errorf("bad operator %q", op)
		}
		i++
		j := i
		if j < len(s) && strings.IndexByte("ugo", s[j]) >= 0 {
			j++
		} else {
			for j < len(s) && strings.IndexByte("rwxXst", s[j]) >= 0 {
				j++
			}
		}
		c.ops = append(c.ops, modeOp{op: op, perms: s[i:j]})
		i = j
	}
	return c, nil
}

// Apply returns the permission bits (07777) that a file or directory with
// mode perm gets.
func (m *FileMode) Apply(perm uint32, isDir bool) uint32 {
	if m.Octal {
		return m.Perm
	}
	perm &= 07777
	for _, c := range m.clauses {
		for _, o := range c.ops {
			bits := o.bits(perm, isDir) & c.who
			switch o.op {
			case '+':
				perm |= bits
			case '-':
				perm &^= bits
			case '=':
				perm = perm&^(c.who&^01000) | bits
			}
		}
	}
	return perm
}

// bits returns the mode bits the operation's letters stand for, for all
// classes (the caller masks them by who).
func (o modeOp) bits(perm uint32, isDir bool) uint32 {
	switch o.perms {
	case "u":
		v := (perm >> 6) & 7
		return v<<6 | v<<3 | v
	case "g":
		v := (perm >> 3) & 7
		return v<<6 | v<<3 | v
	case "o":
		v := perm & 7
		return v<<6 | v<<3 | v
	}
	var bits uint32
	for _, l := range o.perms {
		switch l {
		case 'r':
			bits |= 0444
		case 'w':
			bits |= 0222
		case 'x':
			bits |= 0111
		case 'X':
			if isDir || perm&0111 != 0 {
				bits |= 0111
			}
		case 's':
			bits |= 06000
		case 't':
			bits |= 01000
		}
	}
	return bits
}

// String returns the mode as given.
func (m *FileMode) String() string {
	if m.Octal {
		return fmt.Sprintf("%04o", m.Perm)
	}
	return m.Symbolic
}
