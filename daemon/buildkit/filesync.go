package buildkit

import (
	"context"
	"net/url"
	"os"
	"sync/atomic"
	"unicode"

	"github.com/moby/buildkit/session/filesync"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/session"
)

// SyncDir implements session.Session with BuildKit's DiffCopy: the client
// sends the directory's metadata, fsutil's receiver compares it with what
// dest already holds (the context store's last copy) and asks only for the
// files that differ, deleting what the client no longer has. Files are
// written to a temporary name and renamed into place, so a file a snapshot
// hard-linked from an earlier copy is never changed.
//
// Containment is fsutil's, as in BuildKit: its validator refuses unclean,
// absolute and escaping paths, entries out of order or under a parent that
// is not a directory sent before them, and hard links to paths not sent;
// a symlink an earlier sync left is replaced, not followed
// (TestSyncDirHostileClient). Device nodes and fifos are not received.
// (fsutil.ReceiveRoot would add an os.Root on dest, but its per-file
// openat walk of dest doubles the daemon's work on a large unchanged
// context.)
func (a *sessionAdapter) SyncDir(ctx context.Context, name string, opts session.SyncOptions, dest string) (session.SyncStats, error) {
	if n, ok := a.names[name]; ok {
		name = n
	}
	if !a.supports(filesync.FileSync_ServiceDesc.ServiceName, "DiffCopy") {
		return session.SyncStats{}, notShared(name)
	}
	ctx, cancel := context.WithCancelCause(a.caller.Context(ctx))
	defer cancel(nil)
	ctx = metadata.NewOutgoingContext(ctx, syncMetadata(name, opts))
	stream, err := filesync.NewFileSyncClient(a.caller.Conn()).DiffCopy(ctx)
	if err != nil {
		return session.SyncStats{}, clientError("transfer "+name, err)
	}
	cs := &countingStream{ClientStream: stream}
	err = fsutil.Receive(ctx, cs, dest, fsutil.ReceiveOpt{Filter: receivable})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return session.SyncStats{}, notShared(name)
		}
		return session.SyncStats{}, clientError("transfer "+name, err)
	}
	_ = stream.CloseSend()
	return session.SyncStats{Files: int(cs.files.Load()), Transferred: int(cs.requested.Load()), Bytes: cs.bytes.Load()}, nil
}

func notShared(name string) error {
	return errdefs.NotFoundf("local directory %q is not shared by the client (buildctl --local %s=DIR)", name, name)
}

// receivable keeps regular files, directories and symlinks.
func receivable(_ string, st *fstypes.Stat) bool {
	m := os.FileMode(st.Mode)
	return m&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe|os.ModeSocket) == 0
}

// syncMetadata is the request metadata of a DiffCopy: the directory's
// name and filters, as BuildKit's filesync provider reads them. BuildKit
// builds it in FSSync, which receives with a plain directory path; Kiln
// receives through an os.Root (fsutil.ReceiveRoot) instead, so it opens
// the stream itself and has to write the same keys. Values with non-ASCII
// characters are query-escaped and flagged with "<key>-encoded", as the
// provider expects.
func syncMetadata(name string, opts session.SyncOptions) metadata.MD {
	md := metadata.MD{}
	set := func(key string, vals []string) {
		if vals == nil {
			return
		}
		out := append([]string(nil), vals...)
		if !allASCII(out) {
			for i, v := range out {
				out[i] = url.QueryEscape(v)
			}
			md[key+"-encoded"] = []string{"1"}
		}
		md[key] = out
	}
	set("dir-name", []string{name})
	set("include-patterns", opts.IncludePatterns)
	set("exclude-patterns", opts.ExcludePatterns)
	set("followpaths", opts.FollowPaths)
	return md
}

func allASCII(vals []string) bool {
	for _, v := range vals {
		for _, r := range v {
			if r > unicode.MaxASCII {
				return false
			}
		}
	}
	return true
}

// countingStream counts what a DiffCopy transfers: entries announced,
// files requested and content bytes received.
type countingStream struct {
	grpc.ClientStream
	files, requested atomic.Int64
	bytes            atomic.Int64
}

func (c *countingStream) SendMsg(m any) error {
	if p, ok := m.(*fstypes.Packet); ok && p.Type == fstypes.PACKET_REQ {
		c.requested.Add(1)
	}
	return c.ClientStream.SendMsg(m)
}

func (c *countingStream) RecvMsg(m any) error {
	err := c.ClientStream.RecvMsg(m)
	if p, ok := m.(*fstypes.Packet); ok && err == nil {
		switch p.Type {
		case fstypes.PACKET_STAT:
			if p.Stat != nil {
				c.files.Add(1)
			}
		case fstypes.PACKET_DATA:
			c.bytes.Add(int64(len(p.Data)))
		}
	}
	return err
}
