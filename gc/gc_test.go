package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/cache/memory"
	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/imagestore"
	"github.com/kiln-build/kiln/snapshot"
)

// fixture is a daemon root in miniature: a native snapshotter, a content
// store, an image store and an in-memory cache store.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	sn     *snapshot.Snapshotter
	cs     content.Store
	images *imagestore.Store
	cache  *memory.Store
	inUse  map[string]bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	sn, err := snapshot.New(dir, snapshot.KindNative)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	cs, err := content.Open(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "metadata.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	images, err := imagestore.New(db, cs)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: context.Background(), sn: sn, cs: cs, images: images, cache: memory.New(), inUse: map[string]bool{}}
}

// commit makes the committed snapshot name on parent holding one file of
// size bytes, labelled with labels.
func (f *fixture) commit(name, parent string, size int, labels map[string]string) {
	f.t.Helper()
	key := "active-" + name
	mounts, err := f.sn.Prepare(f.ctx, key, parent)
	if err != nil {
		f.t.Fatal(err)
	}
	// A native snapshot's mount is a bind of its directory.
	if err := os.WriteFile(filepath.Join(mounts[0].Source, "f-"+filepath.Base(name)), bytes.Repeat([]byte("x"), size), 0o644); err != nil {
		f.t.Fatal(err)
	}
	var opts []snapshots.Opt
	if labels != nil {
		opts = append(opts, snapshots.WithLabels(labels))
	}
	if err := f.sn.Commit(f.ctx, name, key, opts...); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) blob(mt string, b []byte) ocispec.Descriptor {
	f.t.Helper()
	d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(f.ctx, f.cs, "", bytes.NewReader(b), d); err != nil {
		f.t.Fatal(err)
	}
	return d
}

// image stores an image named name with one layer whose diff ID is diffID
// and returns the digests of its blobs.
func (f *fixture) image(name string, diffID digest.Digest) []string {
	f.t.Helper()
	layer := f.blob(ocispec.MediaTypeImageLayerGzip, []byte("layer of "+name))
	cfgJSON, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	})
	cfg := f.blob(ocispec.MediaTypeImageConfig, cfgJSON)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	md := f.blob(ocispec.MediaTypeImageManifest, mb)
	if err := f.images.Put(f.ctx, imagestore.Image{Name: name, Target: md}); err != nil {
		f.t.Fatal(err)
	}
	return []string{md.Digest.String(), cfg.Digest.String(), layer.Digest.String()}
}

func (f *fixture) record(key, result string, lastUsed time.Time) {
	f.t.Helper()
	err := f.cache.Put(f.ctx, cache.Record{Key: digest.FromString(key), Result: result, Created: lastUsed, LastUsed: lastUsed, Description: key})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) collector(now time.Time) *Collector {
	f.t.Helper()
	c, err := New(Config{
		Cache: f.cache, Snapshotter: f.sn, Content: f.cs, Images: f.images,
		InUse: func(n string) bool { return f.inUse[n] },
		Now:   func() time.Time { return now },
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// state lists the remaining records (by description), snapshots and blobs.
func (f *fixture) state() (records, snaps []string, blobs map[string]bool) {
	f.t.Helper()
	_ = f.cache.Walk(f.ctx, func(r cache.Record) error { records = append(records, r.Description); return nil })
	_ = f.sn.Walk(f.ctx, func(_ context.Context, i snapshots.Info) error { snaps = append(snaps, i.Name); return nil })
	blobs = map[string]bool{}
	_ = f.cs.Walk(f.ctx, func(i ctrcontent.Info) error { blobs[i.Digest.String()] = true; return nil })
	sort.Strings(records)
	sort.Strings(snaps)
	return records, snaps, blobs
}

func (f *fixture) usage(name string) int64 {
	f.t.Helper()
	u, err := f.sn.Usage(f.ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return u.Size
}

func TestPrune(t *testing.T) {
	t.Parallel()
	base := digest.FromString("base layer").String()
	img := digest.FromString("image layer").String()
	hour := time.Hour
	tests := []struct {
		name   string
		policy Policy
		// recent: the "step" record was used a minute ago, not a day ago.
		recent bool
		// active: a step is running (an active snapshot exists).
		active bool
		// keepRest sets KeepBytes to what RUN step and RUN busy take.
		keepRest bool
		// keepAll sets KeepBytes to what the records' results take.
		keepAll     bool
		wantRecords []string
		wantSnaps   []string
		// wantRemoved are the removed items as type:description-or-id.
		wantRemoved   []string
		wantBlobsGone int
	}{
		{
			name:        "default keeps base layers and in-use results",
			policy:      Policy{},
			wantRecords: []string{"FROM base", "RUN busy"},
			wantSnaps:   []string{base, img, "kiln-r-busy"},
			wantRemoved: []string{
				"regular:RUN step", "regular:gone (result gone)",
				"snapshot:kiln-r-orphan", "blob:orphan", "blob:labelled",
			},
			wantBlobsGone: 2,
		},
		{
			name:        "all removes base layer records",
			policy:      Policy{All: true},
			wantRecords: []string{"RUN busy"},
			wantSnaps:   []string{base, img, "kiln-r-busy"}, // base: parent of the busy result
			wantRemoved: []string{
				"regular:FROM base", "regular:RUN step", "regular:gone (result gone)",
				"snapshot:kiln-r-orphan", "blob:orphan", "blob:labelled",
			},
			wantBlobsGone: 2,
		},
		{
			name:        "keep duration keeps recent records and their blobs",
			policy:      Policy{All: true, KeepDuration: hour},
			recent:      true,
			wantRecords: []string{"RUN busy", "RUN step"},
			wantSnaps:   []string{base, img, "kiln-r-busy", "kiln-r-step"},
			wantRemoved: []string{
				"regular:FROM base", "regular:gone (result gone)",
				"snapshot:kiln-r-orphan", "blob:orphan",
			},
			wantBlobsGone: 1,
		},
		{
			// Under the cap, an unreferenced blob (a base image's
			// manifest, say) stays for the next build.
			name:        "keep storage stops once the rest fits",
			policy:      Policy{All: true, KeepBytes: 1 << 20},
			wantRecords: []string{"FROM base", "RUN busy", "RUN step"},
			wantSnaps:   []string{base, img, "kiln-r-busy", "kiln-r-step"},
			wantRemoved: []string{
				"regular:gone (result gone)",
				"snapshot:kiln-r-orphan",
			},
			wantBlobsGone: 0,
		},
		{
			name:        "keep storage removes unreferenced blobs that do not fit",
			policy:      Policy{All: true},
			keepAll:     true,
			wantRecords: []string{"FROM base", "RUN busy", "RUN step"},
			wantSnaps:   []string{base, img, "kiln-r-busy", "kiln-r-step"},
			wantRemoved: []string{
				"regular:gone (result gone)",
				"snapshot:kiln-r-orphan", "blob:orphan",
			},
			wantBlobsGone: 1,
		},
		{
			name:        "keep storage removes the least recently used first",
			policy:      Policy{All: true},
			keepRest:    true,
			wantRecords: []string{"RUN busy", "RUN step"},
			wantSnaps:   []string{base, img, "kiln-r-busy", "kiln-r-step"},
			wantRemoved: []string{
				"regular:FROM base", "regular:gone (result gone)",
				"snapshot:kiln-r-orphan", "blob:orphan",
			},
			wantBlobsGone: 1,
		},
		{
			name:        "while something runs young orphans stay",
			policy:      Policy{},
			active:      true,
			wantRecords: []string{"FROM base", "RUN busy"},
			wantSnaps:   []string{"active-running", base, img, "kiln-r-busy", "kiln-r-orphan"},
			// The step's snapshot goes with its record; blobs this young
			// stay while something runs.
			wantRemoved: []string{
				"regular:RUN step", "regular:gone (result gone)",
			},
			wantBlobsGone: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			now := time.Now()
			day := now.Add(-24 * time.Hour)

			imageBlobs := f.image("app", digest.Digest(img))
			f.commit(img, "", 100, nil)
			f.commit(base, "", 1000, nil)
			labelled := f.blob(ocispec.MediaTypeImageLayerGzip, []byte("exported layer"))
			f.commit("kiln-r-step", base, 2000, map[string]string{
				"kiln.io/layer.blob.gzip": labelled.MediaType + "|" + labelled.Digest.String() + "|14",
			})
			f.commit("kiln-r-busy", base, 10, nil)
			f.commit("kiln-r-orphan", "", 10, nil)
			orphan := f.blob("application/octet-stream", []byte("orphan"))
			f.inUse["kiln-r-busy"] = true
			if tc.active {
				if _, err := f.sn.Prepare(f.ctx, "active-running", "kiln-r-busy"); err != nil {
					t.Fatal(err)
				}
			}

			// Snapshots and blobs were made just now: the collector looks
			// at them from two hours later (past the grace period), except
			// in the "something runs" case, where it looks from a minute
			// later.
			at := now.Add(2 * time.Hour)
			if tc.active {
				at = now.Add(time.Minute)
			}
			stepUsed := day
			if tc.recent {
				stepUsed = at.Add(-time.Minute)
			}
			f.record("FROM base", base, day.Add(-time.Hour))
			f.record("RUN step", "kiln-r-step", stepUsed)
			f.record("RUN busy", "kiln-r-busy", day)
			f.record("gone", "kiln-r-missing", day)

			policy := tc.policy
			if tc.keepRest {
				policy.KeepBytes = f.usage("kiln-r-step") + f.usage("kiln-r-busy")
			}
			if tc.keepAll {
				policy.KeepBytes = f.usage(base) + f.usage("kiln-r-step") + f.usage("kiln-r-busy")
			}
			c := f.collector(at)
			var removed []string
			err := c.Prune(f.ctx, policy, func(it Item) error {
				label := it.Description
				switch {
				case it.Type == TypeSnapshot:
					label = it.ID
				case it.ID == orphan.Digest.String():
					label = "orphan"
				case it.ID == labelled.Digest.String():
					label = "labelled"
				}
				removed = append(removed, it.Type+":"+label)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			records, snaps, blobs := f.state()
			if diff := cmp.Diff(tc.wantRecords, records); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			wantSnaps := append([]string(nil), tc.wantSnaps...)
			sort.Strings(wantSnaps)
			if diff := cmp.Diff(wantSnaps, snaps); diff != "" {
				t.Errorf("snapshots (-want +got):\n%s", diff)
			}
			sort.Strings(removed)
			want := append([]string(nil), tc.wantRemoved...)
			sort.Strings(want)
			if diff := cmp.Diff(want, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			for _, d := range imageBlobs {
				if !blobs[d] {
					t.Errorf("image blob %s was removed", d)
				}
			}
			gone := 0
			for _, d := range []string{orphan.Digest.String(), labelled.Digest.String()} {
				if !blobs[d] {
					gone++
				}
			}
			if gone != tc.wantBlobsGone {
				t.Errorf("%d unreferenced blobs removed, want %d", gone, tc.wantBlobsGone)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	base := digest.FromString("base layer").String()
	f.commit(base, "", 1000, nil)
	f.commit("kiln-r-a", base, 300, nil)
	f.commit("kiln-r-orphan", "", 7, nil)
	f.record("RUN a", "kiln-r-a", time.Now())
	f.record("RUN a again", "kiln-r-a", time.Now())
	f.record("FROM base", base, time.Now())
	imageBlobs := f.image("app", digest.FromString("other"))
	f.inUse["kiln-r-a"] = true

	items, err := f.collector(time.Now()).Usage(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Type   string
		Desc   string
		Size   int64
		InUse  bool
		Shared bool
	}
	var got []row
	for _, it := range items {
		if it.Type == TypeBlob {
			continue
		}
		got = append(got, row{it.Type, it.Description, it.Size, it.InUse, it.Shared})
	}
	byDesc := map[string]row{}
	for _, r := range got {
		byDesc[r.Desc] = r
	}
	a, again := byDesc["RUN a"], byDesc["RUN a again"]
	if a.Size+again.Size < 300 || (a.Size != 0 && again.Size != 0) || !a.InUse || !again.InUse {
		t.Errorf("two records of one snapshot: %+v and %+v; want its size counted once, both in use", a, again)
	}
	if r := byDesc["FROM base"]; r.Size < 1000 || r.InUse {
		t.Errorf("FROM base: %+v", r)
	}
	if r := byDesc["result no cache record names"]; r.Size < 7 || r.Type != TypeSnapshot {
		t.Errorf("orphan snapshot: %+v", r)
	}
	if len(got) != 4 {
		t.Errorf("got %d non-blob items, want 4: %+v", len(got), got)
	}
	blobs := 0
	for _, it := range items {
		if it.Type == TypeBlob {
			blobs++
			if !it.Shared || it.Description != "image app:latest" {
				t.Errorf("blob %s: shared %v, description %q", it.ID, it.Shared, it.Description)
			}
		}
	}
	if blobs != len(imageBlobs) {
		t.Errorf("%d blobs reported, want %d", blobs, len(imageBlobs))
	}
}
