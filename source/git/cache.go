package git

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/kiln-build/kiln/internal/flight"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Cache keeps one bare repository per remote under one directory, fetched
// into shallowly as builds need commits, and resolves refs with
// `git ls-remote`. Concurrent builds resolving the same ref, or fetching the
// same commit, share one git command; fetches into one repository run one
// at a time, checkouts from it in parallel.
//
// Layout of dir (the daemon passes <root>/git):
//
//	repos/<sha256(remote)>.git   bare repositories
//	home/                        HOME of git and ssh (trusted host keys)
//	tmp/                         index files of checkouts (emptied by NewCache)
type Cache struct {
	dir, home, tmp, knownHosts string
	bin                        string
	binErr                     error
	allowFile                  bool
	log                        *slog.Logger // git's stderr, a record per command

	mu    sync.Mutex
	repos map[string]*sync.RWMutex

	resolves flight.Group[Resolved]
	fetches  flight.Group[struct{}]
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithGitBinary runs path instead of the git found in PATH.
func WithGitBinary(path string) CacheOption {
	return func(c *Cache) { c.bin = path }
}

// WithLogger is where git's standard error goes, one record per command
// with credentials scrubbed (the default discards it).
func WithLogger(log *slog.Logger) CacheOption {
	return func(c *Cache) { c.log = log }
}

// WithFileRemotes allows file:// remotes, which read the daemon's own
// filesystem: for tests and single-user setups only.
func WithFileRemotes() CacheOption {
	return func(c *Cache) { c.allowFile = true }
}

// NewCache returns a cache keeping its repositories in dir, creating it if
// needed. Lock files a crashed git left in them are removed. A missing git
// binary is not an error here; every git source fails with a message
// saying so. One process should hold one Cache per directory.
func NewCache(dir string, opts ...CacheOption) (*Cache, error) {
	if dir == "" {
		return nil, errdefs.Invalidf("git cache: empty directory")
	}
	c := &Cache{
		dir:   dir,
		home:  filepath.Join(dir, "home"),
		tmp:   filepath.Join(dir, "tmp"),
		bin:   "git",
		repos: map[string]*sync.RWMutex{},
	}
	c.knownHosts = filepath.Join(c.home, ".ssh", "known_hosts")
	for _, o := range opts {
		o(c)
	}
	if p, err := exec.LookPath(c.bin); err != nil {
		c.binErr = errdefs.WithClass(errdefs.ErrFailedPrecondition,
			fmt.Errorf("git source: git binary %q not found (install the Debian package git): %w", c.bin, err))
	} else {
		c.bin = p
	}
	if err := os.RemoveAll(c.tmp); err != nil {
		return nil, fmt.Errorf("git cache: %w", err)
	}
	for _, d := range []string{filepath.Join(dir, "repos"), filepath.Dir(c.knownHosts), c.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("git cache: %w", err)
		}
	}
	if err := removeStaleLocks(filepath.Join(dir, "repos")); err != nil {
		return nil, fmt.Errorf("git cache: %w", err)
	}
	return c, nil
}

// Resolved is a ref resolved to a commit.
type Resolved struct {
	// Commit is the full commit id.
	Commit string
	// Ref is the full name of the ref the commit was found under
	// ("refs/heads/main", "refs/tags/v1.0"), "HEAD" when the remote's
	// HEAD is detached, or "" when the build named a commit.
	Ref string
}

// Resolve resolves ref on remote to a commit with `git ls-remote`: the
// remote's HEAD when ref is empty, a full commit id as itself (without
// asking the remote), else, in git's order, refs/<ref>, the tag (peeled to
// its commit) and the branch of that name. An abbreviated commit id that
// names no ref is looked up after fetching the remote's branches and tags.
func (c *Cache) Resolve(ctx context.Context, remote, ref string, auth Auth) (Resolved, error) {
	if _, err := checkRemote(remote, c.allowFile); err != nil {
		return Resolved{}, err
	}
	if err := checkRef(ref); err != nil {
		return Resolved{}, err
	}
	if ref == "HEAD" {
		ref = ""
	}
	if isCommit(strings.ToLower(ref)) {
		return Resolved{Commit: strings.ToLower(ref)}, nil
	}
	key := remote + "\x00" + ref + "\x00" + auth.fingerprint()
	return c.resolves.Do(ctx, key, func(ctx context.Context, _ *flight.Call) (Resolved, error) {
		return c.resolve(ctx, remote, ref, auth)
	})
}

func (c *Cache) resolve(ctx context.Context, remote, ref string, auth Auth) (Resolved, error) {
	o := runOpts{remote: remote, auth: auth}
	if ref == "" {
		out, err := c.run(ctx, o, "ls-remote", "--symref", "--", remote, "HEAD")
		if err != nil {
			return Resolved{}, fmt.Errorf("git ls-remote %s: %w", redact(remote), err)
		}
		refs, symref := parseLsRemote(out)
		if refs["HEAD"] == "" {
			return Resolved{}, errdefs.NotFoundf("git ls-remote %s: the remote has no HEAD (an empty repository?)", redact(remote))
		}
		r := Resolved{Commit: refs["HEAD"], Ref: "HEAD"}
		if strings.HasPrefix(symref, "refs/heads/") {
			r.Ref = symref
		}
		return r, nil
	}

	out, err := c.run(ctx, o, "ls-remote", "--", remote, ref, ref+"^{}")
	if err != nil {
		return Resolved{}, fmt.Errorf("git ls-remote %s: %w", redact(remote), err)
	}
	refs, _ := parseLsRemote(out)
	candidates := []string{"refs/tags/" + ref, "refs/heads/" + ref}
	if strings.HasPrefix(ref, "refs/") {
		candidates = []string{ref}
	} else {
		candidates = append([]string{"refs/" + ref}, candidates...)
	}
	for _, name := range candidates {
		if peeled := refs[name+"^{}"]; peeled != "" {
			return Resolved{Commit: peeled, Ref: name}, nil
		}
		if sha := refs[name]; sha != "" {
			return Resolved{Commit: sha, Ref: name}, nil
		}
	}
	if shortHexRe.MatchString(strings.ToLower(ref)) {
		return c.resolveAbbrev(ctx, remote, strings.ToLower(ref), auth)
	}
	return Resolved{}, errdefs.NotFoundf("git source %s: ref %q not found", redact(remote), ref)
}

// resolveAbbrev finds the commit an abbreviated id names, fetching the
// remote's branches and tags with full history first.
func (c *Cache) resolveAbbrev(ctx context.Context, remote, abbrev string, auth Auth) (Resolved, error) {
	repo, unlock, err := c.lockRepo(ctx, remote, true)
	if err != nil {
		return Resolved{}, err
	}
	defer unlock()
	if err := c.fetchAll(ctx, repo, remote, auth); err != nil {
		return Resolved{}, err
	}
	out, err := c.run(ctx, runOpts{dir: repo}, "rev-parse", "--verify", "--quiet", "--end-of-options", abbrev+"^{commit}")
	if err != nil {
		return Resolved{}, errdefs.NotFoundf("git source %s: ref %q not found", redact(remote), abbrev)
	}
	return Resolved{Commit: strings.TrimSpace(string(out))}, nil
}

// parseLsRemote reads `git ls-remote [--symref]` output: ref name →
// object id, and the target of a HEAD symref.
func parseLsRemote(out []byte) (map[string]string, string) {
	refs := map[string]string{}
	symref := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sha, name, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		if target, isSym := strings.CutPrefix(sha, "ref: "); isSym {
			if name == "HEAD" {
				symref = target
			}
			continue
		}
		if _, seen := refs[name]; !seen {
			refs[name] = sha
		}
	}
	return refs, symref
}

// ensure makes the commit r names present in remote's repository.
func (c *Cache) ensure(ctx context.Context, remote string, r Resolved, auth Auth) error {
	key := remote + "\x00" + r.Commit + "\x00" + auth.fingerprint()
	_, err := c.fetches.Do(ctx, key, func(ctx context.Context, _ *flight.Call) (struct{}, error) {
		repo, unlock, err := c.lockRepo(ctx, remote, true)
		if err != nil {
			return struct{}{}, err
		}
		defer unlock()
		return struct{}{}, c.fetchCommit(ctx, repo, remote, r, auth)
	})
	return err
}

// fetchCommit fetches r.Commit into repo (locked for writing) unless it is
// there: by r's ref name, shallow, when the build named a ref; else by id,
// shallow; else, for servers that refuse ids, every branch and tag.
func (c *Cache) fetchCommit(ctx context.Context, repo, remote string, r Resolved, auth Auth) error {
	if c.hasCommit(ctx, repo, r.Commit) && (!strings.HasPrefix(r.Ref, "refs/tags/") || c.hasRef(ctx, repo, r.Ref)) {
		// A tag is fetched even when its commit is here: a kept .git
		// directory gets the tag (for git describe).
		return c.keep(ctx, repo, r.Commit)
	}
	var errs []error
	if r.Ref != "" && r.Ref != "HEAD" {
		spec := "+" + r.Ref + ":" + r.Ref
		if err := c.fetch(ctx, repo, remote, auth, true, spec); err != nil {
			errs = append(errs, err)
		} else if c.hasCommit(ctx, repo, r.Commit) {
			return c.keep(ctx, repo, r.Commit)
		}
	}
	if err := c.fetch(ctx, repo, remote, auth, true, r.Commit); err != nil {
		errs = append(errs, err)
	} else if c.hasCommit(ctx, repo, r.Commit) {
		return c.keep(ctx, repo, r.Commit)
	}
	if err := c.fetchAll(ctx, repo, remote, auth); err != nil {
		errs = append(errs, err)
	} else if c.hasCommit(ctx, repo, r.Commit) {
		return c.keep(ctx, repo, r.Commit)
	}
	if len(errs) > 0 {
		return errs[len(errs)-1]
	}
	return errdefs.NotFoundf("git fetch %s: commit %s not found on the remote", redact(remote), r.Commit)
}

// fetch runs `git fetch` of refspecs from remote into repo. A server that
// cannot serve shallow fetches (a dumb http one) is asked again for
// everything.
func (c *Cache) fetch(ctx context.Context, repo, remote string, auth Auth, shallow bool, refspecs ...string) error {
	args := []string{"fetch", "--quiet", "--no-tags", "--no-write-fetch-head"}
	if shallow {
		args = append(args, "--depth=1")
	} else if _, err := os.Stat(filepath.Join(repo, "shallow")); err == nil {
		args = append(args, "--unshallow")
	}
	args = append(append(args, "--", remote), refspecs...)
	_, err := c.run(ctx, runOpts{dir: repo, remote: remote, auth: auth}, args...)
	var ce *cmdError
	if shallow && errors.As(err, &ce) && (strings.Contains(ce.stderr, "shallow") || strings.Contains(ce.stderr, "depth")) {
		return c.fetch(ctx, repo, remote, auth, false, refspecs...)
	}
	if err != nil {
		return fmt.Errorf("git fetch %s: %w", redact(remote), err)
	}
	return nil
}

// fetchAll fetches every branch and tag of remote with full history.
func (c *Cache) fetchAll(ctx context.Context, repo, remote string, auth Auth) error {
	return c.fetch(ctx, repo, remote, auth, false, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
}

// keep records a fetched commit under refs/kiln/ so that it stays
// reachable whatever the remote's branches do.
func (c *Cache) keep(ctx context.Context, repo, commit string) error {
	if _, err := c.run(ctx, runOpts{dir: repo}, "update-ref", "refs/kiln/"+commit, commit); err != nil {
		return fmt.Errorf("git update-ref in %s: %w", repo, err)
	}
	return nil
}

func (c *Cache) hasRef(ctx context.Context, repo, ref string) bool {
	_, err := c.run(ctx, runOpts{dir: repo}, "rev-parse", "--verify", "--quiet", "--end-of-options", ref)
	return err == nil
}

func (c *Cache) hasCommit(ctx context.Context, repo, commit string) bool {
	_, err := c.run(ctx, runOpts{dir: repo}, "cat-file", "-e", "--end-of-options", commit+"^{commit}")
	return err == nil
}

// lockRepo returns remote's bare repository, created if needed, locked for
// writing (fetches) or reading (checkouts). Call unlock when done.
func (c *Cache) lockRepo(ctx context.Context, remote string, write bool) (string, func(), error) {
	sum := sha256.Sum256([]byte(remote))
	repo := filepath.Join(c.dir, "repos", hex.EncodeToString(sum[:16])+".git")
	c.mu.Lock()
	l := c.repos[repo]
	if l == nil {
		l = &sync.RWMutex{}
		c.repos[repo] = l
	}
	c.mu.Unlock()

	l.Lock()
	if _, err := os.Stat(repo); errors.Is(err, fs.ErrNotExist) {
		if err := c.initRepo(ctx, repo); err != nil {
			l.Unlock()
			return "", nil, err
		}
	}
	now := time.Now()
	_ = os.Chtimes(repo, now, now) // last use, for Prune
	if write {
		return repo, l.Unlock, nil
	}
	l.Unlock()
	l.RLock()
	return repo, l.RUnlock, nil
}

// Prune removes the repositories no build has used since unusedSince
// and returns the bytes freed. Repositories in use are left alone.
func (c *Cache) Prune(ctx context.Context, unusedSince time.Time) (int64, error) {
	dir := filepath.Join(c.dir, "repos")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("git cache: prune: %w", err)
	}
	var freed int64
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return freed, context.Cause(ctx)
		}
		repo := filepath.Join(dir, e.Name())
		c.mu.Lock()
		l := c.repos[repo]
		if l == nil {
			l = &sync.RWMutex{}
			c.repos[repo] = l
		}
		c.mu.Unlock()
		if !l.TryLock() {
			continue // in use
		}
		info, err := os.Stat(repo)
		if err == nil && info.ModTime().Before(unusedSince) {
			size := diskUsage(repo)
			if err := os.RemoveAll(repo); err != nil {
				l.Unlock()
				return freed, fmt.Errorf("git cache: prune: %w", err)
			}
			freed += size
		}
		l.Unlock()
	}
	return freed, nil
}

func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// initRepo creates a bare repository at repo atomically (a crash leaves
// none or a whole one).
func (c *Cache) initRepo(ctx context.Context, repo string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(repo), ".init-")
	if err != nil {
		return fmt.Errorf("git cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := c.run(ctx, runOpts{}, "init", "--quiet", "--bare", "--template=", "--", tmp); err != nil {
		return fmt.Errorf("git init %s: %w", repo, err)
	}
	if err := os.Rename(tmp, repo); err != nil {
		return fmt.Errorf("git cache: %w", err)
	}
	return nil
}

// removeStaleLocks removes the lock files and half-made repositories a
// killed git or daemon left in the repositories under dir.
func removeStaleLocks(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".init-") {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "objects" {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".lock") {
				return os.Remove(q)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
