package buildkit

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/frontend"
)

// dockerfileOpts is what the dockerfile.v0 frontend's attributes ask for,
// besides the engine.Request fields they fill.
type dockerfileOpts struct {
	// filename is the Dockerfile's path in the dockerfile directory.
	filename string
	// dockerfileDir and contextDir are the client's local directory
	// names (dockerfilekey, contextkey).
	dockerfileDir, contextDir string
	// cacheImports are the frontend's cache-imports, used when the
	// request's own cache options have none.
	cacheImports []*controlapi.CacheOptionsEntry
}

// ignoredAttrs are attributes that change nothing in a Kiln build: the
// client's command line and capabilities (for frontend images), version
// control details (for provenance), and per-directory shared keys (the
// session's shared key covers them).
var ignoredAttrs = map[string]bool{
	"cmdline": true, "frontend.caps": true, "vcs:revision": true, "vcs:source": true,
	"multi-platform": true,
}

var ignoredPrefixes = []string{"vcs:localdir:", "sharedkey:localdir:", "local-sessionid:"}

// parseDockerfileAttrs fills req from the dockerfile.v0 frontend's
// attributes (as buildctl --opt and docker buildx send them). Attributes
// Kiln cannot honour are errors that name them; unknown ones are
// InvalidArgument errors.
func parseDockerfileAttrs(attrs map[string]string, req *engine.Request) (*dockerfileOpts, error) {
	o := &dockerfileOpts{filename: "Dockerfile", dockerfileDir: "dockerfile", contextDir: "context"}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := o.attr(k, attrs[k], req); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *dockerfileOpts) attr(k, v string, req *engine.Request) error {
	if name, ok := strings.CutPrefix(k, "build-arg:"); ok {
		if req.BuildArgs == nil {
			req.BuildArgs = map[string]string{}
		}
		req.BuildArgs[name] = v
		return nil
	}
	if name, ok := strings.CutPrefix(k, "label:"); ok {
		if req.Labels == nil {
			req.Labels = map[string]string{}
		}
		req.Labels[name] = v
		return nil
	}
	if name, ok := strings.CutPrefix(k, "context:"); ok {
		return o.namedContext(name, v, req)
	}
	if name, ok := strings.CutPrefix(k, "attest:"); ok {
		if disabledAttestation(v) {
			return nil
		}
		return unimplementedf("attestations (attest:%s): kilnd does not produce provenance or SBOM attestations; build without them (buildx --provenance=false --sbom=false)", name)
	}
	for _, p := range ignoredPrefixes {
		if strings.HasPrefix(k, p) {
			return nil
		}
	}
	if ignoredAttrs[k] {
		return nil
	}
	switch k {
	case "filename":
		if v != "" {
			o.filename = v
		}
	case "dockerfilekey":
		if v != "" {
			o.dockerfileDir = v
		}
	case "contextkey":
		if v != "" {
			o.contextDir = v
		}
	case "target":
		req.Target = v
	case "platform":
		if v != "" {
			req.Platforms = []string{v}
		}
	case "no-cache":
		if v == "" {
			req.NoCache = true
		} else {
			req.NoCacheFilter = splitList(v)
		}
	case "add-hosts":
		req.AddHosts = append(req.AddHosts, splitList(v)...)
	case "force-network-mode":
		if v == "sandbox" { // BuildKit's name for the default network
			v = ""
		}
		m, ok := sandbox.ParseNetMode(v)
		if !ok {
			return errdefs.Invalidf("force-network-mode=%q: want sandbox, none or host", v)
		}
		req.Network = m.String()
	case "image-resolve-mode":
		switch v {
		case "pull":
			req.Pull = true
		case "", "default", "local":
		default:
			return errdefs.Invalidf("image-resolve-mode=%q: want default, pull or local", v)
		}
	case "cache-imports":
		if v != "" {
			if err := json.Unmarshal([]byte(v), &o.cacheImports); err != nil {
				return errdefs.Invalidf("cache-imports: %v", err)
			}
		}
	case "cache-from":
		if v != "" {
			return unimplementedf("the cache-from frontend option (BuildKit's old form): use --import-cache")
		}
	case "context":
		// buildx names the context directory it shares; a remote context
		// (a git or https URL) is fetched by BuildKit's frontend itself.
		if isRemote(v) {
			return unimplementedf("remote build contexts (%s): build from a local directory", v)
		}
	case "shm-size", "ulimit", "cgroup-parent", "hostname", "contextsubdir":
		if v != "" && v != "0" {
			return unimplementedf("the %s frontend option", k)
		}
	case "requestid":
		if v != "" {
			return unimplementedf("frontend subrequests (%s: buildx --call/--check/--print)", v)
		}
	case "source":
		return errdefs.Invalidf("source=%s is the gateway.v0 frontend's option (buildctl --frontend gateway.v0 --opt source=IMAGE), or name the image on the Dockerfile's # syntax= line", v)
	default:
		if strings.HasPrefix(k, "input-metadata:") || strings.HasPrefix(k, "input:") {
			return unimplementedf("frontend inputs (%s)", k)
		}
		return errdefs.Invalidf("dockerfile.v0: unknown frontend option %q", k)
	}
	return nil
}

// namedContext maps context:NAME (buildx --build-context NAME=VALUE).
func (o *dockerfileOpts) namedContext(name, v string, req *engine.Request) error {
	if req.NamedContexts == nil {
		req.NamedContexts = map[string]frontend.NamedContext{}
	}
	switch {
	case strings.HasPrefix(v, "docker-image://"):
		req.NamedContexts[name] = frontend.NamedContext{Image: strings.TrimPrefix(v, "docker-image://")}
	case strings.HasPrefix(v, "local:"):
		dir := strings.TrimPrefix(v, "local:")
		if dir == "" {
			return errdefs.Invalidf("context:%s=%s: no directory name", name, v)
		}
		req.NamedContexts[name] = frontend.NamedContext{Local: dir}
	case strings.HasPrefix(v, "input:"):
		return unimplementedf("build contexts from frontend inputs (context:%s=%s)", name, v)
	case strings.HasPrefix(v, "oci-layout://"):
		return unimplementedf("build contexts from OCI layouts (context:%s=%s)", name, v)
	case isRemote(v):
		return unimplementedf("build contexts from URLs (context:%s=%s)", name, v)
	default:
		return errdefs.Invalidf("context:%s=%q: want docker-image://REF or local:NAME", name, v)
	}
	return nil
}

func isRemote(v string) bool {
	for _, p := range []string{"https://", "http://", "git://", "git@", "ssh://"} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// disabledAttestation reports whether an attest: value turns it off
// (buildx --sbom=false sends disabled=true).
func disabledAttestation(v string) bool {
	for _, f := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(f), "=")
		if k == "disabled" {
			b, err := strconv.ParseBool(val)
			return err == nil && b
		}
	}
	return false
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func unimplementedf(format string, args ...any) error {
	return errdefs.WithClass(errdefs.ErrUnimplemented, fmt.Errorf("not supported by kilnd: "+format, args...))
}
