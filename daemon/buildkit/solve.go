package buildkit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/solver/pb"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/session"
)

// Frontend names a BuildKit client asks for.
const (
	frontendDockerfile = "dockerfile.v0"
	frontendGateway    = "gateway.v0"
)

// Solve runs one build. Its progress is what Status streams for the same
// ref.
func (c *control) Solve(ctx context.Context, req *controlapi.SolveRequest) (*controlapi.SolveResponse, error) {
	st, err := c.s.solves.begin(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.s.solve(ctx, req, st)
	c.s.solves.end(st)
	// Whatever the Solve did, the build's gateway state goes with it
	// (also when it ended before waiting for the client's Return).
	c.s.bridge.forget(req.Ref)
	return resp, err
}

func (s *Service) solve(ctx context.Context, req *controlapi.SolveRequest, st *solve) (*controlapi.SolveResponse, error) {
	if err := unsupportedSolve(req); err != nil {
		return nil, err
	}
	job := solveJob{frontend: req.Frontend, attrs: req.FrontendAttrs, inputs: req.FrontendInputs}
	if req.Definition != nil && len(req.Definition.Def) > 0 {
		// An LLB definition (buildctl build without --frontend): the
		// engine converts it (frontend/llb); frontend attributes have no
		// frontend to go to.
		job = solveJob{def: req.Definition}
	} else if req.Frontend == "" {
		// A client-side build function (docker buildx) drives the build
		// through the gateway bridge; it returns what to export.
		ret, err := s.bridge.await(ctx, req.Ref)
		if err != nil {
			return nil, err
		}
		if ret.job == nil {
			return &controlapi.SolveResponse{ExporterResponse: map[string]string{}}, nil
		}
		s.solves.setWarnings(st, ret.warnings)
		job = *ret.job
	}
	caller, err := s.caller(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	sess := newSessionAdapter(req.Ref, caller, s.peer(req.Session))
	ereq := engine.Request{Ref: req.Ref, HasContext: true, Entitlements: req.Entitlements}
	o, err := job.request(&ereq)
	if err != nil {
		return nil, err
	}
	if o != nil && o.contextDir != "context" {
		sess.names = map[string]string{"context": o.contextDir}
	}
	if ereq.Outputs, err = s.outputs(ctx, req, sess); err != nil {
		return nil, err
	}
	cacheOptions(req, o, &ereq)
	if job.frontend == frontendDockerfile {
		if err := s.readDockerfile(ctx, sess, o, &ereq); err != nil {
			return nil, err
		}
	}
	s.solves.markStarted(st)
	res, err := s.o.Engine.Build(ctx, ereq, sess, nil)
	if err != nil {
		return nil, err
	}
	return &controlapi.SolveResponse{ExporterResponse: exporterResponse(res.ExporterResponse)}, nil
}

// solveJob is what a build runs: an LLB definition, or a frontend with
// its attributes and inputs.
type solveJob struct {
	frontend string
	attrs    map[string]string
	inputs   map[string]*pb.Definition
	def      *pb.Definition
}

// request fills req for the job. For dockerfile.v0 it returns the
// frontend's options (the Dockerfile is read from the client next); the
// Dockerfile's own attributes also go along as they are, for the frontend
// image its `# syntax=` line may name (the engine picks it).
func (j solveJob) request(req *engine.Request) (*dockerfileOpts, error) {
	switch {
	case j.def != nil:
		req.Definition = j.def
		return nil, nil
	case j.frontend == frontendDockerfile:
		if len(j.inputs) > 0 {
			return nil, unimplementedf("frontend inputs for the built-in dockerfile.v0 frontend (LLB states given to it); a frontend image (gateway.v0) takes them")
		}
		req.Frontend = engine.FrontendDockerfile
		req.FrontendOpts = maps.Clone(j.attrs)
		return parseDockerfileAttrs(j.attrs, req)
	case j.frontend == frontendGateway:
		// The frontend image gets the attributes and inputs as they are,
		// as in BuildKit; the engine checks "source" against kilnd's
		// frontend policy.
		req.Frontend = engine.FrontendGateway
		req.FrontendOpts, req.FrontendInputs = maps.Clone(j.attrs), j.inputs
		return nil, nil
	default:
		return nil, errdefs.Invalidf("unknown frontend %q: kilnd has the built-in %s and %s (a frontend image named by source=IMAGE)", j.frontend, frontendDockerfile, frontendGateway)
	}
}

// unsupportedSolve names what a request asks for that Kiln does not do.
func unsupportedSolve(req *controlapi.SolveRequest) error {
	switch {
	case req.EnableSessionExporter:
		return unimplementedf("session exporters (the client choosing exporters during the build)")
	case req.SourcePolicy != nil && len(req.SourcePolicy.Rules) > 0, req.SourcePolicySession != "":
		return unimplementedf("source policies")
	}
	return nil
}

// exporterResponse is the engine's response in BuildKit's form: the image
// descriptor is base64-encoded JSON there.
func exporterResponse(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		if k == exporter.KeyDescriptor {
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		out[k] = v
	}
	return out
}

// maxDockerfile bounds the Dockerfile and .dockerignore read from the
// client.
const maxDockerfile = 8 << 20

// readDockerfile fetches the Dockerfile (and the .dockerignore that goes
// with it) from the client, as BuildKit's dockerfile frontend does: the
// file and <file>.dockerignore from the dockerfile directory, else
// .dockerignore from the context. Both transfers run at once.
func (s *Service) readDockerfile(ctx context.Context, sess *sessionAdapter, o *dockerfileOpts, req *engine.Request) error {
	name := path.Clean(o.filename)
	if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
		return errdefs.Invalidf("filename %q: must be a path inside the dockerfile directory", o.filename)
	}
	req.DockerfileName = o.filename
	var (
		dfDir, ctxDir string
		// ignore is nil without a .dockerignore (readSmall returns a
		// non-nil slice for an empty file).
		ignore []byte
	)
	defer func() {
		for _, d := range []string{dfDir, ctxDir} {
			if d != "" {
				_ = os.RemoveAll(d)
			}
		}
	}()
	var err error
	if dfDir, err = os.MkdirTemp(s.o.ScratchDir, "dockerfile-"); err != nil {
		return err
	}
	if ctxDir, err = os.MkdirTemp(s.o.ScratchDir, "dockerignore-"); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if _, err := sess.SyncDir(gctx, o.dockerfileDir, session.SyncOptions{FollowPaths: []string{name, name + ".dockerignore"}}, dfDir); err != nil {
			return fmt.Errorf("load build definition from %s: %w", o.filename, err)
		}
		return nil
	})
	g.Go(func() error {
		_, err := sess.SyncDir(gctx, o.contextDir, session.SyncOptions{FollowPaths: []string{".dockerignore"}}, ctxDir)
		if errdefs.IsNotFound(err) {
			return nil // no context: no .dockerignore either
		}
		if err == nil {
			ignore, _, err = readSmall(ctxDir, ".dockerignore")
		}
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	df, ok, err := readSmall(dfDir, name)
	if err != nil {
		return err
	}
	if !ok {
		return errdefs.NotFoundf("failed to read dockerfile: open %s: no such file in the client's %q directory", o.filename, o.dockerfileDir)
	}
	req.Dockerfile = df
	if b, ok, err := readSmall(dfDir, name+".dockerignore"); err != nil {
		return err
	} else if ok {
		ignore = b
	}
	req.Dockerignore = ignore
	return nil
}

// readSmall reads dir/name (a regular file, or a symlink to one inside
// dir), reporting ok=false when there is none.
func readSmall(dir, name string) ([]byte, bool, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, false, err
	}
	defer root.Close()
	f, err := root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, errdefs.Invalidf("read %s: %v", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, errdefs.Invalidf("%s is not a regular file", name)
	}
	if fi.Size() > maxDockerfile {
		return nil, false, errdefs.Invalidf("%s is larger than %d bytes", name, maxDockerfile)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	return b, true, nil
}
