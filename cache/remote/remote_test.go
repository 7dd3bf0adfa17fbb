package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/exporter"
)

func blobDesc(data string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(data), Size: int64(len(data))}
}

func TestFileStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := blobDesc("hello")
	if _, err := s.Stat(ctx, d.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("Stat of a missing blob = %v", err)
	}
	if _, err := s.Open(ctx, d); !errdefs.IsNotFound(err) {
		t.Fatalf("Open of a missing blob = %v", err)
	}

	// Wrong bytes or size: nothing becomes visible.
	for _, bad := range []string{"hellO", "hello!", "hell"} {
		err := s.Put(ctx, d, strings.NewReader(bad))
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("Put(%q) = %v, want failed precondition", bad, err)
		}
	}
	if _, err := s.Stat(ctx, d.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("a rejected blob is visible: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(entries) != 0 {
		t.Errorf("rejected writes left files: %v", entries)
	}

	if err := s.Put(ctx, d, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if size, err := s.Stat(ctx, d.Digest); err != nil || size != 5 {
		t.Errorf("Stat = %d, %v", size, err)
	}
	rc, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "hello" {
		t.Errorf("read %q", b)
	}
	// An existing blob is not read again.
	if err := s.Put(ctx, d, errReader{}); err != nil {
		t.Errorf("Put of an existing blob read its source: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); err != nil {
		t.Errorf("no oci-layout file: %v", err)
	}
	n, size, err := s.Usage(ctx)
	if err != nil || n != 1 || size != 5 {
		t.Errorf("Usage = %d blobs, %d bytes, %v", n, size, err)
	}
	if err := s.Remove(ctx, d.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, d.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("removed blob: %v", err)
	}
	if _, err := OpenFileStore("relative/dir"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("OpenFileStore(relative) = %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read") }

func TestFileStoreConcurrentWriters(t *testing.T) {
	// Two daemons on one directory write the same blobs at once; readers
	// only ever see complete blobs.
	ctx := context.Background()
	dir := t.TempDir()
	stores := make([]*FileStore, 2)
	for i := range stores {
		s, err := OpenFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	data := bytes.Repeat([]byte("0123456789"), 100000)
	d := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			rc, err := stores[0].Open(ctx, d)
			if errdefs.IsNotFound(err) {
				continue
			}
			if err != nil {
				t.Error(err)
				return
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data) {
				t.Errorf("a reader saw %d bytes of a %d byte blob", len(got), len(data))
				return
			}
		}
	})
	var writers sync.WaitGroup
	for i := range 8 {
		writers.Go(func() {
			if err := stores[i%2].Put(ctx, d, bytes.NewReader(data)); err != nil {
				t.Error(err)
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	entries, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(entries) != 1 {
		t.Errorf("files after concurrent writes: %v", entries)
	}
}

func TestFileStoreRemovesStaleTemp(t *testing.T) {
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(blobs, tempPrefix+"old"), filepath.Join(blobs, tempPrefix+"fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	_ = os.Chtimes(old, past, past)
	if _, err := OpenFileStore(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("a crashed writer's old temporary file was kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a temporary file a live writer may be writing was removed")
	}
}

func rec(key string, created int64, layers ...string) Record {
	r := Record{Key: digest.FromString(key), Created: time.Unix(created, 0).UTC(), Writer: "w"}
	for _, l := range layers {
		d := blobDesc(l)
		r.Layers = append(r.Layers, Layer{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, DiffID: digest.FromString("tar " + l)})
	}
	return r
}

func TestMerge(t *testing.T) {
	a1 := rec("a", 1, "x")
	a1newer := rec("a", 5, "x")
	a2 := rec("a", 2, "y")
	b := rec("b", 3, "x", "z")
	got := Merge([]Record{a1, b}, []Record{a1newer, a2})
	want := Merge([]Record{a1newer, a2, b})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Merge (-want +got):\n%s", diff)
	}
	if len(got) != 3 {
		t.Errorf("merged %d records, want 3 (a with two results, b)", len(got))
	}
	for _, r := range got {
		if r.Key == a1.Key && r.Layers[0].Digest == a1.Layers[0].Digest && !r.Created.Equal(a1newer.Created) {
			t.Errorf("the same result kept its older time")
		}
	}
	if !contains(got, []Record{a1, b}) || contains([]Record{a1}, []Record{b}) {
		t.Error("contains is wrong")
	}
}

func TestRecordValidate(t *testing.T) {
	good := rec("k", 1, "l")
	for _, tt := range []struct {
		name string
		mod  func(*Record)
		want string
	}{
		{"no layers", func(r *Record) { r.Layers = nil }, "no layers"},
		{"bad key", func(r *Record) { r.Key = "sha256:xyz" }, "key"},
		{"bad digest", func(r *Record) { r.Layers[0].Digest = "nope" }, "digest"},
		{"bad diffID", func(r *Record) { r.Layers[0].DiffID = "" }, "diffID"},
		{"negative size", func(r *Record) { r.Layers[0].Size = -1 }, "negative size"},
		{"not a layer", func(r *Record) { r.Layers[0].MediaType = "application/vnd.oci.image.manifest.v1+json" }, "is not a layer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			r.Layers = append([]Layer(nil), good.Layers...)
			tt.mod(&r)
			err := r.Validate()
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an invalid-argument error about %q", err, tt.want)
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
}

func TestConfigRoundTripDropsBadRecords(t *testing.T) {
	good := rec("k", 1, "l")
	bad := rec("k2", 1, "l")
	bad.Layers[0].Digest = "nope"
	b, err := EncodeConfig([]Record{good, bad})
	if err != nil {
		t.Fatal(err)
	}
	got, errs, err := DecodeConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Record{good}, got); diff != "" || len(errs) != 1 {
		t.Errorf("DecodeConfig: %d errors, records (-want +got):\n%s", len(errs), diff)
	}
	if _, _, err := DecodeConfig([]byte(`{"version":9,"records":[]}`)); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("a future version: %v", err)
	}
}

func TestInputsOfKeepsDigestsOnly(t *testing.T) {
	c := &cache.Components{
		OpDigest: digest.FromString("op"),
		Op:       json.RawMessage(`{"exec":{"args":["sh","-c","echo $TOKEN"],"env":["TOKEN=hunter2"]}}`),
		Inputs: []cache.Input{
			{Key: digest.FromString("in"), Name: "[build 2/4] RUN make"},
		},
	}
	b, err := json.Marshal(InputsOf(c))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"hunter2", "TOKEN", "echo", "make"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("remote inputs %s hold %q", b, leak)
		}
	}
}

func TestDecodeInline(t *testing.T) {
	layers := []ocispec.Descriptor{blobDesc("base"), blobDesc("run")}
	diffIDs := []digest.Digest{digest.FromString("tar base"), digest.FromString("tar run")}
	raw := json.RawMessage(`{"version":1,"records":[{"key":"` + digest.FromString("k1").String() + `","layers":1},{"key":"` + digest.FromString("k2").String() + `","layers":2}]}`)
	recs, err := DecodeInline(raw, layers, diffIDs)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || len(recs[0].Layers) != 1 || len(recs[1].Layers) != 2 || recs[1].Layers[1].DiffID != diffIDs[1] {
		t.Errorf("records %+v", recs)
	}
	bad := json.RawMessage(`{"version":1,"records":[{"key":"` + digest.FromString("k").String() + `","layers":3}]}`)
	if _, err := DecodeInline(bad, layers, diffIDs); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a record with more layers than the image: %v", err)
	}
}

func TestWriterID(t *testing.T) {
	root := t.TempDir()
	a, err := WriterID(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriterID(root)
	if err != nil || a != b || !validWriter(a) {
		t.Errorf("WriterID = %q then %q (%v)", a, b, err)
	}
	other, _ := WriterID(t.TempDir())
	if other == a {
		t.Error("two roots got the same writer id")
	}
}

// memTarget is a Target in memory that can simulate a concurrent writer
// replacing the manifest right after each save.
type memTarget struct {
	mu      sync.Mutex
	records []Record
	saves   int
	blobs   *FileStore
	// intrude, if set, replaces the saved records once (another writer
	// pushing what it read before our save).
	intrude []Record
}

func (m *memTarget) Blobs() BlobStore { return m.blobs }
func (m *memTarget) Records(context.Context) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.records...), nil
}
func (m *memTarget) Save(_ context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saves++
	m.records = recs
	if m.intrude != nil {
		m.records, m.intrude = m.intrude, nil
	}
	return nil
}

func TestManifestSaveSurvivesConcurrentWriter(t *testing.T) {
	blobs, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	theirs := rec("theirs", 1, "t")
	ours := rec("ours", 2, "o")
	// The other writer read the manifest before we saved and pushed its
	// own records right after our push, dropping ours.
	tgt := &memTarget{blobs: blobs, records: nil, intrude: []Record{theirs}}
	s := &manifestSession{e: &ManifestExporter{o: ManifestExporterOptions{Target: tgt, Recheck: time.Millisecond}}}
	if err := s.save(context.Background(), []Record{ours}); err != nil {
		t.Fatal(err)
	}
	got, _ := tgt.Records(context.Background())
	if !contains(got, []Record{ours, theirs}) {
		t.Errorf("after a concurrent writer: %d records (%d saves); want ours and theirs", len(got), tgt.saves)
	}
	if tgt.saves != 2 {
		t.Errorf("%d saves, want 2 (one, then one after the check)", tgt.saves)
	}
}

func TestStepErrorsForgiveAKeyExportedAgain(t *testing.T) {
	t.Parallel()
	a, b := digest.FromString("a"), digest.FromString("b")
	errA, errB := errors.New("a: blob corrupt"), errors.New("b: registry said no")
	for _, tc := range []struct {
		name string
		do   func(e *stepErrors)
		want []error // wrapped by err(); nil: err() is nil
	}{
		{"none", func(e *stepErrors) {}, nil},
		{"a failure", func(e *stepErrors) { e.fail(a, errA) }, []error{errA}},
		{"failure, then success", func(e *stepErrors) { e.fail(a, errA); e.succeed(a) }, nil},
		{"success, then a late failure", func(e *stepErrors) { e.succeed(a); e.fail(a, errA) }, nil},
		{"another key still fails", func(e *stepErrors) { e.fail(a, errA); e.fail(b, errB); e.succeed(a) }, []error{errB}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e stepErrors
			tc.do(&e)
			err := e.err()
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("err() = %v, want %v", err, tc.want)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("err() = %v does not hold %v", err, w)
				}
			}
		})
	}
}

// The image exporter asks Inline for the records of each image config.
var _ exporter.InlineCache = (*Inline)(nil)
