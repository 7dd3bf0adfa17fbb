package local

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/session"
)

// writeSync returns a sync function that writes one file.
func writeSync(name, data string) SyncFunc {
	return func(_ context.Context, dir string) (session.SyncStats, error) {
		return session.SyncStats{}, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
	}
}

func TestKeptAndPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "contexts")
	s, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	idle := Key{ClientID: "c", Path: "/idle", Name: "context"}
	held := Key{ClientID: "c", Path: "/held", Name: "context"}
	r1, err := s.Sync(ctx, idle, writeSync("a", "12345"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := s.Sync(ctx, held, writeSync("b", "xy"))
	if err != nil {
		t.Fatal(err)
	}

	kept, err := s.Kept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Path  string
		Size  int64
		InUse bool
	}
	var got []row
	for _, k := range kept {
		got = append(got, row{k.Key.Path, k.Size, k.InUse})
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Path < got[j].Path })
	// key.json counts too: both keys' JSON has the same length.
	kj := int64(len(`{"clientId":"c","path":"/held","name":"context"}`))
	want := []row{{"/held", 2 + kj, true}, {"/idle", 5 + kj, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Kept (-want +got):\n%s", diff)
	}

	// Nothing is older than an hour ago.
	var removed []string
	collect := func(k Kept) error { removed = append(removed, k.Key.Path); return nil }
	if err := s.Prune(ctx, time.Now().Add(-time.Hour), collect); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Fatalf("Prune with an old cutoff removed %v", removed)
	}
	if err := s.Prune(ctx, time.Now().Add(time.Second), collect); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/idle"}, removed); diff != "" {
		t.Fatalf("Prune removed (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(r2.Dir(), "b")); err != nil {
		t.Errorf("the held context lost its file: %v", err)
	}
	// A pruned key this process loaded keeps only its key.json, which
	// is not a kept context.
	if kept, err := s.Kept(ctx); err != nil || len(kept) != 1 || kept[0].Key.Path != "/held" {
		t.Errorf("Kept after the prune = %+v, %v; want /held only", kept, err)
	}

	// The pruned key syncs from scratch again.
	r3, err := s.Sync(ctx, idle, writeSync("c", "new"))
	if err != nil {
		t.Fatalf("sync after prune: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r3.Dir(), "a")); !os.IsNotExist(err) {
		t.Errorf("the pruned copy's file a survived (err = %v)", err)
	}
	_ = r3.Release(ctx)

	// Once released, the other one goes too.
	_ = r2.Release(ctx)
	removed = nil
	if err := s.Prune(ctx, time.Now().Add(time.Second), collect); err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	if diff := cmp.Diff([]string{"/held", "/idle"}, removed); diff != "" {
		t.Errorf("second Prune removed (-want +got):\n%s", diff)
	}
}

func TestPruneUnloadedKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "contexts")
	s, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sync(ctx, Key{ClientID: "c", Path: "/p", Name: "context"}, writeSync("a", "x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Release(ctx)
	s.Close()

	// A restarted daemon has not loaded the key: the whole directory goes.
	s2, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	n := 0
	if err := s2.Prune(ctx, time.Now().Add(time.Second), func(Kept) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(root)
	if n != 1 || len(ents) != 0 {
		t.Errorf("Prune removed %d contexts and left %d entries in the root", n, len(ents))
	}
}
