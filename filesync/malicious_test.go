package filesync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/session"
)

// fakeSync runs Receive against a scripted client: it sends stats in one
// batch, then extra (unsolicited) chunks, then answers each request with
// content[path] in one chunk.
func fakeSync(t *testing.T, dest string, stats []*api.FileStat, extra []*api.FileData, content map[string]string) (session.SyncStats, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	statsCh := make(chan *api.SyncStats, 1)
	files := make(chan *api.FileData, 64)
	reqs := make(chan *api.FileRequest, 64)
	statsCh <- &api.SyncStats{Id: 7, Stats: stats, Done: true}
	for _, d := range extra {
		files <- d
	}
	go func() {
		for {
			select {
			case r := <-reqs:
				for _, i := range r.GetIndexes() {
					select {
					case files <- &api.FileData{Id: 7, Index: i, Data: []byte(content[string(stats[i].GetPath())]), Eof: true}:
					case <-ctx.Done():
						return
					}
				}
				if r.GetDone() {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	request := func(r *api.FileRequest) error {
		select {
		case reqs <- r:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return Receive(ctx, dest, ReceiveConn{ID: 7, Stats: statsCh, Files: files, Request: request})
}

func st(p string, mode fs.FileMode, size int64) *api.FileStat {
	return &api.FileStat{Path: []byte(p), Mode: uint32(mode), Size: size, ModTime: baseTime.UnixNano()}
}

func lnk(p, target string) *api.FileStat {
	return &api.FileStat{Path: []byte(p), Mode: uint32(fs.ModeSymlink | 0o777), Linkname: []byte(target), ModTime: baseTime.UnixNano()}
}

func hard(p, target string) *api.FileStat {
	return &api.FileStat{Path: []byte(p), Mode: 0o644, Linkname: []byte(target), ModTime: baseTime.UnixNano()}
}

func TestMaliciousClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		stats   func(outside string) []*api.FileStat
		extra   []*api.FileData
		content map[string]string
		want    string
	}{{
		name:  "parent escape",
		stats: func(string) []*api.FileStat { return []*api.FileStat{st("../x", 0o644, 1)} },
		want:  "path leaves the directory",
	}, {
		name:  "absolute",
		stats: func(o string) []*api.FileStat { return []*api.FileStat{st(o+"/x", 0o644, 1)} },
		want:  "absolute path",
	}, {
		name: "escape through a directory",
		stats: func(string) []*api.FileStat {
			return []*api.FileStat{st("a", fs.ModeDir|0o755, 0), st("a/../../x", 0o644, 1)}
		},
		want: "not clean",
	}, {
		name:  "dot component",
		stats: func(string) []*api.FileStat { return []*api.FileStat{st("./x", 0o644, 1)} },
		want:  "not clean",
	}, {
		name:  "empty path",
		stats: func(string) []*api.FileStat { return []*api.FileStat{st("", 0o644, 1)} },
		want:  "empty path",
	}, {
		name:  "child before its directory",
		stats: func(string) []*api.FileStat { return []*api.FileStat{st("a/b", 0o644, 1)} },
		want:  "was not sent before it",
	}, {
		name: "file under a symlink",
		stats: func(o string) []*api.FileStat {
			return []*api.FileStat{lnk("l", o), st("l/evil", 0o644, 4)}
		},
		content: map[string]string{"l/evil": "evil"},
		want:    "parent is not a directory",
	}, {
		name: "directory under a relative symlink",
		stats: func(string) []*api.FileStat {
			return []*api.FileStat{lnk("l", "../.."), st("l/d", fs.ModeDir|0o755, 0)}
		},
		want: "parent is not a directory",
	}, {
		name: "path sent twice",
		stats: func(o string) []*api.FileStat {
			return []*api.FileStat{st("a", fs.ModeDir|0o755, 0), st("a/f", 0o644, 1), lnk("a", o)}
		},
		content: map[string]string{"a/f": "x"},
		want:    "sent twice",
	}, {
		name:  "device node",
		stats: func(string) []*api.FileStat { return []*api.FileStat{st("sda", fs.ModeDevice|0o600, 0)} },
		want:  "unsupported file type",
	}, {
		name: "hard link out of the directory",
		stats: func(o string) []*api.FileStat {
			return []*api.FileStat{hard("h", o+"/passwd")}
		},
		want: "absolute path",
	}, {
		name: "hard link climbing out",
		stats: func(string) []*api.FileStat {
			return []*api.FileStat{hard("h", "../x")}
		},
		want: "path leaves the directory",
	}, {
		name: "hard link to a file not sent before",
		stats: func(string) []*api.FileStat {
			return []*api.FileStat{hard("h", "later"), st("later", 0o644, 1)}
		},
		content: map[string]string{"later": "x"},
		want:    "not a regular file sent before it",
	}, {
		name: "hard link to a symlink",
		stats: func(o string) []*api.FileStat {
			return []*api.FileStat{lnk("l", o+"/passwd"), hard("h", "l")}
		},
		want: "not a regular file sent before it",
	}, {
		name:  "negative size",
		stats: func(string) []*api.FileStat { return []*api.FileStat{st("f", 0o644, -1)} },
		want:  "negative size",
	}, {
		name: "data that was not requested",
		stats: func(string) []*api.FileStat {
			return []*api.FileStat{st("a", fs.ModeDir|0o755, 0), st("a/f", 0o644, 1)}
		},
		extra:   []*api.FileData{{Id: 7, Index: 0, Data: []byte("x"), Eof: true}},
		content: map[string]string{"a/f": "x"},
		want:    "was not requested",
	}, {
		name:    "more data than announced",
		stats:   func(string) []*api.FileStat { return []*api.FileStat{st("f", 0o644, 2)} },
		content: map[string]string{"f": "much more than two bytes"},
		want:    "more data than its size",
	}, {
		name:  "stats of another sync",
		stats: nil,
		want:  "stats for sync",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			outside := t.TempDir()
			dest := filepath.Join(t.TempDir(), "dest")
			var stats []*api.FileStat
			var err error
			if tc.stats != nil {
				stats = tc.stats(outside)
				_, err = fakeSync(t, dest, stats, tc.extra, tc.content)
			} else {
				ch := make(chan *api.SyncStats, 1)
				ch <- &api.SyncStats{Id: 8, Done: true}
				_, err = Receive(context.Background(), dest, ReceiveConn{ID: 7, Stats: ch, Request: func(*api.FileRequest) error { return nil }})
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an invalid-argument error containing %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("the client wrote outside dest: %v", ents)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(dest), "x")); err == nil {
				t.Errorf("the client wrote next to dest")
			}
		})
	}
}

// A symlink left in dest (by an earlier sync) is replaced, not followed,
// when the client now has a directory there.
func TestSymlinkInDestReplaced(t *testing.T) {
	t.Parallel()
	outside, dest := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dest, "a")); err != nil {
		t.Fatal(err)
	}
	stats := []*api.FileStat{st("a", fs.ModeDir|0o755, 0), st("a/f", 0o644, 2)}
	got, err := fakeSync(t, dest, stats, nil, map[string]string{"a/f": "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Transferred != 1 {
		t.Errorf("stats = %+v, want 1 transfer", got)
	}
	fi, err := os.Lstat(filepath.Join(dest, "a"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("dest/a = %v, %v; want a directory", fi, err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("the sync wrote through the old symlink: %v", ents)
	}
}

// A client that stops mid-sync fails it with an unavailable error.
func TestClientGone(t *testing.T) {
	t.Parallel()
	stats := make(chan *api.SyncStats, 1)
	stats <- &api.SyncStats{Id: 1, Stats: []*api.FileStat{st("f", 0o644, 3)}}
	close(stats)
	_, err := Receive(context.Background(), t.TempDir(), ReceiveConn{
		ID: 1, Stats: stats, Files: make(chan *api.FileData), Request: func(*api.FileRequest) error { return nil },
	})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
}
