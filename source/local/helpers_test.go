package local

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/filesync"
	"github.com/kiln-build/kiln/session"
)

// fakeSession syncs from local directories through the real protocol
// (filesync.Local) and records what each sync did.
type fakeSession struct {
	id     string
	client string
	dirs   map[string]string // sync name → directory

	mu    sync.Mutex
	syncs []session.SyncStats
}

func (s *fakeSession) ID() string       { return s.id }
func (s *fakeSession) ClientID() string { return s.client }

func (s *fakeSession) SyncDir(ctx context.Context, name string, opts session.SyncOptions, dest string) (session.SyncStats, error) {
	src, ok := s.dirs[name]
	if !ok {
		return session.SyncStats{}, errdefs.NotFoundf("no local directory %q", name)
	}
	st, err := filesync.Local(ctx, src, dest, opts)
	s.mu.Lock()
	s.syncs = append(s.syncs, st)
	s.mu.Unlock()
	return st, err
}

func (s *fakeSession) last() session.SyncStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs[len(s.syncs)-1]
}

func (s *fakeSession) Secret(context.Context, string) ([]byte, error) {
	return nil, errdefs.ErrNotFound
}

func (s *fakeSession) DialSSH(context.Context, string) (net.Conn, error) {
	return nil, errdefs.ErrNotFound
}

func (s *fakeSession) Credentials(context.Context, string) (session.Credential, bool, error) {
	return session.Credential{}, false, nil
}

var _ session.Session = (*fakeSession)(nil)

// tentry describes one path of a test tree: a directory (dir), a file
// (data) or a link (target).
type tentry struct {
	path   string
	dir    bool
	data   string
	target string
	mode   fs.FileMode
}

var fixedTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func mkTree(t testing.TB, root string, entries ...tentry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, e.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := e.mode
		switch {
		case e.dir:
			if mode == 0 {
				mode = 0o755
			}
			if err := os.MkdirAll(p, mode); err != nil {
				t.Fatal(err)
			}
		case e.target != "":
			if err := os.Symlink(e.target, p); err != nil {
				t.Fatal(err)
			}
			continue
		default:
			if mode == 0 {
				mode = 0o644
			}
			if err := os.WriteFile(p, []byte(e.data), mode); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, fixedTime, fixedTime); err != nil {
			t.Fatal(err)
		}
	}
}

// replaceFile writes data to a new file and renames it over p, as the
// store does.
func replaceFile(t testing.TB, p, data string) {
	t.Helper()
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// memTempDir is a temporary directory on tmpfs where there is one: for
// tests that create many files.
func memTempDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "kiln-local-"); err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}
