package exec_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops/exec"
)

// newCacheMounts returns a manager on a temporary root; requests made by
// req own their directories by the test's user, so no root is needed.
func newCacheMounts(t *testing.T) (*exec.CacheMounts, func(id string, s graph.CacheSharing) exec.CacheRequest) {
	t.Helper()
	cm, err := exec.NewCacheMounts(filepath.Join(t.TempDir(), "cachemounts"))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	return cm, func(id string, s graph.CacheSharing) exec.CacheRequest {
		return exec.CacheRequest{ID: id, Sharing: s, UID: &uid, GID: &gid}
	}
}

func list(t *testing.T, cm *exec.CacheMounts) map[string]exec.CacheMountInfo {
	t.Helper()
	infos, err := cm.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]exec.CacheMountInfo{}
	for _, i := range infos {
		out[i.ID] = i
	}
	return out
}

func TestCacheMountsInUseAndRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cm, req := newCacheMounts(t)
	start := time.Now().Add(-time.Second)

	dir, release, err := cm.Get(ctx, req("/root/.cache/go-build", graph.SharingShared))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "obj"), make([]byte, 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	got := list(t, cm)["/root/.cache/go-build"]
	if !got.InUse || got.Name != filepath.Base(dir) || got.Size < 20000 || got.Instance != 0 || got.Created.Before(start) {
		t.Fatalf("while held: %+v; want in use, named %s, at least 20000 bytes, created now", got, filepath.Base(dir))
	}
	err = cm.Remove(ctx, got.Name)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Remove while held: %v, want a failed precondition", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "obj")); err != nil {
		t.Fatalf("a refused Remove touched the directory: %v", err)
	}

	// Release marks the last use.
	old := time.Now().Add(-72 * time.Hour)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	release()
	release() // a second call is harmless
	got = list(t, cm)["/root/.cache/go-build"]
	if got.InUse || got.LastUsed.Before(start) {
		t.Fatalf("after release: %+v; want not in use, last used now", got)
	}

	if err := cm.Remove(ctx, got.Name); err != nil {
		t.Fatal(err)
	}
	if infos := list(t, cm); len(infos) != 0 {
		t.Fatalf("after Remove: %+v", infos)
	}
	if err := cm.Remove(ctx, got.Name); !errdefs.IsNotFound(err) {
		t.Errorf("second Remove: %v, want not found", err)
	}
	// The id starts empty.
	dir2, release, err := cm.Get(ctx, req("/root/.cache/go-build", graph.SharingShared))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ents, err := os.ReadDir(dir2)
	if err != nil || len(ents) != 0 || dir2 != dir {
		t.Errorf("after Remove, Get gave %s with %d entries (%v); want %s, empty", dir2, len(ents), err, dir)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(cm.Root(), ".trash-*")); len(leftovers) != 0 {
		t.Errorf("Remove left %v", leftovers)
	}
}

func TestCacheMountsRemoveNames(t *testing.T) {
	t.Parallel()
	cm, req := newCacheMounts(t)
	_, release, err := cm.Get(context.Background(), req("x", graph.SharingShared))
	if err != nil {
		t.Fatal(err)
	}
	release()
	outside := filepath.Join(filepath.Dir(cm.Root()), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want error
	}{
		{"", errdefs.ErrInvalidArgument},
		{".ids", errdefs.ErrInvalidArgument},
		{"..", errdefs.ErrInvalidArgument},
		{"../outside", errdefs.ErrInvalidArgument},
		{"a/b", errdefs.ErrInvalidArgument},
		{"0123456789abcdef0123456789abcdef", errdefs.ErrNotFound},
	}
	for _, tc := range tests {
		if err := cm.Remove(context.Background(), tc.name); !errors.Is(err, tc.want) {
			t.Errorf("Remove(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("a directory outside the root went: %v", err)
	}
	if n := len(list(t, cm)); n != 1 {
		t.Errorf("%d cache mounts left, want 1", n)
	}
}

func TestCacheMountsSharingInUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cm, req := newCacheMounts(t)

	// A second private user gets instance 1; both are in use.
	_, rel1, err := cm.Get(ctx, req("p", graph.SharingPrivate))
	if err != nil {
		t.Fatal(err)
	}
	_, rel2, err := cm.Get(ctx, req("p", graph.SharingPrivate))
	if err != nil {
		t.Fatal(err)
	}
	infos, err := cm.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID       string
		Instance int
		InUse    bool
	}
	var got []row
	for _, i := range infos {
		got = append(got, row{i.ID, i.Instance, i.InUse})
	}
	if diff := cmp.Diff([]row{{"p", 0, true}, {"p", 1, true}}, got); diff != "" {
		t.Errorf("private instances (-want +got):\n%s", diff)
	}
	rel2()
	rel1()

	// A locked directory is in use while held; the next step gets it
	// after the release.
	_, relA, err := cm.Get(ctx, req("l", graph.SharingLocked))
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, relB, err := cm.Get(ctx, req("l", graph.SharingLocked))
		if err == nil {
			relB()
		}
		waiting <- err
	}()
	name := list(t, cm)["l"].Name
	if err := cm.Remove(ctx, name); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Remove of a locked directory: %v, want a failed precondition", err)
	}
	relA()
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
	if err := cm.Remove(ctx, name); err != nil {
		t.Errorf("Remove after both released: %v", err)
	}

	// A waiter whose context ends gives up its claim.
	_, relC, err := cm.Get(ctx, req("l", graph.SharingLocked))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := cm.Get(cctx, req("l", graph.SharingLocked)); err == nil {
		t.Fatal("Get of a locked directory returned before the holder released it")
	}
	relC()
	if err := cm.Remove(ctx, name); err != nil {
		t.Errorf("Remove after a canceled waiter: %v", err)
	}
}

// TestCacheMountsRemoveRace removes the directory over and over while
// steps take it: a step's directory never vanishes or loses its files
// while it holds it. Run with -race.
func TestCacheMountsRemoveRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cm, req := newCacheMounts(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var removed, refused atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			infos, err := cm.List(ctx)
			if err != nil {
				t.Errorf("List: %v", err)
				return
			}
			for _, i := range infos {
				switch err := cm.Remove(ctx, i.Name); {
				case err == nil:
					removed.Add(1)
				case errors.Is(err, errdefs.ErrFailedPrecondition):
					refused.Add(1)
				case errdefs.IsNotFound(err):
				default:
					t.Errorf("Remove: %v", err)
				}
			}
		}
	}()
	start := time.Now()
	// At least 200 steps, and more until a Remove got between two of them
	// (bounded: the test then reports that the race was not exercised).
	for i := 0; i < 200 || (removed.Load() == 0 && time.Since(start) < 10*time.Second); i++ {
		dir, release, err := cm.Get(ctx, req("race", graph.SharingShared))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "f")
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatalf("step %d: write into its cache directory: %v", i, err)
		}
		runtime.Gosched()
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("step %d: its cache directory changed under it: %v", i, err)
		}
		release()
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	if removed.Load() == 0 {
		t.Errorf("Remove never succeeded (%d refused): the race was not exercised", refused.Load())
	}
}

func TestNewCacheMountsDiscardsLeftovers(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "cm")
	for _, d := range []string{".trash-123/abc", ".new-456", "keep"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cm, err := exec.NewCacheMounts(root)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{".ids", "keep"}, names); diff != "" {
		t.Errorf("root after open (-want +got):\n%s", diff)
	}
	// A directory made before ids were recorded is listed without one.
	infos, err := cm.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Name != "keep" || infos[0].ID != "" || !infos[0].Created.IsZero() {
		t.Errorf("List = %+v, want the one directory without id", infos)
	}
}
