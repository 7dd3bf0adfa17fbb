package gc

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops/exec"
)

// mountFixture is a fixture with cache mounts: "apt" last used three days
// ago, "go" ten minutes ago, and "busy", last used five days ago but held
// by a running step; plus the record "RUN step", used two days ago.
type mountFixture struct {
	*fixture
	cm    *exec.CacheMounts
	now   time.Time
	sizes map[string]int64 // by cache id, and "RUN step"
	dirs  map[string]string
}

func newMountFixture(t *testing.T) *mountFixture {
	t.Helper()
	f := &mountFixture{fixture: newFixture(t), now: time.Now(), sizes: map[string]int64{}, dirs: map[string]string{}}
	var err error
	if f.cm, err = exec.NewCacheMounts(filepath.Join(t.TempDir(), "cachemounts")); err != nil {
		t.Fatal(err)
	}
	f.commit("kiln-r-step", "", 5000, nil)
	f.record("RUN step", "kiln-r-step", f.now.Add(-48*time.Hour))
	f.sizes["RUN step"] = f.usage("kiln-r-step")
	for _, m := range []struct {
		id   string
		size int
		age  time.Duration
		held bool
	}{
		{"apt", 30000, 72 * time.Hour, false},
		{"go", 20000, 10 * time.Minute, false},
		{"busy", 10000, 120 * time.Hour, true},
	} {
		dir := f.mount(m.id, m.size, m.held)
		at := f.now.Add(-m.age)
		if err := os.Chtimes(dir, at, at); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := f.cm.List(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		f.sizes[i.ID] = i.Size
	}
	return f
}

// mount makes the cache mount id holding one file of size bytes, as a
// step would, and keeps it held if held (until the test ends).
func (f *mountFixture) mount(id string, size int, held bool) string {
	f.t.Helper()
	uid, gid := os.Getuid(), os.Getgid()
	dir, release, err := f.cm.Get(f.ctx, exec.CacheRequest{ID: id, Sharing: graph.SharingShared, UID: &uid, GID: &gid})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), make([]byte, size), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if held {
		f.t.Cleanup(release)
	} else {
		release()
	}
	f.dirs[id] = dir
	return dir
}

func (f *mountFixture) collector(cm CacheMounts) *Collector {
	f.t.Helper()
	c, err := New(Config{
		Cache: f.cache, Snapshotter: f.sn, Content: f.cs, Images: f.images, CacheMounts: cm,
		Now: func() time.Time { return f.now },
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// left returns the cache ids whose directories remain.
func (f *mountFixture) left() []string {
	f.t.Helper()
	var ids []string
	for id, dir := range f.dirs {
		if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func TestPruneCacheMounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy Policy
		// keep, if set, computes KeepBytes from the sizes; adjust, if
		// set, changes the policy with them.
		keep        func(sizes map[string]int64) int64
		adjust      func(p *Policy, sizes map[string]int64)
		wantRemoved []string
		wantLeft    []string
	}{
		{
			name:        "default removes every unused one",
			policy:      Policy{},
			wantRemoved: []string{"RUN step", "id=apt", "id=go"},
			wantLeft:    []string{"busy"},
		},
		{
			name:        "all",
			policy:      Policy{All: true},
			wantRemoved: []string{"RUN step", "id=apt", "id=go"},
			wantLeft:    []string{"busy"},
		},
		{
			name:        "keep duration spares the recent one",
			policy:      Policy{KeepDuration: time.Hour},
			wantRemoved: []string{"RUN step", "id=apt"},
			wantLeft:    []string{"busy", "go"},
		},
		{
			name:        "keep duration longer than every age removes nothing",
			policy:      Policy{KeepDuration: 30 * 24 * time.Hour},
			wantRemoved: nil,
			wantLeft:    []string{"apt", "busy", "go"},
		},
		{
			name:   "keep storage removes the oldest first",
			policy: Policy{},
			keep: func(s map[string]int64) int64 {
				return s["RUN step"] + s["go"] + s["busy"] // apt must go
			},
			wantRemoved: []string{"id=apt"},
			wantLeft:    []string{"busy", "go"},
		},
		{
			name:   "keep storage takes records and mounts in one order",
			policy: Policy{},
			keep: func(s map[string]int64) int64 {
				return s["go"] + s["busy"] // apt (3 days), then RUN step (2 days)
			},
			wantRemoved: []string{"RUN step", "id=apt"},
			wantLeft:    []string{"busy", "go"},
		},
		{
			name:        "keep storage never takes one in use",
			policy:      Policy{KeepBytes: 1},
			wantRemoved: []string{"RUN step", "id=apt", "id=go"},
			wantLeft:    []string{"busy"},
		},
		{
			name:        "type==exec.cachemount leaves the records",
			policy:      Policy{Types: []string{TypeCacheMount}},
			wantRemoved: []string{"id=apt", "id=go"},
			wantLeft:    []string{"busy"},
		},
		{
			name:        "type==regular leaves the cache mounts",
			policy:      Policy{Types: []string{TypeRecord}},
			wantRemoved: []string{"RUN step"},
			wantLeft:    []string{"apt", "busy", "go"},
		},
		{
			name:   "reserved space stops a size-bound prune",
			policy: Policy{KeepBytes: 1},
			adjust: func(p *Policy, s map[string]int64) {
				p.ReservedBytes = s["RUN step"] + s["go"] + s["busy"] // apt alone goes
			},
			wantRemoved: []string{"id=apt"},
			wantLeft:    []string{"busy", "go"},
		},
		{
			name: "min free space prunes the oldest until there is enough",
			adjust: func(p *Policy, s map[string]int64) {
				p.MinFreeBytes = 1 << 40
				p.FreeBytes = func() (int64, error) { return 1<<40 - s["apt"], nil } // apt's size short
			},
			wantRemoved: []string{"id=apt"},
			wantLeft:    []string{"busy", "go"},
		},
		{
			name: "enough free space removes nothing",
			adjust: func(p *Policy, s map[string]int64) {
				p.MinFreeBytes = 1
				p.FreeBytes = func() (int64, error) { return 1 << 30, nil }
			},
			wantRemoved: nil,
			wantLeft:    []string{"apt", "busy", "go"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newMountFixture(t)
			p := tc.policy
			if tc.keep != nil {
				p.KeepBytes = tc.keep(f.sizes)
			}
			if tc.adjust != nil {
				tc.adjust(&p, f.sizes)
			}
			var removed []string
			err := f.collector(execMounts{f.cm}).Prune(f.ctx, p, func(it Item) error {
				switch it.Type {
				case TypeCacheMount:
					id := it.Description[len("RUN --mount=type=cache,"):]
					removed = append(removed, id)
					if it.InUse || it.Shared || it.Size != f.sizes[id[len("id="):]] {
						t.Errorf("removed %s: size %d in use %v shared %v; want size %d", id, it.Size, it.InUse, it.Shared, f.sizes[id[len("id="):]])
					}
				case TypeRecord:
					removed = append(removed, it.Description)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(removed)
			if diff := cmp.Diff(tc.wantRemoved, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLeft, f.left()); diff != "" {
				t.Errorf("cache mounts left (-want +got):\n%s", diff)
			}
		})
	}
}

// execMounts shows ops/exec's cache mounts to the collector, as the
// engine does.
type execMounts struct{ m *exec.CacheMounts }

func (e execMounts) List(ctx context.Context) ([]CacheMount, error) {
	infos, err := e.m.List(ctx)
	var out []CacheMount
	for _, i := range infos {
		out = append(out, CacheMount{Name: i.Name, ID: i.ID, Instance: i.Instance, Size: i.Size, Created: i.Created, LastUsed: i.LastUsed, InUse: i.InUse})
	}
	return out, err
}

func (e execMounts) Remove(ctx context.Context, name string) error { return e.m.Remove(ctx, name) }

// takeAfterList is the cache mounts, where a step takes "go" right after
// the collector listed them.
type takeAfterList struct {
	f *mountFixture
}

func (m takeAfterList) List(ctx context.Context) ([]CacheMount, error) {
	infos, err := execMounts{m.f.cm}.List(ctx)
	if err == nil {
		m.f.mount("go", 1, true)
	}
	return infos, err
}

func (m takeAfterList) Remove(ctx context.Context, name string) error {
	return m.f.cm.Remove(ctx, name)
}

func TestPruneSparesCacheMountTakenSinceScan(t *testing.T) {
	t.Parallel()
	f := newMountFixture(t)
	var removed []string
	err := f.collector(takeAfterList{f}).Prune(f.ctx, Policy{All: true}, func(it Item) error {
		if it.Type == TypeCacheMount {
			removed = append(removed, it.Description)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RUN --mount=type=cache,id=apt"}, removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"busy", "go"}, f.left()); diff != "" {
		t.Errorf("cache mounts left (-want +got):\n%s", diff)
	}
}

func TestUsageCacheMounts(t *testing.T) {
	t.Parallel()
	f := newMountFixture(t)
	items, err := f.collector(execMounts{f.cm}).Usage(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Desc        string
		Size        int64
		InUse       bool
		Reclaimable bool
		Age         time.Duration
	}
	var got []row
	for _, it := range items {
		if it.Type == TypeCacheMount {
			got = append(got, row{it.Description, it.Size, it.InUse, it.Reclaimable(), f.now.Sub(it.LastUsed).Round(time.Minute)})
		}
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Desc < got[j].Desc })
	want := []row{
		{"RUN --mount=type=cache,id=apt", f.sizes["apt"], false, true, 72 * time.Hour},
		{"RUN --mount=type=cache,id=busy", f.sizes["busy"], true, false, 120 * time.Hour},
		{"RUN --mount=type=cache,id=go", f.sizes["go"], false, true, 10 * time.Minute},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cache mount items (-want +got):\n%s", diff)
	}
	for _, id := range []string{"apt", "busy", "go"} {
		if f.sizes[id] < 10000 {
			t.Errorf("cache mount %s: size %d, want at least the 10000 bytes written", id, f.sizes[id])
		}
	}
}
