package convert

import (
	"fmt"
	"path"
	"strings"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
	"github.com/kiln-build/kiln/graph"
)

// heredocPipeDir is where a RUN heredoc that starts with "#!" is mounted
// as an executable file (BuildKit's location).
const heredocPipeDir = "/dev/pipes/"

// inputs collects the inputs of one vertex, each once.
type inputs struct{ list []*graph.Vertex }

// add returns v's input index, adding it; nil means graph.NoInput.
func (in *inputs) add(v *graph.Vertex) int {
	if v == nil {
		return graph.NoInput
	}
	for i, x := range in.list {
		if x == v || x.Digest() == v.Digest() {
			return i
		}
	}
	in.list = append(in.list, v)
	return len(in.list) - 1
}

func (b *build) dispatchRun(sp step, c *instructions.RunCommand) error {
	st := sp.st
	var in inputs
	exec := &graph.ExecOp{
		Root:     in.add(st.root),
		Cwd:      st.workdir(),
		User:     st.img.Config.User,
		ProxyEnv: b.proxyEnv(st),
	}
	env := st.runEnv()
	args, summary, err := b.runArgs(sp, c, exec, &in)
	if err != nil {
		return err
	}
	exec.Args = args
	var hide []string
	ssh := 0
	for _, m := range c.Mounts {
		gm, err := b.runMount(sp, c, m, &in)
		if err != nil {
			return err
		}
		if m.Type == instructions.MountSSH && gm.Target == "" {
			gm.Target = fmt.Sprintf("/run/buildkit/ssh_agent.%d", ssh)
			if ssh == 0 && !hasEnvKey(env, "SSH_AUTH_SOCK") {
				env = append(env, "SSH_AUTH_SOCK="+gm.Target)
			}
			ssh++
		}
		if gm.Env != "" {
			hide = append(hide, gm.Env)
		}
		exec.Mounts = append(exec.Mounts, gm)
	}
	exec.Env = env
	if err := b.chargeExec(c, exec); err != nil {
		return err
	}
	exec.ExtraHosts = append([]sandbox.HostIP(nil), b.c.req.ExtraHosts...)
	// RUN --network wins over the build's --network.
	exec.Network = c.Network
	if exec.Network == sandbox.NetDefault {
		exec.Network = b.c.req.Network
	}
	exec.Security = c.Security
	name := b.displayText(st, c.Location, hide...)
	if summary != "" {
		name += " (" + summary + ")"
	}
	meta := b.stepMeta(st, sp.name(name), c.Location, sp.key)
	op := graph.Op{Exec: exec, Platform: platformPtr(st.platform)}
	st.root = graph.NewVertex(op, meta, in.list...)
	created := append(st.runHistoryArgs(), args...)
	st.addHistory("RUN "+strings.Join(created, " ")+" # buildkit", true)
	return nil
}

// runArgs returns the argv of a RUN. A heredoc that is the whole command
// runs its body with the shell (or, if it starts with "#!", as an
// executable file mounted at /dev/pipes/); other heredocs go to the shell
// with the command line, which handles them itself. summary is the first
// line of a whole-command heredoc body, for the vertex name.
func (b *build) runArgs(sp step, c *instructions.RunCommand, exec *graph.ExecOp, in *inputs) ([]string, string, error) {
	st := sp.st
	if c.JSON || len(c.Heredocs) == 0 {
		return st.shellArgs(c.CmdLine), "", nil
	}
	text := strings.TrimSpace(strings.Join(c.Args, " "))
	if h := parser.ParseHeredoc(text, b.c.df.Directives.Escape); h != nil && len(c.Heredocs) == 1 && !strings.ContainsAny(text, " \t") {
		doc := c.Heredocs[0]
		body := doc.Body()
		summary := summarizeHeredoc(doc.Content)
		if strings.HasPrefix(body, "#!") {
			file := graph.NewVertex(graph.Op{File: &graph.FileOp{Base: graph.NoInput, Actions: []graph.FileAction{
				{Mkfile: &graph.MkfileAction{Path: "/" + doc.Name, Mode: 0o755, Data: []byte(body)}},
			}}}, graph.Meta{Name: "[internal] preparing inline document"})
			exec.Mounts = append(exec.Mounts, graph.Mount{Type: graph.MountBind, Target: heredocPipeDir, Input: in.add(file), Readonly: true})
			return st.shellArgs(instructions.CmdLine{Args: []string{path.Join(heredocPipeDir, doc.Name)}}), summary, nil
		}
		return st.shellArgs(instructions.CmdLine{Args: []string{body}}), summary, nil
	}
	var sb strings.Builder
	sb.WriteString(c.Args[0])
	for _, h := range c.Heredocs {
		sb.WriteString("\n" + h.Content + h.Name)
	}
	return st.shellArgs(instructions.CmdLine{Args: []string{sb.String()}}), "", nil
}

// summarizeHeredoc is the first line of a heredoc body, with "..." when
// more follow.
func summarizeHeredoc(doc string) string {
	lines := strings.Split(strings.TrimSpace(doc), "\n")
	if len(lines) > 1 {
		return lines[0] + "..."
	}
	return lines[0]
}

// runMount converts one --mount of a RUN.
func (b *build) runMount(sp step, c *instructions.RunCommand, m *instructions.Mount, in *inputs) (graph.Mount, error) {
	st := sp.st
	gm := graph.Mount{Type: graph.MountType(m.Type), Input: graph.NoInput, Readonly: m.ReadOnly}
	if m.Target != "" {
		gm.Target = m.Target
		if !path.IsAbs(gm.Target) {
			gm.Target = path.Join(st.workdir(), gm.Target)
		}
	}
	gm.UID, gm.GID, gm.Mode = intPtr(m.UID), intPtr(m.GID), m.Mode
	switch m.Type {
	case instructions.MountBind, instructions.MountCache:
		var src *graph.Vertex
		switch {
		case m.From != "":
			v, err := b.sourceVertex(st, st.s.froms[m.From])
			if err != nil {
				return gm, err
			}
			src = v
		case m.Type == instructions.MountBind:
			src = b.contextVertex()
		}
		if src != nil || m.Type == instructions.MountBind {
			gm.Input = in.add(src)
		}
		if m.Source != "" {
			gm.Selector = cleanSource(m.Source)
		}
		if m.Type == instructions.MountCache {
			gm.CacheID = m.ID
			switch m.Sharing {
			case instructions.SharingPrivate:
				gm.Sharing = graph.SharingPrivate
			case instructions.SharingLocked:
				gm.Sharing = graph.SharingLocked
			}
		}
	case instructions.MountTmpfs:
		gm.TmpfsSize = m.Size
	case instructions.MountSecret:
		gm.SecretID, gm.Env, gm.Required = m.ID, m.Env, m.Required
	case instructions.MountSSH:
		gm.SSHID, gm.Required = m.ID, m.Required
	default:
		return gm, c.Errorf("RUN --mount=%s: unsupported mount type %q", m.Raw, m.Type)
	}
	return gm, nil
}

func intPtr(v *uint32) *int {
	if v == nil {
		return nil
	}
	i := int(*v)
	return &i
}

// MaxExecData bounds the arguments and environment that the RUN steps of
// one conversion hold together. Every RUN keeps its own copy of the
// stage's environment, so a few megabytes of alternating ENV and RUN lines
// would otherwise ask for gigabytes (n steps, each with n variables).
const MaxExecData = 64 << 20

// chargeExec adds a RUN's arguments and environment to the conversion's
// total and fails once that passes the limit.
func (b *build) chargeExec(c *instructions.RunCommand, exec *graph.ExecOp) error {
	for _, list := range [][]string{exec.Args, exec.Env} {
		for _, s := range list {
			b.execData += len(s)
		}
	}
	limit := b.c.maxExecData
	if limit == 0 {
		limit = MaxExecData
	}
	if b.execData > limit {
		return c.Errorf("RUN: the RUN steps up to here hold more than %d MiB of arguments and environment together (each step copies the stage's ENV and ARG values), the limit per build", limit>>20)
	}
	return nil
}
