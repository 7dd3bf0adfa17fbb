package instructions

import (
	"context"
	"errors"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
)

// TestParseErrors checks the exact message of every kind of malformed
// instruction. Each input is a whole Dockerfile named "Dockerfile".
func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		// Whole-file errors.
		{"no stages", "ARG A=1\n", "Dockerfile: dockerfile contains no stages to build"},
		{"empty file", "", "Dockerfile: file with no instructions"},
		{"command before FROM", "RUN true\nFROM a", "Dockerfile:1: RUN cannot come before the first FROM: only ARG can"},
		{"duplicate stage", "FROM a AS build\nFROM b AS Build", `Dockerfile:2: FROM: duplicate stage name "Build" (already used on line 1); stage names must be unique`},
		{"reserved scratch", "FROM a AS scratch", `Dockerfile:1: FROM: stage name "scratch" is reserved and cannot be used with AS`},
		{"reserved context", "FROM a AS Context", `Dockerfile:1: FROM: stage name "Context" is reserved and cannot be used with AS`},
		{"bad check directive", "# check=skip=A;oops\nFROM a", `Dockerfile:1: invalid check directive "skip=A;oops": "oops" is not key=value`},
		{"check unknown key", "# check=fail=true\nFROM a", `Dockerfile:1: invalid check directive "fail=true": unknown key "fail" (valid: skip, error)`},
		// Unknown instructions.
		{"unknown with hint", "FROM a\nCOPPY . /", "Dockerfile:2: unknown instruction: COPPY (did you mean COPY?)"},
		{"unknown lower", "FROM a\nfntrypoint x", "Dockerfile:2: unknown instruction: fntrypoint (did you mean ENTRYPOINT?)"},
		{"unknown no hint", "FROM a\nFOO bar", "Dockerfile:2: unknown instruction: FOO"},
		{"unknown continued", "FROM a\nBADCMD a \\\n  b\n", "Dockerfile:2: unknown instruction: BADCMD"},
		// FROM.
		{"from no args", "FROM", "Dockerfile:1: FROM requires either one argument (FROM image) or three (FROM image AS name), got 0"},
		{"from two args", "FROM a b", "Dockerfile:1: FROM requires either one argument (FROM image) or three (FROM image AS name), got 2"},
		{"from bad as", "FROM a FOR b", "Dockerfile:1: FROM requires either one argument (FROM image) or three (FROM image AS name), got 3"},
		{"from bad name", "FROM a AS 1st", `Dockerfile:1: FROM: invalid stage name "1st": a name starts with a letter and contains only letters, digits, '-', '_' and '.'`},
		{"from bad flag", "FROM --platfrom=linux/arm64 a", "Dockerfile:1: FROM: unknown flag --platfrom (did you mean --platform?); valid flags: --platform"},
		{"from flag twice", "FROM --platform=a --platform=b a", "Dockerfile:1: FROM: flag --platform is given more than once"},
		{"from flag no value", "FROM --platform a", "Dockerfile:1: FROM: flag --platform needs a value (--platform=...)"},
		// RUN.
		{"run empty", "FROM a\nRUN", "Dockerfile:2: RUN requires at least one argument"},
		{"run empty json", "FROM a\nRUN []", "Dockerfile:2: RUN requires at least one argument"},
		{"run bad flag", "FROM a\nRUN --mont=type=cache,target=/x true", "Dockerfile:2: RUN: unknown flag --mont (did you mean --mount?); valid flags: --mount, --network, --security"},
		{"run network", "FROM a\nRUN --network=bridge true", `Dockerfile:2: RUN: unsupported --network value "bridge"; valid values: default, host, none`},
		{"run network typo", "FROM a\nRUN --network=nnoe true", `Dockerfile:2: RUN: unsupported --network value "nnoe"; valid values: default, host, none (did you mean none?)`},
		{"run security", "FROM a\nRUN --security=privileged true", `Dockerfile:2: RUN: unsupported --security value "privileged"; valid values: insecure, sandbox`},
		{"run nested json", "FROM a\nRUN [\"a\", 1]", "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"},
		{"mount bad key", "FROM a\nRUN --mount=type=cache,tagret=/x true", `Dockerfile:2: RUN --mount=type=cache,tagret=/x: unexpected key "tagret" in "tagret=/x" (did you mean target?)`},
		{"mount typ", "FROM a\nRUN --mount=typ=cache,target=/x true", `Dockerfile:2: RUN --mount=typ=cache,target=/x: unexpected key "typ" in "typ=cache" (did you mean type?)`},
		{"mount bad type", "FROM a\nRUN --mount=type=cahce,target=/x true", `Dockerfile:2: RUN --mount=type=cahce,target=/x: unsupported mount type "cahce" (did you mean cache?)`},
		{"mount key for other type", "FROM a\nRUN --mount=type=cache,target=/x,size=1m true", `Dockerfile:2: RUN --mount=type=cache,target=/x,size=1m: unexpected key "size" for mount type "cache"`},
		{"mount mode on bind", "FROM a\nRUN --mount=target=/x,mode=0600 true", `Dockerfile:2: RUN --mount=target=/x,mode=0600: unexpected key "mode" for mount type "bind"`},
		{"mount no target", "FROM a\nRUN --mount=type=cache true", "Dockerfile:2: RUN --mount=type=cache: target is required for a cache mount (add target=/path)"},
		{"mount bare key", "FROM a\nRUN --mount=type=bind,target true", `Dockerfile:2: RUN --mount=type=bind,target: invalid field "target": it must be a key=value pair`},
		{"mount bad ro", "FROM a\nRUN --mount=target=/x,ro=maybe true", `Dockerfile:2: RUN --mount=target=/x,ro=maybe: invalid value "maybe" for ro: want true or false`},
		{"mount bad sharing", "FROM a\nRUN --mount=type=cache,target=/x,sharing=lockd true", `Dockerfile:2: RUN --mount=type=cache,target=/x,sharing=lockd: unsupported sharing value "lockd" (did you mean locked?)`},
		{"mount bad mode", "FROM a\nRUN --mount=type=cache,target=/x,mode=999 true", `Dockerfile:2: RUN --mount=type=cache,target=/x,mode=999: invalid value "999" for mode: want an octal mode such as 0600`},
		{"mount bad uid", "FROM a\nRUN --mount=type=secret,id=s,uid=root true", `Dockerfile:2: RUN --mount=type=secret,id=s,uid=root: invalid value "root" for uid: want a number`},
		{"mount bad size", "FROM a\nRUN --mount=type=tmpfs,target=/t,size=lots true", `Dockerfile:2: RUN --mount=type=tmpfs,target=/t,size=lots: invalid value "lots" for size: want a size such as 64m or 1g`},
		{"mount from var", "FROM a\nRUN --mount=from=$X,target=/x true", "Dockerfile:2: RUN --mount=from=$X,target=/x: 'from' doesn't support variable expansion, define alias stage instead"},
		{"mount secret no id", "FROM a\nRUN --mount=type=secret,env=TOKEN true", "Dockerfile:2: RUN --mount=type=secret,env=TOKEN: a secret mount needs an id (or a target to derive it from)"},
		{"mount secret id and src", "FROM a\nRUN --mount=type=secret,id=a,src=b true", "Dockerfile:2: RUN --mount=type=secret,id=a,src=b: both source and id can't be set for a secret mount (they are the same)"},
		{"mount required on cache", "FROM a\nRUN --mount=type=cache,target=/x,required true", `Dockerfile:2: RUN --mount=type=cache,target=/x,required: unexpected key "required" for mount type "cache"`},
		{"mount quote swallows command", "FROM a\nRUN --mount=type=bind,\"target=/x true", "Dockerfile:2: RUN requires at least one argument"},
		{"mount csv", "FROM a\nRUN --mount=type=bind,tar\\\"get=/x true", `Dockerfile:2: RUN --mount=type=bind,tar"get=/x: cannot parse it as comma-separated key=value fields: parse error on line 1, column 14: bare " in non-quoted-field`},
		// CMD, ENTRYPOINT, SHELL.
		{"cmd flag", "FROM a\nCMD --doit [\"a\"]", "Dockerfile:2: CMD does not take flags, got --doit"},
		{"shell not json", "FROM a\nSHELL /bin/bash -c", `Dockerfile:2: SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]`},
		{"shell empty", "FROM a\nSHELL []", "Dockerfile:2: SHELL requires at least one argument"},
		// ENV, LABEL, ARG.
		{"env no value", "FROM a\nENV PATH", "Dockerfile:2: ENV must have two arguments"},
		{"env empty", "FROM a\nENV", "Dockerfile:2: ENV requires at least one argument"},
		{"env blank name", "FROM a\nENV =x", "Dockerfile:2: ENV names can not be blank"},
		{"env missing =", "FROM a\nENV a=1 b", `Dockerfile:2: syntax error - can't find = in "b". Must be of the form: name=value`},
		{"label flag", "FROM a\nLABEL --x=1 a=b", "Dockerfile:2: LABEL does not take flags, got --x"},
		{"arg empty", "FROM a\nARG", "Dockerfile:2: ARG requires at least one argument"},
		{"arg blank name", "ARG =1\nFROM a", "Dockerfile:1: ARG names can not be blank"},
		// EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, MAINTAINER.
		{"expose empty", "FROM a\nEXPOSE", "Dockerfile:2: EXPOSE requires at least one argument"},
		{"expose bad", "FROM a\nEXPOSE 80 http", `Dockerfile:2: EXPOSE: invalid port "http": want a number from 0 to 65535, a range like 8000-8010, and an optional /tcp, /udp or /sctp`},
		{"expose proto", "FROM a\nEXPOSE 53/dns", `Dockerfile:2: EXPOSE: invalid protocol "dns" in "53/dns": want tcp, udp or sctp`},
		{"expose host port", "FROM a\nEXPOSE 80:80", `Dockerfile:2: EXPOSE: invalid port "80:80": EXPOSE cannot publish host ports (use docker run -p)`},
		{"expose range", "FROM a\nEXPOSE 90-80", `Dockerfile:2: EXPOSE: invalid port range "90-80"`},
		{"volume empty string", "FROM a\nVOLUME [\"\"]", "Dockerfile:2: VOLUME specified can not be an empty string"},
		{"volume empty", "FROM a\nVOLUME", "Dockerfile:2: VOLUME requires at least one argument"},
		{"user empty", "FROM a\nUSER", "Dockerfile:2: USER requires exactly one argument"},
		{"workdir empty", "FROM a\nWORKDIR", "Dockerfile:2: WORKDIR requires exactly one argument"},
		{"stopsignal bad", "FROM a\nSTOPSIGNAL SIG TERM", `Dockerfile:2: STOPSIGNAL: invalid signal "SIG TERM": want a name such as SIGTERM or a number`},
		{"maintainer empty", "FROM a\nMAINTAINER", "Dockerfile:2: MAINTAINER requires exactly one argument"},
		// ONBUILD.
		{"onbuild empty", "FROM a\nONBUILD", "Dockerfile:2: ONBUILD requires at least one argument"},
		{"onbuild onbuild", "FROM a\nONBUILD ONBUILD RUN x", "Dockerfile:2: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{"onbuild from", "FROM a\nONBUILD from b", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"},
		{"onbuild bad trigger", "FROM a\nONBUILD COPY --chwon=1 a b", "Dockerfile:2: ONBUILD: COPY: unknown flag --chwon (did you mean --chown?); valid flags: --chmod, --chown, --exclude, --from, --link, --parents"},
		{"onbuild unknown trigger", "FROM a\nONBUILD RUNN x", "Dockerfile:2: ONBUILD: unknown instruction: RUNN (did you mean RUN?)"},
		// HEALTHCHECK.
		{"health empty", "FROM a\nHEALTHCHECK", "Dockerfile:2: HEALTHCHECK requires at least one argument"},
		{"health none args", "FROM a\nHEALTHCHECK NONE x", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"},
		{"health none flags", "FROM a\nHEALTHCHECK --interval=5s NONE", "Dockerfile:2: HEALTHCHECK does not take flags, got --interval"},
		{"health type", "FROM a\nHEALTHCHECK CONNECT TCP 7000", `Dockerfile:2: HEALTHCHECK: unknown type "CONNECT" (try CMD or NONE)`},
		{"health cmd missing", "FROM a\nHEALTHCHECK CMD", "Dockerfile:2: HEALTHCHECK CMD: missing command after CMD"},
		{"health interval", "FROM a\nHEALTHCHECK --interval=5 CMD true", `Dockerfile:2: HEALTHCHECK: invalid --interval "5": want a duration such as 30s or 1m30s`},
		{"health short", "FROM a\nHEALTHCHECK --timeout=1us CMD true", "Dockerfile:2: HEALTHCHECK: --timeout 1us cannot be less than 1ms"},
		{"health retries", "FROM a\nHEALTHCHECK --retries=-1 CMD true", "Dockerfile:2: HEALTHCHECK: --retries cannot be negative (-1)"},
		{"health retries nan", "FROM a\nHEALTHCHECK --retries=x CMD true", `Dockerfile:2: HEALTHCHECK: invalid --retries "x": want a whole number`},
		{"health flag", "FROM a\nHEALTHCHECK --start_period=1s CMD true", "Dockerfile:2: HEALTHCHECK: unknown flag --start_period (did you mean --start-period?); valid flags: --interval, --retries, --start-interval, --start-period, --timeout"},
		// COPY and ADD.
		{"copy one arg", "FROM a\nCOPY x", "Dockerfile:2: COPY requires at least two arguments, but only 1 provided: destination could not be determined"},
		{"copy no arg", "FROM a\nCOPY", "Dockerfile:2: COPY requires at least two arguments, but only 0 provided: destination could not be determined"},
		{"copy unknown flag", "FROM a\nCOPY --chwon=1 a b", "Dockerfile:2: COPY: unknown flag --chwon (did you mean --chown?); valid flags: --chmod, --chown, --exclude, --from, --link, --parents"},
		{"copy from var", "FROM a\nCOPY --from=$X a b", "Dockerfile:2: COPY: variable expansion is not supported for --from; define a stage with FROM (which can use ARGs) and copy from that stage"},
		{"copy from empty", "FROM a\nCOPY --from= a b", "Dockerfile:2: COPY: --from needs a stage name, image or stage index"},
		{"copy chmod bad", "FROM a\nCOPY --chmod=64a a b", `Dockerfile:2: COPY: invalid chmod parameter "64a": it should be an octal string between 0 and 07777 or a symbolic mode such as u=rwx,go=rx`},
		{"copy chmod big", "FROM a\nCOPY --chmod=10000 a b", `Dockerfile:2: COPY: invalid chmod parameter "10000": it should be an octal string between 0 and 07777 or a symbolic mode such as u=rwx,go=rx`},
		{"copy chmod sym", "FROM a\nCOPY --chmod=u+q a b", `Dockerfile:2: COPY: invalid chmod parameter "u+q": it should be an octal string between 0 and 07777 or a symbolic mode such as u=rwx,go=rx`},
		{"copy link value", "FROM a\nCOPY --link=yes a b", `Dockerfile:2: COPY: flag --link expects true or false, got "yes"`},
		{"copy chown empty", "FROM a\nCOPY --chown= a b", "Dockerfile:2: COPY: --chown needs a user, user:group, uid or uid:gid"},
		{"copy heredoc dest", "FROM a\nCOPY a <<EOF\nx\nEOF", "Dockerfile:2: COPY cannot accept a heredoc as a destination"},
		{"add checksum local", "FROM a\nADD --checksum=sha256:" + sha + " a.tar /", `Dockerfile:2: ADD --checksum is only supported for HTTP(S) and Git sources, not for the local path "a.tar"`},
		{"add checksum bad", "FROM a\nADD --checksum=md5:abc https://x/a /", `Dockerfile:2: ADD --checksum: invalid checksum "md5:abc": want sha256:<64 hex digits> (or sha384, sha512), or a Git commit hash`},
		{"add from", "FROM a\nADD --from=b a /", "Dockerfile:2: ADD: unknown flag --from; valid flags: --checksum, --chmod, --chown, --exclude, --keep-git-dir, --link, --parents, --unpack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(context.Background(), []byte(tt.in), "Dockerfile")
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err, tt.want)
			}
			var se *errdefs.SourceError
			if !errors.As(err, &se) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%T is not an invalid-argument SourceError", err)
			}
		})
	}
}

const sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
