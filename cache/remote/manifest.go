package remote

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/progress"
)

// A per-build cache (--cache-from, --cache-to of type registry or local)
// is one manifest: its config blob lists the records, its layers are the
// records' blobs, kept next to it (the registry repository, the layout's
// blobs directory).

// Source is where a per-build cache is read from.
type Source interface {
	// Load returns the records of the cache and the store of their blobs.
	Load(ctx context.Context) ([]Record, BlobStore, error)
}

// ManifestCache is a cache.RemoteCache over a Source, read once, on the
// first lookup.
type ManifestCache struct {
	name string
	src  Source
	im   *Importer

	once  sync.Once
	recs  map[digest.Digest][]Record
	blobs BlobStore
	err   error
}

var _ cache.RemoteCache = (*ManifestCache)(nil)

// NewManifestCache returns the cache named name (progress shows CACHED
// (name)) whose records src holds.
func NewManifestCache(name string, src Source, im *Importer) *ManifestCache {
	return &ManifestCache{name: name, src: src, im: im}
}

// Name implements cache.RemoteCache.
func (c *ManifestCache) Name() string { return c.name }

// Lookup implements cache.RemoteCache. A cache that cannot be read fails
// every lookup with the same error (the solver warns once); a cache that
// does not exist yet is reported the same way, as buildx does.
func (c *ManifestCache) Lookup(ctx context.Context, key digest.Digest) (cache.Hit, error) {
	c.once.Do(func() {
		recs, blobs, err := c.src.Load(ctx)
		if err != nil {
			// Not in the not-found class: the solver should say so.
			c.err = errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("cannot import cache: %s", err.Error()))
			return
		}
		c.recs, c.blobs = byKey(recs), blobs
	})
	if c.err != nil {
		return nil, c.err
	}
	recs := c.recs[key]
	if len(recs) == 0 {
		return nil, cache.ErrNotFound
	}
	rec, err := usable(ctx, recs, c.blobs, false)
	if err != nil {
		return nil, err
	}
	return c.im.NewHit(rec, c.blobs), nil
}

// Target is where a per-build cache export writes.
type Target interface {
	// Blobs is the store the records' blobs go to.
	Blobs() BlobStore
	// Records returns the records the target holds now (none, without
	// error, when it holds no cache yet).
	Records(ctx context.Context) ([]Record, error)
	// Save writes records as the target's cache; their blobs are in
	// Blobs already.
	Save(ctx context.Context, records []Record) error
}

// Aborter is implemented by targets that must be told when an export is
// abandoned (the build failed, or Finish failed) to end what they opened.
type Aborter interface {
	Abort()
}

// ManifestExporterOptions configures NewManifestExporter.
type ManifestExporterOptions struct {
	// Name describes the target in progress ("registry reg/app:cache").
	Name   string
	Target Target
	Spec   ExportSpec
	Layers *layer.Maker
	Local  BlobStore // the daemon's content store (LocalBlobs)
	Writer string
	// Recheck, when set, is how long Finish waits after saving before it
	// reads the target again to check that no concurrent writer dropped
	// this build's records (registries have no compare-and-swap); it
	// merges and saves again when one did.
	Recheck time.Duration
}

// ManifestExporter is a cache.Exporter for one build's --cache-to of type
// registry or local: blobs are uploaded as steps finish, the manifest is
// written by Finish, merged with what the target holds.
type ManifestExporter struct {
	o ManifestExporterOptions
}

var _ cache.Exporter = (*ManifestExporter)(nil)

// NewManifestExporter returns the exporter.
func NewManifestExporter(o ManifestExporterOptions) *ManifestExporter {
	return &ManifestExporter{o: o}
}

// ExporterResponse returns what the target adds to the build's response
// once the export is done (a local cache's manifest for BuildKit's
// clients), when it has something to say.
func (e *ManifestExporter) ExporterResponse() map[string]string {
	if r, ok := e.o.Target.(interface{ ExporterResponse() map[string]string }); ok {
		return r.ExporterResponse()
	}
	return nil
}

// Begin implements cache.Exporter.
func (e *ManifestExporter) Begin(ctx context.Context, b cache.Build) (cache.ExportSession, error) {
	pw := b.Progress
	if pw == nil {
		pw = progress.Discard
	}
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	return &manifestSession{e: e, pw: pw, ctx: ctx, cancel: cancel, sem: make(chan struct{}, 3)}, nil
}

type manifestSession struct {
	e      *ManifestExporter
	pw     progress.Writer
	ctx    context.Context
	cancel context.CancelCauseFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	records []Record
	errs    stepErrors
	done    bool
}

// stepErrors keeps the export failures of a session by cache key. A key
// exported again with success (a remote hit whose blobs were bad, then the
// step's own result) is not a failure.
type stepErrors struct {
	failed map[digest.Digest]error
	ok     map[digest.Digest]bool
}

func (e *stepErrors) fail(key digest.Digest, err error) {
	if e.ok[key] {
		return
	}
	if e.failed == nil {
		e.failed = map[digest.Digest]error{}
	}
	e.failed[key] = err
}

func (e *stepErrors) succeed(key digest.Digest) {
	if e.ok == nil {
		e.ok = map[digest.Digest]bool{}
	}
	e.ok[key] = true
	delete(e.failed, key)
}

// err joins the failures, in key order.
func (e *stepErrors) err() error {
	keys := make([]digest.Digest, 0, len(e.failed))
	for k := range e.failed {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	errs := make([]error, len(keys))
	for i, k := range keys {
		errs[i] = e.failed[k]
	}
	return errors.Join(errs...)
}

var errDiscarded = errors.New("build failed: cache export discarded")

// Add implements cache.ExportSession.
func (s *manifestSession) Add(st cache.ExportStep) {
	if s.e.o.Spec.Mode != ModeMax && !st.InResult {
		releaseRef(st.Ref)
		return
	}
	s.wg.Go(func() {
		defer releaseRef(st.Ref)
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
		case <-s.ctx.Done():
			return
		}
		rec, ok, err := s.export(st)
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case err != nil:
			s.errs.fail(st.Record.Key, fmt.Errorf("%s: %w", st.Record.Description, err))
		case ok:
			s.errs.succeed(st.Record.Key)
			s.records = append(s.records, rec)
		}
	})
}

// export uploads a step's blobs to the target and returns its record.
func (s *manifestSession) export(st cache.ExportStep) (Record, bool, error) {
	o := s.e.o
	var layers []Layer
	switch h, isHit := st.Hit.(*Hit); {
	case st.Ref != nil && st.Ref.ID() != "":
		var err error
		if layers, err = resultLayers(s.ctx, o.Layers, st.Ref.ID(), o.Spec.Compression); err != nil {
			return Record{}, false, err
		}
		if err := copyBlobs(s.ctx, layers, o.Local, o.Target.Blobs()); err != nil {
			return Record{}, false, err
		}
	case isHit:
		// A hit nobody materialised: copy its blobs from its cache
		// without importing them.
		layers = h.Record.Layers
		if err := copyBlobs(s.ctx, layers, h.Blobs, o.Target.Blobs()); err != nil {
			return Record{}, false, err
		}
	default:
		return Record{}, false, nil
	}
	return Record{
		Key: st.Record.Key, Layers: layers, Created: time.Now().UTC(), Writer: o.Writer,
		Inputs: InputsOf(st.Record.Components),
	}, true, nil
}

// Finish implements cache.ExportSession.
func (s *manifestSession) Finish(ctx context.Context) (err error) {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	o := s.e.o
	done := progress.InternalStep(s.pw, "exporting cache to "+o.Name)
	defer func() {
		if a, ok := o.Target.(Aborter); ok && err != nil {
			a.Abort()
		}
		if err != nil && o.Spec.IgnoreError {
			s.pw.Write(progress.Event{Warning: &progress.Warning{Message: fmt.Sprintf("cache export to %s failed (ignore-error=true): %v", o.Name, err)}})
			err = nil
		}
		done(err)
		s.cancel(nil)
	}()
	wait := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(wait)
	}()
	select {
	case <-wait:
	case <-ctx.Done():
		s.cancel(context.Cause(ctx))
		<-wait
		return context.Cause(ctx)
	}
	if err := s.errs.err(); err != nil {
		return fmt.Errorf("export cache to %s: %w", o.Name, err)
	}
	if err := s.save(ctx, Merge(s.records)); err != nil {
		return fmt.Errorf("export cache to %s: %w", o.Name, err)
	}
	return nil
}

// save merges ours into what the target holds and writes the result. With
// Recheck it reads the target again after a moment and, if a concurrent
// writer replaced the manifest without our records, merges and saves
// again (a few times at most).
func (s *manifestSession) save(ctx context.Context, ours []Record) error {
	o := s.e.o
	const attempts = 4
	for i := 0; ; i++ {
		cur, err := o.Target.Records(ctx)
		if err != nil {
			return err
		}
		if i > 0 && contains(cur, ours) {
			return nil
		}
		if i == attempts {
			return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("other writers kept replacing the cache manifest"))
		}
		if err := o.Target.Save(ctx, Merge(cur, ours)); err != nil {
			return err
		}
		if o.Recheck <= 0 {
			return nil
		}
		// Jitter, so that two writers that collided do not collide again.
		d := o.Recheck + time.Duration(rand.Int64N(int64(o.Recheck)))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// contains reports whether every record of want is in have.
func contains(have, want []Record) bool {
next:
	for _, w := range want {
		for _, h := range have {
			if sameResult(h, w) {
				continue next
			}
		}
		return false
	}
	return true
}

// Discard implements cache.ExportSession.
func (s *manifestSession) Discard() {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if !done {
		s.cancel(errDiscarded)
		if a, ok := s.e.o.Target.(Aborter); ok {
			go func() {
				s.wg.Wait()
				a.Abort()
			}()
		}
	}
}
