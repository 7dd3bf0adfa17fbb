package instructions

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
)

// Dockerfile is a parsed and typed Dockerfile.
type Dockerfile struct {
	// Name is the file name used in messages.
	Name string
	// Directives are the parser directives (escape, syntax, check).
	Directives parser.Directives
	// Checks is the parsed `# check=` directive.
	Checks Checks
	// MetaArgs are the ARG instructions before the first FROM.
	MetaArgs []*ArgCommand
	// Stages are the build stages in order.
	Stages []*Stage
	// Warnings are lint findings not skipped by the check directive, in
	// line order.
	Warnings []parser.Warning
	// AST is the syntax tree the commands were made from.
	AST *parser.Result
}

// Stage is one build stage: a FROM and the commands up to the next FROM.
type Stage struct {
	// Index is the stage's position, from 0 (COPY --from=0 refers to it).
	Index int
	// Name is the AS name in lower case, "" for an unnamed stage.
	Name string
	// From is the stage's FROM instruction.
	From *FromCommand
	// Commands are the instructions after FROM.
	Commands []Command
	// Range spans from the FROM line to the stage's last line.
	Range errdefs.Range
	// Comment is the description from a "# name text" comment directly
	// above the FROM, "" if there is none.
	Comment string
}

// StageByName returns the stage with the given name (case-insensitive).
func (d *Dockerfile) StageByName(name string) (*Stage, bool) {
	for _, s := range d.Stages {
		if s.Name != "" && strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return nil, false
}

// reservedStageNames cannot be used with AS: they mean something else in
// FROM and COPY --from.
var reservedStageNames = map[string]bool{"scratch": true, "context": true}

// Parse parses a whole Dockerfile into meta-ARGs and stages. name is used
// in messages ("Dockerfile:3: ..."). It stops at the first malformed
// instruction; errors are *errdefs.SourceError values in the
// invalid-argument class, or the cause of ctx's cancellation.
func Parse(ctx context.Context, dockerfile []byte, name string) (*Dockerfile, error) {
	ast, err := parser.Parse(ctx, dockerfile, name)
	if err != nil {
		return nil, err
	}
	df := &Dockerfile{Name: name, Directives: ast.Directives, AST: ast}
	if df.Checks, err = parseChecks(ast.Directives, name); err != nil {
		return nil, err
	}
	var cur *Stage
	for i, n := range ast.Nodes {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("parse %s: %w", name, context.Cause(ctx))
		}
		cmd, err := ParseCommand(n, name, ast.Directives.Escape)
		if err != nil {
			return nil, err
		}
		if from, ok := cmd.(*FromCommand); ok {
			if err := checkStageName(df, from); err != nil {
				return nil, err
			}
			cur = &Stage{
				Index:   len(df.Stages),
				Name:    from.StageName,
				From:    from,
				Range:   from.Range,
				Comment: commentFor(n.Comments, from.StageName),
			}
			df.Stages = append(df.Stages, cur)
			continue
		}
		if cur == nil {
			if a, ok := cmd.(*ArgCommand); ok {
				df.MetaArgs = append(df.MetaArgs, a)
				continue
			}
			return nil, cmd.Loc().Errorf("%s cannot come before the first FROM: only ARG can", cmd.Name())
		}
		cur.Commands = append(cur.Commands, cmd)
		cur.Range.End = cmd.Loc().Range.End
	}
	if len(df.Stages) == 0 {
		return nil, &errdefs.SourceError{File: name, Err: errdefs.Invalidf("dockerfile contains no stages to build")}
	}
	df.Warnings = df.Checks.filter(append(append([]parser.Warning(nil), ast.Warnings...), lint(df)...))
	return df, nil
}

func checkStageName(df *Dockerfile, from *FromCommand) error {
	if from.StageName == "" {
		return nil
	}
	if reservedStageNames[from.StageName] {
		return from.Errorf("FROM: stage name %q is reserved and cannot be used with AS", from.AsName)
	}
	if prev, ok := df.StageByName(from.StageName); ok {
		return from.Errorf("FROM: duplicate stage name %q (already used on line %d); stage names must be unique", from.AsName, prev.From.Range.Start)
	}
	return nil
}

// commentFor returns the text of a "# name text" comment for name.
func commentFor(comments []string, name string) string {
	if name == "" {
		return ""
	}
	for _, c := range comments {
		if rest, ok := strings.CutPrefix(c, name+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// ParseCommand turns one syntax node into a typed command. file is the
// Dockerfile's name for messages and escape its escape character (0 means
// '\\'). FROM becomes a *FromCommand.
func ParseCommand(n *parser.Node, file string, escape rune) (Command, error) {
	if escape == 0 {
		escape = '\\'
	}
	loc := Location{File: file, Keyword: n.Keyword, Original: n.Original, Range: n.Range}
	return parseNode(n, loc, escape, n.Heredocs)
}

// request is what the per-instruction parsers work from.
type request struct {
	node     *parser.Node
	loc      Location
	esc      rune
	heredocs []parser.Heredoc
	name     string // canonical upper-case name
}

func (r *request) errorf(format string, args ...any) error { return r.loc.Errorf(format, args...) }

// flags parses the node's flags against defs.
func (r *request) flags(defs ...flagDef) (*flagValues, error) {
	f, err := parseFlags(r.name, r.node.Flags, defs...)
	if err != nil {
		return nil, r.loc.WrapError(err)
	}
	return f, nil
}

// parserFor returns the parser of a lower-case instruction name.
func parserFor(name string) func(*request) (Command, error) {
	switch name {
	case "from":
		return parseFrom
	case "run":
		return parseRun
	case "cmd":
		return parseCmd
	case "entrypoint":
		return parseEntrypoint
	case "shell":
		return parseShell
	case "env":
		return parseEnv
	case "label":
		return parseLabel
	case "arg":
		return parseArg
	case "expose":
		return parseExpose
	case "volume":
		return parseVolume
	case "user":
		return parseUser
	case "workdir":
		return parseWorkdir
	case "stopsignal":
		return parseStopSignal
	case "maintainer":
		return parseMaintainer
	case "onbuild":
		return parseOnbuild
	case "healthcheck":
		return parseHealthcheck
	case "copy":
		return parseCopy
	case "add":
		return parseAdd
	}
	return nil
}

// instructionNames are the known instructions, in upper case and sorted.
var instructionNames = []string{"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
	"LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

func parseNode(n *parser.Node, loc Location, esc rune, heredocs []parser.Heredoc) (Command, error) {
	fn := parserFor(n.Name())
	if fn == nil {
		return nil, loc.WrapError(suggestError(fmt.Sprintf("unknown instruction: %s", n.Keyword), n.Keyword, instructionNames))
	}
	return fn(&request{node: n, loc: loc, esc: esc, heredocs: heredocs, name: strings.ToUpper(n.Keyword)})
}

var validStageName = regexp.MustCompile(`^[a-z][a-z0-9-_.]*$`)

func parseFrom(r *request) (Command, error) {
	f, err := r.flags(flagDef{"platform", stringFlag})
	if err != nil {
		return nil, err
	}
	c := &FromCommand{Location: r.loc, Platform: f.str("platform")}
	args := r.node.Args
	switch {
	case len(args) == 1:
	case len(args) == 3 && strings.EqualFold(args[1], "as"):
		c.AsKeyword, c.AsName, c.StageName = args[1], args[2], strings.ToLower(args[2])
		if !validStageName.MatchString(c.StageName) {
			return nil, r.errorf("FROM: invalid stage name %q: a name starts with a letter and contains only letters, digits, '-', '_' and '.'", args[2])
		}
	default:
		return nil, r.errorf("FROM requires either one argument (FROM image) or three (FROM image AS name), got %d", len(args))
	}
	c.BaseName = args[0]
	return c, nil
}

// noFlags rejects any flag on an instruction that takes none.
func (r *request) noFlags() error {
	_, err := r.flags()
	return err
}

// parseKeyValues turns the parser's (key, value, separator) triples into
// pairs.
func parseKeyValues(r *request) ([]KeyValue, bool, error) {
	if err := r.noFlags(); err != nil {
		return nil, false, err
	}
	args := r.node.Args
	if len(args) == 0 {
		return nil, false, r.errorf("%s requires at least one argument", r.name)
	}
	if len(args)%3 != 0 {
		return nil, false, r.errorf("%s: malformed arguments", r.name)
	}
	var kvs []KeyValue
	legacy := false
	for i := 0; i < len(args); i += 3 {
		if args[i] == "" {
			return nil, false, r.errorf("%s names can not be blank", r.name)
		}
		kvs = append(kvs, KeyValue{Key: args[i], Value: args[i+1]})
		legacy = args[i+2] == ""
	}
	return kvs, legacy, nil
}

func parseEnv(r *request) (Command, error) {
	kvs, legacy, err := parseKeyValues(r)
	if err != nil {
		return nil, err
	}
	return &EnvCommand{Location: r.loc, Env: kvs, Legacy: legacy}, nil
}

func parseLabel(r *request) (Command, error) {
	kvs, legacy, err := parseKeyValues(r)
	if err != nil {
		return nil, err
	}
	return &LabelCommand{Location: r.loc, Labels: kvs, Legacy: legacy}, nil
}

func parseArg(r *request) (Command, error) {
	if err := r.noFlags(); err != nil {
		return nil, err
	}
	if len(r.node.Args) == 0 {
		return nil, r.errorf("ARG requires at least one argument")
	}
	c := &ArgCommand{Location: r.loc}
	for _, a := range r.node.Args {
		k, v, hasValue := strings.Cut(a, "=")
		if k == "" {
			return nil, r.errorf("ARG names can not be blank")
		}
		c.Args = append(c.Args, ArgDecl{Key: k, Value: v, HasValue: hasValue, Comment: commentFor(r.node.Comments, k)})
	}
	return c, nil
}

func parseExpose(r *request) (Command, error) {
	if err := r.noFlags(); err != nil {
		return nil, err
	}
	if len(r.node.Args) == 0 {
		return nil, r.errorf("EXPOSE requires at least one argument")
	}
	for _, p := range r.node.Args {
		if !hasVariable(p) {
			if _, err := ParsePort(p); err != nil {
				return nil, r.errorf("EXPOSE: %v", err)
			}
		}
	}
	return &ExposeCommand{Location: r.loc, Ports: append([]string(nil), r.node.Args...)}, nil
}

func parseVolume(r *request) (Command, error) {
	if err := r.noFlags(); err != nil {
		return nil, err
	}
	if len(r.node.Args) == 0 {
		return nil, r.errorf("VOLUME requires at least one argument")
	}
	c := &VolumeCommand{Location: r.loc, JSON: r.node.JSON}
	for _, v := range r.node.Args {
		v = strings.TrimSpace(v)
		if v == "" {
			return nil, r.errorf("VOLUME specified can not be an empty string")
		}
		c.Volumes = append(c.Volumes, v)
	}
	return c, nil
}

// oneArg returns the single argument of USER, WORKDIR, STOPSIGNAL and
// MAINTAINER.
func oneArg(r *request) (string, error) {
	if err := r.noFlags(); err != nil {
		return "", err
	}
	if len(r.node.Args) != 1 {
		return "", r.errorf("%s requires exactly one argument", r.name)
	}
	return r.node.Args[0], nil
}

func parseUser(r *request) (Command, error) {
	v, err := oneArg(r)
	if err != nil {
		return nil, err
	}
	return &UserCommand{Location: r.loc, User: v}, nil
}

func parseWorkdir(r *request) (Command, error) {
	v, err := oneArg(r)
	if err != nil {
		return nil, err
	}
	return &WorkdirCommand{Location: r.loc, Path: v}, nil
}

func parseMaintainer(r *request) (Command, error) {
	v, err := oneArg(r)
	if err != nil {
		return nil, err
	}
	return &MaintainerCommand{Location: r.loc, Maintainer: v}, nil
}

func parseStopSignal(r *request) (Command, error) {
	v, err := oneArg(r)
	if err != nil {
		return nil, err
	}
	if !hasVariable(v) {
		if err := validateSignal(v); err != nil {
			return nil, r.errorf("STOPSIGNAL: %v", err)
		}
	}
	return &StopSignalCommand{Location: r.loc, Signal: v}, nil
}

var reSignal = regexp.MustCompile(`^([0-9]+|(?i:(SIG)?[A-Z][A-Z0-9]*([+-][0-9]+)?))$`)

func validateSignal(s string) error {
	if !reSignal.MatchString(s) {
		return fmt.Errorf("invalid signal %q: want a name such as SIGTERM or a number", s)
	}
	return nil
}

func parseOnbuild(r *request) (Command, error) {
	if err := r.noFlags(); err != nil {
		return nil, err
	}
	sub := r.node.Sub
	if sub == nil {
		return nil, r.errorf("ONBUILD requires at least one argument")
	}
	switch sub.Name() {
	case "onbuild":
		return nil, r.errorf("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
	case "from", "maintainer":
		return nil, r.errorf("%s isn't allowed as an ONBUILD trigger", strings.ToUpper(sub.Keyword))
	}
	loc := r.loc
	loc.Keyword, loc.Original = sub.Keyword, sub.Original
	trigger, err := parseNode(sub, loc, r.esc, r.heredocs)
	if err != nil {
		var se *errdefs.SourceError
		if errors.As(err, &se) {
			return nil, r.errorf("ONBUILD: %v", se.Err)
		}
		return nil, err
	}
	expr := strings.TrimSpace(r.node.Original[len(r.node.Keyword):])
	for _, h := range r.node.Heredocs {
		expr += "\n" + h.Content + h.Name
	}
	return &OnbuildCommand{Location: r.loc, Expression: expr, Trigger: trigger}, nil
}
