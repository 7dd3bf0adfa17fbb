package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/ops"
)

// MaxFiles is the number of per-file digests a Content lists before it is
// marked Truncated.
const MaxFiles = 10000

// Checksum returns the content digest of the selected paths of dir.
//
// selectors are paths relative to dir (a leading "/" means dir; ".." cannot
// climb above it), as COPY sources: they may hold the wildcards *, ? and
// [...] of path.Match in any component; a directory selects its whole
// subtree; no selectors select everything. Symbolic links in the middle of
// a selector are resolved inside dir. Inside a selection a link is hashed
// as a link (its target string), not followed; a selector that names a link
// also covers what the link points to inside dir, since COPY copies that.
//
// The digest covers, for every selected entry, its path, type, permission
// bits with setuid/setgid/sticky, link target and file bytes: not mtimes,
// not owners (COPY sets its own). A selector that matches nothing is an
// error in the errdefs.ErrNotFound class, as in BuildKit
// (`"/missing.txt": not found`), unless it has wildcards. "**" matches
// any number of directories (COPY --parents).
//
// Checksum reads every selected file; Ref.Checksum remembers the digests of
// files that did not change.
func Checksum(ctx context.Context, dir string, selectors []string) (ops.Content, error) {
	return checksum(ctx, dir, selectors, nil)
}

// item is one selected entry.
type item struct {
	path    string // slash-separated, relative to the root
	kind    byte   // 'd' directory, 'f' regular file, 'l' symlink, 'o' other
	mode    uint32 // permission bits with setuid (04000), setgid (02000), sticky (01000)
	target  string // link target
	content digest.Digest
	id      fileID
}

// digest is the entry's own digest: type, mode and content or target.
func (it *item) digest(buf []byte) digest.Digest {
	buf = append(buf[:0], "kiln/entry/v1\x00"...)
	buf = append(buf, it.kind, 0)
	buf = strconv.AppendUint(buf, uint64(it.mode), 8)
	buf = append(buf, 0)
	switch it.kind {
	case 'f':
		buf = append(buf, it.content...)
	case 'l':
		buf = append(buf, it.target...)
	}
	sum := sha256.Sum256(buf)
	return digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
}

type collector struct {
	root  string
	hc    *hashCache
	items []item
	n     int
}

type group struct {
	sel        string
	start, end int
}

func checksum(ctx context.Context, dir string, selectors []string, hc *hashCache) (ops.Content, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return ops.Content{}, fmt.Errorf("checksum %s: %w", dir, err)
	}
	if len(selectors) == 0 {
		selectors = []string{"/"}
	}
	c := &collector{root: root, hc: hc}
	groups := make([]group, 0, len(selectors))
	for _, sel := range selectors {
		rel := cleanRel(sel)
		start := len(c.items)
		if err := c.selector(ctx, sel, rel); err != nil {
			return ops.Content{}, err
		}
		groups = append(groups, group{sel: "/" + rel, start: start, end: len(c.items)})
	}
	if err := c.hashMissing(ctx); err != nil {
		return ops.Content{}, err
	}

	h := sha256.New()
	h.Write([]byte("kiln/content/v1\x00"))
	out := ops.Content{Files: map[string]digest.Digest{}}
	var buf, line []byte
	for _, g := range groups {
		line = append(append(append(line[:0], 'S'), g.sel...), 0)
		h.Write(line)
		for i := g.start; i < g.end; i++ {
			it := &c.items[i]
			d := it.digest(buf)
			line = append(append(append(append(line[:0], it.path...), 0), d...), '\n')
			h.Write(line)
			if _, ok := out.Files[it.path]; ok {
				continue
			}
			if len(out.Files) >= MaxFiles {
				out.Truncated = true
				continue
			}
			out.Files[it.path] = d
		}
	}
	out.Digest = digest.NewDigest(digest.SHA256, h)
	return out, nil
}

// cleanRel makes a selector relative to the root; "" is the root.
func cleanRel(p string) string {
	return strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(p)), "/")
}

func hasMagic(s string) bool { return strings.ContainsAny(s, `*?[\`) }

func (c *collector) abs(rel string) string {
	if rel == "" {
		return c.root
	}
	return filepath.Join(c.root, filepath.FromSlash(rel))
}

// selector adds the entries sel selects.
func (c *collector) selector(ctx context.Context, sel, rel string) error {
	if rel == "" {
		return c.walk(ctx, "")
	}
	matches, err := c.expand(sel, rel)
	if err != nil {
		return err
	}
	if len(matches) == 0 {
		if hasMagic(rel) {
			// COPY accepts a wildcard that matches nothing.
			return nil
		}
		return errdefs.NotFoundf("%q: not found", "/"+rel)
	}
	for _, m := range matches {
		fi, err := os.Lstat(c.abs(m))
		if err != nil {
			return fmt.Errorf("checksum %q: %w", "/"+m, err)
		}
		if err := c.walk(ctx, m); err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		// COPY follows a source that is a link: cover its target too.
		if t, ok := c.resolve(m); ok && t != m {
			if err := c.walk(ctx, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve follows every link in rel inside the root and returns the
// resulting path if it exists.
func (c *collector) resolve(rel string) (string, bool) {
	p, err := securejoin.SecureJoin(c.root, rel)
	if err != nil {
		return "", false
	}
	if _, err := os.Lstat(p); err != nil {
		return "", false
	}
	if p == c.root {
		return "", true
	}
	r, err := filepath.Rel(c.root, p)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// expand returns the existing paths rel matches (wildcards expanded,
// links in the middle resolved), sorted.
func (c *collector) expand(sel, rel string) ([]string, error) {
	comps := strings.Split(rel, "/")
	bases := []string{""}
	for i, comp := range comps {
		var next []string
		if comp == "**" {
			// COPY --parents matches "**" at any depth, COPY without it
			// as "*": select the superset, what "*" matches and every
			// directory below.
			for _, b := range bases {
				next = append(next, c.dirsBelow(b)...)
			}
			comp = "*"
		}
		for _, b := range bases {
			if !hasMagic(comp) {
				next = append(next, path.Join(b, comp))
				continue
			}
			ents, err := os.ReadDir(c.abs(b))
			if err != nil {
				continue // not a directory, or gone: matches nothing
			}
			for _, e := range ents {
				ok, err := path.Match(comp, e.Name())
				if err != nil {
					return nil, errdefs.Invalidf("invalid pattern %q: %v", sel, err)
				}
				if ok {
					next = append(next, path.Join(b, e.Name()))
				}
			}
		}
		if i < len(comps)-1 {
			// A directory on the way: resolve links inside the root.
			resolved := next[:0:0]
			for _, p := range next {
				if r, ok := c.resolve(p); ok {
					if fi, err := os.Stat(c.abs(r)); err == nil && fi.IsDir() {
						resolved = append(resolved, r)
					}
				}
			}
			slices.Sort(resolved)
			next = slices.Compact(resolved)
		} else {
			existing := next[:0:0]
			for _, p := range next {
				if _, err := os.Lstat(c.abs(p)); err == nil {
					existing = append(existing, p)
				}
			}
			next = existing
		}
		bases = next
	}
	slices.Sort(bases)
	return slices.Compact(bases), nil
}

// dirsBelow returns the directory rel and every directory under it,
// without following links.
func (c *collector) dirsBelow(rel string) []string {
	out := []string{rel}
	_ = filepath.WalkDir(c.abs(rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == c.abs(rel) {
			return nil
		}
		r, rerr := filepath.Rel(c.root, p)
		if rerr == nil {
			out = append(out, filepath.ToSlash(r))
		}
		return nil
	})
	return out
}

// walk adds rel and, if it is a directory, everything below it, in lexical
// order, without following links. The root itself ("") is not an entry.
func (c *collector) walk(ctx context.Context, rel string) error {
	start := c.abs(rel)
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("checksum: %w", err)
		}
		if c.n++; c.n%512 == 0 {
			if err := context.Cause(ctx); err != nil {
				return err
			}
		}
		if p == c.root {
			return nil
		}
		r := filepath.ToSlash(p[len(c.root)+1:])
		it, err := statItem(p)
		if err != nil {
			return fmt.Errorf("checksum: %w", err)
		}
		it.path = r
		if it.kind == 'l' {
			if it.target, err = os.Readlink(p); err != nil {
				return fmt.Errorf("checksum: %w", err)
			}
		}
		if it.kind == 'f' {
			if d, ok := c.hc.get(r, it.id); ok {
				it.content = d
			}
		}
		c.items = append(c.items, it)
		return nil
	})
}

// hashMissing hashes the files the cache did not know, in parallel.
func (c *collector) hashMissing(ctx context.Context) error {
	var todo []int
	for i := range c.items {
		if c.items[i].kind == 'f' && c.items[i].content == "" {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), 4, len(todo))
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 128<<10)
			for i := range next {
				it := &c.items[i]
				d, err := hashFile(c.abs(it.path), buf)
				if err != nil {
					errc <- fmt.Errorf("checksum %q: %w", "/"+it.path, err)
					return
				}
				it.content = d
				c.hc.put(it.path, it.id, d)
			}
		}()
	}
	var err error
feed:
	for _, i := range todo {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = context.Cause(ctx)
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

func hashFile(name string, buf []byte) (digest.Digest, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return "", err
	}
	return digest.NewDigest(digest.SHA256, h), nil
}
