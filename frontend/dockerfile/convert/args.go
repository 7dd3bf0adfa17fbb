package convert

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
	"github.com/kiln-build/kiln/frontend/dockerfile/shell"
)

// defaultPath is the PATH a stage gets when its image sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// proxyArgs are the build args that reach RUN as ProxyEnv (outside every
// cache key) unless the Dockerfile declares them with ARG.
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "FTP_PROXY": true, "NO_PROXY": true, "ALL_PROXY": true,
	"http_proxy": true, "https_proxy": true, "ftp_proxy": true, "no_proxy": true, "all_proxy": true,
}

// platformArgNames are the automatic platform ARGs, in BuildKit's order.
var platformArgNames = []string{"BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
	"TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "TARGETSTAGE"}

// platformArgs returns the automatic platform ARGs for a build on build
// for target; target stage name is "" for the default stage.
func platformArgs(build, target ocispec.Platform, targetStage string) map[string]string {
	if targetStage == "" {
		targetStage = "default"
	}
	return map[string]string{
		"BUILDPLATFORM":  platforms.Format(build),
		"BUILDOS":        build.OS,
		"BUILDARCH":      build.Architecture,
		"BUILDVARIANT":   build.Variant,
		"TARGETPLATFORM": platforms.Format(target),
		"TARGETOS":       target.OS,
		"TARGETARCH":     target.Architecture,
		"TARGETVARIANT":  target.Variant,
		"TARGETSTAGE":    targetStage,
	}
}

// setGlobals computes the global ARGs: the platform ARGs (a --build-arg of
// the same name overrides one), then the ARGs before the first FROM, each
// seeing the ones before it.
func (b *build) setGlobals() error {
	req := b.c.req
	b.globals = platformArgs(req.BuildPlatform, b.platform, req.Target)
	for k := range b.globals {
		if v, ok := req.BuildArgs[k]; ok {
			b.globals[k] = v
		}
	}
	for _, a := range b.c.df.MetaArgs {
		growth := shell.NewExpander(b.c.lex, nil)
		for _, d := range a.Args {
			v, set, err := b.argValue(d, a, shell.Map(b.globals), nil, growth)
			if err != nil {
				return err
			}
			if set {
				b.globals[d.Key] = v
			}
		}
	}
	return nil
}

// argValue returns the value one ARG declaration gives its name: the
// --build-arg, else the default expanded with env, else the global value
// (globals nil for the global ARGs themselves). growth counts what
// expansion adds to the ARG instruction, against shell.MaxExpansion.
func (b *build) argValue(d instructions.ArgDecl, c *instructions.ArgCommand, env shell.Env, globals map[string]string, growth *shell.Expander) (string, bool, error) {
	if v, ok := b.c.req.BuildArgs[d.Key]; ok {
		b.consumed[d.Key] = true
		return v, true, nil
	}
	if d.HasValue {
		v, err := b.c.lex.ProcessWord(d.Value, env)
		if err == nil {
			err = growth.Grow(len(v) - len(d.Value))
		}
		if err != nil {
			return "", false, c.Errorf("ARG %s: %w", d.Key, err)
		}
		return v, true, nil
	}
	if v, ok := globals[d.Key]; ok {
		return v, true, nil
	}
	return "", false, nil
}

// argDecl is an ARG declared in a stage.
type argDecl struct {
	key   string
	value string
	set   bool
}

// declareArgs handles an ARG line in a stage: it adds the names to the
// stage's scope and returns the history line.
func (b *build) declareArgs(s *stageState, c *instructions.ArgCommand) (string, error) {
	var parts []string
	growth := shell.NewExpander(b.c.lex, nil)
	for _, d := range c.Args {
		v, set, err := b.argValue(d, c, s.expandEnv(), b.globals, growth)
		if err != nil {
			return "", err
		}
		s.setArg(argDecl{key: d.Key, value: v, set: set})
		if set {
			parts = append(parts, d.Key+"="+v)
		} else {
			parts = append(parts, d.Key)
		}
	}
	return "ARG " + strings.Join(parts, " "), nil
}

// setArg adds or re-declares an ARG in scope.
func (s *stageState) setArg(a argDecl) {
	for i := range s.args {
		if s.args[i].key == a.key {
			s.args[i] = a
			return
		}
	}
	s.args = append(s.args, a)
}

// expandEnv is the environment words are expanded with: the ARGs in
// scope, overridden by the config's Env (ENV wins over ARG, as in Docker).
func (s *stageState) expandEnv() shell.Env { return stageEnv{s: s} }

// stageEnv looks variables up in the stage's state as it is at the time of
// the lookup, rather than copying every variable into a map for each
// instruction: that copy made a Dockerfile of n ENV and RUN lines cost n²
// map insertions. hide lists names that read as unset.
type stageEnv struct {
	s    *stageState
	hide []string
}

// Lookup implements shell.Env.
func (e stageEnv) Lookup(name string) (string, bool) {
	if slices.Contains(e.hide, name) {
		return "", false
	}
	env := e.s.img.Config.Env
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == name {
			return v, true
		}
	}
	for _, a := range e.s.args {
		if a.key == name && a.set {
			return a.value, true
		}
	}
	return "", false
}

// runEnv is the environment of a RUN: the config's Env, then the ARGs in
// scope with a value that no Env entry overrides.
func (s *stageState) runEnv() []string {
	env := slices.Clone(s.img.Config.Env)
	for _, a := range s.args {
		if a.set && !hasEnvKey(env, a.key) {
			env = append(env, a.key+"="+a.value)
		}
	}
	return env
}

// declared reports whether an ARG of that name is in scope.
func (s *stageState) declared(key string) bool {
	for _, a := range s.args {
		if a.key == key {
			return true
		}
	}
	return false
}

// proxyEnv returns the proxy build args not declared in scope, sorted.
func (b *build) proxyEnv(s *stageState) []string {
	var out []string
	for k, v := range b.c.req.BuildArgs {
		if proxyArgs[k] && !s.declared(k) {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// runHistoryArgs is the "|N K=V ..." prefix BuildKit writes before a RUN
// command in created_by: every ARG in scope with its effective value.
func (s *stageState) runHistoryArgs() []string {
	env := s.expandEnv()
	var parts []string
	for _, a := range s.args {
		v, ok := env.Lookup(a.key)
		if !ok {
			v = a.value
		}
		parts = append(parts, a.key+"="+v)
	}
	if len(parts) == 0 {
		return nil
	}
	return append([]string{fmt.Sprintf("|%d", len(parts))}, parts...)
}

func hasEnvKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// setEnv sets key in env, replacing an existing entry in place.
func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// unusedArgWarnings reports the --build-args no ARG consumed. Proxy and
// platform args, and BuildKit's own, are never reported.
func (b *build) unusedArgWarnings() []frontend.Warning {
	var names []string
	for k := range b.c.req.BuildArgs {
		if b.consumed[k] || proxyArgs[k] || slices.Contains(platformArgNames, k) ||
			strings.HasPrefix(k, "BUILDKIT_") || k == "SOURCE_DATE_EPOCH" {
			continue
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var out []frontend.Warning
	for _, k := range names {
		out = append(out, frontend.Warning{Rule: "UnusedBuildArg", Message: fmt.Sprintf("build arg %s was not consumed by any stage", k)})
	}
	return out
}
