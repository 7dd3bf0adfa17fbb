package buildkit

import (
	"context"
	"net/url"
	"unicode"

	"github.com/moby/buildkit/session/filesync"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/session"
)

// SyncDir implements session.Session with BuildKit's DiffCopy: the client
// sends the directory's metadata, Kiln's receiver (filesync.Receive, the
// one kiln build's context goes through) compares it with what dest
// already holds (the context store's last copy) and asks only for the
// files that differ, deleting what the client no longer has. Files are
// written to a temporary name and renamed into place, so a file a snapshot
// hard-linked from an earlier copy is never changed.
//
// fsutil's own receiver (fsutil.Receive) is not used: it walks dest with
// fsutil's stat, reading every file's extended attributes, which costs a
// large unchanged context more than the rest of its sync together; and
// Kiln's receiver gives both clients the same semantics (containment,
// kept metadata). diffCopy translates the packets.
//
// Containment is the receiver's: it refuses unclean, absolute and
// escaping paths, entries under a parent that is not a directory sent
// before them, and hard links to paths not sent; a symlink an earlier
// sync left is replaced, not followed (TestSyncDirHostileClient). Device
// nodes and sockets are not received.
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
	st, err := receiveDiffCopy(ctx, stream, dest)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return session.SyncStats{}, notShared(name)
		}
		return session.SyncStats{}, clientError("transfer "+name, err)
	}
	return st, nil
}

func notShared(name string) error {
	return errdefs.NotFoundf("local directory %q is not shared by the client (buildctl --local %s=DIR)", name, name)
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
