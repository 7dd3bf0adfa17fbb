package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/moby/buildkit/solver/pb"
	"io"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/progress"
)

// progressInterval is how long progress events are gathered into one
// message at most.
const progressInterval = 50 * time.Millisecond

// build serves one Build stream: the first message becomes an
// engine.Request, the stream a session (context sync, secrets, ssh,
// credentials), progress goes out in batches and the result last.
func build(ctx context.Context, b Builder, stream BuildStream) error {
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("build: read request: %w", err)
	}
	req := first.GetRequest()
	if req == nil {
		return errdefs.Invalidf("build: the first message must be a BuildRequest, got %T", first.GetMsg())
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	sess := newStreamSession(req, stream)
	go sess.receive(ctx, cancel)

	buf := progress.NewBuffer()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		sess.sendProgress(buf)
	}()

	ereq, err := engineRequest(req, sess)
	if err == nil {
		var res *engine.Result
		res, err = b.Build(ctx, ereq, sess, buf)
		buf.Close()
		<-progressDone
		if err == nil {
			return sess.send(&api.BuildServerMessage{Msg: &api.BuildServerMessage_Result{Result: &api.BuildResult{
				ExporterResponse: res.ExporterResponse,
				Steps:            int32(res.Stats.Steps),
				Cached:           int32(res.Stats.Cached),
				DurationNs:       int64(res.Duration),
			}}})
		}
	} else {
		buf.Close()
		<-progressDone
	}
	if cause := context.Cause(ctx); cause != nil && errors.Is(err, context.Canceled) && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return err
}

// engineRequest converts the wire request.
func engineRequest(r *api.BuildRequest, sess *StreamSession) (engine.Request, error) {
	req := engine.Request{
		Ref: r.GetRef(), Frontend: r.GetFrontend(),
		Dockerfile: r.GetDockerfile(), DockerfileName: r.GetDockerfileName(),
		Target: r.GetTarget(), BuildArgs: r.GetBuildArgs(), Labels: r.GetLabels(),
		Platforms: r.GetPlatforms(), NoCache: r.GetNoCache(), NoCacheFilter: r.GetNoCacheFilter(), Network: r.GetNetwork(), Pull: r.GetPull(), AddHosts: r.GetAddHosts(),
		Tags: r.GetTags(), Entitlements: r.GetEntitlements(),
		ContextPath: r.GetContextPath(), HasContext: r.GetHasContext(),
	}
	if b := r.GetLlbDefinition(); len(b) > 0 {
		def := &pb.Definition{}
		if err := def.UnmarshalVT(b); err != nil {
			return req, errdefs.Invalidf("--llb: the file is not a BuildKit LLB definition: %v", err)
		}
		req.Definition = def
	}
	if r.GetHasDockerignore() {
		req.Dockerignore = r.GetDockerignore()
		if req.Dockerignore == nil {
			req.Dockerignore = []byte{}
		}
	}
	if len(r.GetNamedContexts()) > 0 {
		req.NamedContexts = map[string]frontend.NamedContext{}
		for _, nc := range r.GetNamedContexts() {
			switch {
			case nc.GetImage() != "":
				req.NamedContexts[nc.GetName()] = frontend.NamedContext{Image: nc.GetImage()}
			case nc.GetLocalPath() != "":
				req.NamedContexts[nc.GetName()] = frontend.NamedContext{Local: "context:" + nc.GetName()}
			default:
				return req, errdefs.Invalidf("--build-context %s: neither a directory nor an image", nc.GetName())
			}
		}
	}
	for i, o := range r.GetOutputs() {
		out := engine.Output{Type: o.GetType(), Attrs: o.GetAttrs()}
		if o.GetClientSide() {
			out.Writer = sess.exportWriter(uint32(i))
		}
		req.Outputs = append(req.Outputs, out)
	}
	if err := cacheOptions(&req, r, sess); err != nil {
		return req, err
	}
	return req, nil
}

// cacheOptions adds the --cache-from and --cache-to values to req (the
// engine checks them with the backends of their types). A type=local
// export is written to the client as a tar stream on the output index
// after the -o outputs.
func cacheOptions(req *engine.Request, r *api.BuildRequest, sess *StreamSession) error {
	for _, c := range r.GetCacheFrom() {
		req.CacheFrom = append(req.CacheFrom, engine.CacheImport{Type: c.GetType(), Attrs: c.GetAttrs()})
	}
	for i, c := range r.GetCacheTo() {
		ce := engine.CacheExport{Type: c.GetType(), Attrs: c.GetAttrs()}
		if c.GetType() == remote.TypeLocal && sess != nil {
			ce.Output = sess.exportWriter(uint32(len(r.GetOutputs()) + i))
		}
		req.CacheTo = append(req.CacheTo, ce)
	}
	return nil
}

// sendProgress forwards progress events in batches until buf is closed.
func (s *StreamSession) sendProgress(buf *progress.Buffer) {
	ctx := context.Background()
	for {
		events, ok := buf.Next(ctx)
		if !ok {
			return
		}
		var err error
		for _, batch := range batches(events) {
			if err = s.send(&api.BuildServerMessage{Msg: &api.BuildServerMessage_Status{Status: batch}}); err != nil {
				break
			}
		}
		if err != nil {
			// The client is gone; drain so writers never block.
			for {
				if _, ok := buf.Next(ctx); !ok {
					return
				}
			}
		}
		// Gather events for a moment, unless the build is over.
		select {
		case <-time.After(progressInterval):
		case <-buf.Done():
		}
	}
}

// batches groups events into status batches that keep their order: a
// batch lists vertexes, then logs, then warnings, then usage, so an event of an
// earlier kind after a later one starts a new batch (a step's last log
// line must not arrive after its DONE).
func batches(events []progress.Event) []*api.StatusBatch {
	kind := func(e progress.Event) int {
		switch {
		case e.Vertex != nil:
			return 0
		case e.Log != nil:
			return 1
		case e.Warning != nil:
			return 2
		}
		return 3
	}
	var out []*api.StatusBatch
	cur, last := &api.StatusBatch{}, -1
	for _, e := range events {
		k := kind(e)
		if k < last {
			out = append(out, cur)
			cur = &api.StatusBatch{}
		}
		addEvent(cur, e)
		last = k
	}
	return append(out, cur)
}

func ts(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func addEvent(b *api.StatusBatch, e progress.Event) {
	switch {
	case e.Vertex != nil:
		v := e.Vertex
		st := &api.VertexStatus{
			Digest: v.Digest.String(), Name: v.Name, Started: ts(v.Started), Completed: ts(v.Completed),
			Cached: v.Cached, CacheSource: v.CacheSource, Error: v.Error, MissReason: v.MissReason,
			Current: v.Current, Total: v.Total, Location: v.Location,
		}
		for _, in := range v.Inputs {
			st.Inputs = append(st.Inputs, in.String())
		}
		b.Vertexes = append(b.Vertexes, st)
	case e.Log != nil:
		b.Logs = append(b.Logs, &api.VertexLog{Digest: e.Log.Vertex.String(), Stream: int32(e.Log.Stream), Data: e.Log.Data, Time: timestamppb.New(e.Log.Time)})
	case e.Warning != nil:
		b.Warnings = append(b.Warnings, &api.Warning{Digest: e.Warning.Vertex.String(), Message: e.Warning.Message, Location: e.Warning.Location})
	case e.Usage != nil:
		b.Usages = append(b.Usages, stepUsage(e.Usage))
	}
}

// stepUsage is u on the wire.
func stepUsage(u *progress.Usage) *api.StepUsage {
	if u == nil {
		return nil
	}
	return &api.StepUsage{
		Digest: u.Vertex.String(), WallNs: int64(u.Wall), CpuNs: int64(u.CPU), MemoryPeak: u.MemoryPeak,
		IoRead: u.IORead, IoWrite: u.IOWrite, OomKilled: u.OOMKilled,
	}
}

// exportWriter returns the opener of a client-side output's stream.
func (s *StreamSession) exportWriter(index uint32) func() (io.WriteCloser, error) {
	return func() (io.WriteCloser, error) {
		return &exportStream{s: s, index: index}, nil
	}
}

// exportStream sends what is written to it as ExportData messages of
// exportChunk bytes: writers such as archive/tar write in small pieces,
// and one gRPC message per piece would cost more than the bytes.
type exportStream struct {
	s      *StreamSession
	index  uint32
	mu     sync.Mutex
	buf    []byte
	closed bool
}

const exportChunk = 1 << 20

func (w *exportStream) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errors.New("export stream closed")
	}
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, exportChunk)
		}
		k := min(len(p), exportChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == exportChunk {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *exportStream) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.s.send(&api.BuildServerMessage{Msg: &api.BuildServerMessage_Export{Export: &api.ExportData{Output: w.index, Data: w.buf}}})
	w.buf = w.buf[:0]
	return err
}

func (w *exportStream) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.flush(); err != nil {
		return err
	}
	return w.s.send(&api.BuildServerMessage{Msg: &api.BuildServerMessage_Export{Export: &api.ExportData{Output: w.index, Eof: true}}})
}
