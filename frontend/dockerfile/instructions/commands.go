package instructions

import (
	"errors"
	"fmt"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
)

// Command is one typed instruction. The concrete types are the
// *XxxCommand types of this package; use a type switch.
type Command interface {
	// Name is the canonical upper-case instruction name, e.g. "RUN".
	Name() string
	// Loc says where the command came from.
	Loc() Location
}

// Location says where a command came from.
type Location struct {
	// File is the Dockerfile's name as the user gave it, for messages.
	File string
	// Keyword is the instruction name as written ("RUN", "run").
	Keyword string
	// Original is the instruction as written, continuation lines joined
	// and trimmed, without heredoc bodies (e.g. "RUN echo hi"). It is what
	// image history's created_by is made from.
	Original string
	// Range is the lines the instruction covers, heredoc bodies included.
	Range errdefs.Range
}

// Loc returns l; it makes every command embedding a Location a Command's
// Loc method.
func (l Location) Loc() Location { return l }

// Errorf returns an invalid-argument error at this location:
// "Dockerfile:3: <message>".
func (l Location) Errorf(format string, args ...any) error {
	return l.WrapError(fmt.Errorf(format, args...))
}

// WrapError places err at this location, unless it already names one.
func (l Location) WrapError(err error) error {
	if err == nil {
		return nil
	}
	var se *errdefs.SourceError
	if errors.As(err, &se) {
		return err
	}
	return &errdefs.SourceError{
		File:  l.File,
		Range: l.Range,
		Err:   errdefs.WithClass(errdefs.ErrInvalidArgument, err),
	}
}

// KeyValue is one pair of ENV or LABEL, as written (quotes kept) until
// expanded.
type KeyValue struct {
	Key   string
	Value string
}

// CmdLine is the command of RUN, CMD and ENTRYPOINT.
type CmdLine struct {
	// Args is the argv in exec (JSON) form. In shell form it has one
	// element: the command text exactly as written, continuation lines
	// joined, for the converter to run as SHELL + [text].
	Args []string
	// JSON is set for the exec form.
	JSON bool
}

// FromCommand is FROM [--platform=P] image [AS name].
type FromCommand struct {
	Location
	// BaseName is the image reference or earlier stage name, unexpanded.
	BaseName string
	// Platform is the --platform value, unexpanded; "" if not given.
	Platform string
	// StageName is the AS name in lower case ("" if none); AsName is it as
	// written and AsKeyword the "AS" keyword as written.
	StageName string
	AsName    string
	AsKeyword string
}

// RunCommand is RUN.
type RunCommand struct {
	Location
	CmdLine
	// Heredocs are the bodies of the heredocs on the line, in order (see
	// parser.Heredoc.Body).
	Heredocs []parser.Heredoc
	// Mounts are the --mount flags, in order.
	Mounts []*Mount
	// Network is the --network value; NetDefault when not given or
	// "default" (the build's network).
	Network sandbox.NetMode
	// Security is the --security value; SecuritySandbox when not given.
	Security sandbox.SecurityMode
}

// CmdCommand is CMD.
type CmdCommand struct {
	Location
	CmdLine
}

// EntrypointCommand is ENTRYPOINT. `ENTRYPOINT []` gives JSON with no Args.
type EntrypointCommand struct {
	Location
	CmdLine
}

// ShellCommand is SHELL ["executable", "parameters"].
type ShellCommand struct {
	Location
	Shell []string
}

// EnvCommand is ENV.
type EnvCommand struct {
	Location
	Env []KeyValue
	// Legacy is set for the "ENV key value" form.
	Legacy bool
}

// LabelCommand is LABEL.
type LabelCommand struct {
	Location
	Labels []KeyValue
	// Legacy is set for the "LABEL key value" form.
	Legacy bool
}

// ArgCommand is ARG name[=default] [name[=default]...].
//
// Scoping is the converter's business: an ARG before the first FROM is a
// meta-ARG, usable in FROM lines only; inside a stage, "ARG NAME" without a
// value re-declares a meta-ARG (or build-arg) and brings its value into
// the stage; an ARG applies from its line to the end of its stage.
type ArgCommand struct {
	Location
	Args []ArgDecl
}

// ArgDecl is one name of an ARG line.
type ArgDecl struct {
	Key string
	// Value is the default as written (unexpanded); HasValue tells
	// "ARG X=" (empty default) from "ARG X" (no default).
	Value    string
	HasValue bool
	// Comment is the text of a "# NAME text" comment right above the ARG.
	Comment string
}

// ExposeCommand is EXPOSE port[/proto]...
type ExposeCommand struct {
	Location
	// Ports are the words as written; after Expand, one port spec each
	// (see ParsePort).
	Ports []string
}

// VolumeCommand is VOLUME.
type VolumeCommand struct {
	Location
	Volumes []string
	JSON    bool
}

// UserCommand is USER user[:group].
type UserCommand struct {
	Location
	User string
}

// WorkdirCommand is WORKDIR.
type WorkdirCommand struct {
	Location
	Path string
}

// StopSignalCommand is STOPSIGNAL.
type StopSignalCommand struct {
	Location
	Signal string
}

// MaintainerCommand is the deprecated MAINTAINER.
type MaintainerCommand struct {
	Location
	Maintainer string
}

// OnbuildCommand is ONBUILD <instruction>.
type OnbuildCommand struct {
	Location
	// Expression is the trigger as it goes into the image config: the
	// text after ONBUILD, followed by any heredoc bodies and delimiters.
	Expression string
	// Trigger is the trigger parsed and validated now; it is not expanded
	// (that happens in the build that uses the image).
	Trigger Command
}

// HealthcheckCommand is HEALTHCHECK.
type HealthcheckCommand struct {
	Location
	// Test is ["NONE"], ["CMD", argv...] (exec form) or
	// ["CMD-SHELL", text] (shell form), as in the image config.
	Test []string
	// Zero durations and Retries mean "not set" (inherit the default).
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

// Name implements Command.
func (*FromCommand) Name() string { return "FROM" }

// Name implements Command.
func (*RunCommand) Name() string { return "RUN" }

// Name implements Command.
func (*CmdCommand) Name() string { return "CMD" }

// Name implements Command.
func (*EntrypointCommand) Name() string { return "ENTRYPOINT" }

// Name implements Command.
func (*ShellCommand) Name() string { return "SHELL" }

// Name implements Command.
func (*EnvCommand) Name() string { return "ENV" }

// Name implements Command.
func (*LabelCommand) Name() string { return "LABEL" }

// Name implements Command.
func (*ArgCommand) Name() string { return "ARG" }

// Name implements Command.
func (*ExposeCommand) Name() string { return "EXPOSE" }

// Name implements Command.
func (*VolumeCommand) Name() string { return "VOLUME" }

// Name implements Command.
func (*UserCommand) Name() string { return "USER" }

// Name implements Command.
func (*WorkdirCommand) Name() string { return "WORKDIR" }

// Name implements Command.
func (*StopSignalCommand) Name() string { return "STOPSIGNAL" }

// Name implements Command.
func (*MaintainerCommand) Name() string { return "MAINTAINER" }

// Name implements Command.
func (*OnbuildCommand) Name() string { return "ONBUILD" }

// Name implements Command.
func (*HealthcheckCommand) Name() string { return "HEALTHCHECK" }

// Name implements Command.
func (*CopyCommand) Name() string { return "COPY" }

// Name implements Command.
func (*AddCommand) Name() string { return "ADD" }

var (
	_ Command = (*FromCommand)(nil)
	_ Command = (*RunCommand)(nil)
	_ Command = (*CmdCommand)(nil)
	_ Command = (*EntrypointCommand)(nil)
	_ Command = (*ShellCommand)(nil)
	_ Command = (*EnvCommand)(nil)
	_ Command = (*LabelCommand)(nil)
	_ Command = (*ArgCommand)(nil)
	_ Command = (*ExposeCommand)(nil)
	_ Command = (*VolumeCommand)(nil)
	_ Command = (*UserCommand)(nil)
	_ Command = (*WorkdirCommand)(nil)
	_ Command = (*StopSignalCommand)(nil)
	_ Command = (*MaintainerCommand)(nil)
	_ Command = (*OnbuildCommand)(nil)
	_ Command = (*HealthcheckCommand)(nil)
	_ Command = (*CopyCommand)(nil)
	_ Command = (*AddCommand)(nil)
)
