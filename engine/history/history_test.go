package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/core/errdefs"
)

func open(t *testing.T) *Service {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "metadata.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func refs(recs []Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.Ref)
	}
	return out
}

func finish(t *testing.T, s *Service, ref, status string) {
	t.Helper()
	s.Start(context.Background(), Record{Ref: ref, Created: time.Now()})
	if err := s.Finish(context.Background(), Record{Ref: ref, Status: status, Completed: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func TestStartFinishListGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	s.Start(ctx, Record{Ref: "a"})
	if got := refs(s.Active()); !cmp.Equal(got, []string{"a"}) {
		t.Fatalf("Active = %v, want [a]", got)
	}
	if r, err := s.Get(ctx, "a"); err != nil || r.Status != StatusRunning {
		t.Errorf("Get(running a) = %+v, %v; want status running", r, err)
	}
	if recs, _ := s.List(ctx, Filter{}); len(recs) != 0 {
		t.Errorf("List lists a running build: %v", refs(recs))
	}
	if err := s.Finish(ctx, Record{Ref: "a", Status: StatusCompleted, Steps: 3}); err != nil {
		t.Fatal(err)
	}
	finish(t, s, "b", StatusFailed)
	finish(t, s, "c", StatusCanceled)
	if got := refs(s.Active()); len(got) != 0 {
		t.Errorf("Active after Finish = %v, want none", got)
	}
	for _, tt := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all, newest first", Filter{}, []string{"c", "b", "a"}},
		{"limit", Filter{Limit: 2}, []string{"c", "b"}},
		{"one ref", Filter{Ref: "b"}, []string{"b"}},
		{"unknown ref", Filter{Ref: "x"}, []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := s.List(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, refs(recs)); diff != "" {
				t.Errorf("List(%+v) (-want +got):\n%s", tt.f, diff)
			}
		})
	}
	if r, err := s.Get(ctx, "a"); err != nil || r.Status != StatusCompleted || r.Steps != 3 {
		t.Errorf("Get(a) = %+v, %v", r, err)
	}
	if _, err := s.Get(ctx, "x"); !errdefs.IsNotFound(err) {
		t.Errorf("Get(unknown) = %v, want not found", err)
	}
}

func TestLimitKeepsPinned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	finish(t, s, "first", StatusCompleted)
	pin := true
	if err := s.Update(ctx, "first", Update{Pinned: &pin}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < Limit+5; i++ {
		finish(t, s, fmt.Sprintf("b%d", i), StatusCompleted)
	}
	recs, err := s.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != Limit+1 {
		t.Errorf("history holds %d records, want %d and the pinned one", len(recs), Limit)
	}
	if r, err := s.Get(ctx, "first"); err != nil || !r.Pinned {
		t.Errorf("pinned record = %+v, %v; want kept and pinned", r, err)
	}
	if _, err := s.Get(ctx, "b0"); !errdefs.IsNotFound(err) {
		t.Errorf("oldest unpinned record: %v, want dropped", err)
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t)
	finish(t, s, "a", StatusCompleted)
	s.Start(ctx, Record{Ref: "running"})
	for _, tt := range []struct {
		name  string
		ref   string
		u     Update
		class error
	}{
		{"unknown", "x", Update{Delete: true}, errdefs.ErrNotFound},
		{"running", "running", Update{Delete: true}, errdefs.ErrFailedPrecondition},
		{"delete", "a", Update{Delete: true}, nil},
		{"deleted already", "a", Update{Delete: true}, errdefs.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Update(ctx, tt.ref, tt.u)
			if (tt.class == nil) != (err == nil) || (tt.class != nil && !errors.Is(err, tt.class)) {
				t.Errorf("Update(%s, %+v) = %v, want class %v", tt.ref, tt.u, err, tt.class)
			}
		})
	}
}

func TestListenReplaysThenFollows(t *testing.T) {
	t.Parallel()
	s := open(t)
	finish(t, s, "old", StatusCompleted)
	s.Start(context.Background(), Record{Ref: "run"})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	events := make(chan Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- s.Listen(ctx, ListenOptions{Follow: true}, func(ev Event) error { events <- ev; return nil })
	}()
	next := func() string {
		t.Helper()
		select {
		case ev := <-events:
			return ev.Type.String() + " " + ev.Record.Ref
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return ""
	}
	got := []string{next(), next()}
	if err := s.Finish(context.Background(), Record{Ref: "run", Status: StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	got = append(got, next())
	if err := s.Update(context.Background(), "old", Update{Delete: true}); err != nil {
		t.Fatal(err)
	}
	got = append(got, next())
	want := []string{"completed old", "started run", "completed run", "deleted old"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	cancel(context.Canceled)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Listen after cancel = %v", err)
	}

	var active []string
	err := s.Listen(context.Background(), ListenOptions{ActiveOnly: true}, func(ev Event) error {
		active = append(active, ev.Record.Ref)
		return nil
	})
	if err != nil || len(active) != 0 {
		t.Errorf("Listen(active only, no follow) = %v, %v; want nothing running", active, err)
	}
}

func TestListenLimit(t *testing.T) {
	t.Parallel()
	s := open(t)
	for _, ref := range []string{"a", "b", "c"} {
		finish(t, s, ref, StatusCompleted)
	}
	for _, tc := range []struct {
		limit int
		want  []string
	}{
		{0, []string{"a", "b", "c"}},
		{2, []string{"b", "c"}},
		{5, []string{"a", "b", "c"}},
	} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			var got []string
			err := s.Listen(context.Background(), ListenOptions{Limit: tc.limit}, func(ev Event) error {
				got = append(got, ev.Record.Ref)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("replayed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPinnedBucket: pins live beside the records, so trimming reads keys
// only; a history written before (pins only inside the records) gets its
// pins back when opened, and unpinning or deleting a record forgets its
// pin.
func TestPinnedBucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "metadata.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// An older history: one pinned record, no pinned bucket.
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket(bucket)
		if err != nil {
			return err
		}
		for i, r := range []Record{{Ref: "old-pinned", Pinned: true, Status: StatusCompleted}, {Ref: "old", Status: StatusCompleted}} {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := bk.Put(key(uint64(i+1)), b); err != nil {
				return err
			}
		}
		return bk.SetSequence(2)
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	finish(t, s, "unpin-me", StatusCompleted)
	finish(t, s, "delete-me", StatusCompleted)
	pin, unpin := true, false
	for _, u := range []struct {
		ref string
		u   Update
	}{
		{"unpin-me", Update{Pinned: &pin}},
		{"unpin-me", Update{Pinned: &unpin}},
		{"delete-me", Update{Pinned: &pin}},
		{"delete-me", Update{Delete: true}},
	} {
		if err := s.Update(ctx, u.ref, u.u); err != nil {
			t.Fatalf("Update(%s): %v", u.ref, err)
		}
	}
	for i := 0; i < Limit+3; i++ {
		finish(t, s, fmt.Sprintf("b%d", i), StatusCompleted)
	}
	for _, tt := range []struct {
		ref  string
		kept bool
	}{
		{"old-pinned", true},
		{"old", false},
		{"unpin-me", false},
		{"b2", false},
		{"b3", true},
	} {
		_, err := s.Get(ctx, tt.ref)
		if kept := err == nil; kept != tt.kept {
			t.Errorf("%s kept = %v (%v), want %v", tt.ref, kept, err, tt.kept)
		}
	}
	var pins int
	if err := db.View(func(tx *bolt.Tx) error {
		pins = tx.Bucket(pinnedBucket).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if pins != 1 {
		t.Errorf("%d pinned keys, want 1 (old-pinned)", pins)
	}
}

// BenchmarkFinishFullHistory is a build's end once the history holds
// Limit records with traces of 20 steps each: trimming must not decode
// them (it did, ~7 ms of CPU a build).
func BenchmarkFinishFullHistory(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "metadata.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db)
	if err != nil {
		b.Fatal(err)
	}
	rec := Record{Ref: "r", Status: StatusCompleted}
	for i := 0; i < 20; i++ {
		rec.Trace = append(rec.Trace, Step{Name: fmt.Sprintf("[%d/20] RUN echo step %d >> /steps", i, i), Cached: true})
	}
	ctx := context.Background()
	for i := 0; i < Limit; i++ {
		if err := s.Finish(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if err := s.Finish(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
}
