package llb

import (
	"context"
	"net/netip"
	"path"
	"strings"

	"github.com/moby/buildkit/solver/pb"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/graph"
)

// exec converts one output of an exec op. Output index k is the root
// mount's (usually 0) or a writable bind mount's: each output used becomes
// a vertex of its own that runs the command and keeps that output.
func (o *opCtx) exec(ctx context.Context, e *pb.ExecOp, index int) (*graph.Vertex, error) {
	meta := e.Meta
	if meta == nil || len(meta.Args) == 0 {
		return nil, o.errorf("exec has no command")
	}
	if err := o.checkExecMeta(e); err != nil {
		return nil, err
	}
	x := &graph.ExecOp{
		Args: meta.Args, Env: meta.Env, Cwd: meta.Cwd, User: meta.User,
		Root: graph.NoInput, Hostname: meta.Hostname,
	}
	if x.Cwd == "" {
		x.Cwd = "/"
	}
	for _, c := range meta.ValidExitCodes {
		x.ValidExitCodes = append(x.ValidExitCodes, int(c))
	}
	x.ProxyEnv = proxyEnv(meta.ProxyEnv)
	for _, h := range meta.ExtraHosts {
		ip, err := netip.ParseAddr(h.IP)
		if err != nil || h.Host == "" {
			return nil, o.errorf("extra host %q=%q: want a host name and an IP address", h.Host, h.IP)
		}
		x.ExtraHosts = append(x.ExtraHosts, sandbox.HostIP{Host: h.Host, IP: ip})
	}
	switch e.Network {
	case pb.NetMode_UNSET:
	case pb.NetMode_HOST:
		x.Network = sandbox.NetHost
	case pb.NetMode_NONE:
		x.Network = sandbox.NetNone
	default:
		return nil, o.errorf("network mode %d is unknown", e.Network)
	}
	switch e.Security {
	case pb.SecurityMode_SANDBOX:
	case pb.SecurityMode_INSECURE:
		x.Security = sandbox.SecurityInsecure
	default:
		return nil, o.errorf("security mode %d is unknown", e.Security)
	}

	var ins inputSet
	found := false
	rootSeen := false
	for _, m := range e.Mounts {
		if m.Dest == "/" && m.MountType == pb.MountType_BIND {
			if rootSeen {
				return nil, o.errorf("has two root mounts")
			}
			rootSeen = true
			if m.Selector != "" {
				return nil, o.errorf("root mount: a selector (%q) is not supported", m.Selector)
			}
			if m.Input >= 0 {
				v, err := o.input(ctx, m.Input)
				if err != nil {
					return nil, err
				}
				x.Root = ins.add(v)
			}
			x.ReadonlyRoot = m.Readonly
			if m.Output >= 0 && int(m.Output) == index {
				found = true
			}
			continue
		}
		gm, err := o.mount(ctx, m, &ins)
		if err != nil {
			return nil, err
		}
		// Only bind mounts have outputs (BuildKit's client leaves the
		// field at 0 on secret and ssh mounts).
		if gm.Type == graph.MountBind && m.Output >= 0 && int(m.Output) == index {
			if gm.Readonly {
				return nil, o.errorf("mount %s: only a writable bind mount can be an output", m.Dest)
			}
			if gm.Selector != "" {
				return nil, o.errorf("mount %s: an output mount with a selector (%q) is not supported", m.Dest, gm.Selector)
			}
			x.Output = gm.Target
			found = true
		}
		x.Mounts = append(x.Mounts, gm)
	}
	if !rootSeen {
		return nil, o.errorf("has no root mount")
	}
	if !found {
		return nil, o.errorf("has no output %d", index)
	}
	for _, s := range e.Secretenv {
		if s.ID == "" || s.Name == "" {
			return nil, o.errorf("secret env needs an id and a variable name")
		}
		x.Mounts = append(x.Mounts, graph.Mount{Type: graph.MountSecret, Input: graph.NoInput, SecretID: s.ID, Env: s.Name, Required: !s.Optional})
	}
	name := strings.Join(meta.Args, " ")
	if x.Output != "" {
		name += " (output " + x.Output + ")"
	}
	return o.vertex(graph.Op{Exec: x}, name, ins.vs...)
}

// checkExecMeta fails on the parts of an exec Kiln cannot run as asked.
func (o *opCtx) checkExecMeta(e *pb.ExecOp) error {
	m := e.Meta
	switch {
	case len(m.Ulimit) > 0:
		return o.errorf("meta.ulimit is not supported")
	case m.CgroupParent != "":
		return o.errorf("meta.cgroupParent is not supported")
	case len(e.CdiDevices) > 0:
		return o.errorf("cdiDevices are not supported")
	}
	if md := o.d.meta[o.dgst]; md != nil && md.LinuxResources != nil {
		return o.errorf("linux resource limits (metadata linux_resources) are not supported")
	}
	return nil
}

// proxyEnv turns LLB's proxy settings into variables, both spellings as
// BuildKit sets them.
func proxyEnv(p *pb.ProxyEnv) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, kv := range []struct{ k, v string }{
		{"HTTP_PROXY", p.HttpProxy}, {"HTTPS_PROXY", p.HttpsProxy}, {"FTP_PROXY", p.FtpProxy},
		{"NO_PROXY", p.NoProxy}, {"ALL_PROXY", p.AllProxy},
	} {
		if kv.v != "" {
			out = append(out, kv.k+"="+kv.v, strings.ToLower(kv.k)+"="+kv.v)
		}
	}
	return out
}

// mount converts one extra mount of an exec.
func (o *opCtx) mount(ctx context.Context, m *pb.Mount, ins *inputSet) (graph.Mount, error) {
	if !path.IsAbs(m.Dest) {
		return graph.Mount{}, o.errorf("mount destination %q is not absolute", m.Dest)
	}
	if m.ResultID != "" {
		return graph.Mount{}, o.errorf("mount %s: resultID is not supported", m.Dest)
	}
	gm := graph.Mount{Target: path.Clean(m.Dest), Input: graph.NoInput, Readonly: m.Readonly}
	sel := strings.Trim(path.Clean("/"+m.Selector), "/")
	input := func() error {
		if m.Input < 0 {
			return nil
		}
		v, err := o.input(ctx, m.Input)
		if err != nil {
			return err
		}
		gm.Input = ins.add(v)
		return nil
	}
	switch m.MountType {
	case pb.MountType_BIND:
		gm.Type = graph.MountBind
		gm.Selector = sel
		if err := input(); err != nil {
			return gm, err
		}
	case pb.MountType_CACHE:
		gm.Type = graph.MountCache
		c := m.CacheOpt
		if c == nil || c.ID == "" {
			return gm, o.errorf("cache mount %s has no id", m.Dest)
		}
		gm.CacheID = c.ID
		switch c.Sharing {
		case pb.CacheSharingOpt_SHARED:
		case pb.CacheSharingOpt_PRIVATE:
			gm.Sharing = graph.SharingPrivate
		case pb.CacheSharingOpt_LOCKED:
			gm.Sharing = graph.SharingLocked
		default:
			return gm, o.errorf("cache mount %s: sharing mode %d is unknown", m.Dest, c.Sharing)
		}
		gm.Selector = sel // the part of the input that seeds a new cache
		if err := input(); err != nil {
			return gm, err
		}
	case pb.MountType_TMPFS:
		gm.Type = graph.MountTmpfs
		if m.TmpfsOpt != nil {
			if m.TmpfsOpt.Size < 0 {
				return gm, o.errorf("tmpfs mount %s: negative size", m.Dest)
			}
			gm.TmpfsSize = m.TmpfsOpt.Size
		}
	case pb.MountType_SECRET:
		gm.Type = graph.MountSecret
		s := m.SecretOpt
		if s == nil || s.ID == "" {
			return gm, o.errorf("secret mount %s has no id", m.Dest)
		}
		gm.SecretID, gm.Required = s.ID, !s.Optional
		gm.UID, gm.GID, gm.Mode = ids(s.Uid, s.Gid, s.Mode)
	case pb.MountType_SSH:
		gm.Type = graph.MountSSH
		s := m.SSHOpt
		if s == nil {
			return gm, o.errorf("ssh mount %s has no options", m.Dest)
		}
		gm.SSHID, gm.Required = s.ID, !s.Optional
		if gm.SSHID == "" {
			gm.SSHID = "default"
		}
		gm.UID, gm.GID, gm.Mode = ids(s.Uid, s.Gid, s.Mode)
	default:
		return gm, o.errorf("mount %s: mount type %d is unknown", m.Dest, m.MountType)
	}
	return gm, nil
}

func ids(uid, gid, mode uint32) (*int, *int, *uint32) {
	u, g, m := int(uid), int(gid), mode
	return &u, &g, &m
}
