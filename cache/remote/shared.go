package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/flight"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/layer"
	"github.com/kiln-build/kiln/ops"
	"github.com/kiln-build/kiln/progress"
)

// Shared is a daemon-wide shared cache: an Index of records (Redis) over a
// BlobStore (a shared directory) that several daemons use at once. It is
// both a cache.RemoteCache (consulted after the local store) and a
// cache.Exporter: every step of every build is written to it in the
// background as it finishes. By default a build does not wait for those
// writes (write-behind): its result is ready as soon as its last step is,
// and the daemon finishes the writes on its own, before it stops too
// (Close). With SharedOptions.Sync a build's Finish waits for its steps.
//
// Shared never fails a build: an index or store that fails is reported as
// a warning once per build and the build goes on with its local cache.
type Shared struct {
	name     string
	index    Index
	blobs    BlobStore
	local    BlobStore
	im       *Importer
	layers   *layer.Maker
	writer   string
	blobComp string
	log      *slog.Logger
	diffs    flight.Group[Layer]

	sync         bool
	flushTimeout time.Duration

	sem     chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pending atomic.Int64 // steps added and not yet written

	mu       sync.Mutex
	exported map[digest.Digest]bool // keys this process wrote
	closing  bool                   // Close began: no new writes
}

var (
	_ cache.RemoteCache = (*Shared)(nil)
	_ cache.Exporter    = (*Shared)(nil)
)

// SharedOptions configures NewShared. Every field but Logger and Parallel
// is required.
type SharedOptions struct {
	// Name is how progress names a hit ("redis": CACHED (redis)).
	Name  string
	Index Index
	Blobs BlobStore
	// Writer identifies this daemon in the records it writes (WriterID).
	Writer   string
	Importer *Importer
	// Layers makes the blobs of results; Local is the content store they
	// are made in (LocalBlobs).
	Layers *layer.Maker
	Local  BlobStore
	Logger *slog.Logger
	// Parallel bounds the steps exported at once (default 4).
	Parallel int
	// Compression of the blobs the cache makes (CompressionZstd by
	// default). Layers that have a blob already (base image layers,
	// layers an image export made) are stored as they are.
	Compression string
	// Sync makes every build wait until its steps are written before it
	// finishes. By default they are written behind the build.
	Sync bool
	// FlushTimeout bounds how long Close waits for writes still running
	// (default DefaultFlushTimeout); what is left then is dropped.
	FlushTimeout time.Duration
}

// DefaultFlushTimeout is how long a stopping daemon waits for the shared
// cache writes still running: long enough for a few big layers, short
// enough for systemd's default stop timeout (90 s).
const DefaultFlushTimeout = 30 * time.Second

// NewShared returns a shared cache. Close stops its background work.
func NewShared(o SharedOptions) (*Shared, error) {
	if o.Name == "" || o.Index == nil || o.Blobs == nil || o.Writer == "" || o.Importer == nil || o.Layers == nil || o.Local == nil {
		return nil, errdefs.Invalidf("shared cache: incomplete options")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = DefaultFlushTimeout
	}
	switch o.Compression {
	case "":
		o.Compression = CompressionZstd
	case CompressionZstd, CompressionGzip, CompressionUncompressed:
	default:
		return nil, errdefs.Invalidf("shared cache: compression %q (want %s, %s or %s)", o.Compression, CompressionZstd, CompressionGzip, CompressionUncompressed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Shared{
		name: o.Name, index: o.Index, blobs: o.Blobs, local: o.Local, im: o.Importer, layers: o.Layers,
		writer: o.Writer, blobComp: o.Compression, log: o.Logger, sem: make(chan struct{}, o.Parallel), ctx: ctx, cancel: cancel,
		sync: o.Sync, flushTimeout: o.FlushTimeout,
		exported: map[digest.Digest]bool{},
	}, nil
}

// Name implements cache.RemoteCache.
func (s *Shared) Name() string { return s.name }

// Index returns the shared index.
func (s *Shared) Index() Index { return s.index }

// IndexAddr returns where the index is, without password (a redis URL),
// or "" for an index that does not say.
func (s *Shared) IndexAddr() string {
	if a, ok := s.index.(interface{ Addr() string }); ok {
		return a.Addr()
	}
	return ""
}

// Blobs returns the shared blob store.
func (s *Shared) Blobs() BlobStore { return s.blobs }

// Lookup implements cache.RemoteCache: the newest record of key whose
// blobs are all in the blob store (with the sizes it says).
func (s *Shared) Lookup(ctx context.Context, key digest.Digest) (cache.Hit, error) {
	recs, err := s.index.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	rec, err := usable(ctx, recs, s.blobs, true)
	if err != nil {
		return nil, err
	}
	return s.im.NewHit(rec, s.blobs), nil
}

// Close finishes the writes still running (for at most the flush
// timeout, then it stops them), and closes the index and blob store when
// they can be closed. A step left unwritten is only a miss for the other
// daemons: its blobs are written before its record, so the index never
// names a blob that is not there.
func (s *Shared) Close() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	if n := s.pending.Load(); n > 0 {
		s.log.Info("writing the last steps to the shared cache before stopping", "cache", s.name, "steps", n, "timeout", s.flushTimeout)
	}
	select {
	case <-done:
	case <-time.After(s.flushTimeout):
		s.log.Warn("stopped before every step was written to the shared cache; other daemons will run those steps", "cache", s.name, "steps", s.pending.Load())
	}
	s.cancel()
	<-done
	var errs []error
	for _, x := range []any{s.index, s.blobs} {
		if c, ok := x.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Wait waits for every export queued so far (tests, shutdown).
func (s *Shared) Wait() { s.wg.Wait() }

// Pending returns the steps queued or being written now.
func (s *Shared) Pending() int64 { return s.pending.Load() }

// Begin implements cache.Exporter.
func (s *Shared) Begin(_ context.Context, b cache.Build) (cache.ExportSession, error) {
	pw := b.Progress
	if pw == nil {
		pw = progress.Discard
	}
	return &sharedSession{s: s, build: b.Ref, pw: pw}, nil
}

type sharedSession struct {
	s     *Shared
	build string
	pw    progress.Writer
	wg    sync.WaitGroup
	left  atomic.Int64 // this build's steps not written yet

	mu       sync.Mutex
	warned   bool
	finished bool // the build is over: warnings go to the log only
}

// Add implements cache.ExportSession.
func (ss *sharedSession) Add(st cache.ExportStep) {
	s := ss.s
	// A build the daemon could not stop in its grace period may still
	// hand steps over while Close runs: they are dropped.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		releaseRef(st.Ref)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	ss.wg.Add(1)
	s.pending.Add(1)
	ss.left.Add(1)
	go func() {
		defer s.wg.Done()
		defer ss.wg.Done()
		defer s.pending.Add(-1)
		defer ss.left.Add(-1)
		defer releaseRef(st.Ref)
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
		case <-s.ctx.Done():
			return
		}
		if err := s.export(s.ctx, st, ss.build); err != nil && s.ctx.Err() == nil {
			ss.warn(st, err)
		}
	}()
}

func (ss *sharedSession) warn(st cache.ExportStep, err error) {
	ss.s.log.Warn("shared cache export failed", "cache", ss.s.name, "key", st.Record.Key, "error", err)
	ss.mu.Lock()
	first := !ss.warned && !ss.finished
	ss.warned = true
	ss.mu.Unlock()
	if first {
		ss.pw.Write(progress.Event{Warning: &progress.Warning{
			Message: fmt.Sprintf("shared cache %s: cannot store %s: %v (the build goes on; other agents will not reuse it)", ss.s.name, st.Record.Description, err),
		}})
	}
}

// Finish implements cache.ExportSession. Write-behind, it returns at
// once and the steps still being written go on in the background; with
// Sync it waits for them. Failures are warnings (in the build's progress
// while it runs, in the log after); it returns nil unless ctx ends.
func (ss *sharedSession) Finish(ctx context.Context) error {
	left := ss.left.Load()
	if !ss.s.sync {
		ss.mu.Lock()
		ss.finished = true
		ss.mu.Unlock()
		if left > 0 {
			// Say so, as a finished step: the build does not wait.
			progress.InternalStep(ss.pw, fmt.Sprintf("[internal] shared cache %s: writing the last %d steps in the background", ss.s.name, left))(nil)
		}
		return nil
	}
	step := func(error) {}
	if left > 0 {
		step = progress.InternalStep(ss.pw, "[internal] writing to the shared cache "+ss.s.name)
	}
	done := make(chan struct{})
	go func() {
		ss.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		step(nil)
		return nil
	case <-ctx.Done():
		step(context.Cause(ctx))
		return context.Cause(ctx)
	}
}

// Discard implements cache.ExportSession. Steps already added are still
// written: they finished, and other agents can use them.
func (ss *sharedSession) Discard() {
	ss.mu.Lock()
	ss.finished = true
	ss.mu.Unlock()
}

// unavailable returns why the index is skipped now (indexes with a
// circuit breaker skip their server for a while after a failure).
func (s *Shared) unavailable() error {
	if a, ok := s.index.(interface{ Unavailable() error }); ok {
		return a.Unavailable()
	}
	return nil
}

// export writes one step: its blobs to the store, then its record to the
// index, so that no reader finds a record whose blobs are not there yet.
func (s *Shared) export(ctx context.Context, st cache.ExportStep, build string) error {
	key := st.Record.Key
	if err := s.unavailable(); err != nil {
		return err
	}
	s.mu.Lock()
	done := s.exported[key]
	s.mu.Unlock()
	if done || st.Source == s.name {
		// Written already (by this daemon, or the hit came from here):
		// only refresh its time to live and list it under the build.
		return s.index.Touch(ctx, key, build)
	}
	var layers []Layer
	switch h, isHit := st.Hit.(*Hit); {
	case st.Ref != nil && st.Ref.ID() != "":
		var err error
		if layers, err = s.resultLayers(ctx, st.Ref.ID()); err != nil {
			return err
		}
	case isHit:
		layers = h.Record.Layers
		if err := copyBlobs(ctx, layers, h.Blobs, s.blobs); err != nil {
			return err
		}
	default:
		return nil // nothing this cache can store
	}
	rec := Record{Key: key, Layers: layers, Created: time.Now().UTC(), Writer: s.writer, Inputs: InputsOf(st.Record.Components)}
	if err := s.index.Put(ctx, rec, build); err != nil {
		return err
	}
	s.mu.Lock()
	if len(s.exported) >= maxExported {
		// Forget, rather than grow without bound: a key written again
		// costs a few stats and one HSET.
		clear(s.exported)
	}
	s.exported[key] = true
	s.mu.Unlock()
	return nil
}

// maxExported bounds the keys a Shared remembers having written.
const maxExported = 100_000

// resultLayers returns the shared-store layers of the committed snapshot
// id's chain, made a few at a time.
func (s *Shared) resultLayers(ctx context.Context, id string) ([]Layer, error) {
	chain, err := s.layers.Chain(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]Layer, len(chain))
	errs := make([]error, len(chain))
	var wg sync.WaitGroup
	for i, name := range chain {
		wg.Go(func() { out[i], errs[i] = s.sharedLayer(ctx, name) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// imageComp is the compression of blobs made in the content store, for
// stores that cannot ingest a blob of unknown digest.
func (s *Shared) imageComp() layer.Compression { return layer.Compression{} }

func releaseRef(r ops.Ref) {
	if r != nil {
		_ = r.Release(context.Background())
	}
}
