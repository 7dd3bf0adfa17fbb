// Package cachetest is the conformance suite every cache.Store passes.
package cachetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/ops"
)

// Run runs the suite against stores made by newStore (a fresh, empty store
// per call). reopen, if not nil, returns a store over the same data as s
// (after a simulated restart).
func Run(t *testing.T, newStore func(t *testing.T) cache.Store, reopen func(t *testing.T, s cache.Store) cache.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s cache.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"Replace", testReplace},
		{"Delete", testDelete},
		{"Walk", testWalk},
		{"StepComponents", testStepComponents},
		{"Touch", testTouch},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
	if reopen != nil {
		t.Run("Reopen", func(t *testing.T) {
			s := newStore(t)
			r := rec(1)
			if err := s.Put(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			s2 := reopen(t, s)
			got, err := s2.Get(context.Background(), r.Key)
			if err != nil {
				t.Fatalf("after reopen: %v", err)
			}
			if diff := cmp.Diff(r, got); diff != "" {
				t.Errorf("after reopen (-want +got):\n%s", diff)
			}
		})
	}
}

func key(i int) digest.Digest { return digest.FromString(fmt.Sprintf("key-%d", i)) }

func rec(i int) cache.Record {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return cache.Record{Key: key(i), Result: fmt.Sprintf("snap-%d", i), Size: int64(i * 100), Created: t, LastUsed: t, Description: "RUN step"}
}

func testGetMissing(t *testing.T, s cache.Store) {
	_, err := s.Get(context.Background(), key(42))
	if !errors.Is(err, cache.ErrNotFound) || !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	if _, err := s.Step(context.Background(), "nope"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Step missing = %v, want ErrNotFound", err)
	}
}

func testPutGet(t *testing.T, s cache.Store) {
	ctx := context.Background()
	r := rec(1)
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	if err := s.Put(ctx, cache.Record{}); err == nil {
		t.Errorf("Put with empty key succeeded")
	}
}

func testReplace(t *testing.T, s cache.Store) {
	ctx := context.Background()
	r := rec(1)
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Result = "snap-new"
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Result != "snap-new" {
		t.Errorf("Result = %q after replace, want snap-new", got.Result)
	}
}

func testDelete(t *testing.T, s cache.Store) {
	ctx := context.Background()
	r := rec(1)
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, r.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, r.Key); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, key(99)); err != nil {
		t.Errorf("Delete missing = %v, want nil", err)
	}
}

func testWalk(t *testing.T, s cache.Store) {
	ctx := context.Background()
	var want []string
	for i := 0; i < 5; i++ {
		r := rec(i)
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Result)
	}
	var got []string
	if err := s.Walk(ctx, func(r cache.Record) error {
		got = append(got, r.Result)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Walk (-want +got):\n%s", diff)
	}
	stop := errors.New("stop")
	n := 0
	err := s.Walk(ctx, func(cache.Record) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Walk did not stop on error: err=%v calls=%d", err, n)
	}
}

func testStepComponents(t *testing.T, s cache.Store) {
	ctx := context.Background()
	r1 := rec(1)
	r1.StepID = "step-a"
	r1.Components = &cache.Components{
		OpDigest: digest.FromString("op1"),
		Op:       []byte(`{"exec":{"args":["true"]}}`),
		Inputs: []cache.Input{{Key: key(7), Name: "[1/2] FROM x", Content: &ops.Content{
			Digest: digest.FromString("c"), Files: map[string]digest.Digest{"a.txt": digest.FromString("a")},
		}}},
	}
	if err := s.Put(ctx, r1); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, r1.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Components != nil {
		t.Errorf("Get returned components; want them only from Step")
	}
	st, err := s.Step(ctx, "step-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r1, st); diff != "" {
		t.Errorf("Step (-want +got):\n%s", diff)
	}
	// A newer record of the same step becomes the step's record.
	r2 := rec(2)
	r2.StepID = "step-a"
	if err := s.Put(ctx, r2); err != nil {
		t.Fatal(err)
	}
	st, err = s.Step(ctx, "step-a")
	if err != nil {
		t.Fatal(err)
	}
	if st.Key != r2.Key || st.Components != nil {
		t.Errorf("Step after newer Put = %v (components %v), want %s without components", st.Key, st.Components, r2.Key)
	}
}

func testTouch(t *testing.T, s cache.Store) {
	ctx := context.Background()
	r := rec(1)
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	later := r.LastUsed.Add(time.Hour)
	if err := s.Touch(ctx, r.Key, later); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, r.Key, r.LastUsed.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastUsed.Equal(later) {
		t.Errorf("LastUsed = %v, want %v", got.LastUsed, later)
	}
	if err := s.Touch(ctx, key(99), later); err != nil {
		t.Errorf("Touch missing = %v, want nil", err)
	}
}

func testConcurrent(t *testing.T, s cache.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			errs <- s.Put(ctx, rec(i))
		}(i)
		go func(i int) {
			defer wg.Done()
			_, err := s.Get(ctx, key(i))
			if err != nil && !errors.Is(err, cache.ErrNotFound) {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	_ = s.Walk(ctx, func(cache.Record) error { n++; return nil })
	if n != 20 {
		t.Errorf("Walk found %d records, want 20", n)
	}
}
