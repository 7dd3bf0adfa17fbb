package instructions

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
)

// Checks is the parsed `# check=` directive, e.g.
// "# check=skip=JSONArgsRecommended,StageNameCasing;error=true".
type Checks struct {
	// SkipAll silences every rule (skip=all).
	SkipAll bool
	// Skip lists the rules silenced.
	Skip []string
	// Error asks for the build to fail when warnings remain; the converter
	// acts on it once it has added its own warnings.
	Error bool
}

func parseChecks(d parser.Directives, file string) (Checks, error) {
	var c Checks
	if d.Check == "" {
		return c, nil
	}
	line := 0
	for _, l := range d.Lines {
		if l.Name == "check" {
			line = l.Line
		}
	}
	bad := func(format string, args ...any) error {
		return &errdefs.SourceError{File: file, Range: errdefs.Range{Start: line, End: line},
			Err: errdefs.Invalidf("invalid check directive %q: %s", d.Check, fmt.Sprintf(format, args...))}
	}
	for _, part := range strings.Split(d.Check, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return c, bad("%q is not key=value", part)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "skip":
			for _, r := range strings.Split(v, ",") {
				r = strings.TrimSpace(r)
				if strings.EqualFold(r, "all") {
					c.SkipAll = true
				} else if r != "" {
					c.Skip = append(c.Skip, r)
				}
			}
		case "error":
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "true":
				c.Error = true
			case "false":
				c.Error = false
			default:
				return c, bad("error must be true or false, not %q", v)
			}
		default:
			return c, bad("unknown key %q (valid: skip, error)", k)
		}
	}
	return c, nil
}

// Skips reports whether rule is silenced.
func (c Checks) Skips(rule string) bool {
	return c.SkipAll || slices.ContainsFunc(c.Skip, func(s string) bool { return strings.EqualFold(s, rule) })
}

// filter drops silenced warnings and sorts the rest by line.
func (c Checks) filter(ws []parser.Warning) []parser.Warning {
	var out []parser.Warning
	for _, w := range ws {
		if !c.Skips(w.Rule) {
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Range.Start < out[j].Range.Start })
	return out
}

func warn(rule string, r errdefs.Range, format string, args ...any) parser.Warning {
	return parser.Warning{Rule: rule, Message: fmt.Sprintf(format, args...), Range: r}
}

// lint applies the cheap rules that need only the parsed file.
func lint(df *Dockerfile) []parser.Warning {
	var ws []parser.Warning
	ws = append(ws, lintCasing(df.AST.Nodes)...)
	check := func(c Command, stageHasShell bool) {
		loc := c.Loc()
		switch c := c.(type) {
		case *MaintainerCommand:
			ws = append(ws, warn("MaintainerDeprecated", loc.Range, "Maintainer instruction is deprecated in favor of using label"))
		case *CmdCommand:
			if !c.JSON && len(c.Args) > 0 && !stageHasShell {
				ws = append(ws, warn("JSONArgsRecommended", loc.Range, "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"))
			}
		case *EntrypointCommand:
			if !c.JSON && len(c.Args) > 0 && !stageHasShell {
				ws = append(ws, warn("JSONArgsRecommended", loc.Range, "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals"))
			}
		case *ArgCommand:
			ws = append(ws, lintSecretArgs(c)...)
		case *EnvCommand:
			for _, kv := range c.Env {
				if looksSecret(kv.Key) {
					ws = append(ws, secretWarning("ENV", kv.Key, loc.Range))
				}
			}
			if c.Legacy {
				ws = append(ws, warn("LegacyKeyValueFormat", loc.Range, `"ENV key=value" should be used instead of legacy "ENV key value" format`))
			}
		case *LabelCommand:
			if c.Legacy {
				ws = append(ws, warn("LegacyKeyValueFormat", loc.Range, `"LABEL key=value" should be used instead of legacy "LABEL key value" format`))
			}
		}
	}
	for _, a := range df.MetaArgs {
		ws = append(ws, lintSecretArgs(a)...)
	}
	for _, s := range df.Stages {
		f := s.From
		if f.AsName != "" {
			if f.AsName != strings.ToLower(f.AsName) {
				ws = append(ws, warn("StageNameCasing", f.Range, "Stage name '%s' should be lowercase", f.AsName))
			}
			if isUpper(f.Keyword) && !isUpper(f.AsKeyword) || isLower(f.Keyword) && !isLower(f.AsKeyword) {
				ws = append(ws, warn("FromAsCasing", f.Range, "'%s' and '%s' keywords' casing do not match", f.AsKeyword, f.Keyword))
			}
		}
		hasShell := false
		for _, c := range s.Commands {
			if _, ok := c.(*ShellCommand); ok {
				hasShell = true
			}
			check(c, hasShell)
		}
	}
	return ws
}

func isUpper(s string) bool { return s == strings.ToUpper(s) }
func isLower(s string) bool { return s == strings.ToLower(s) }

// lintCasing flags keywords whose case differs from the file's majority
// (ConsistentInstructionCasing).
func lintCasing(nodes []*parser.Node) []parser.Warning {
	var all []*parser.Node
	for _, n := range nodes {
		for ; n != nil; n = n.Sub {
			all = append(all, n)
		}
	}
	upper, lower := 0, 0
	for _, n := range all {
		switch {
		case isUpper(n.Keyword):
			upper++
		case isLower(n.Keyword):
			lower++
		}
	}
	wantUpper := upper >= lower
	var ws []parser.Warning
	for _, n := range all {
		switch {
		case wantUpper && isUpper(n.Keyword), !wantUpper && isLower(n.Keyword):
		case !isUpper(n.Keyword) && !isLower(n.Keyword):
			ws = append(ws, warn("ConsistentInstructionCasing", n.Range, "Command '%s' should be consistently cased", n.Keyword))
		case wantUpper:
			ws = append(ws, warn("ConsistentInstructionCasing", n.Range, "Command '%s' should match the case of the command majority (uppercase)", n.Keyword))
		default:
			ws = append(ws, warn("ConsistentInstructionCasing", n.Range, "Command '%s' should match the case of the command majority (lowercase)", n.Keyword))
		}
	}
	return ws
}

// secretWords are the words of a variable name (split at "_", any case)
// that BuildKit's SecretsUsedInArgOrEnv check takes for a secret, and
// notSecretWords those that clear the name again (PUBLIC_KEY, SSH_KEY_FILE,
// API_KEY_VERSION).
var (
	secretWords = map[string]bool{
		"apikey": true, "auth": true, "credential": true, "credentials": true, "key": true,
		"password": true, "pword": true, "passwd": true, "secret": true, "token": true,
	}
	notSecretWords = map[string]bool{"public": true, "file": true, "version": true}
)

// looksSecret reports whether a build arg or ENV name looks like it holds
// a secret: one of its "_"-separated words (any case) is a secret word and
// none is a clearing word.
func looksSecret(name string) bool {
	secret := false
	for _, w := range strings.Split(strings.ToLower(name), "_") {
		if notSecretWords[w] {
			return false
		}
		secret = secret || secretWords[w]
	}
	return secret
}

func secretWarning(instruction, key string, r errdefs.Range) parser.Warning {
	return warn("SecretsUsedInArgOrEnv", r, "Do not use ARG or ENV instructions for sensitive data (%s %q)", instruction, key)
}

func lintSecretArgs(c *ArgCommand) []parser.Warning {
	var ws []parser.Warning
	for _, d := range c.Args {
		if looksSecret(d.Key) {
			ws = append(ws, secretWarning("ARG", d.Key, c.Loc().Range))
		}
	}
	return ws
}
