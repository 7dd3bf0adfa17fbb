package instructions

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/frontend/dockerfile/parser"
)

// ignoreLoc compares commands without their Location (tested apart).
var ignoreLoc = cmp.Options{cmpopts.IgnoreTypes(Location{}), cmpopts.IgnoreUnexported(FileMode{})}

func u32(v uint32) *uint32 { return &v }
func boolp(v bool) *bool   { return &v }

// parseStage parses "FROM base\n" + body and returns the stage's commands.
func parseStage(t *testing.T, body string) []Command {
	t.Helper()
	df, err := Parse(context.Background(), []byte("FROM base\n"+body), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return df.Stages[0].Commands
}

func TestParseCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []Command
	}{
		{"run shell", "RUN echo \"$HOME\"  &&  ls", []Command{&RunCommand{CmdLine: CmdLine{Args: []string{`echo "$HOME"  &&  ls`}}}}},
		{"run exec", `RUN ["echo", "a b"]`, []Command{&RunCommand{CmdLine: CmdLine{Args: []string{"echo", "a b"}, JSON: true}}}},
		{"run invalid json is shell", `RUN ["echo","hello"]this is invalid`, []Command{&RunCommand{CmdLine: CmdLine{Args: []string{`["echo","hello"]this is invalid`}}}}},
		{"run flags", "RUN --network=none --security=insecure true", []Command{&RunCommand{CmdLine: CmdLine{Args: []string{"true"}}, Network: sandbox.NetNone, Security: sandbox.SecurityInsecure}}},
		{"run heredoc", "RUN <<EOF\necho hi\nEOF", []Command{&RunCommand{CmdLine: CmdLine{Args: []string{"<<EOF"}},
			Heredocs: []parser.Heredoc{{Name: "EOF", Content: "echo hi\n", Expand: true}}}}},
		{"cmd empty json", "CMD []", []Command{&CmdCommand{CmdLine: CmdLine{JSON: true}}}},
		{"cmd shell", "CMD echo hi", []Command{&CmdCommand{CmdLine: CmdLine{Args: []string{"echo hi"}}}}},
		{"entrypoint", `ENTRYPOINT ["/bin/app", "--flag"]`, []Command{&EntrypointCommand{CmdLine: CmdLine{Args: []string{"/bin/app", "--flag"}, JSON: true}}}},
		{"shell", `SHELL ["/bin/bash", "-eo", "pipefail", "-c"]`, []Command{&ShellCommand{Shell: []string{"/bin/bash", "-eo", "pipefail", "-c"}}}},
		{"env forms", "ENV a=1 b=\"x y\"\nENV c d e", []Command{
			&EnvCommand{Env: []KeyValue{{"a", "1"}, {"b", `"x y"`}}},
			&EnvCommand{Env: []KeyValue{{"c", "d e"}}, Legacy: true},
		}},
		{"label", `LABEL "com.example.vendor"="ACME" version=1.0`, []Command{&LabelCommand{Labels: []KeyValue{{`"com.example.vendor"`, `"ACME"`}, {"version", "1.0"}}}}},
		{"arg", "# VERSION the release\nARG VERSION=1.0 DEBUG EMPTY=", []Command{&ArgCommand{Args: []ArgDecl{
			{Key: "VERSION", Value: "1.0", HasValue: true, Comment: "the release"},
			{Key: "DEBUG"},
			{Key: "EMPTY", HasValue: true},
		}}}},
		{"expose", "EXPOSE 80 443/tcp 53/UDP 8000-8010/sctp $PORT", []Command{&ExposeCommand{Ports: []string{"80", "443/tcp", "53/UDP", "8000-8010/sctp", "$PORT"}}}},
		{"volume", "VOLUME /a /b\nVOLUME [\"/c\"]", []Command{&VolumeCommand{Volumes: []string{"/a", "/b"}}, &VolumeCommand{Volumes: []string{"/c"}, JSON: true}}},
		{"user workdir", "USER app:app\nWORKDIR /src dir", []Command{&UserCommand{User: "app:app"}, &WorkdirCommand{Path: "/src dir"}}},
		{"stopsignal", "STOPSIGNAL SIGRTMIN+3\nSTOPSIGNAL 9\nSTOPSIGNAL $SIG", []Command{&StopSignalCommand{Signal: "SIGRTMIN+3"}, &StopSignalCommand{Signal: "9"}, &StopSignalCommand{Signal: "$SIG"}}},
		{"maintainer", "MAINTAINER Jane <jane@example.com>", []Command{&MaintainerCommand{Maintainer: "Jane <jane@example.com>"}}},
		{"onbuild", "ONBUILD RUN make", []Command{&OnbuildCommand{Expression: "RUN make", Trigger: &RunCommand{CmdLine: CmdLine{Args: []string{"make"}}}}}},
		{"onbuild heredoc", "ONBUILD COPY <<EOF /f\nhi\nEOF", []Command{&OnbuildCommand{
			Expression: "COPY <<EOF /f\nhi\nEOF",
			Trigger:    &CopyCommand{SourcesAndDest: SourcesAndDest{Dest: "/f", Contents: []SourceContent{{Path: "EOF", Data: "hi\n", Expand: true}}}},
		}}},
		{"healthcheck none", "HEALTHCHECK NONE", []Command{&HealthcheckCommand{Test: []string{"NONE"}}}},
		{"healthcheck shell", "HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/", []Command{&HealthcheckCommand{
			Test: []string{"CMD-SHELL", "curl -f http://localhost/"}, Interval: 5 * time.Second, Timeout: 3 * time.Second,
			StartPeriod: time.Minute, StartInterval: 2 * time.Second, Retries: 3,
		}}},
		{"healthcheck exec", `HEALTHCHECK --timeout=0s cmd ["foo", "bar"]`, []Command{&HealthcheckCommand{Test: []string{"CMD", "foo", "bar"}}}},
		{"copy", "COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp a b /dst/", []Command{&CopyCommand{
			SourcesAndDest: SourcesAndDest{Sources: []string{"a", "b"}, Dest: "/dst/"},
			CopyFlags: CopyFlags{Chown: "app:app", Chmod: "0755", Mode: &FileMode{Octal: true, Perm: 0755}, Link: true, Parents: true,
				Excludes: []string{"*.md", "tmp"}},
			From: "build",
		}}},
		{"copy json", `COPY ["a b", "/c d/"]`, []Command{&CopyCommand{SourcesAndDest: SourcesAndDest{Sources: []string{"a b"}, Dest: "/c d/", JSON: true}}}},
		{"copy link false", "COPY --link=false --chmod=$MODE a b", []Command{&CopyCommand{SourcesAndDest: SourcesAndDest{Sources: []string{"a"}, Dest: "b"}, CopyFlags: CopyFlags{Chmod: "$MODE"}}}},
		{"copy heredocs", "COPY <<-one <<\"two\" file /dst/\n\tfirst\n\tone\nsecond\ntwo", []Command{&CopyCommand{SourcesAndDest: SourcesAndDest{
			Sources: []string{"file"}, Dest: "/dst/",
			Contents: []SourceContent{{Path: "one", Data: "first\n", Expand: true}, {Path: "two", Data: "second\n"}},
		}}}},
		{"add", "ADD --checksum=sha256:" + sha + " --unpack=true --keep-git-dir https://example.com/a.tar.gz /", []Command{&AddCommand{
			SourcesAndDest: SourcesAndDest{Sources: []string{"https://example.com/a.tar.gz"}, Dest: "/"},
			Checksum:       "sha256:" + sha, KeepGitDir: true, Unpack: boolp(true),
		}}},
		{"add symbolic chmod", "ADD --chmod=u=rw,go=r a /", []Command{&AddCommand{
			SourcesAndDest: SourcesAndDest{Sources: []string{"a"}, Dest: "/"},
			CopyFlags:      CopyFlags{Chmod: "u=rw,go=r", Mode: &FileMode{Symbolic: "u=rw,go=r"}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseStage(t, tt.in)
			if diff := cmp.Diff(tt.want, got, ignoreLoc); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flag string
		want Mount
	}{
		{"target=/ctx", Mount{Type: MountBind, Target: "/ctx", ReadOnly: true}},
		{"type=bind,from=build,source=/out,dst=/in,rw", Mount{Type: MountBind, From: "build", Source: "/out", Target: "/in"}},
		{"type=bind,target=/in,readwrite=false", Mount{Type: MountBind, Target: "/in", ReadOnly: true}},
		{"type=cache,target=/root/.cache", Mount{Type: MountCache, Target: "/root/.cache", ID: "/root/.cache", Sharing: SharingShared}},
		{"Type=Cache,id=go,destination=/go,sharing=LOCKED,mode=0700,uid=1000,gid=1000,ro,from=base,src=/seed",
			Mount{Type: MountCache, ID: "go", Target: "/go", Sharing: SharingLocked, Mode: u32(0700), UID: u32(1000), GID: u32(1000), ReadOnly: true, From: "base", Source: "/seed"}},
		{"target=/c,type=cache,readonly=true", Mount{Type: MountCache, Target: "/c", ID: "/c", Sharing: SharingShared, ReadOnly: true}},
		{"type=tmpfs,target=/tmp,size=64m", Mount{Type: MountTmpfs, Target: "/tmp", Size: 64 << 20}},
		{"type=tmpfs,target=/tmp,size=1.5GiB", Mount{Type: MountTmpfs, Target: "/tmp", Size: 3 << 29}},
		{"type=secret,id=aws", Mount{Type: MountSecret, ID: "aws", Target: "/run/secrets/aws", ReadOnly: true}},
		{"type=secret,target=/etc/token,required,mode=0400,uid=1,gid=2", Mount{Type: MountSecret, ID: "token", Target: "/etc/token", Required: true,
			Mode: u32(0400), UID: u32(1), GID: u32(2), ReadOnly: true}},
		{"type=secret,id=tok,env=TOKEN", Mount{Type: MountSecret, ID: "tok", Env: "TOKEN", ReadOnly: true}},
		{"type=secret,src=tok", Mount{Type: MountSecret, ID: "tok", Target: "/run/secrets/tok", ReadOnly: true}},
		{"type=ssh", Mount{Type: MountSSH, ID: "default", ReadOnly: true}},
		{"type=ssh,id=github,target=/ssh.sock,required=true", Mount{Type: MountSSH, ID: "github", Target: "/ssh.sock", Required: true, ReadOnly: true}},
		{"type=cache,target=$DIR,mode=$MODE", Mount{Type: MountCache, Target: "$DIR", ID: "$DIR", Sharing: SharingShared}},
	}
	for _, tt := range tests {
		cmds := parseStage(t, "RUN --mount="+tt.flag+" true")
		run := cmds[0].(*RunCommand)
		tt.want.Raw = tt.flag
		if diff := cmp.Diff([]*Mount{&tt.want}, run.Mounts); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.flag, diff)
		}
	}
}

// TestMountQuotedField: the flag's own quotes are removed by the parser,
// so a comma inside a value needs CSV quotes inside flag quotes.
func TestMountQuotedField(t *testing.T) {
	t.Parallel()
	run := parseStage(t, `RUN --mount='type=bind,"source=a,b",target=/x' true`)[0].(*RunCommand)
	want := []*Mount{{Raw: `type=bind,"source=a,b",target=/x`, Type: MountBind, Source: "a,b", Target: "/x", ReadOnly: true}}
	if diff := cmp.Diff(want, run.Mounts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseStages(t *testing.T) {
	t.Parallel()
	src := "# syntax=docker/dockerfile:1\n" +
		"ARG GO=1.22\n" +
		"ARG BASE\n" +
		"\n" +
		"# build compiles the app\n" +
		"FROM --platform=$BUILDPLATFORM golang:${GO} AS Build\n" +
		"RUN go build \\\n" +
		"  ./...\n" +
		"\n" +
		"FROM scratch\n" +
		"COPY --from=build /app /app\n"
	df, err := Parse(context.Background(), []byte(src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(df.MetaArgs) != 2 || df.MetaArgs[0].Args[0].Key != "GO" || df.MetaArgs[1].Args[0].Key != "BASE" {
		t.Errorf("meta args: %+v", df.MetaArgs)
	}
	if len(df.Stages) != 2 {
		t.Fatalf("%d stages", len(df.Stages))
	}
	s0, s1 := df.Stages[0], df.Stages[1]
	want0 := &FromCommand{
		Location: Location{File: "Dockerfile", Keyword: "FROM", Original: "FROM --platform=$BUILDPLATFORM golang:${GO} AS Build", Range: errdefs.Range{Start: 6, End: 6}},
		BaseName: "golang:${GO}", Platform: "$BUILDPLATFORM", StageName: "build", AsName: "Build", AsKeyword: "AS",
	}
	if diff := cmp.Diff(want0, s0.From); diff != "" {
		t.Errorf("stage 0 FROM (-want +got):\n%s", diff)
	}
	if s0.Index != 0 || s0.Name != "build" || s0.Comment != "compiles the app" || s0.Range != (errdefs.Range{Start: 6, End: 8}) {
		t.Errorf("stage 0: index %d name %q comment %q range %+v", s0.Index, s0.Name, s0.Comment, s0.Range)
	}
	run := s0.Commands[0].(*RunCommand)
	wantLoc := Location{File: "Dockerfile", Keyword: "RUN", Original: "RUN go build   ./...", Range: errdefs.Range{Start: 7, End: 8}}
	if diff := cmp.Diff(wantLoc, run.Loc()); diff != "" {
		t.Errorf("RUN location (-want +got):\n%s", diff)
	}
	if s1.Index != 1 || s1.Name != "" || s1.From.BaseName != "scratch" || s1.Range != (errdefs.Range{Start: 10, End: 11}) {
		t.Errorf("stage 1: %+v", s1)
	}
	if st, ok := df.StageByName("BUILD"); !ok || st != s0 {
		t.Error("StageByName is not case-insensitive")
	}
	if _, ok := df.StageByName("nope"); ok {
		t.Error("StageByName found a missing stage")
	}
	if df.Directives.Syntax != "docker/dockerfile:1" {
		t.Errorf("syntax directive %q", df.Directives.Syntax)
	}
}

func TestEscapeDirective(t *testing.T) {
	t.Parallel()
	src := "# escape=`\nFROM base\nCOPY <<EOF C:\\dir\\\n$x\nEOF\n"
	df, err := Parse(context.Background(), []byte(src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	c := df.Stages[0].Commands[0].(*CopyCommand)
	if c.Dest != `C:\dir\` || len(c.Contents) != 1 || c.Contents[0].Data != "$x\n" {
		t.Errorf("got %+v", c.SourcesAndDest)
	}
}

func TestAddSources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want AddSource
	}{
		{"a.tar.gz", AddSource{Kind: SourceLocal}},
		{"dir/#notgit", AddSource{Kind: SourceLocal}},
		{"https://example.com/a.tar.gz", AddSource{Kind: SourceURL, Remote: "https://example.com/a.tar.gz"}},
		{"http://example.com/file#frag", AddSource{Kind: SourceURL, Remote: "http://example.com/file#frag"}},
		{"https://github.com/moby/buildkit.git#v0.12.0:frontend", AddSource{Kind: SourceGit, Remote: "https://github.com/moby/buildkit.git", Ref: "v0.12.0", Subdir: "frontend"}},
		{"git@github.com:user/repo.git#main", AddSource{Kind: SourceGit, Remote: "git@github.com:user/repo.git", Ref: "main"}},
		{"git://host/repo", AddSource{Kind: SourceGit, Remote: "git://host/repo"}},
		{"ssh://git@host/repo.git#:sub", AddSource{Kind: SourceGit, Remote: "ssh://git@host/repo.git", Subdir: "sub"}},
	}
	for _, tt := range tests {
		tt.want.Raw = tt.src
		if diff := cmp.Diff(tt.want, ParseAddSource(tt.src)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.src, diff)
		}
	}
	add := &AddCommand{}
	if !add.Unpacks(AddSource{Kind: SourceLocal}) || add.Unpacks(AddSource{Kind: SourceURL}) || add.Unpacks(AddSource{Kind: SourceGit}) {
		t.Error("default unpacking: local only")
	}
	add.Unpack = boolp(false)
	if add.Unpacks(AddSource{Kind: SourceLocal}) {
		t.Error("--unpack=false still unpacks local archives")
	}
	add.Unpack = boolp(true)
	if !add.Unpacks(AddSource{Kind: SourceURL}) || add.Unpacks(AddSource{Kind: SourceGit}) {
		t.Error("--unpack=true: URLs yes, Git no")
	}
}

func TestParsePort(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"80": "80/tcp", "53/UDP": "53/udp", "8000-8010/sctp": "8000-8010/sctp", "0": "0/tcp"} {
		p, err := ParsePort(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePort(%q) = (%v, %v), want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "x", "70000", "1-", "80/", "-1"} {
		if _, err := ParsePort(bad); err == nil {
			t.Errorf("ParsePort(%q) succeeded", bad)
		}
	}
}

func TestHasVariable(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"$A": true, "${A}": true, "a$1": true, "$한": true, "$$": true, "$@": true,
		"a": false, "$": false, "a$": false, "$.": false, "$/x": false,
	} {
		if got := hasVariable(s); got != want {
			t.Errorf("hasVariable(%q) = %v, want %v", s, got, want)
		}
	}
}
