package exporter

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestAlignHistory(t *testing.T) {
	t.Parallel()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	late := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	h := func(by string, empty bool, created *time.Time) ocispec.History {
		return ocispec.History{CreatedBy: by, EmptyLayer: empty, Created: created}
	}
	added := func(n string) ocispec.History {
		return ocispec.History{CreatedBy: n, Comment: historyComment, Created: &now}
	}
	tests := []struct {
		name    string
		in      []ocispec.History
		layers  int
		epoch   *time.Time
		created time.Time
		want    []ocispec.History
	}{
		{"aligned, times filled", []ocispec.History{h("base", false, &old), h("ENV", true, nil), h("RUN", false, nil)}, 2, nil, now,
			[]ocispec.History{h("base", false, &old), h("ENV", true, &now), h("RUN", false, &now)}},
		{"too many claims: the last become empty", []ocispec.History{h("base", false, &old), h("RUN a", false, nil), h("RUN b", false, nil)}, 2, nil, now,
			[]ocispec.History{h("base", false, &old), h("RUN a", false, &now), h("RUN b", true, &now)}},
		{"too few claims: added at the bottom", []ocispec.History{h("RUN", false, nil)}, 3, nil, now,
			[]ocispec.History{added("layer 1"), added("layer 2"), h("RUN", false, &now)}},
		{"no layers", []ocispec.History{h("LABEL", true, nil), h("odd", false, nil)}, 0, nil, now,
			[]ocispec.History{h("LABEL", true, &now), h("odd", true, &now)}},
		{"epoch clamps later times only", []ocispec.History{h("base", false, &old), h("future", false, &late), h("RUN", false, nil)}, 3, &epoch, epoch,
			[]ocispec.History{h("base", false, &old), h("future", false, &epoch), h("RUN", false, &epoch)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := alignHistory(tc.in, tc.layers, tc.created, tc.epoch)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("alignHistory (-want +got):\n%s", diff)
			}
		})
	}
	if tests[0].in[1].Created != nil {
		t.Error("alignHistory changed its input")
	}
}

func TestParseAnnotation(t *testing.T) {
	t.Parallel()
	arm := ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	tests := []struct {
		attr   string
		want   Annotation
		notOne bool
	}{
		{attr: "annotation.a.b.c", want: Annotation{Target: AnnotateManifest, Key: "a.b.c", Value: "v"}},
		{attr: "annotation-index.k", want: Annotation{Target: AnnotateIndex, Key: "k", Value: "v"}},
		{attr: "annotation-index-descriptor.k", want: Annotation{Target: AnnotateIndexDescriptor, Key: "k", Value: "v"}},
		{attr: "annotation-manifest-descriptor[linux/arm/v7].k", want: Annotation{Target: AnnotateManifestDescriptor, Platform: &arm, Key: "k", Value: "v"}},
		{attr: "annotation[linux/arm/v7].k", want: Annotation{Target: AnnotateManifest, Platform: &arm, Key: "k", Value: "v"}},
		{attr: "annotations.k", notOne: true},
		{attr: "annotation", notOne: true},
		{attr: "name", notOne: true},
	}
	for _, tc := range tests {
		t.Run(tc.attr, func(t *testing.T) {
			got, ok, err := parseAnnotation(tc.attr, "v")
			if err != nil {
				t.Fatal(err)
			}
			if ok == tc.notOne {
				t.Fatalf("ok = %v", ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("annotation (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeExporter answers with resp or fails with err after waiting for
// ctx when block is set.
type fakeExporter struct {
	resp  Response
	err   error
	block bool
	calls atomic.Int64
}

func (f *fakeExporter) Export(ctx context.Context, _ Result) (Response, error) {
	f.calls.Add(1)
	if f.block {
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}
	return f.resp, f.err
}

func TestMulti(t *testing.T) {
	t.Parallel()
	a := &fakeExporter{resp: Response{KeyDigest: "sha256:a", KeyImageName: "app:1,app:2"}}
	b := &fakeExporter{resp: Response{KeyDigest: "sha256:b", KeyImageName: "app:2,other", KeyConfigDigest: "sha256:c"}}
	resp, err := Multi(a, b).Export(context.Background(), Result{})
	if err != nil {
		t.Fatal(err)
	}
	want := Response{KeyDigest: "sha256:a", KeyImageName: "app:1,app:2,other", KeyConfigDigest: "sha256:c"}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("merged response (-want +got):\n%s", diff)
	}

	// A failure cancels the others and is what is reported.
	boom := errors.New("disk full")
	blocked := &fakeExporter{block: true}
	_, err = Multi(blocked, &fakeExporter{err: boom}).Export(context.Background(), Result{})
	if !errors.Is(err, boom) || err.Error() != boom.Error() {
		t.Errorf("Multi error %q, want just %q", err, boom)
	}
	if blocked.calls.Load() != 1 {
		t.Error("the blocked exporter never ran")
	}

	if single := Multi(a); single != Exporter(a) {
		t.Error("Multi of one exporter should be that exporter")
	}
}
