package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ctrcontent "github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestMain(m *testing.M) {
	// containerd logs through a process-wide logrus logger; its warnings
	// (no fs-verity on the test filesystem) are noise here.
	_ = log.SetLevel("error")
	os.Exit(m.Run())
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func descOf(p []byte) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.FromBytes(p),
		Size:      int64(len(p)),
	}
}

func openStore(t testing.TB, dir string) Store {
	t.Helper()
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// blobFiles lists the committed blob files and ingest dirs under dir.
func blobFiles(t testing.TB, dir string) (blobs, ingests []string) {
	t.Helper()
	list := func(sub string) []string {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	return list("blobs/sha256"), list("ingest")
}

func TestWriteReadRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"small", 517},
		{"larger than a copy buffer", 3<<20 + 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			st := openStore(t, dir)
			p := randomBytes(t, tc.size)
			desc := descOf(p)
			if err := WriteBlob(ctx, st, "", bytes.NewReader(p), desc); err != nil {
				t.Fatalf("WriteBlob: %v", err)
			}
			got, err := ReadBlob(ctx, st, desc)
			if err != nil {
				t.Fatalf("ReadBlob: %v", err)
			}
			if !bytes.Equal(got, p) {
				t.Fatalf("ReadBlob returned %d bytes that differ from the %d written", len(got), len(p))
			}
			ok, err := Exists(ctx, st, desc.Digest)
			if err != nil || !ok {
				t.Fatalf("Exists = %v, %v; want true, nil", ok, err)
			}
			info, err := st.Info(ctx, desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != desc.Size {
				t.Errorf("Info.Size = %d, want %d", info.Size, desc.Size)
			}
			// The committed file is where DESIGN.md says, and read-only.
			fi, err := os.Stat(filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded()))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o222 != 0 {
				t.Errorf("committed blob mode %v is writable", fi.Mode())
			}
			// Writing it again is a no-op that does not read the reader.
			if err := WriteBlob(ctx, st, "", failingReader{}, desc); err != nil {
				t.Errorf("second WriteBlob of an existing blob: %v", err)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("reader must not be read") }

func TestWriteBlobRejectsBadData(t *testing.T) {
	t.Parallel()
	p := []byte("the layer bytes")
	good := descOf(p)
	tests := []struct {
		name  string
		data  []byte
		desc  ocispec.Descriptor
		class error
	}{
		{"wrong digest", p, ocispec.Descriptor{Digest: digest.FromString("other"), Size: good.Size}, errdefs.ErrFailedPrecondition},
		{"data shorter than size", p[:4], good, errdefs.ErrFailedPrecondition},
		{"data longer than size", append(append([]byte{}, p...), 'x'), good, errdefs.ErrFailedPrecondition},
		{"size too small", p, ocispec.Descriptor{Digest: good.Digest, Size: good.Size - 1}, errdefs.ErrFailedPrecondition},
		{"malformed digest", p, ocispec.Descriptor{Digest: "sha256:xyz", Size: good.Size}, errdefs.ErrInvalidArgument},
		{"negative size", p, ocispec.Descriptor{Digest: good.Digest, Size: -1}, errdefs.ErrInvalidArgument},
		{"size zero for non-empty digest", p, ocispec.Descriptor{Digest: good.Digest, Size: 0}, errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			st := openStore(t, dir)
			err := WriteBlob(ctx, st, "ref-1", bytes.NewReader(tc.data), tc.desc)
			if !errors.Is(err, tc.class) {
				t.Fatalf("WriteBlob error = %v, want class %v", err, tc.class)
			}
			blobs, ingests := blobFiles(t, dir)
			if len(blobs) != 0 || len(ingests) != 0 {
				t.Errorf("after a rejected write: blobs %v, ingests %v; want none", blobs, ingests)
			}
			// The same ref works afterwards with the right bytes.
			if err := WriteBlob(ctx, st, "ref-1", bytes.NewReader(p), good); err != nil {
				t.Errorf("WriteBlob after a rejected attempt: %v", err)
			}
		})
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	missing := descOf([]byte("never written"))

	_, err := st.Info(ctx, missing.Digest)
	if !errors.Is(err, errdefs.ErrNotFound) || !errors.Is(err, cerrdefs.ErrNotFound) {
		t.Errorf("Info(missing) = %v; want both Kiln and containerd not-found classes", err)
	}
	_, err = ReadBlob(ctx, st, missing)
	if !errdefs.IsNotFound(err) {
		t.Errorf("ReadBlob(missing) = %v; want not found", err)
	}
	if ok, err := Exists(ctx, st, missing.Digest); ok || err != nil {
		t.Errorf("Exists(missing) = %v, %v; want false, nil", ok, err)
	}
}

func TestAbandonedIngestIsInvisibleAndDiscardedOnOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	p := randomBytes(t, 64<<10)
	desc := descOf(p)

	w, err := st.Writer(ctx, ctrcontent.WithRef("abandoned"), ctrcontent.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p[:len(p)/2]); err != nil {
		t.Fatal(err)
	}
	// The writer is abandoned: never committed, never closed.

	if ok, err := Exists(ctx, st, desc.Digest); ok || err != nil {
		t.Fatalf("half-written blob: Exists = %v, %v; want false, nil", ok, err)
	}
	if _, err := st.ReaderAt(ctx, desc); !errdefs.IsNotFound(err) {
		t.Fatalf("half-written blob: ReaderAt error = %v; want not found", err)
	}
	if _, ingests := blobFiles(t, dir); len(ingests) != 1 {
		t.Fatalf("ingests = %v; want the one in flight", ingests)
	}

	// A restart (a new Open on the same dir) drops the partial ingest.
	st2 := openStore(t, dir)
	if blobs, ingests := blobFiles(t, dir); len(blobs) != 0 || len(ingests) != 0 {
		t.Fatalf("after reopen: blobs %v, ingests %v; want none", blobs, ingests)
	}
	if err := WriteBlob(ctx, st2, "abandoned", bytes.NewReader(p), desc); err != nil {
		t.Fatalf("WriteBlob with the abandoned ref after reopen: %v", err)
	}
	if got, err := ReadBlob(ctx, st2, desc); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("ReadBlob after rewrite: %d bytes, %v", len(got), err)
	}
}

func TestCanceledWriteLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := openStore(t, dir)
	p := randomBytes(t, 1<<20)
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("client went away")
	r := &hookReader{r: bytes.NewReader(p), after: 4096, hook: func() { cancel(stop) }}
	err := WriteBlob(ctx, st, "", r, descOf(p))
	if !errors.Is(err, stop) {
		t.Fatalf("WriteBlob = %v; want the cancel cause", err)
	}
	if blobs, ingests := blobFiles(t, dir); len(blobs) != 0 || len(ingests) != 0 {
		t.Errorf("after a canceled write: blobs %v, ingests %v; want none", blobs, ingests)
	}
}

// hookReader calls hook once after `after` bytes were read.
type hookReader struct {
	r     io.Reader
	after int
	n     int
	hook  func()
}

func (h *hookReader) Read(p []byte) (int, error) {
	if len(p) > 1024 {
		p = p[:1024]
	}
	n, err := h.r.Read(p)
	h.n += n
	if h.hook != nil && h.n >= h.after {
		h.hook()
		h.hook = nil
	}
	return n, err
}

func TestConcurrentWritesOfOneDigest(t *testing.T) {
	t.Parallel()
	const writers = 8
	p := randomBytes(t, 2<<20)
	desc := descOf(p)
	tests := []struct {
		name string
		ref  func(i int) string
		gate bool // hold every writer's data until all have started writing
	}{
		{"shared ref", func(int) string { return "" }, false},
		{"distinct refs", func(i int) string { return fmt.Sprintf("puller-%d", i) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			st := openStore(t, dir)
			var (
				wg      sync.WaitGroup
				started sync.WaitGroup
				reads   atomic.Int32
				errs    = make([]error, writers)
			)
			started.Add(writers)
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := &gateReader{r: bytes.NewReader(p), first: func() {
						reads.Add(1)
						if tc.gate {
							started.Done()
							started.Wait()
						}
					}}
					errs[i] = WriteBlob(ctx, st, tc.ref(i), r, desc)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("writer %d: %v", i, err)
				}
			}
			if tc.gate && reads.Load() != writers {
				t.Errorf("%d writers streamed data; the test wants all %d in flight at once", reads.Load(), writers)
			}
			blobs, ingests := blobFiles(t, dir)
			if diff := cmp.Diff([]string{desc.Digest.Encoded()}, blobs); diff != "" {
				t.Errorf("committed blobs (-want +got):\n%s", diff)
			}
			if len(ingests) != 0 {
				t.Errorf("ingests left behind: %v", ingests)
			}
			if got, err := ReadBlob(ctx, st, desc); err != nil || !bytes.Equal(got, p) {
				t.Errorf("ReadBlob: %d bytes, %v", len(got), err)
			}
		})
	}
}

type gateReader struct {
	r     io.Reader
	first func()
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.first != nil {
		g.first()
		g.first = nil
	}
	return g.r.Read(p)
}

func TestReadBlobDetectsCorruption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	p := []byte(`{"schemaVersion":2}`)
	desc := descOf(p)
	if err := WriteBlob(ctx, st, "", bytes.NewReader(p), desc); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "blobs", "sha256", desc.Digest.Encoded())
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"schemaVersion":3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBlob(ctx, st, desc); !errors.Is(err, errdefs.ErrInternal) {
		t.Fatalf("ReadBlob of a corrupted blob = %v; want internal error", err)
	}
}

func TestDiskUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	var want Usage
	for _, n := range []int{0, 10, 1000, 123456} {
		p := randomBytes(t, n)
		if err := WriteBlob(ctx, st, "", bytes.NewReader(p), descOf(p)); err != nil {
			t.Fatal(err)
		}
		want.Blobs++
		want.Size += int64(n)
	}
	got, err := DiskUsage(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DiskUsage (-want +got):\n%s", diff)
	}
}

// TestKilledWriterLeavesNoBlob runs a writer in a child process, kills it
// with SIGKILL in the middle of a blob, and checks that the blob is not
// visible and that the next Open removes the partial ingest.
func TestKilledWriterLeavesNoBlob(t *testing.T) {
	if dir := os.Getenv("KILN_CONTENT_KILL_HELPER"); dir != "" {
		killHelper(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process; skipped in -short mode")
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterLeavesNoBlob$")
	cmd.Env = append(os.Environ(), "KILN_CONTENT_KILL_HELPER="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child prints one line once half the blob is on disk.
	line := make([]byte, 64)
	n, err := stdout.Read(line)
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	desc := killDesc()
	if string(line[:n]) != "half\n" {
		_ = cmd.Process.Kill()
		t.Fatalf("helper said %q", line[:n])
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	if blobs, ingests := blobFiles(t, dir); len(blobs) != 0 || len(ingests) != 1 {
		t.Fatalf("after SIGKILL: blobs %v, ingests %v; want no blob and one partial ingest", blobs, ingests)
	}
	ctx := context.Background()
	st := openStore(t, dir)
	if ok, err := Exists(ctx, st, desc.Digest); ok || err != nil {
		t.Fatalf("Exists after SIGKILL = %v, %v; want false, nil", ok, err)
	}
	if blobs, ingests := blobFiles(t, dir); len(blobs) != 0 || len(ingests) != 0 {
		t.Fatalf("after reopen: blobs %v, ingests %v; want none", blobs, ingests)
	}
	if err := WriteBlob(ctx, st, "", bytes.NewReader(killData()), desc); err != nil {
		t.Fatalf("WriteBlob after restart: %v", err)
	}
}

func killData() []byte             { return bytes.Repeat([]byte("kiln"), 256<<10) }
func killDesc() ocispec.Descriptor { return descOf(killData()) }

func killHelper(dir string) {
	st, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p := killData()
	r := &hookReader{r: bytes.NewReader(p), after: len(p) / 2, hook: func() {
		fmt.Println("half")
		time.Sleep(time.Hour) // wait for SIGKILL
	}}
	_ = WriteBlob(context.Background(), st, "", r, killDesc())
	os.Exit(3) // not reached
}
