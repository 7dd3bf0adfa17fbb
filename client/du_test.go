package client

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
)

// fakeCacheRecords answers CacheRecords with msgs, then err; it refuses a
// request for another build than build.
type fakeCacheRecords struct {
	api.UnimplementedControlServer
	build string
	msgs  []*api.CacheRecordsMessage
	err   error
}

func (f *fakeCacheRecords) CacheRecords(req *api.CacheRecordsRequest, stream grpc.ServerStreamingServer[api.CacheRecordsMessage]) error {
	if req.GetBuild() != f.build {
		return status.Errorf(codes.InvalidArgument, "build %q, want %q", req.GetBuild(), f.build)
	}
	for _, m := range f.msgs {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return f.err
}

// serve serves desc with srv on a unix socket until the test ends and
// returns a client of it.
func serve(t *testing.T, desc *grpc.ServiceDesc, srv api.ControlServer) *Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "kiln-client")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	g.RegisterService(desc, srv)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	c, err := New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCacheRecords(t *testing.T) {
	t.Parallel()
	idx := []*api.CacheIndex{{Cache: "redis", Address: "redis://:****@127.0.0.1:6379"}}
	rec := func(key string) *api.CacheRecord {
		return &api.CacheRecord{Cache: "redis", Index: idx[0].Address, Key: key, Writer: "w1", Layers: 2, Size: 42}
	}
	errStop := errors.New("stop")
	tests := []struct {
		name     string
		srv      *fakeCacheRecords
		build    string
		stopAt   int // record returns errStop at this record (1-based); 0 never
		want     []*api.CacheRecord
		wantIdx  []*api.CacheIndex
		errClass error
		errMsg   string
	}{
		{
			name: "records",
			srv: &fakeCacheRecords{msgs: []*api.CacheRecordsMessage{
				{Indexes: idx}, {Record: rec("sha256:a")}, {Record: rec("sha256:b")},
			}},
			want: []*api.CacheRecord{rec("sha256:a"), rec("sha256:b")}, wantIdx: idx,
		},
		{
			name:    "no records",
			srv:     &fakeCacheRecords{msgs: []*api.CacheRecordsMessage{{Indexes: idx}}},
			wantIdx: idx,
		},
		{
			name:  "one build",
			srv:   &fakeCacheRecords{build: "b1", msgs: []*api.CacheRecordsMessage{{Indexes: idx}, {Record: rec("sha256:c")}}},
			build: "b1", want: []*api.CacheRecord{rec("sha256:c")}, wantIdx: idx,
		},
		{
			name: "no shared cache",
			srv: &fakeCacheRecords{err: status.Error(codes.FailedPrecondition,
				"kilnd has no shared cache: add [[cache.registry]] to kilnd.toml")},
			errClass: errdefs.ErrFailedPrecondition, errMsg: "kilnd has no shared cache: add [[cache.registry]] to kilnd.toml",
		},
		{
			name: "index fails midway",
			srv: &fakeCacheRecords{
				msgs: []*api.CacheRecordsMessage{{Indexes: idx}, {Record: rec("sha256:a")}},
				err:  status.Error(codes.Unavailable, "redis at redis://127.0.0.1:6379: i/o timeout"),
			},
			want: []*api.CacheRecord{rec("sha256:a")}, wantIdx: idx,
			errClass: errdefs.ErrUnavailable, errMsg: "redis at redis://127.0.0.1:6379: i/o timeout",
		},
		{
			name: "record stops",
			srv: &fakeCacheRecords{msgs: []*api.CacheRecordsMessage{
				{Indexes: idx}, {Record: rec("sha256:a")}, {Record: rec("sha256:b")}, {Record: rec("sha256:c")},
			}},
			stopAt: 2, want: []*api.CacheRecord{rec("sha256:a"), rec("sha256:b")}, wantIdx: idx,
			errClass: errStop, errMsg: "stop",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := serve(t, &api.Control_ServiceDesc, tt.srv)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var got []*api.CacheRecord
			indexes, err := c.CacheRecords(ctx, tt.build, func(r *api.CacheRecord) error {
				got = append(got, r)
				if len(got) == tt.stopAt {
					return errStop
				}
				return nil
			})
			switch {
			case tt.errClass == nil && err != nil:
				t.Fatalf("CacheRecords: %v", err)
			case tt.errClass != nil && (!errors.Is(err, tt.errClass) || err.Error() != tt.errMsg):
				t.Fatalf("CacheRecords error = %v, want %q in class %v", err, tt.errMsg, tt.errClass)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantIdx, indexes, protocmp.Transform()); diff != "" {
				t.Errorf("indexes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCacheRecordsOfOlderDaemon(t *testing.T) {
	t.Parallel()
	// A kilnd older than CacheRecords: its service lacks the method.
	desc := api.Control_ServiceDesc
	desc.Streams = slices.DeleteFunc(slices.Clone(desc.Streams), func(s grpc.StreamDesc) bool { return s.StreamName == "CacheRecords" })
	c := serve(t, &desc, &fakeCacheRecords{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.CacheRecords(ctx, "", nil)
	want := "kilnd at " + c.Addr() + " does not know CacheRecords: it is older than this kiln (upgrade kilnd)"
	if !errors.Is(err, errdefs.ErrUnimplemented) || err == nil || err.Error() != want {
		t.Errorf("CacheRecords error = %v, want %q in the unimplemented class", err, want)
	}
}
