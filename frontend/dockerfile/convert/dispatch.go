package convert

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/frontend/dockerfile/shell"
)

// step is one instruction being dispatched.
type step struct {
	st      *stageState
	key     string // position in the stage, for StepID
	onbuild bool   // an ONBUILD trigger firing
	loc     instructions.Location
}

// name numbers the step's vertex: "[2/4] RUN make", "[2/4] ONBUILD RUN make".
func (s step) name(text string) string {
	if s.onbuild {
		text = "ONBUILD " + text
	}
	return s.st.nextName(text)
}

// dispatch applies one instruction to the stage.
func (b *build) dispatch(st *stageState, cmd instructions.Command, key string, onbuild bool) error {
	sp := step{st: st, key: key, onbuild: onbuild, loc: cmd.Loc()}
	if a, ok := cmd.(*instructions.ArgCommand); ok {
		line, err := b.declareArgs(st, a)
		if err != nil {
			return err
		}
		st.addHistory(line, false)
		return nil
	}
	ex := shell.NewExpander(b.c.lex, st.expandEnv())
	cmd, err := instructions.Expand(cmd, ex)
	if err != nil {
		return err
	}
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		return b.dispatchRun(sp, c)
	case *instructions.CopyCommand:
		return b.dispatchCopy(sp, copyRequest{cmd: c, sd: c.SourcesAndDest, flags: c.CopyFlags, from: c.From})
	case *instructions.AddCommand:
		return b.dispatchCopy(sp, copyRequest{cmd: c, sd: c.SourcesAndDest, flags: c.CopyFlags, add: c})
	case *instructions.WorkdirCommand:
		return b.dispatchWorkdir(sp, c)
	case *instructions.EnvCommand:
		parts := make([]string, 0, len(c.Env))
		for _, kv := range c.Env {
			st.img.Config.Env = setEnv(st.img.Config.Env, kv.Key, kv.Value)
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		st.addHistory("ENV "+strings.Join(parts, " "), false)
	case *instructions.LabelCommand:
		if st.img.Config.Labels == nil {
			st.img.Config.Labels = map[string]string{}
		}
		parts := make([]string, 0, len(c.Labels))
		for _, kv := range c.Labels {
			st.img.Config.Labels[kv.Key] = kv.Value
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		st.addHistory("LABEL "+strings.Join(parts, " "), false)
	case *instructions.ExposeCommand:
		return dispatchExpose(st, c)
	case *instructions.VolumeCommand:
		if st.img.Config.Volumes == nil {
			st.img.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			st.img.Config.Volumes[v] = struct{}{}
		}
		st.addHistory(fmt.Sprintf("VOLUME %v", c.Volumes), false)
	case *instructions.UserCommand:
		st.img.Config.User = c.User
		st.addHistory("USER "+c.User, false)
	case *instructions.CmdCommand:
		args := st.shellArgs(c.CmdLine)
		st.img.Config.Cmd = args
		//lint:ignore SA1019 Docker still sets it for CMD in shell form; so does BuildKit.
		st.img.Config.ArgsEscaped = true
		st.cmdSet = true
		st.addHistory(fmt.Sprintf("CMD %q", args), false)
	case *instructions.EntrypointCommand:
		args := st.shellArgs(c.CmdLine)
		st.img.Config.Entrypoint = args
		if !st.cmdSet {
			st.img.Config.Cmd = nil
		}
		st.addHistory(fmt.Sprintf("ENTRYPOINT %q", args), false)
	case *instructions.ShellCommand:
		st.img.Config.Shell = append([]string(nil), c.Shell...)
		st.addHistory(fmt.Sprintf("SHELL %v", c.Shell), false)
	case *instructions.StopSignalCommand:
		st.img.Config.StopSignal = c.Signal
		st.addHistory("STOPSIGNAL "+c.Signal, false)
	case *instructions.HealthcheckCommand:
		hc := &imageconfig.HealthConfig{Test: append([]string(nil), c.Test...), Interval: c.Interval, Timeout: c.Timeout,
			StartPeriod: c.StartPeriod, StartInterval: c.StartInterval, Retries: c.Retries}
		st.img.Config.Healthcheck = hc
		st.addHistory(fmt.Sprintf("HEALTHCHECK %+v", *hc), false)
	case *instructions.MaintainerCommand:
		st.img.Author = c.Maintainer
		st.addHistory("MAINTAINER "+c.Maintainer, false)
	case *instructions.OnbuildCommand:
		// BuildKit records no history entry for ONBUILD.
		st.img.Config.OnBuild = append(st.img.Config.OnBuild, c.Expression)
	default:
		return cmd.Loc().Errorf("%s is not supported here", cmd.Name())
	}
	return nil
}

// shellArgs is the argv of a RUN, CMD or ENTRYPOINT: the exec form as
// written, or the stage's SHELL (default /bin/sh -c) and the command text.
func (st *stageState) shellArgs(cl instructions.CmdLine) []string {
	if cl.JSON {
		return append([]string{}, cl.Args...)
	}
	sh := st.img.Config.Shell
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(append([]string(nil), sh...), strings.Join(cl.Args, " "))
}

func dispatchExpose(st *stageState, c *instructions.ExposeCommand) error {
	var ports []string
	for _, w := range c.Ports {
		p, err := instructions.ParsePort(w)
		if err != nil {
			return c.Errorf("EXPOSE: %v", err)
		}
		for n := uint32(p.Start); n <= uint32(p.End); n++ {
			ports = append(ports, fmt.Sprintf("%d/%s", n, p.Proto))
		}
	}
	if st.img.Config.ExposedPorts == nil {
		st.img.Config.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range ports {
		st.img.Config.ExposedPorts[p] = struct{}{}
	}
	// BuildKit's history lists the ports of the instruction sorted.
	sort.Strings(ports)
	st.addHistory(fmt.Sprintf("EXPOSE %v", ports), false)
	return nil
}

// workdir returns the stage's working directory ("/" when unset).
func (st *stageState) workdir() string {
	if st.img.Config.WorkingDir == "" {
		return "/"
	}
	return st.img.Config.WorkingDir
}

// resolvePath makes p absolute against the working directory, keeping a
// trailing "/" (it means "a directory" to COPY).
func (st *stageState) resolvePath(p string) string {
	dir := p == "" || p == "." || strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
	if !path.IsAbs(p) {
		p = path.Join(st.workdir(), p)
	}
	p = path.Clean(p)
	if dir && p != "/" {
		p += "/"
	}
	return p
}

// uppercaseFirst upper-cases the instruction keyword of a line.
func uppercaseFirst(s string) string {
	kw, rest, ok := strings.Cut(s, " ")
	if !ok {
		return strings.ToUpper(s)
	}
	return strings.ToUpper(kw) + " " + rest
}

// displayText is an instruction's text for a vertex name: as written,
// with the variables known at this step expanded (quotes kept), keyword in
// upper case. hide lists variables whose values must not be shown
// (secrets given as environment variables).
func (b *build) displayText(st *stageState, loc instructions.Location, hide ...string) string {
	env := stageEnv{s: st, hide: hide}
	lex := b.c.lex
	lex.RawQuotes, lex.RawEscapes, lex.SkipUnset = true, true, true
	text := loc.Original
	if v, err := lex.ProcessWord(text, env); err == nil {
		text = v
	}
	return uppercaseFirst(text)
}
