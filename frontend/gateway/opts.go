package gateway

import (
	"path"
	"sort"
	"strings"

	"github.com/containerd/platforms"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/frontend"
)

// Opts returns the BuildKit frontend options a gateway frontend gets for
// req: what its typed fields say, in the keys buildx uses (filename,
// target, build-arg:*, label:*, platform, context:*, no-cache, add-hosts,
// force-network-mode), overridden by req.Opts.
func Opts(req frontend.Request) map[string]string {
	o := map[string]string{}
	if req.DockerfileName != "" {
		o["filename"] = path.Base(req.DockerfileName)
	}
	if req.Target != "" {
		o["target"] = req.Target
	}
	for k, v := range req.BuildArgs {
		o["build-arg:"+k] = v
	}
	for k, v := range req.Labels {
		o["label:"+k] = v
	}
	if len(req.Platforms) > 0 {
		var ps []string
		for _, p := range req.Platforms {
			ps = append(ps, platforms.Format(p))
		}
		o["platform"] = strings.Join(ps, ",")
	}
	for name, nc := range req.NamedContexts {
		switch {
		case nc.Local != "":
			o["context:"+name] = "local:" + nc.Local
		case nc.Image != "":
			o["context:"+name] = "docker-image://" + nc.Image
		}
	}
	switch {
	case req.NoCache:
		o["no-cache"] = ""
	case len(req.NoCacheFilter) > 0:
		o["no-cache"] = strings.Join(req.NoCacheFilter, ",")
	}
	if len(req.ExtraHosts) > 0 {
		var hs []string
		for _, h := range req.ExtraHosts {
			hs = append(hs, h.Host+"="+h.IP.String())
		}
		sort.Strings(hs)
		o["add-hosts"] = strings.Join(hs, ",")
	}
	switch req.Network {
	case sandbox.NetNone, sandbox.NetHost:
		o["force-network-mode"] = req.Network.String()
	}
	for k, v := range req.Opts {
		o[k] = v
	}
	return o
}
