package file

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
)

// match is one source path a COPY source (pattern) names.
type match struct {
	rel  string // the path as matched, relative to the source root (links not followed)
	real string // the path with its parent directories' links resolved
	keep string // with --parents: the part of rel kept at the destination
}

// hasMeta reports whether a path element is a filepath.Match pattern.
func hasMeta(elem string) bool { return strings.ContainsAny(elem, `*?[\`) }

// splitPivot splits a --parents source at its last "/./" marker: the part
// before it is not kept at the destination.
func splitPivot(src string) (string, string) {
	s := filepath.ToSlash(src)
	if i := strings.LastIndex(s, "/./"); i >= 0 {
		return s[:i], s[i+3:]
	}
	if strings.HasPrefix(s, "./") {
		return "", s[2:]
	}
	return "", s
}

// expand returns the paths the source pattern src names in t, in sorted
// order. A literal path that does not exist is an error in the not-found
// class; a wildcard that matches nothing returns no matches and no error.
// parents says whether "/./" marks the kept part and "**" matches any
// number of directories (without --parents it is "*", as in BuildKit).
func (t *tree) expand(src string, parents bool) ([]match, error) {
	prefix, kept := "", src
	if parents {
		prefix, kept = splitPivot(src)
	}
	pre, err := cleanRel(prefix)
	if err != nil {
		return nil, err
	}
	rest, err := cleanRel(kept)
	if err != nil {
		return nil, err
	}
	full, err := cleanRel(join(pre, rest))
	if err != nil {
		return nil, err
	}
	if full == "" {
		return []match{{}}, nil
	}
	elems := strings.Split(full, "/")
	nPre := 0
	if pre != "" {
		nPre = len(strings.Split(pre, "/"))
	}
	keep := func(rel string) string {
		parts := strings.Split(rel, "/")
		if nPre >= len(parts) {
			return ""
		}
		return strings.Join(parts[nPre:], "/")
	}
	wild := false
	for _, e := range elems {
		if hasMeta(e) {
			wild = true
			if _, err := path.Match(e, ""); err != nil {
				return nil, errdefs.Invalidf("bad pattern %q: %v", src, err)
			}
		}
	}
	cands := []cand{{"", ""}}
	var out []match
	for i, e := range elems {
		last := i == len(elems)-1
		if parents && e == "**" {
			if last {
				// "dir/**" is everything below dir: dir itself.
				for _, c := range cands {
					if c.rel != "" {
						out = append(out, match{rel: c.rel, real: c.real, keep: keep(c.rel)})
					}
				}
				break
			}
			// With --parents, "**" matches any number of directories,
			// none included, as in BuildKit.
			if cands, err = t.descendants(cands); err != nil {
				return nil, err
			}
			continue
		}
		var next []cand
		for _, c := range cands {
			names := []string{e}
			if hasMeta(e) {
				if names, err = t.list(c.real, e); err != nil {
					return nil, err
				}
			}
			for _, name := range names {
				rel, real := join(c.rel, name), join(c.real, name)
				if last {
					if _, err := os.Lstat(t.host(real)); err != nil {
						if errors.Is(err, os.ErrNotExist) {
							if !wild {
								return nil, notFound(src, t.where)
							}
							continue
						}
						return nil, err
					}
					out = append(out, match{rel: rel, real: real, keep: keep(rel)})
					continue
				}
				r, err := t.resolve(real)
				if err != nil {
					return nil, err
				}
				fi, err := os.Lstat(t.host(r))
				if err != nil || !fi.IsDir() {
					if wild {
						continue
					}
					if err == nil || errors.Is(err, os.ErrNotExist) {
						return nil, notFound(src, t.where)
					}
					return nil, err
				}
				next = append(next, cand{rel, r})
			}
		}
		cands = next
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

// cand is a directory a pattern has matched so far: the path as matched
// and the path with its links resolved.
type cand struct{ rel, real string }

// descendants returns the directories cands and every directory below
// them (links are not followed), each once.
func (t *tree) descendants(cands []cand) ([]cand, error) {
	seen := map[string]bool{}
	var out []cand
	var walk func(c cand) error
	walk = func(c cand) error {
		if seen[c.real] {
			return nil
		}
		seen[c.real] = true
		out = append(out, c)
		entries, err := os.ReadDir(t.host(c.real))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				if err := walk(cand{join(c.rel, e.Name()), join(c.real, e.Name())}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, c := range cands {
		if err := walk(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// list returns the names in the resolved directory dir that match pattern.
func (t *tree) list(dir, pattern string) ([]string, error) {
	entries, err := os.ReadDir(t.host(dir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if ok, _ := path.Match(pattern, e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func notFound(src, where string) error {
	return errdefs.NotFoundf("%q not found in %s", src, where)
}

// escapeError is the error for a source path that leaves its tree.
func escapeError(src, where string) error {
	return errdefs.Invalidf("%q is outside %s", src, where)
}

// classify turns errors of resolving src in t into the user-facing ones.
func (t *tree) classify(src string, err error) error {
	if errors.Is(err, errEscape) {
		return escapeError(src, t.where)
	}
	return err
}

// follow returns the resolved path of the match's last element when it is
// a link to follow, or the match's own path.
func (t *tree) follow(src string, m match) (string, os.FileInfo, error) {
	fi, err := os.Lstat(t.host(m.real))
	if err != nil {
		return "", nil, err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return m.real, fi, nil
	}
	r, err := t.resolve(m.real)
	if err != nil {
		return "", nil, t.classify(src, err)
	}
	fi, err = os.Lstat(t.host(r))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, errdefs.NotFoundf("%q is a symbolic link to a missing file in %s", src, t.where)
	}
	if err != nil {
		return "", nil, err
	}
	return r, fi, nil
}

// describe returns the message prefix for an action: how the frontend
// shows the instruction.
func describe(verb string, srcs []string, dst string) string {
	return fmt.Sprintf("%s %s %s", verb, strings.Join(srcs, " "), dst)
}
