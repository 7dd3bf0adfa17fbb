package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/cache/remote"
	cacheredis "github.com/kiln-build/kiln/cache/remote/redis"
	"github.com/kiln-build/kiln/cache/remote/redis/redistest"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/daemon"
	"github.com/kiln-build/kiln/engine/sharedcache"
	"github.com/kiln-build/kiln/layer"
)

// sharedCache returns a shared cache over idx, as kilnd wires one from
// [[cache.registry]]; listing uses only its index.
func sharedCache(t *testing.T, idx remote.Index) *remote.Shared {
	t.Helper()
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
	return sc
}

func redisIndex(t *testing.T, addr string) *cacheredis.Index {
	t.Helper()
	idx, err := cacheredis.New(cacheredis.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// putRecord writes a record of key by writer with n layers under build.
func putRecord(t *testing.T, idx *cacheredis.Index, key, writer, build string, n int) *api.CacheRecord {
	t.Helper()
	r := remote.Record{Key: digest.FromString(key), Writer: writer, Created: time.Unix(1700000000, int64(len(key))).UTC()}
	for i := range n {
		l := fmt.Sprintf("%s-%d", key, i)
		r.Layers = append(r.Layers, remote.Layer{MediaType: ocispec.MediaTypeImageLayerZstd,
			Digest: digest.FromString("blob " + l), Size: int64(100 * (i + 1)), DiffID: digest.FromString("tar " + l)})
	}
	if err := idx.Put(context.Background(), r, build); err != nil {
		t.Fatal(err)
	}
	return &api.CacheRecord{Cache: "redis", Index: idx.Addr(), Key: r.Key.String(), Writer: writer,
		Layers: int32(n), Size: r.Size(), Created: timestamppb.New(r.Created)}
}

// sortRecords returns recs ordered by index, key and writer.
func sortRecords(recs []*api.CacheRecord) []*api.CacheRecord {
	out := slices.Clone(recs)
	slices.SortFunc(out, func(a, b *api.CacheRecord) int {
		if c := strings.Compare(a.Index, b.Index); c != 0 {
			return c
		}
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Writer, b.Writer)
	})
	return out
}

// notLister is an index that cannot enumerate its records.
type notLister struct{}

func (notLister) Get(context.Context, digest.Digest) ([]remote.Record, error) { return nil, nil }
func (notLister) Put(context.Context, remote.Record, string) error            { return nil }
func (notLister) Touch(context.Context, digest.Digest, string) error          { return nil }

// closedPort returns a local port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestCacheRecords(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// Two indexes on one redis-server: databases 1 and 2.
	one, two := redisIndex(t, srv.Addr+"/1"), redisIndex(t, srv.Addr+"/2")
	a := putRecord(t, one, "a", "writer-1", "build-1", 2)
	b1 := putRecord(t, one, "b", "writer-1", "build-2", 1)
	b2 := putRecord(t, one, "b", "writer-2", "build-2", 1)
	c := putRecord(t, two, "c", "writer-3", "build-3", 3)
	scOne, scTwo := sharedCache(t, one), sharedCache(t, two)
	idxOne := &api.CacheIndex{Cache: "redis", Address: one.Addr()}
	idxTwo := &api.CacheIndex{Cache: "redis", Address: two.Addr()}

	downAddr := fmt.Sprintf("redis://:s3cret@127.0.0.1:%d", closedPort(t))
	down := sharedCache(t, redisIndex(t, downAddr))
	maskedDown := cacheredis.Redact(downAddr)

	tests := []struct {
		name     string
		caches   []*remote.Shared
		noEngine bool
		build    string
		want     []*api.CacheRecord
		wantIdx  []*api.CacheIndex
		errClass error
		errHas   []string // substrings of the error
		errLacks string   // never in the error
	}{
		{
			name: "every record", caches: []*remote.Shared{scOne},
			want: []*api.CacheRecord{a, b1, b2}, wantIdx: []*api.CacheIndex{idxOne},
		},
		{
			name: "one build", caches: []*remote.Shared{scOne}, build: "build-2",
			want: []*api.CacheRecord{b1, b2}, wantIdx: []*api.CacheIndex{idxOne},
		},
		{
			name: "unknown build", caches: []*remote.Shared{scOne}, build: "nope",
			wantIdx: []*api.CacheIndex{idxOne}, errClass: errdefs.ErrNotFound, errHas: []string{`no build "nope"`},
		},
		{
			name: "two indexes", caches: []*remote.Shared{scOne, scTwo},
			want: []*api.CacheRecord{a, b1, b2, c}, wantIdx: []*api.CacheIndex{idxOne, idxTwo},
		},
		{
			name: "build in the second index", caches: []*remote.Shared{scOne, scTwo}, build: "build-3",
			want: []*api.CacheRecord{c}, wantIdx: []*api.CacheIndex{idxOne, idxTwo},
		},
		{
			name:     "no shared cache",
			errClass: errdefs.ErrFailedPrecondition, errHas: []string{"kilnd has no shared cache: add [[cache.registry]] to kilnd.toml"},
		},
		{
			name: "index down", caches: []*remote.Shared{down},
			wantIdx:  []*api.CacheIndex{{Cache: "redis", Address: maskedDown}},
			errClass: errdefs.ErrUnavailable, errHas: []string{"kilnd cannot read its shared cache index", maskedDown, "connection refused"},
			errLacks: "s3cret",
		},
		{
			name: "index cannot list", caches: []*remote.Shared{sharedCache(t, notLister{})},
			errClass: errdefs.ErrUnimplemented, errHas: []string{"cannot list its records"},
		},
		{
			name: "no engine", noEngine: true,
			errClass: errdefs.ErrUnimplemented, errHas: []string{"CacheRecords is not available in this kilnd"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sock := socketPath(t)
			svc := daemon.Services{CacheRecords: sharedcache.New(tt.caches)}
			if tt.noEngine {
				svc = daemon.Services{}
			}
			start(t, testConfig(t, "unix://"+sock), daemon.WithServices(svc))
			cl := dial(t, "unix://"+sock)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []*api.CacheRecord
			indexes, err := cl.CacheRecords(ctx, tt.build, func(r *api.CacheRecord) error {
				got = append(got, r)
				return nil
			})
			if tt.errClass == nil && err != nil {
				t.Fatalf("CacheRecords: %v", err)
			}
			if tt.errClass != nil {
				t.Logf("error: %v", err)
				if !errors.Is(err, tt.errClass) {
					t.Fatalf("CacheRecords error = %v, want the %v class", err, tt.errClass)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if tt.errLacks != "" && strings.Contains(err.Error(), tt.errLacks) {
					t.Errorf("error %q shows %q", err, tt.errLacks)
				}
			}
			// The index yields records in no particular order.
			if diff := cmp.Diff(sortRecords(tt.want), sortRecords(got), protocmp.Transform()); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantIdx, indexes, protocmp.Transform()); diff != "" {
				t.Errorf("indexes (-want +got):\n%s", diff)
			}
		})
	}
}
