package instructions

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/frontend/dockerfile/shell"
)

var _ Expander = (*shell.Expander)(nil)

func TestExpand(t *testing.T) {
	t.Parallel()
	env := shell.Map{
		"DIR": "/app", "USER": "app", "PORTS": "80 443/udp", "MODE": "0640", "NAME": "my app",
		"SIG": "SIGINT", "EMPTY": "", "ID": "gocache", "SUM": "sha256:" + sha, "URL": "https://example.com/a.tgz",
	}
	tests := []struct {
		name     string
		in       string
		want     Command
		wantUsed []string
	}{
		{"env", `ENV A=$DIR B="${NAME}" $USER=x`, &EnvCommand{Env: []KeyValue{{"A", "/app"}, {"B", "my app"}, {"app", "x"}}}, []string{"DIR", "NAME", "USER"}},
		{"env legacy", `ENV A "$NAME" 'x'`, &EnvCommand{Env: []KeyValue{{"A", "my app x"}}, Legacy: true}, []string{"NAME"}},
		{"label", `LABEL org.opencontainers.image.title="$NAME"`, &LabelCommand{Labels: []KeyValue{{"org.opencontainers.image.title", "my app"}}}, []string{"NAME"}},
		{"arg", `ARG A=${DIR}/bin B C=`, &ArgCommand{Args: []ArgDecl{{Key: "A", Value: "/app/bin", HasValue: true}, {Key: "B"}, {Key: "C", HasValue: true}}}, []string{"DIR"}},
		{"expose", `EXPOSE $PORTS 8080`, &ExposeCommand{Ports: []string{"80", "443/udp", "8080"}}, []string{"PORTS"}},
		{"volume", `VOLUME ["$DIR/data", "/x"]`, &VolumeCommand{Volumes: []string{"/app/data", "/x"}, JSON: true}, []string{"DIR"}},
		{"user", "USER ${USER}:${USER}", &UserCommand{User: "app:app"}, []string{"USER"}},
		{"workdir", "WORKDIR $DIR/src", &WorkdirCommand{Path: "/app/src"}, []string{"DIR"}},
		{"stopsignal", "STOPSIGNAL $SIG", &StopSignalCommand{Signal: "SIGINT"}, []string{"SIG"}},
		{"copy", "COPY --from=build --chown=$USER --chmod=$MODE --exclude=$DIR/*.md $DIR/a \"$NAME\" $DIR/", &CopyCommand{
			SourcesAndDest: SourcesAndDest{Sources: []string{"/app/a", "my app"}, Dest: "/app/"},
			CopyFlags:      CopyFlags{Chown: "app", Chmod: "0640", Mode: &FileMode{Octal: true, Perm: 0640}, Excludes: []string{"/app/*.md"}},
			From:           "build",
		}, []string{"DIR", "NAME", "USER", "MODE"}},
		{"copy heredocs", "COPY <<A <<'B' /dst/\necho \"$USER\" \\$HOME\nA\n$USER\nB", &CopyCommand{SourcesAndDest: SourcesAndDest{
			Dest:     "/dst/",
			Contents: []SourceContent{{Path: "A", Data: "echo \"app\" $HOME\n", Expand: true}, {Path: "B", Data: "$USER\n"}},
		}}, []string{"USER"}},
		{"add", "ADD --checksum=$SUM $URL /", &AddCommand{
			SourcesAndDest: SourcesAndDest{Sources: []string{"https://example.com/a.tgz"}, Dest: "/"},
			Checksum:       "sha256:" + sha,
		}, []string{"URL", "SUM"}},
		{"run mounts", "RUN --mount=type=cache,id=$ID,target=$DIR/.cache --mount=type=secret,id=${ID}tok echo $NOT_EXPANDED", &RunCommand{
			CmdLine: CmdLine{Args: []string{"echo $NOT_EXPANDED"}},
			Mounts: []*Mount{
				{Raw: "type=cache,id=$ID,target=$DIR/.cache", Type: MountCache, ID: "gocache", Target: "/app/.cache", Sharing: SharingShared},
				{Raw: "type=secret,id=${ID}tok", Type: MountSecret, ID: "gocachetok", Target: "/run/secrets/gocachetok", ReadOnly: true},
			},
		}, []string{"ID", "DIR"}},
		{"cmd untouched", "CMD echo $DIR", &CmdCommand{CmdLine: CmdLine{Args: []string{"echo $DIR"}}}, nil},
		{"onbuild untouched", "ONBUILD WORKDIR $DIR", &OnbuildCommand{Expression: "WORKDIR $DIR", Trigger: &WorkdirCommand{Path: "$DIR"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			orig := parseStage(t, tt.in)[0]
			before := cmp.Diff(nil, orig, ignoreLoc)
			ex := shell.NewExpander(shell.Lex{}, env)
			got, err := Expand(orig, ex)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, ignoreLoc); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantUsed, ex.Used()); diff != "" {
				t.Errorf("used (-want +got):\n%s", diff)
			}
			if got.Loc() != orig.Loc() {
				t.Errorf("location changed: %+v", got.Loc())
			}
			if after := cmp.Diff(nil, orig, ignoreLoc); after != before {
				t.Errorf("Expand modified its input")
			}
		})
	}
}

func TestExpandFrom(t *testing.T) {
	t.Parallel()
	df, err := Parse(context.Background(), []byte("ARG GO=1.22\nFROM --platform=$BUILDPLATFORM golang:${GO}-alpine AS build\n"), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	from, err := df.Stages[0].From.Expand(shell.NewExpander(shell.Lex{}, shell.Map{"GO": "1.23", "BUILDPLATFORM": "linux/amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	if from.BaseName != "golang:1.23-alpine" || from.Platform != "linux/amd64" || from.StageName != "build" {
		t.Errorf("got %+v", from)
	}
	if df.Stages[0].From.BaseName != "golang:${GO}-alpine" {
		t.Error("Expand modified the stage")
	}
}

func TestExpandErrors(t *testing.T) {
	t.Parallel()
	env := shell.Map{"BAD": "abc", "EMPTY": "", "LOCAL": "a.tar", "SUM": "sha256:" + sha}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"chmod", "COPY --chmod=$BAD a b", `Dockerfile:2: COPY: invalid chmod parameter "abc": it should be an octal string between 0 and 07777 or a symbolic mode such as u=rwx,go=rx`},
		{"expose", "EXPOSE $BAD", `Dockerfile:2: EXPOSE: invalid port "abc": want a number from 0 to 65535, a range like 8000-8010, and an optional /tcp, /udp or /sctp`},
		{"volume", "VOLUME $EMPTY", `Dockerfile:2: VOLUME specified can not be an empty string ("$EMPTY" expands to nothing)`},
		{"env key", "ENV $EMPTY=x", `Dockerfile:2: ENV names can not be blank ("$EMPTY" expands to nothing)`},
		{"required var", "WORKDIR ${NOPE:?is required}", `Dockerfile:2: WORKDIR: failed to process "${NOPE:?is required}": NOPE: is required`},
		{"unterminated", "USER \"$BAD", `Dockerfile:2: USER: failed to process "\"$BAD": unexpected end of statement while looking for matching double-quote`},
		{"stopsignal", "STOPSIGNAL $BAD!", `Dockerfile:2: STOPSIGNAL: invalid signal "abc!": want a name such as SIGTERM or a number`},
		{"mount", "RUN --mount=type=cache,target=/x,uid=$BAD true", `Dockerfile:2: RUN --mount=type=cache,target=/x,uid=$BAD: invalid value "abc" for uid: want a number`},
		{"checksum local", "ADD --checksum=$SUM $LOCAL /", `Dockerfile:2: ADD --checksum is only supported for HTTP(S) and Git sources, not for the local path "a.tar"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := parseStage(t, tt.in)[0]
			_, err := Expand(cmd, shell.NewExpander(shell.Lex{}, env))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestFileMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode  string
		perm  uint32
		isDir bool
		want  uint32
	}{
		{"0755", 0600, false, 0755},
		{"4755", 0, false, 04755},
		{"go-w", 0777, false, 0755},
		{"u=rw,g=r,o=r", 0777, false, 0644},
		{"a+X", 0644, false, 0644},
		{"a+X", 0744, false, 0755},
		{"a+X", 0644, true, 0755},
		{"u+x,g=u", 0640, false, 0770},
		{"o=g-w", 0670, false, 0675},
		{"+t", 0755, true, 01755},
		{"ug+s", 0755, false, 06755},
		{"a=", 0777, false, 0},
		{"=rwx", 0, false, 0777},
	}
	for _, tt := range tests {
		m, err := ParseFileMode(tt.mode)
		if err != nil {
			t.Errorf("%s: %v", tt.mode, err)
			continue
		}
		if got := m.Apply(tt.perm, tt.isDir); got != tt.want {
			t.Errorf("%s on %04o (dir %v) = %04o, want %04o", tt.mode, tt.perm, tt.isDir, got, tt.want)
		}
		if m.String() != tt.mode && !m.Octal {
			t.Errorf("String() = %q", m.String())
		}
	}
	for _, bad := range []string{"", "8", "10000", "64a", "u", "x+r", "u+q", "u+r,", "+rw+z"} {
		if _, err := ParseFileMode(bad); err == nil {
			t.Errorf("ParseFileMode(%q) succeeded", bad)
		}
	}
}
