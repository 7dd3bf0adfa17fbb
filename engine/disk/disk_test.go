package disk

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/gc"
)

func TestRequestsAreChecked(t *testing.T) {
	t.Parallel()
	// The requests fail before the collector is used.
	s := New(nil, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"usage filters", func() error { _, err := s.Usage(ctx, UsageRequest{Filters: []string{"type==regular"}}); return err },
			"kiln du: filters are not supported yet"},
		{"bad filter", func() error { return s.Prune(ctx, PruneRequest{Filters: []string{"id==x"}}, nil) },
			`kiln prune --filter: filter "id==x": only type==KIND filters are supported`},
		{"unknown type", func() error { return s.Prune(ctx, PruneRequest{Filters: []string{"type==nope"}}, nil) },
			`unknown type "nope"`},
		{"negative duration", func() error { return s.Prune(ctx, PruneRequest{KeepDuration: -time.Second}, nil) },
			"kiln prune: --keep-duration and --keep-storage must not be negative"},
		{"negative size", func() error { return s.Prune(ctx, PruneRequest{KeepBytes: -1}, nil) },
			"must not be negative"},
		{"negative reserve", func() error { return s.Prune(ctx, PruneRequest{ReservedBytes: -1}, nil) },
			"prune: the reserved and minimum free space must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want an invalid-argument error containing %q", err, tc.want)
			}
		})
	}
}

func TestPolicies(t *testing.T) {
	t.Parallel()
	configured := []gc.Policy{{KeepDuration: time.Hour}, {KeepBytes: 5}}
	for _, tc := range []struct {
		name string
		o    Options
		want []gc.Policy
	}{
		{"off", Options{}, nil},
		{"cache size", Options{CacheSize: 100}, []gc.Policy{{KeepBytes: 100, KeepContexts: true}}},
		{"configured policies win", Options{CacheSize: 100, Policies: configured}, configured},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := New(nil, tc.o).Policies()
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b func() (int64, error)) bool { return a == nil && b == nil })); diff != "" {
				t.Errorf("Policies (-want +got):\n%s", diff)
			}
		})
	}
	// Without policies the automatic gc does nothing (and needs no
	// collector).
	New(nil, Options{}).AfterBuild()
}

func TestSpace(t *testing.T) {
	t.Parallel()
	size, free := Space(t.TempDir())
	n, err := free()
	if err != nil || size <= 0 || n <= 0 || n > size {
		t.Errorf("Space = %d, free %d, %v; want a size and free space within it", size, n, err)
	}
	// Without a way to read free space, a min-free-space prune is
	// refused, not run without its bound.
	err = New(nil, Options{}).Prune(context.Background(), PruneRequest{MinFreeBytes: 1}, nil)
	if !errors.Is(err, errdefs.ErrUnimplemented) {
		t.Errorf("prune with MinFreeBytes and no FreeBytes = %v, want unimplemented", err)
	}
}
