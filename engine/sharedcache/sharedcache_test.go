package sharedcache

import (
	"context"
	"errors"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache/remote"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/layer"
)

// sharedCache returns a shared cache over the redis index at addr, as
// kilnd wires one from [[cache.registry]]; listing uses only its index.
func sharedCache(t *testing.T, addr string) (*remote.Shared, *cacheredis.Index) {
	t.Helper()
	idx, err := cacheredis.New(cacheredis.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := remote.OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := remote.NewShared(remote.SharedOptions{
		Name: "redis", Index: idx, Blobs: blobs, Writer: "test-writer",
		Importer: remote.NewImporter(nil, nil, nil), Layers: layer.NewMaker(nil, nil), Local: remote.LocalBlobs(nil, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc, idx
}

func put(t *testing.T, idx *cacheredis.Index, key, build string) remote.Record {
	t.Helper()
	r := remote.Record{Key: digest.FromString(key), Writer: "writer-1", Created: time.Unix(1700000000, 0).UTC(),
		Layers: []remote.Layer{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("b" + key), Size: 100, DiffID: digest.FromString("d" + key)}}}
	if err := idx.Put(context.Background(), r, build); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRecordsTyped(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	sc, idx := sharedCache(t, srv.Addr)
	r := put(t, idx, "a", "build-1")
	put(t, idx, "b", "build-2")
	var heads []Index
	var got []Record
	err := New([]*remote.Shared{sc}).Records(context.Background(), RecordsRequest{Build: "build-1"},
		func(x []Index) error { heads = x; return nil },
		func(rec Record) error { got = append(got, rec); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := Record{Cache: "redis", Index: idx.Addr(), Key: r.Key, Writer: "writer-1", Layers: 1, Size: 100, Created: r.Created}
	if len(heads) != 1 || heads[0] != (Index{Cache: "redis", Address: idx.Addr()}) {
		t.Errorf("indexes = %+v", heads)
	}
	if len(got) != 1 || !got[0].Created.Equal(want.Created) {
		t.Fatalf("records = %+v, want [%+v]", got, want)
	}
	got[0].Created = want.Created
	if got[0] != want {
		t.Errorf("record = %+v, want %+v", got[0], want)
	}

	err = New(nil).Records(context.Background(), RecordsRequest{}, func([]Index) error { return nil }, func(Record) error { return nil })
	if !errors.Is(err, ErrNoSharedCache) || !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Records without a shared cache = %v, want ErrNoSharedCache", err)
	}
}

func TestRecordsStopsWithContext(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	sc, idx := sharedCache(t, srv.Addr)
	for _, k := range []string{"a", "b", "c", "d"} {
		put(t, idx, k, "")
	}
	gone := errors.New("the client went away")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var records int
	err := New([]*remote.Shared{sc}).Records(ctx, RecordsRequest{}, func([]Index) error { return nil }, func(Record) error {
		records++
		cancel(gone)
		return nil
	})
	if !errors.Is(err, gone) {
		t.Errorf("Records after the context ended = %v, want its cause", err)
	}
	if records != 1 {
		t.Errorf("Records sent %d records after the context ended, want 1 (the one before)", records)
	}
}
