package buildkit

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bksession "github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/filesync"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/session"
)

// rawSender is a client's FileSync service that sends the entries it is
// given as they are, whatever they say: what a hostile client can do.
type rawSender struct {
	filesync.UnimplementedFileSyncServer
	stats   []*fstypes.Stat
	content map[string]string
	// interleave, when set, holds the answers until that many files are
	// requested, then sends their contents in two halves each, the
	// files' chunks interleaved (as fsutil's parallel senders do).
	interleave int
}

func (r *rawSender) Register(s *grpc.Server) { filesync.RegisterFileSyncServer(s, r) }

func (r *rawSender) DiffCopy(stream filesync.FileSync_DiffCopyServer) error {
	for _, st := range r.stats {
		if err := stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_STAT, Stat: st}); err != nil {
			return err
		}
	}
	if err := stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_STAT}); err != nil {
		return err
	}
	var held []uint32
	for {
		var p fstypes.Packet
		if err := stream.RecvMsg(&p); err != nil {
			return err
		}
		switch p.Type {
		case fstypes.PACKET_REQ:
			if r.interleave > 0 {
				held = append(held, p.ID)
				if len(held) == r.interleave {
					if err := r.sendInterleaved(stream, held); err != nil {
						return err
					}
				}
				continue
			}
			data := r.content[r.stats[p.ID].Path]
			if err := stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_DATA, ID: p.ID, Data: []byte(data)}); err != nil {
				return err
			}
			if err := stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_DATA, ID: p.ID}); err != nil {
				return err
			}
		case fstypes.PACKET_FIN:
			return stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_FIN})
		case fstypes.PACKET_ERR:
			return nil
		}
	}
}

func (r *rawSender) sendInterleaved(stream filesync.FileSync_DiffCopyServer, ids []uint32) error {
	for half := range 3 {
		for _, id := range ids {
			data := r.content[r.stats[id].Path]
			var chunk []byte // the third round: the empty packet that ends a file
			switch half {
			case 0:
				chunk = []byte(data[:len(data)/2])
			case 1:
				chunk = []byte(data[len(data)/2:])
			}
			if err := stream.SendMsg(&fstypes.Packet{Type: fstypes.PACKET_DATA, ID: id, Data: chunk}); err != nil {
				return err
			}
		}
	}
	return nil
}

// connect runs a client session offering a and returns the daemon's view
// of it, as Control.Session does over a real stream.
func connect(t testing.TB, a bksession.Attachable) *sessionAdapter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sm := newSessions()
	id := startSession(t, ctx, sm, a)
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	c, err := sm.get(gctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return newSessionAdapter("ref", c, "")
}

func stat(p string, mode fs.FileMode, size int64, link string) *fstypes.Stat {
	return &fstypes.Stat{Path: p, Mode: uint32(mode), Size: size, Linkname: link, ModTime: time.Unix(1700000000, 0).UnixNano()}
}

// Nothing a client sends lands outside the directory being synced.
func TestSyncDirHostileClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		stats   func(outside string) []*fstypes.Stat
		content map[string]string
		// prepare puts what an earlier sync left into dest.
		prepare func(t *testing.T, dest, outside string)
		wantErr string
		// check looks at dest after a sync that was allowed to succeed.
		check func(t *testing.T, dest string)
	}{{
		name:    "parent escape",
		stats:   func(string) []*fstypes.Stat { return []*fstypes.Stat{stat("../x", 0o644, 1, "")} },
		content: map[string]string{"../x": "x"},
		wantErr: "leaves the directory",
	}, {
		name:    "absolute path",
		stats:   func(o string) []*fstypes.Stat { return []*fstypes.Stat{stat(o+"/x", 0o644, 1, "")} },
		wantErr: "absolute",
	}, {
		name: "file under a symlink it sent",
		stats: func(o string) []*fstypes.Stat {
			return []*fstypes.Stat{stat("l", fs.ModeSymlink|0o777, 0, o), stat("l/evil", 0o644, 4, "")}
		},
		content: map[string]string{"l/evil": "evil"},
		wantErr: "parent is not a directory",
	}, {
		name: "directory where an earlier sync left a symlink",
		prepare: func(t *testing.T, dest, outside string) {
			if err := os.Symlink(outside, filepath.Join(dest, "a")); err != nil {
				t.Fatal(err)
			}
		},
		stats: func(string) []*fstypes.Stat {
			return []*fstypes.Stat{stat("a", fs.ModeDir|0o755, 0, ""), stat("a/f", 0o644, 2, "")}
		},
		content: map[string]string{"a/f": "ok"},
		check: func(t *testing.T, dest string) {
			if fi, err := os.Lstat(filepath.Join(dest, "a")); err != nil || !fi.IsDir() {
				t.Errorf("a is not a directory now: %v", err)
			}
		},
	}, {
		name: "hard link to a daemon file",
		stats: func(o string) []*fstypes.Stat {
			return []*fstypes.Stat{stat("h", 0o644, 0, "../../../../../../../../.."+o+"/secret")}
		},
		prepare: func(t *testing.T, _, outside string) {
			if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("daemon's"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		wantErr: "leaves the directory",
		check: func(t *testing.T, dest string) {
			if _, err := os.Lstat(filepath.Join(dest, "h")); err == nil {
				t.Errorf("the hard link was made")
			}
		},
	}, {
		name:  "device node",
		stats: func(string) []*fstypes.Stat { return []*fstypes.Stat{stat("sda", fs.ModeDevice|0o600, 0, "")} },
		check: func(t *testing.T, dest string) {
			if _, err := os.Lstat(filepath.Join(dest, "sda")); err == nil {
				t.Errorf("a device node was created")
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			outside, dest := t.TempDir(), t.TempDir()
			if tc.prepare != nil {
				tc.prepare(t, dest, outside)
			}
			before, _ := os.ReadDir(outside)
			a := connect(t, &rawSender{stats: tc.stats(outside), content: tc.content})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := a.SyncDir(ctx, "context", session.SyncOptions{}, dest)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Errorf("sync failed: %v", err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != len(before) {
				t.Errorf("the client wrote outside dest: %v", ents)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(dest), "x")); err == nil {
				t.Errorf("the client wrote next to dest")
			}
			if tc.check != nil {
				tc.check(t, dest)
			}
		})
	}
}

// Chunks of several files interleaved on the stream (fsutil sends four
// files at once) land in the right files.
func TestSyncDirInterleaved(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	a := connect(t, &rawSender{
		stats: []*fstypes.Stat{
			stat("a", 0o644, 6, ""), stat("d", fs.ModeDir|0o755, 0, ""), stat("d/b", 0o644, 4, ""), stat("d/c", 0o600, 2, ""),
		},
		content:    map[string]string{"a": "aaaAAA", "d/b": "bbBB", "d/c": "cC"},
		interleave: 3,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := a.SyncDir(ctx, "context", session.SyncOptions{}, dest)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 || st.Transferred != 3 || st.Bytes != 12 {
		t.Errorf("stats %+v, want 4 entries, 3 files, 12 bytes", st)
	}
	for name, want := range map[string]string{"a": "aaaAAA", "d/b": "bbBB", "d/c": "cC"} {
		if b, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
}

// A real client's directory arrives whole, and a second sync sends only
// what changed.
func TestSyncDirIncremental(t *testing.T) {
	t.Parallel()
	src, dest := t.TempDir(), t.TempDir()
	for name, data := range map[string]string{"a.txt": "a", "d/b.txt": "b", "d/c.txt": "c"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fsys, err := fsutilNewFS(src)
	if err != nil {
		t.Fatal(err)
	}
	a := connect(t, filesync.NewFSSyncProvider(filesync.StaticDirSource{"context": fsys}))
	ctx := context.Background()
	st, err := a.SyncDir(ctx, "context", session.SyncOptions{ExcludePatterns: []string{"d/c.txt"}}, dest)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 3 || st.Transferred != 2 || st.Bytes != 2 {
		t.Errorf("first sync: %+v, want 3 entries, 2 files, 2 bytes", st)
	}
	if _, err := os.Stat(filepath.Join(dest, "d/c.txt")); err == nil {
		t.Errorf("the excluded file arrived")
	}
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("A2"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = a.SyncDir(ctx, "context", session.SyncOptions{ExcludePatterns: []string{"d/c.txt"}}, dest)
	if err != nil {
		t.Fatal(err)
	}
	if st.Transferred != 1 || st.Bytes != 2 {
		t.Errorf("second sync: %+v, want 1 file of 2 bytes", st)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "a.txt")); string(b) != "A2" {
		t.Errorf("a.txt = %q", b)
	}
	if _, err := a.SyncDir(ctx, "nope", session.SyncOptions{}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not shared") {
		t.Errorf("a directory the client does not share: %v", err)
	}
}

func fsutilNewFS(dir string) (fsutil.FS, error) { return fsutil.NewFS(dir) }
