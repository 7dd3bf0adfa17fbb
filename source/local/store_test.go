package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
)

func localVertex(src graph.LocalSource) *graph.Vertex {
	return graph.NewVertex(graph.Op{Source: &graph.SourceOp{Local: &src}}, graph.Meta{Name: "load build context"})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpExec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := t.TempDir()
	mkTree(t, src, baseTree()...)
	mkTree(t, src, tentry{path: "ignored.log", data: "x"})
	store, err := NewStore(filepath.Join(t.TempDir(), "contexts"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sess := &fakeSession{id: "build1", client: "laptop", dirs: map[string]string{"context": src}}
	v := localVertex(graph.LocalSource{Name: "context", ExcludePatterns: []string{"*.log"}, SharedKeyHint: "/home/me/app"})
	op, err := NewOp(store, v, sess)
	if err != nil {
		t.Fatal(err)
	}
	if !ops.IsContentKeyed(op) {
		t.Error("local op is not content-keyed")
	}
	if diff := cmp.Diff(Key{ClientID: "laptop", Path: "/home/me/app", Name: "context"}, op.Key()); diff != "" {
		t.Errorf("key (-want +got):\n%s", diff)
	}

	var logs strings.Builder
	var mu sync.Mutex
	pctx := progress.WithWriter(ctx, progress.WriterFunc(func(e progress.Event) {
		if e.Log != nil && e.Log.Vertex == v.Digest() {
			mu.Lock()
			logs.Write(e.Log.Data)
			mu.Unlock()
		}
	}))
	ref, err := op.Exec(pctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	lr := ref.(*Ref)
	if lr.ID() != "" {
		t.Errorf("ID() = %q, want \"\"", lr.ID())
	}
	if got := readFile(t, filepath.Join(lr.Dir(), "src/main.go")); got != "package main" {
		t.Errorf("src/main.go = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(lr.Dir(), "ignored.log")); !os.IsNotExist(err) {
		t.Errorf("excluded file was synced (err = %v)", err)
	}
	if !strings.Contains(logs.String(), "transferred 52B in 6 of 12 files") {
		t.Errorf("progress log = %q", logs.String())
	}
	c1, err := lr.Checksum(ctx, []string{"src"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A second build of the same client and directory transfers only the
	// changed file, into the same copy.
	replaceFile(t, filepath.Join(src, "src/main.go"), "package main // v2")
	sess2 := &fakeSession{id: "build2", client: "laptop", dirs: sess.dirs}
	op2, err := NewOp(store, v, sess2)
	if err != nil {
		t.Fatal(err)
	}
	ref2, err := op2.Exec(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref2.Release(ctx)
	if st := sess2.last(); st.Transferred != 1 {
		t.Errorf("second sync transferred %d files, want 1", st.Transferred)
	}
	if ref2.(*Ref).Dir() != lr.Dir() {
		t.Errorf("an unheld copy was not updated in place: %s, then %s", lr.Dir(), ref2.(*Ref).Dir())
	}
	c2, err := ref2.(*Ref).Checksum(ctx, []string{"src"})
	if err != nil {
		t.Fatal(err)
	}
	if c1.Digest == c2.Digest {
		t.Error("checksum of src did not change with src/main.go")
	}
	if c1.Files["src/util/u.go"] != c2.Files["src/util/u.go"] || c1.Files["src/main.go"] == c2.Files["src/main.go"] {
		t.Errorf("per-file digests do not single out src/main.go:\n%v\n%v", c1.Files, c2.Files)
	}
}

func TestCacheMapDigest(t *testing.T) {
	t.Parallel()
	store, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digestOf := func(src graph.LocalSource) string {
		op, err := NewOp(store, localVertex(src), &fakeSession{id: "b"})
		if err != nil {
			t.Fatal(err)
		}
		cm, err := op.CacheMap(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return cm.Digest.String()
	}
	base := digestOf(graph.LocalSource{Name: "context", ExcludePatterns: []string{"*.log"}, SharedKeyHint: "/a"})
	if d := digestOf(graph.LocalSource{Name: "context", ExcludePatterns: []string{"*.log"}, SharedKeyHint: "/elsewhere"}); d != base {
		t.Error("the client's path changed the cache key")
	}
	for _, src := range []graph.LocalSource{
		{Name: "context"},
		{Name: "context:other", ExcludePatterns: []string{"*.log"}},
		{Name: "context", ExcludePatterns: []string{"*.log"}, IncludePatterns: []string{"src"}},
		{Name: "context", ExcludePatterns: []string{"*.log"}, FollowPaths: []string{"Dockerfile"}},
	} {
		if digestOf(src) == base {
			t.Errorf("%+v has the same cache key as the base", src)
		}
	}
}

func TestNewOpErrors(t *testing.T) {
	t.Parallel()
	store, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := graph.NewVertex(graph.Op{Source: &graph.SourceOp{Image: &graph.ImageSource{Ref: "busybox"}}}, graph.Meta{})
	for name, v := range map[string]*graph.Vertex{"image": img, "no name": localVertex(graph.LocalSource{}), "nil": nil} {
		if _, err := NewOp(store, v, &fakeSession{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want invalid argument", name, err)
		}
	}
	op, err := NewOp(store, localVertex(graph.LocalSource{Name: "context"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Exec(context.Background(), nil); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Exec without a session: err = %v, want unavailable", err)
	}
	sess := &fakeSession{id: "b", dirs: map[string]string{}}
	op, err = NewOp(store, localVertex(graph.LocalSource{Name: "context"}), sess)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Exec(context.Background(), nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Exec of an unknown directory: err = %v, want not found", err)
	}
}

// syncFrom returns a Store.Sync function copying src through the protocol.
func syncFrom(src string, stats *session.SyncStats) SyncFunc {
	return func(ctx context.Context, dir string) (session.SyncStats, error) {
		st, err := (&fakeSession{dirs: map[string]string{"c": src}}).SyncDir(ctx, "c", session.SyncOptions{}, dir)
		if stats != nil {
			*stats = st
		}
		return st, err
	}
}

// A sync while another build holds the copy works on a hard-linked clone:
// the holder's files do not change, and the old copy goes away once
// released.
func TestStoreHeldCopyIsCloned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := t.TempDir()
	mkTree(t, src, baseTree()...)
	store, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := Key{ClientID: "c", Path: "/p", Name: "context"}
	a, err := store.Sync(ctx, key, syncFrom(src, nil))
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, filepath.Join(src, "a.txt"), "changed")
	var st session.SyncStats
	b, err := store.Sync(ctx, key, syncFrom(src, &st))
	if err != nil {
		t.Fatal(err)
	}
	if a.Dir() == b.Dir() {
		t.Fatal("a held copy was synced in place")
	}
	if st.Transferred != 1 {
		t.Errorf("sync into the clone transferred %d files, want 1", st.Transferred)
	}
	if got := readFile(t, filepath.Join(a.Dir(), "a.txt")); got != "alpha" {
		t.Errorf("the holder's a.txt = %q, want the old content", got)
	}
	if got := readFile(t, filepath.Join(b.Dir(), "a.txt")); got != "changed" {
		t.Errorf("the new copy's a.txt = %q", got)
	}
	// Unchanged files share their inode with the held copy.
	fa, _ := os.Stat(filepath.Join(a.Dir(), "b.txt"))
	fb, _ := os.Stat(filepath.Join(b.Dir(), "b.txt"))
	if !os.SameFile(fa, fb) {
		t.Error("the clone copied b.txt instead of linking it")
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	_ = a.Release(ctx) // twice is harmless
	_ = store.Close()
	if _, err := os.Stat(a.Dir()); !os.IsNotExist(err) {
		t.Errorf("the released old copy still exists (err = %v)", err)
	}
	if _, err := os.Stat(b.Dir()); err != nil {
		t.Errorf("the current copy: %v", err)
	}
	_ = b.Release(ctx)
}

// Syncs of one key are serialized: a second sync waits for the first (here
// until its context ends).
func TestStoreSyncExclusive(t *testing.T) {
	t.Parallel()
	store, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := Key{ClientID: "c", Path: "/p", Name: "context"}
	inFirst, release := make(chan struct{}), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		ref, err := store.Sync(context.Background(), key, func(context.Context, string) (session.SyncStats, error) {
			close(inFirst)
			<-release
			return session.SyncStats{}, nil
		})
		if err == nil {
			_ = ref.Release(context.Background())
		}
		firstDone <- err
	}()
	<-inFirst

	ctx, cancel := context.WithCancel(context.Background())
	secondRan := false
	secondDone := make(chan error, 1)
	go func() {
		_, err := store.Sync(ctx, key, func(context.Context, string) (session.SyncStats, error) {
			secondRan = true
			return session.SyncStats{}, nil
		})
		secondDone <- err
	}()
	cancel()
	if err := <-secondDone; !errors.Is(err, context.Canceled) || secondRan {
		t.Errorf("second sync: err = %v, ran = %v; want it to wait and give up", err, secondRan)
	}

	// Another key is independent.
	other, err := store.Sync(context.Background(), Key{ClientID: "c", Path: "/q", Name: "context"},
		func(context.Context, string) (session.SyncStats, error) { return session.SyncStats{}, nil })
	if err != nil {
		t.Fatalf("sync of another key while the first is busy: %v", err)
	}
	_ = other.Release(context.Background())

	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	// Now free.
	ref, err := store.Sync(context.Background(), key, func(context.Context, string) (session.SyncStats, error) { return session.SyncStats{}, nil })
	if err != nil {
		t.Fatal(err)
	}
	_ = ref.Release(context.Background())
}

// A failed sync leaves the previous copy current; a restarted store finds
// it and the next sync transfers nothing.
func TestStoreFailureAndRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, root := t.TempDir(), t.TempDir()
	mkTree(t, src, baseTree()...)
	key := Key{ClientID: "c", Path: "/p", Name: "context"}

	store, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.Sync(ctx, key, syncFrom(src, nil))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("client went away")
	if _, err := store.Sync(ctx, key, func(context.Context, string) (session.SyncStats, error) { return session.SyncStats{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("failed sync: err = %v", err)
	}
	if _, err := a.Checksum(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_ = a.Release(ctx)
	_ = store.Close()

	store2, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer store2.Close()
	var st session.SyncStats
	b, err := store2.Sync(ctx, key, syncFrom(src, &st))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(ctx)
	if st.Transferred != 0 || st.Files != len(baseTree()) {
		t.Errorf("sync after restart = %+v, want nothing transferred", st)
	}
	if b.Dir() != a.Dir() {
		t.Errorf("restarted store uses %s, want the previous copy %s", b.Dir(), a.Dir())
	}
	// The persisted hash cache came back.
	if n := len(b.e.hashes.m); n == 0 {
		t.Error("hash cache not reloaded after restart")
	}
}

// Without a client id a sync gets a private copy, transferred in full and
// removed when released.
func TestStorePrivateCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, root := t.TempDir(), t.TempDir()
	mkTree(t, src, baseTree()...)
	store, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Path: "/p", Name: "context"}
	var st1, st2 session.SyncStats
	a, err := store.Sync(ctx, key, syncFrom(src, &st1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Sync(ctx, key, syncFrom(src, &st2))
	if err != nil {
		t.Fatal(err)
	}
	if a.Dir() == b.Dir() || st2.Transferred != st1.Transferred || st2.Transferred == 0 {
		t.Errorf("private copies shared or reused: %s (%+v), %s (%+v)", a.Dir(), st1, b.Dir(), st2)
	}
	if _, err := a.Checksum(ctx, []string{"src"}); err != nil {
		t.Fatal(err)
	}
	_ = a.Release(ctx)
	_ = store.Close()
	if _, err := os.Stat(a.Dir()); !os.IsNotExist(err) {
		t.Errorf("released private copy still exists (err = %v)", err)
	}

	// A restarted store removes private copies left behind.
	if _, err := NewStore(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.Dir()); !os.IsNotExist(err) {
		t.Errorf("private copy of a dead process survived a restart (err = %v)", err)
	}
}

// A copy's digest is taken once per change: a sync that changes nothing
// keeps it, in place and in the clone made while a build holds the copy;
// a sync that changes something, or fails part of the way, drops it. A
// file written into the copy behind the store's back (which a kept digest
// does not see and a new walk does) tells the two apart.
func TestChecksumKeptUntilChange(t *testing.T) {
	t.Parallel()
	newContent := func(t *testing.T, src string) { replaceFile(t, filepath.Join(src, "a.txt"), "changed") }
	newMode := func(t *testing.T, src string) {
		if err := os.Chmod(filepath.Join(src, "bin/run"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		hold   bool                           // a build holds the first copy: the second sync clones it
		change func(t *testing.T, src string) // the client's change before the second sync
		fail   bool                           // a sync of the change fails after writing it, before the second sync
		kept   bool
	}{
		{name: "unchanged", kept: true},
		{name: "unchanged, clone", hold: true, kept: true},
		{name: "file content", change: newContent},
		{name: "file content, clone", hold: true, change: newContent},
		{name: "file mode", change: newMode},
		{name: "failed sync, then unchanged", change: newContent, fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			src := t.TempDir()
			mkTree(t, src, baseTree()...)
			store, err := NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			key := Key{ClientID: "c", Path: "/p", Name: "context"}
			sel := []string{"/"}
			first, err := store.Sync(ctx, key, syncFrom(src, nil))
			if err != nil {
				t.Fatal(err)
			}
			before, err := first.Checksum(ctx, sel)
			if err != nil {
				t.Fatal(err)
			}
			if tt.hold {
				defer first.Release(ctx)
			} else {
				_ = first.Release(ctx)
			}
			if tt.change != nil {
				tt.change(t, src)
			}
			if tt.fail {
				boom := errors.New("boom")
				_, err := store.Sync(ctx, key, func(ctx context.Context, dir string) (session.SyncStats, error) {
					st, err := syncFrom(src, nil)(ctx, dir)
					if err != nil {
						return st, err
					}
					return st, boom
				})
				if !errors.Is(err, boom) {
					t.Fatalf("failing sync: err = %v", err)
				}
			}
			second, err := store.Sync(ctx, key, syncFrom(src, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer second.Release(ctx)
			if tt.hold && second.Dir() == first.Dir() {
				t.Fatal("a held copy was synced in place")
			}
			if err := os.WriteFile(filepath.Join(second.Dir(), "behind-the-back"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := second.Checksum(ctx, sel)
			if err != nil {
				t.Fatal(err)
			}
			walked, err := Checksum(ctx, second.Dir(), sel)
			if err != nil {
				t.Fatal(err)
			}
			if walked.Digest == before.Digest {
				t.Fatal("the file written behind the store's back changed nothing: the test cannot tell")
			}
			switch {
			case tt.kept && got.Digest != before.Digest:
				t.Errorf("digest after the second sync = %s, want the first sync's %s (kept)", got.Digest, before.Digest)
			case !tt.kept && got.Digest != walked.Digest:
				t.Errorf("digest after the second sync = %s, want a new walk's %s (first: %s)", got.Digest, walked.Digest, before.Digest)
			}
		})
	}
}
