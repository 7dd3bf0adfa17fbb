package git

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/session"
)

// Op is the ops.Op of a graph.GitSource. Its result is a snapshot of the
// repository's tree at the resolved commit (or of Subdir in it), without
// .git unless KeepGitDir is set and there is no Subdir. Files are owned by
// the daemon's user, with mode 0644 or 0755 (git records only the
// executable bit) and directories 0755, whatever the daemon's umask.
// Submodules are left as empty directories.
type Op struct {
	src      graph.GitSource
	subdir   string
	opDigest digest.Digest
	snaps    ops.Snapshots
	cache    *Cache
	auth     Auth
	authFunc AuthFunc

	mu       sync.Mutex
	resolved *Resolved
}

var _ ops.Op = (*Op)(nil)

// OpOption configures an Op.
type OpOption func(*Op)

// WithAuth has the op reach the remote with a build's credentials.
func WithAuth(a Auth) OpOption {
	return func(o *Op) { o.auth = a }
}

// NewOp returns the op for src, whose definition digest is opDigest. It
// checks the remote (https, http, ssh, git or scp-like user@host:path;
// file:// only if the cache allows it), the ref and the subdirectory.
func NewOp(src *graph.GitSource, opDigest digest.Digest, snaps ops.Snapshots, cache *Cache, opts ...OpOption) (*Op, error) {
	if src == nil {
		return nil, errdefs.Invalidf("git source: no source")
	}
	if snaps == nil || cache == nil {
		return nil, errdefs.Invalidf("git source %s: no snapshots or cache", redact(src.Remote))
	}
	if _, err := checkRemote(src.Remote, cache.allowFile); err != nil {
		return nil, err
	}
	if err := checkRef(src.Ref); err != nil {
		return nil, err
	}
	subdir, err := cleanSubdir(src.Subdir)
	if err != nil {
		return nil, err
	}
	o := &Op{src: *src, subdir: subdir, opDigest: opDigest, snaps: snaps, cache: cache}
	for _, opt := range opts {
		opt(o)
	}
	return o, nil
}

// CacheMap implements ops.Op: it resolves the ref to a commit (see
// Cache.Resolve) and the key is the op digest plus the commit (plus the
// branch name when .git is kept, as it shows in the result).
func (o *Op) CacheMap(ctx context.Context) (*ops.CacheMap, error) {
	r, err := o.resolve(ctx)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	parts := []string{"kiln/git/v1", o.opDigest.String(), r.Commit}
	if o.keepGitDir() {
		parts = append(parts, r.Ref)
	}
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return &ops.CacheMap{Digest: digest.NewDigest(digest.SHA256, h)}, nil
}

func (o *Op) resolve(ctx context.Context) (Resolved, error) {
	o.mu.Lock()
	r := o.resolved
	o.mu.Unlock()
	if r != nil {
		return *r, nil
	}
	auth, release, err := o.credentials(ctx)
	if err != nil {
		return Resolved{}, err
	}
	res, err := o.cache.Resolve(ctx, o.src.Remote, o.src.Ref, auth)
	release()
	if err != nil {
		return Resolved{}, err
	}
	o.mu.Lock()
	o.resolved = &res
	o.mu.Unlock()
	return res, nil
}

// Exec implements ops.Op. It takes no inputs. It fetches the commit
// CacheMap resolved into the cache (shallow where the server allows) and
// checks it out into a new snapshot.
func (o *Op) Exec(ctx context.Context, inputs []ops.Ref) (ops.Ref, error) {
	if len(inputs) != 0 {
		return nil, errdefs.Invalidf("git source %s: takes no inputs, got %d", redact(o.src.Remote), len(inputs))
	}
	r, err := o.resolve(ctx)
	if err != nil {
		return nil, err
	}
	repo, unlock, err := o.fetched(ctx, r)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if o.subdir != "" {
		if err := o.checkSubdir(ctx, repo, r.Commit); err != nil {
			return nil, err
		}
	}

	a, err := o.snaps.New(ctx, nil, o.describe())
	if err != nil {
		return nil, err
	}
	defer a.Discard(context.WithoutCancel(ctx))
	err = withDir(ctx, a, func(dir string) error {
		if o.keepGitDir() {
			err = o.cache.checkoutRepo(ctx, repo, dir, o.src.Remote, r)
		} else {
			err = o.cache.checkoutTree(ctx, repo, dir, r.Commit, o.subdir)
		}
		if err != nil {
			return err
		}
		return normalizeModes(dir)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: checkout: %w", o.describe(), err)
	}
	return a.Commit(ctx)
}

// fetched makes sure r's commit is in the cache and returns its
// repository locked for reading. The commit is checked again under the
// lock: a Prune may have removed the repository in between.
// credentials returns the auth of one remote operation and its release.
func (o *Op) credentials(ctx context.Context) (Auth, func(), error) {
	if o.authFunc == nil {
		return o.auth, func() {}, nil
	}
	return o.authFunc(ctx, o.src.Remote)
}

func (o *Op) fetched(ctx context.Context, r Resolved) (string, func(), error) {
	for attempt := 0; ; attempt++ {
		auth, release, err := o.credentials(ctx)
		if err != nil {
			return "", nil, err
		}
		err = o.cache.ensure(ctx, o.src.Remote, r, auth)
		release()
		if err != nil {
			return "", nil, err
		}
		repo, unlock, err := o.cache.lockRepo(ctx, o.src.Remote, false)
		if err != nil {
			return "", nil, err
		}
		if o.cache.hasCommit(ctx, repo, r.Commit) || attempt == 1 {
			return repo, unlock, nil
		}
		unlock()
	}
}

func (o *Op) keepGitDir() bool { return o.src.KeepGitDir && o.subdir == "" }

func (o *Op) describe() string {
	s := "git source " + redact(o.src.Remote)
	if o.src.Ref != "" || o.subdir != "" {
		s += "#" + o.src.Ref
	}
	if o.subdir != "" {
		s += ":" + o.subdir
	}
	return s
}

// checkSubdir makes sure the subdirectory is a directory at commit.
func (o *Op) checkSubdir(ctx context.Context, repo, commit string) error {
	out, err := o.cache.run(ctx, runOpts{dir: repo}, "cat-file", "-t", "--end-of-options", commit+":"+o.subdir)
	if err != nil {
		return errdefs.NotFoundf("%s: subdirectory %q not found at commit %s", o.describe(), o.subdir, commit)
	}
	if t := strings.TrimSpace(string(out)); t != "tree" {
		return errdefs.Invalidf("%s: %q is not a directory at commit %s", o.describe(), o.subdir, commit)
	}
	return nil
}

// checkoutTree writes the tree of commit (or of subdir in it) into dir,
// with an index file of its own so that checkouts from one repository can
// run in parallel.
func (c *Cache) checkoutTree(ctx context.Context, repo, dir, commit, subdir string) error {
	idxDir, err := os.MkdirTemp(c.tmp, "index-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(idxDir)
	o := runOpts{dir: dir, env: []string{"GIT_INDEX_FILE=" + filepath.Join(idxDir, "index")}}
	tree := commit
	if subdir != "" {
		tree += ":" + subdir
	}
	if _, err := c.run(ctx, o, "--git-dir="+repo, "--work-tree="+dir, "read-tree", "--end-of-options", tree); err != nil {
		return fmt.Errorf("git read-tree: %w", err)
	}
	if _, err := c.run(ctx, o, "--git-dir="+repo, "--work-tree="+dir, "checkout-index", "--all"); err != nil {
		return fmt.Errorf("git checkout-index: %w", err)
	}
	return nil
}

// checkoutRepo makes dir a git repository checked out at r.Commit, fetched
// (depth 1) from the cache's repository: on branch B when r is a branch,
// else detached, with the tag when r is one, and origin set to the remote
// without credentials.
func (c *Cache) checkoutRepo(ctx context.Context, repo, dir, remote string, r Resolved) error {
	in := runOpts{dir: dir}
	local := runOpts{dir: dir, localFile: true}
	if _, err := c.run(ctx, in, "init", "--quiet", "--template=", "--", dir); err != nil {
		return fmt.Errorf("git init: %w", err)
	}
	if _, err := c.run(ctx, in, "remote", "add", "--", "origin", redact(remote)); err != nil {
		return fmt.Errorf("git remote add: %w", err)
	}
	branch, isBranch := strings.CutPrefix(r.Ref, "refs/heads/")
	target := "refs/kiln/checkout"
	if isBranch {
		target = "refs/remotes/origin/" + branch
	}
	specs := []string{"+refs/kiln/" + r.Commit + ":" + target}
	if strings.HasPrefix(r.Ref, "refs/tags/") {
		if c.hasRef(ctx, repo, r.Ref) {
			specs = append(specs, "+"+r.Ref+":"+r.Ref)
		}
	}
	args := append([]string{"fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--depth=1", "--", "file://" + repo}, specs...)
	if _, err := c.run(ctx, local, args...); err != nil {
		return fmt.Errorf("git fetch from the cache: %w", err)
	}
	if isBranch {
		if _, err := c.run(ctx, in, "checkout", "--quiet", "-B", branch, "--track", "origin/"+branch); err != nil {
			return fmt.Errorf("git checkout: %w", err)
		}
		return nil
	}
	if _, err := c.run(ctx, in, "checkout", "--quiet", "--detach", r.Commit); err != nil {
		return fmt.Errorf("git checkout: %w", err)
	}
	if _, err := c.run(ctx, in, "update-ref", "-d", target); err != nil {
		return fmt.Errorf("git update-ref: %w", err)
	}
	return nil
}

// normalizeModes gives the checked-out files and directories (not .git)
// the modes git means, whatever the umask: 0644 or 0755 for files, 0755
// for directories.
func normalizeModes(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == filepath.Join(dir, ".git") {
			return filepath.SkipDir
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return nil
		case d.IsDir():
			return os.Chmod(p, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			return os.Chmod(p, mode)
		}
		return nil
	})
}

// withDir calls fn with a directory that writes into a: its upper
// directory when it has one (writing there directly is allowed for an
// empty snapshot), else a temporary mount of it.
func withDir(ctx context.Context, a ops.Active, fn func(dir string) error) error {
	if up := a.UpperDir(); up != "" {
		return fn(up)
	}
	if len(a.Mounts()) == 0 {
		return errors.New("snapshot has no mounts")
	}
	return mount.WithTempMount(ctx, a.Mounts(), fn)
}

// NewOp makes the op of vertex v, a git source, with the credentials the
// build's client gives (SessionAuth; sess may be nil: anonymous). It lets
// a *Cache serve as the worker's source of git ops.
func (c *Cache) NewOp(v *graph.Vertex, snaps ops.Snapshots, sess session.Session) (ops.Op, error) {
	if v == nil || v.Op.Source == nil || v.Op.Source.Git == nil {
		return nil, errdefs.Invalidf("git source: vertex is not a git source")
	}
	var opts []OpOption
	if sess != nil {
		opts = append(opts, WithAuthFunc(SessionAuth(sess, c.tmp)))
	}
	o, err := NewOp(v.Op.Source.Git, v.Op.Digest(), snaps, c, opts...)
	if err != nil {
		return nil, err
	}
	return o, nil
}
