package filesync

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/moby/patternmatcher"
)

// filter decides which entries of the client's directory a sync sends:
// include patterns (empty: everything) and exclude patterns in
// .dockerignore syntax ("!" exceptions, "**"). Matching is
// patternmatcher's, with each directory's match results handed down to its
// children so that a path is matched once.
type filter struct {
	inc, exc *patternmatcher.PatternMatcher
	// incPats are the include patterns, excepts the "!" patterns of the
	// excludes, split into components: they decide whether a directory
	// that does not match must still be walked.
	incPats, excepts [][]string
}

// matchState is the match result of one entry, kept for its children.
type matchState struct {
	incInfo, excInfo patternmatcher.MatchInfo
	included         bool // selected by the include patterns (or there are none)
	excluded         bool // selected by the exclude patterns
}

func newFilter(include, exclude []string) (*filter, error) {
	f := &filter{}
	if len(include) > 0 {
		pm, err := patternmatcher.New(include)
		if err != nil {
			return nil, errdefs.Invalidf("invalid include pattern: %v", err)
		}
		f.inc = pm
		for _, p := range pm.Patterns() {
			if !p.Exclusion() {
				f.incPats = append(f.incPats, splitPattern(p.String()))
			}
		}
	}
	if len(exclude) > 0 {
		pm, err := patternmatcher.New(exclude)
		if err != nil {
			return nil, errdefs.Invalidf("invalid exclude pattern: %v", err)
		}
		f.exc = pm
		for _, p := range pm.Patterns() {
			if p.Exclusion() {
				f.excepts = append(f.excepts, splitPattern(p.String()))
			}
		}
	}
	return f, nil
}

func splitPattern(p string) []string {
	return strings.Split(filepath.ToSlash(p), "/")
}

// match computes the state of rel (slash-separated) given its parent's.
func (f *filter) match(rel string, parent *matchState) (matchState, error) {
	st := matchState{included: true}
	if f.inc != nil {
		ok, info, err := f.inc.MatchesUsingParentResults(rel, parent.incInfo)
		if err != nil {
			return st, fmt.Errorf("match %s against include patterns: %w", rel, err)
		}
		st.included, st.incInfo = ok, info
	}
	if f.exc != nil {
		ok, info, err := f.exc.MatchesUsingParentResults(rel, parent.excInfo)
		if err != nil {
			return st, fmt.Errorf("match %s against exclude patterns: %w", rel, err)
		}
		st.excluded, st.excInfo = ok, info
	}
	return st, nil
}

// walkDir reports whether the walk must enter directory rel, whose own
// state is st: when something below it may be sent.
func (f *filter) walkDir(rel string, st matchState) bool {
	if !st.included && !anyMayMatchUnder(f.incPats, rel) {
		return false
	}
	if st.excluded && !anyMayMatchUnder(f.excepts, rel) {
		// Excluded, and no exception can bring back anything inside:
		// skip the whole subtree without reading it.
		return false
	}
	return true
}

// anyMayMatchUnder reports whether one of pats may match a path strictly
// below directory dir (or match dir or one of its parents, which also
// selects what is below). It errs on the side of true: a wrong true only
// costs a walk, a wrong false would drop files.
func anyMayMatchUnder(pats [][]string, dir string) bool {
	comps := strings.Split(dir, "/")
	for _, p := range pats {
		if mayMatchUnder(p, comps) {
			return true
		}
	}
	return false
}

func mayMatchUnder(pat, dir []string) bool {
	for i, pc := range pat {
		if strings.Contains(pc, "**") || i >= len(dir) {
			return true
		}
		ok, err := path.Match(pc, dir[i])
		if err != nil {
			return true
		}
		if !ok {
			return false
		}
	}
	return true
}

// followPaths returns paths plus, for each one that is a symbolic link, the
// chain of paths it resolves to inside root, so that include patterns
// built from them also select the link targets (BuildKit's FollowPaths).
func followPaths(root string, paths []string) []string {
	var out []string
	for _, p := range paths {
		p = cleanRel(p)
		if p == "" {
			continue
		}
		out = append(out, p)
		cur := p
		for range 40 { // a chain longer than the kernel's limit is a loop
			target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(cur)))
			if err != nil {
				break
			}
			target = filepath.ToSlash(target)
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(cur), target)
			}
			next := cleanRel(target)
			if next == "" {
				break
			}
			out = append(out, next)
			cur = next
		}
	}
	return out
}

// cleanRel cleans p as a path relative to a root: leading slashes and ".."
// that would climb above the root are dropped. The root itself is "".
func cleanRel(p string) string {
	p = path.Clean("/" + filepath.ToSlash(p))
	return strings.TrimPrefix(p, "/")
}
