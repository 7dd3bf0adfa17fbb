package engine

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/cache/remote"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine/history"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/session"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source/image"
)

// Request is one build, as the client asked for it.
type Request struct {
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
	// "", "default", "none" or "host".
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
	// CacheFrom and CacheTo are the --cache-from and --cache-to values,
	// checked by remote.ParseImport and remote.ParseExport.
	CacheFrom []remote.ImportSpec
	CacheTo   []CacheExport
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
// finishes; after a successful one the automatic gc may run.
func (e *Engine) Build(ctx context.Context, req Request, sess session.Session, pw progress.Writer) (res *Result, err error) {
	start := time.Now()
	if pw == nil {
		pw = progress.Discard
	}
	pw = e.running.start(req.Ref, pw)
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
			rec.Status, rec.Error = history.StatusCanceled, err.Error()
		default:
			rec.Status, rec.Error = history.StatusFailed, err.Error()
		}
		if herr := e.history.Finish(context.WithoutCancel(ctx), rec); herr != nil {
			e.log.Warn("record build history", "ref", req.Ref, "error", herr)
		}
		if err == nil {
			e.disk.AfterBuild()
		}
	}()

	name := req.Frontend
	if name == "" {
		name = "dockerfile"
	}
	fe, ok := e.frontends[name]
	if !ok {
		return nil, errdefs.Invalidf("unknown frontend %q (available: %s)", name, strings.Join(mapKeys(e.frontends), ", "))
	}
	switch req.Network {
	case "", "default", "none", "host":
	default:
		return nil, errdefs.Invalidf("--network %q: want default, none or host", req.Network)
	}
	hosts, err := ParseAddHosts(req.AddHosts)
	if err != nil {
		return nil, err
	}
	plats, err := parsePlatforms(req.Platforms)
	if err != nil {
		return nil, err
	}
	sde, err := sourceDateEpoch(req.BuildArgs)
	if err != nil {
		return nil, err
	}

	// Outputs are checked before anything runs.
	resolver := e.resolver
	if sess != nil {
		resolver = resolver.WithCredentials(image.SessionCredentials(sess))
	}
	exp, err := e.exporters(req, resolver, sde, pw)
	if err != nil {
		return nil, err
	}
	caches, err := e.caches(ctx, req, resolver, sess, pw)
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
	fres, err := e.frontend(ctx, fe, req, plats, hosts, puller, pw)
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

func (e *Engine) frontend(ctx context.Context, fe frontend.Frontend, req Request, plats []ocispec.Platform, hosts []graph.HostIP, r frontend.ImageResolver, pw progress.Writer) (*frontend.Result, error) {
	name := req.DockerfileName
	if name == "" {
		name = "Dockerfile"
	}
	done := internalStep(pw, "[internal] load build definition from "+name)
	res, err := fe.Solve(ctx, frontend.Request{
		Dockerfile: req.Dockerfile, DockerfileName: name, Dockerignore: req.Dockerignore,
		Target: req.Target, BuildArgs: req.BuildArgs, Labels: req.Labels,
		Platforms: plats, BuildPlatform: e.platform, NamedContexts: req.NamedContexts,
		NoCache: req.NoCache, NoCacheFilter: req.NoCacheFilter, Network: req.Network, ExtraHosts: hosts,
		ContextName: "context", SharedKeyHint: req.ContextPath, Resolver: r,
	})
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
		case ex.Security == graph.SecurityInsecure:
			need = EntitlementSecurityInsecure
		case ex.Network == graph.NetHost:
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

// internalStep reports a step that is not a graph vertex (loading the
// Dockerfile, exporting) and returns the function that completes it.
func internalStep(pw progress.Writer, name string) func(error) {
	start := time.Now()
	d := internalDigest(name)
	pw.Write(progress.Event{Vertex: &progress.VertexStatus{Digest: d, Name: name, Started: &start}})
	return func(err error) {
		now := time.Now()
		st := &progress.VertexStatus{Digest: d, Name: name, Started: &start, Completed: &now}
		if err != nil {
			st.Error = err.Error()
		}
		pw.Write(progress.Event{Vertex: st})
	}
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

// ParseAddHosts reads --add-host values: "host:ip" or "host=ip" (an IPv6
// address keeps its colons: the host ends at the first one).
func ParseAddHosts(list []string) ([]graph.HostIP, error) {
	var out []graph.HostIP
	for _, s := range list {
		host, ip, ok := strings.Cut(s, "=")
		if !ok {
			host, ip, ok = strings.Cut(s, ":")
		}
		host, ip = strings.TrimSpace(host), strings.TrimSpace(ip)
		addr, err := netip.ParseAddr(strings.Trim(ip, "[]"))
		switch {
		case !ok || host == "" || strings.ContainsAny(host, " \t\n"):
			return nil, errdefs.Invalidf("--add-host %q: want host:ip or host=ip", s)
		case err != nil:
			return nil, errdefs.Invalidf("--add-host %q: %q is not an IP address", s, ip)
		}
		out = append(out, graph.HostIP{Host: host, IP: addr.String()})
	}
	return out, nil
}

// internalDigest names a progress step that is not a graph vertex.
func internalDigest(name string) digest.Digest {
	return digest.FromString("kiln/internal\x00" + name)
}
