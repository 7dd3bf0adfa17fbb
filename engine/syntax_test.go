package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/progress"
)

func TestDetectSyntax(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, df string
		args     map[string]string
		img, cmd string
		line     int
		noSyntax bool
	}{
		{name: "first line", df: "# syntax=reg/df:1\nFROM x\n", img: "reg/df:1", cmd: "reg/df:1", line: 1},
		{name: "after blank lines and comments", df: "\n# a comment\n#syntax = reg/df:1 --flag\nFROM x\n", img: "reg/df:1", cmd: "reg/df:1 --flag", line: 3},
		{name: "slash comments", df: "// syntax=reg/other\n", img: "reg/other", cmd: "reg/other", line: 1},
		{name: "after an instruction", df: "FROM x\n# syntax=reg/df:1\n", noSyntax: true},
		{name: "none", df: "FROM x\n", noSyntax: true},
		{name: "build arg wins", df: "# syntax=reg/df:1\n", args: map[string]string{"BUILDKIT_SYNTAX": "reg/pinned:2 x"}, img: "reg/pinned:2", cmd: "reg/pinned:2 x"},
		{name: "empty build arg", df: "# syntax=reg/df:1\n", args: map[string]string{"BUILDKIT_SYNTAX": ""}, img: "reg/df:1", cmd: "reg/df:1", line: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := detectSyntax(Request{Dockerfile: []byte(tc.df), BuildArgs: tc.args})
			if tc.noSyntax {
				if u != nil {
					t.Errorf("found %+v", u)
				}
				return
			}
			if u == nil || u.image != tc.img || u.cmdline != tc.cmd || u.line != tc.line {
				t.Errorf("got %+v, want image %q cmdline %q line %d", u, tc.img, tc.cmd, tc.line)
			}
		})
	}
}

func TestChooseFrontend(t *testing.T) {
	t.Parallel()
	fes := map[string]frontend.Frontend{FrontendDockerfile: nil, FrontendGateway: nil}
	tests := []struct {
		name    string
		policy  SyntaxPolicy
		req     Request
		want    string
		opts    map[string]string
		errIs   error
		errText string
	}{
		{name: "plain", req: Request{Dockerfile: []byte("FROM x\n")}, want: FrontendDockerfile, opts: map[string]string{}},
		{name: "syntax", req: Request{Dockerfile: []byte("# syntax=reg.io/df:1\n")}, want: FrontendGateway,
			opts: map[string]string{"source": "reg.io/df:1", "cmdline": "reg.io/df:1"}},
		{name: "builtin", policy: SyntaxPolicy{Builtin: []string{"docker.io/docker/dockerfile"}}, req: Request{Dockerfile: []byte("# syntax=docker/dockerfile:1.7-labs\n")}, want: FrontendDockerfile, opts: map[string]string{}},
		{name: "pinned", policy: SyntaxPolicy{Pin: "reg.io/vetted:1", Builtin: []string{"docker.io/docker/dockerfile"}}, req: Request{Dockerfile: []byte("# syntax=docker/dockerfile:1 arg\n")}, want: FrontendGateway,
			opts: map[string]string{"source": "reg.io/vetted:1", "cmdline": "reg.io/vetted:1 arg"}},
		{name: "disabled", policy: SyntaxPolicy{Disabled: true}, req: Request{Dockerfile: []byte("# syntax=reg.io/df:1\n")}, errIs: errdefs.ErrPermissionDenied, errText: "Dockerfile:1: # syntax=reg.io/df:1: this kilnd does not run frontend images"},
		{name: "not allowed", policy: SyntaxPolicy{AllowedRepositories: []string{"reg.io/ok"}}, req: Request{Dockerfile: []byte("# syntax=reg.io/df:1\n")}, errIs: errdefs.ErrPermissionDenied, errText: "not from an allowed repository"},
		{name: "allowed", policy: SyntaxPolicy{AllowedRepositories: []string{"reg.io/df"}}, req: Request{Dockerfile: []byte("# syntax=reg.io/df:2\n")}, want: FrontendGateway,
			opts: map[string]string{"source": "reg.io/df:2", "cmdline": "reg.io/df:2"}},
		{name: "bad reference", req: Request{Dockerfile: []byte("# syntax=Not A Ref\n")}, errIs: errdefs.ErrInvalidArgument, errText: "Dockerfile:1"},
		{name: "gateway by name", req: Request{Frontend: FrontendGateway, FrontendOpts: map[string]string{"source": "reg.io/df:1"}}, want: FrontendGateway, opts: map[string]string{"source": "reg.io/df:1"}},
		{name: "gateway without source", req: Request{Frontend: FrontendGateway}, errIs: errdefs.ErrInvalidArgument, errText: `needs the "source" option`},
		{name: "forwarded", req: Request{Dockerfile: []byte("# syntax=reg.io/df:1\n"), FrontendOpts: map[string]string{"cmdline": "x"}}, want: FrontendDockerfile, opts: map[string]string{"cmdline": "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := normalizeSyntax(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			e := &Engine{frontends: fes, syntax: p}
			name, opts, _, err := e.chooseFrontend(tc.req, progress.Discard)
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) || !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("err = %v, want %v containing %q", err, tc.errIs, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != tc.want {
				t.Errorf("frontend %q, want %q", name, tc.want)
			}
			if d := cmp.Diff(tc.opts, opts); d != "" {
				t.Errorf("opts (-want +got):\n%s", d)
			}
		})
	}
}
