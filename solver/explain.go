package solver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/graph"
	"github.com/kiln-build/kiln/ops"
)

// explain says in one line why v missed the cache, by comparing its key's
// components with the newest record of the same step. It returns "" when
// there is no earlier record to compare with.
func (b *build) explain(ctx context.Context, v *graph.Vertex, opDigest digest.Digest, parts []cache.Input) string {
	if b.opt.NoCache || v.Meta.IgnoreCache {
		return "cache disabled for this step"
	}
	if v.Meta.StepID == "" {
		return ""
	}
	prev, err := b.s.store.Step(ctx, v.Meta.StepID)
	if err != nil || prev.Components == nil {
		return ""
	}
	return explainDiff(prev.Components, v.Op, opDigest, parts)
}

// explainDiff compares an earlier key's components with the current ones.
func explainDiff(prev *cache.Components, op graph.Op, opDigest digest.Digest, parts []cache.Input) string {
	if prev.OpDigest != opDigest {
		var old graph.Op
		if err := json.Unmarshal(prev.Op, &old); err != nil {
			return "step definition changed"
		}
		return explainOp(old, op.ForDigest())
	}
	if len(prev.Inputs) != len(parts) {
		return "inputs changed"
	}
	for i, cur := range parts {
		old := prev.Inputs[i]
		if old.Content != nil && cur.Content != nil {
			if old.Content.Digest != cur.Content.Digest {
				return explainContent(old.Content, cur.Content)
			}
			continue
		}
		if old.Key != cur.Key {
			name := cur.Name
			if name == "" {
				name = fmt.Sprintf("input %d", i)
			}
			return fmt.Sprintf("previous step changed: %s", name)
		}
	}
	return "no cache record for this key (pruned or never stored)"
}

func explainOp(old, cur graph.Op) string {
	switch {
	case old.Kind() != cur.Kind():
		return "step definition changed"
	case !platformEqual(old, cur):
		return "platform changed"
	case cur.Source != nil && cur.Source.Image != nil && old.Source.Image != nil:
		o, c := old.Source.Image.Ref, cur.Source.Image.Ref
		on, od, _ := strings.Cut(o, "@")
		cn, cd, _ := strings.Cut(c, "@")
		if on == cn {
			return fmt.Sprintf("base image %s digest moved: %s → %s", cn, short(od), short(cd))
		}
		return fmt.Sprintf("base image changed: %s → %s", on, cn)
	case cur.Exec != nil:
		return explainExec(old.Exec, cur.Exec)
	case cur.File != nil:
		return explainFile(old.File, cur.File)
	}
	return "step definition changed"
}

func platformEqual(a, b graph.Op) bool {
	ja, _ := json.Marshal(a.Platform)
	jb, _ := json.Marshal(b.Platform)
	return string(ja) == string(jb)
}

func explainExec(old, cur *graph.ExecOp) string {
	if !slices.Equal(old.Args, cur.Args) {
		return fmt.Sprintf("command changed: %s → %s", quoteCmd(old.Args), quoteCmd(cur.Args))
	}
	if d := envDiff(old.Env, cur.Env); d != "" {
		return d
	}
	switch {
	case old.Cwd != cur.Cwd:
		return fmt.Sprintf("WORKDIR changed: %s → %s", old.Cwd, cur.Cwd)
	case old.User != cur.User:
		return fmt.Sprintf("USER changed: %q → %q", old.User, cur.User)
	case old.Network != cur.Network:
		return fmt.Sprintf("network changed: %q → %q", old.Network, cur.Network)
	case old.Security != cur.Security:
		return fmt.Sprintf("security mode changed: %q → %q", old.Security, cur.Security)
	}
	return "RUN mounts changed"
}

// envDiff names the first variable whose value changed, was added or removed.
func envDiff(old, cur []string) string {
	om, cm := envMap(old), envMap(cur)
	keys := make([]string, 0, len(om)+len(cm))
	for k := range om {
		keys = append(keys, k)
	}
	for k := range cm {
		if _, ok := om[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		o, ook := om[k]
		c, cok := cm[k]
		switch {
		case ook && cok && o != c:
			return fmt.Sprintf("ARG/ENV %s: %s → %s", k, o, c)
		case !ook:
			return fmt.Sprintf("ARG/ENV %s added (%s)", k, c)
		case !cok:
			return fmt.Sprintf("ARG/ENV %s removed (was %s)", k, o)
		}
	}
	if !slices.Equal(old, cur) {
		return "environment order changed"
	}
	return ""
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func explainFile(old, cur *graph.FileOp) string {
	if len(old.Actions) != len(cur.Actions) {
		return "file operation changed"
	}
	for i, ca := range cur.Actions {
		oa := old.Actions[i]
		switch {
		case ca.Copy != nil && oa.Copy != nil:
			if !slices.Equal(ca.Copy.Src, oa.Copy.Src) || ca.Copy.Dest != oa.Copy.Dest {
				return fmt.Sprintf("COPY sources or destination changed: %s → %s",
					strings.Join(append(slices.Clone(oa.Copy.Src), oa.Copy.Dest), " "),
					strings.Join(append(slices.Clone(ca.Copy.Src), ca.Copy.Dest), " "))
			}
			oj, _ := json.Marshal(oa.Copy)
			cj, _ := json.Marshal(ca.Copy)
			if string(oj) != string(cj) {
				return "COPY options changed (--chown, --chmod, --exclude, ...)"
			}
		case ca.PathCopy != nil && oa.PathCopy != nil:
			if ca.PathCopy.Src != oa.PathCopy.Src || ca.PathCopy.Dest != oa.PathCopy.Dest {
				return fmt.Sprintf("copy source or destination changed: %s %s → %s %s", oa.PathCopy.Src, oa.PathCopy.Dest, ca.PathCopy.Src, ca.PathCopy.Dest)
			}
			oj, _ := json.Marshal(oa.PathCopy)
			cj, _ := json.Marshal(ca.PathCopy)
			if string(oj) != string(cj) {
				return "copy options changed (owner, mode, patterns, ...)"
			}
		case ca.Mkfile != nil && oa.Mkfile != nil && string(ca.Mkfile.Data) != string(oa.Mkfile.Data):
			return fmt.Sprintf("content of %s changed", ca.Mkfile.Path)
		}
	}
	return "file operation changed"
}

// explainContent names the files whose content or metadata changed.
func explainContent(old, cur *ops.Content) string {
	var changed, added, removed []string
	for p, d := range cur.Files {
		od, ok := old.Files[p]
		switch {
		case !ok:
			added = append(added, p)
		case od != d:
			changed = append(changed, p)
		}
	}
	for p := range old.Files {
		if _, ok := cur.Files[p]; !ok {
			removed = append(removed, p)
		}
	}
	sort.Strings(changed)
	sort.Strings(added)
	sort.Strings(removed)
	var parts []string
	if len(changed) > 0 {
		parts = append(parts, fileList(changed)+" changed")
	}
	if len(added) > 0 {
		parts = append(parts, fileList(added)+" added")
	}
	if len(removed) > 0 {
		parts = append(parts, fileList(removed)+" removed")
	}
	if len(parts) == 0 {
		return "context files changed"
	}
	return strings.Join(parts, "; ")
}

func fileList(paths []string) string {
	const max = 3
	if len(paths) <= max {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(paths[:max], ", "), len(paths)-max)
}

func quoteCmd(args []string) string {
	s := strings.Join(args, " ")
	s = strings.TrimPrefix(s, "/bin/sh -c ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
