package engine

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/solver/pb"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source/image"
)

// The puller resolves the frontends' base images.
var _ frontend.ImageResolver = (*image.Puller)(nil)

// Request is one build, as the client asked for it.
type Request struct {
	// Ref names the build (the client picks a unique one): its history
	// record, and what Status follows.
	Ref            string
	Frontend       string
	Dockerfile     []byte
	DockerfileName string
	Dockerignore   []byte
	Target         string
	BuildArgs      map[string]string
	Labels         map[string]string
	Platforms      []string
	NamedContexts  map[string]frontend.NamedContext
	NoCache        bool
	NoCacheFilter  []string
	Tags           []string
	Outputs        []Output
	// Network is the network of RUN steps that ask for none (--network):
	// "", "default", "none" or "host" (core/sandbox.ParseNetMode).
	Network string
	// Pull resolves base image tags with their registry even when the
	// image store has them (--pull).
	Pull bool
	// AddHosts are --add-host values (host:ip or host=ip) for every RUN
	// step's /etc/hosts.
	AddHosts     []string
	Entitlements []string
	// ContextPath is the client's context directory; HasContext is false
	// when there is none (a Dockerfile from stdin).
	ContextPath string
	HasContext  bool
	// CacheFrom and CacheTo are the --cache-from and --cache-to values;
	// the backends of their types (Options.Caches) check them first.
	CacheFrom []CacheImport
	CacheTo   []CacheExport

	// FrontendOpts are BuildKit-style frontend options (buildctl --opt;
	// for "gateway.v0": "source" is the frontend image) and
	// FrontendInputs its frontend inputs; both reach the frontend as
	// they are.
	FrontendOpts   map[string]string
	FrontendInputs map[string]*pb.Definition
	// Definition, if set, is a BuildKit LLB definition to build instead
	// of running a frontend (frontend/llb converts it); ImageConfig is
	// then the result's image config (JSON), if it has one.
	Definition  *pb.Definition
	ImageConfig []byte
}

// Output is one --output value. Writer is set for outputs the client
// receives (oci, docker, local and tar with a dest).
type Output struct {
	Type   string
	Attrs  map[string]string
	Writer func() (io.WriteCloser, error)
}

// Result is what a finished build reports.
type Result struct {
	ExporterResponse map[string]string
	Stats            solver.Stats
	Duration         time.Duration
}

// Build runs req: the frontend turns it into a graph per platform, the
// solver runs the graph, the exporters write the result. sess answers the
// build's questions to the client (context files, secrets, credentials);
// pw receives its progress, which Status also hands to whoever follows the
// build by req.Ref. The build is recorded in the history as it starts and
// finishes; then the automatic gc brings the cache under its cap before
// Build returns.
func (e *Engine) Build(ctx context.Context, req Request, sess session.Session, pw progress.Writer) (res *Result, err error) {
	start := time.Now()
	if pw == nil {
		pw = progress.Discard
	}
	// A bad --cache-from or --cache-to fails before the build is
	// recorded, as a request the daemon could not read.
	cacheFns, err := e.parseCaches(req)
	if err != nil {
		return nil, err
	}
	trace := history.NewRecorder()
	pw = e.running.start(req.Ref, progress.Tee(pw, trace))
	sess = recordSecrets(sess, trace)
	rec := history.Record{Ref: req.Ref, Created: start, Target: req.Target, DockerfileName: req.DockerfileName}
	e.history.Start(ctx, rec)
	defer func() {
		e.running.finish(req.Ref)
		rec.Completed = time.Now()
		switch {
		case err == nil:
			rec.Status = history.StatusCompleted
			rec.Steps, rec.Cached, rec.ExporterResponse = res.Stats.Steps, res.Stats.Cached, res.ExporterResponse
		case ctx.Err() != nil:
			rec.Status, rec.Error = history.StatusCanceled, trace.Redact(err.Error())
		default:
			rec.Status, rec.Error = history.StatusFailed, trace.Redact(err.Error())
		}
		rec.Trace, rec.Critical = trace.Steps()
		if err != nil {
			rec.Steps, rec.Cached = countSteps(rec.Trace)
		}
		if herr := e.history.Finish(context.WithoutCancel(ctx), rec); herr != nil {
			e.log.Warn("record build history", "ref", req.Ref, "error", herr)
		}
		// Every build ends with a gc pass (a failed one may have cached
		// steps too), so its client sees the cache under cache-size.
		e.disk.AfterBuild(ctx)
	}()

	var (
		fe    frontend.Frontend
		fopts map[string]string
		use   *syntaxUse
	)
	if req.Definition == nil {
		var name string
		if name, fopts, use, err = e.chooseFrontend(req, pw); err != nil {
			return nil, err
		}
		var ok bool
		if fe, ok = e.frontends[name]; !ok {
			return nil, errdefs.Invalidf("unknown frontend %q (available: %s)", name, strings.Join(mapKeys(e.frontends), ", "))
		}
	}
	in, err := parseRequest(req)
	if err != nil {
		return nil, err
	}

	// Outputs are checked before anything runs.
	resolver := e.resolver
	if sess != nil {
		resolver = resolver.WithCredentials(image.SessionCredentials(sess))
	}
	exp, err := e.exporters(req, resolver, in.epoch, pw)
	if err != nil {
		return nil, err
	}
	caches, err := e.caches(ctx, req, cacheFns, resolver, sess, pw)
	if err != nil {
		return nil, err
	}

	puller := e.puller
	if req.Pull {
		puller = puller.Pulling()
	}
	if sess != nil {
		puller = puller.WithCredentials(image.SessionCredentials(sess))
	}
	br := e.newBridge(req, sess, pw, caches.remotes)
	var fres *frontend.Result
	if req.Definition != nil {
		fres, err = e.definition(ctx, req, in.platforms, br)
	} else {
		if err = e.resolveSyntax(ctx, use, puller); err != nil {
			return nil, err
		}
		freq := e.frontendRequest(req, in, puller)
		freq.Opts, freq.Inputs, freq.Bridge = fopts, req.FrontendInputs, br
		fres, err = e.frontend(ctx, fe, freq, pw)
	}
	if err != nil {
		return nil, err
	}
	roots := make([]*graph.Vertex, len(fres.Images))
	for i, img := range fres.Images {
		roots[i] = img.Root
	}
	if err := e.checkEntitlements(roots, req.Entitlements); err != nil {
		return nil, err
	}

	sol, err := e.solver.Solve(ctx, roots, solver.SolveOpt{
		Session: sess, Progress: pw, NoCache: req.NoCache,
		Remote: caches.remotes, Exporters: caches.exporters,
		// Without an output, nothing needs the result: a remote hit
		// stays where it is.
		KeysOnly: exp == nil,
	})
	if err != nil {
		return nil, err
	}
	defer sol.Release(context.WithoutCancel(ctx))

	resp := map[string]string{}
	if exp != nil {
		r := exporter.Result{Inline: caches.inline}
		for i, img := range fres.Images {
			r.Images = append(r.Images, exporter.Image{Platform: img.Platform, Ref: sol.Results[i].Ref, Config: img.Config, ConfigExt: img.ConfigExt})
		}
		r.Created = e.resultTime(ctx, r)
		out, err := e.export(ctx, exp, r, pw)
		if err != nil {
			return nil, err
		}
		for k, v := range out {
			resp[k] = v
		}
	}
	// The build is done once its cache exports are: --cache-to targets
	// (and shared caches with export = "sync") hold every step before the
	// client hears of success; other shared caches write behind it.
	if err := sol.FinishExports(ctx); err != nil {
		return nil, err
	}
	// Some cache exports tell the client what they wrote (a BuildKit
	// client names a local cache's manifest in its index.json).
	for _, ce := range caches.exporters {
		if r, ok := ce.(interface{ ExporterResponse() map[string]string }); ok {
			for k, v := range r.ExporterResponse() {
				resp[k] = v
			}
		}
	}
	return &Result{ExporterResponse: resp, Stats: sol.Stats, Duration: time.Since(start)}, nil
}

// parsed is what Build reads from a request's strings, once, before
// anything runs.
type parsed struct {
	platforms []ocispec.Platform
	network   sandbox.NetMode
	hosts     []sandbox.HostIP
	epoch     *time.Time // SOURCE_DATE_EPOCH
}

func parseRequest(req Request) (parsed, error) {
	var in parsed
	var ok bool
	if in.network, ok = sandbox.ParseNetMode(req.Network); !ok {
		return in, errdefs.Invalidf("--network %q: want default, none or host", req.Network)
	}
	var err error
	if in.hosts, err = sandbox.ParseHostIPs(req.AddHosts); err != nil {
		return in, err
	}
	if in.platforms, err = parsePlatforms(req.Platforms); err != nil {
		return in, err
	}
	if in.epoch, err = sourceDateEpoch(req.BuildArgs); err != nil {
		return in, err
	}
	return in, nil
}

func (e *Engine) frontendRequest(req Request, in parsed, r frontend.ImageResolver) frontend.Request {
	name := req.DockerfileName
	if name == "" {
		name = "Dockerfile"
	}
	return frontend.Request{
		Dockerfile: req.Dockerfile, DockerfileName: name, Dockerignore: req.Dockerignore,
		Target: req.Target, BuildArgs: req.BuildArgs, Labels: req.Labels,
		Platforms: in.platforms, BuildPlatform: e.platform, NamedContexts: req.NamedContexts,
		NoCache: req.NoCache, NoCacheFilter: req.NoCacheFilter, Network: in.network, ExtraHosts: in.hosts,
		ContextName: "context", SharedKeyHint: req.ContextPath, Resolver: r,
	}
}

func (e *Engine) frontend(ctx context.Context, fe frontend.Frontend, freq frontend.Request, pw progress.Writer) (*frontend.Result, error) {
	done := progress.InternalStep(pw, "[internal] load build definition from "+freq.DockerfileName)
	res, err := fe.Solve(ctx, freq)
	done(err)
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		loc := ""
		if w.File != "" && w.Range.Start > 0 {
			loc = fmt.Sprintf("%s:%d", w.File, w.Range.Start)
		}
		msg := w.Message
		if w.Rule != "" {
			msg = w.Rule + ": " + msg
		}
		if loc != "" {
			msg = loc + ": " + msg
		}
		pw.Write(progress.Event{Warning: &progress.Warning{Message: msg, Location: loc}})
	}
	return res, nil
}

// resultTime is when the result's filesystems were made: the newest of
// their snapshots' creation times. A rebuild that is fully cached reuses
// the snapshots, so it produces the same config and image digest, as
// BuildKit does. An empty result gets the current time.
func (e *Engine) resultTime(ctx context.Context, r exporter.Result) time.Time {
	var t time.Time
	sn := e.snapshotter
	for _, img := range r.Images {
		if img.Ref == nil || img.Ref.ID() == "" {
			continue
		}
		info, err := sn.Stat(ctx, img.Ref.ID())
		if err == nil && info.Created.After(t) {
			t = info.Created
		}
	}
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC()
}

// checkEntitlements refuses privileged steps the build did not ask for or
// the daemon does not grant.
func (e *Engine) checkEntitlements(roots []*graph.Vertex, asked []string) error {
	has := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	return graph.Walk(roots, func(v *graph.Vertex) error {
		ex := v.Op.Exec
		if ex == nil {
			return nil
		}
		need := ""
		switch {
		case ex.Security == sandbox.SecurityInsecure:
			need = EntitlementSecurityInsecure
		case ex.Network == sandbox.NetHost:
			need = EntitlementNetworkHost
		}
		if need == "" {
			return nil
		}
		loc := ""
		if l := v.Meta.Location; l != nil {
			loc = fmt.Sprintf("%s:%d: ", l.File, l.Start)
		}
		if !has(asked, need) {
			return errdefs.WithClass(errdefs.ErrPermissionDenied, fmt.Errorf("%s%s needs the %s entitlement: pass --allow %s to kiln build", loc, v.Meta.Name, need, need))
		}
		if !has(e.allowed, need) {
			return errdefs.WithClass(errdefs.ErrPermissionDenied, fmt.Errorf("%s%s needs the %s entitlement, which this kilnd does not grant (add %q to insecure-entitlements in kilnd.toml)", loc, v.Meta.Name, need, need))
		}
		return nil
	})
}

func parsePlatforms(specs []string) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	for _, s := range specs {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			p, err := platforms.Parse(part)
			if err != nil {
				return nil, errdefs.Invalidf("--platform %q: %v", part, err)
			}
			out = append(out, platforms.Normalize(p))
		}
	}
	return out, nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH from the build args.
func sourceDateEpoch(args map[string]string) (*time.Time, error) {
	v, ok := args["SOURCE_DATE_EPOCH"]
	if !ok || v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, errdefs.Invalidf("build arg SOURCE_DATE_EPOCH=%q: want a Unix time in seconds", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
