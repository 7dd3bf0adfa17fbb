package convert

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// argsDockerfile uses VERSION in one COPY and declares it before the
// second RUN only.
const argsDockerfile = `ARG BASE=busybox
FROM ${BASE} AS build
RUN echo before
COPY app-${VERSION:-none}.tar /a
ARG VERSION=1.0
COPY app-${VERSION}.tar /b
RUN echo after
WORKDIR /w
COPY c /c
`

func TestUnusedBuildArgChangesNothing(t *testing.T) {
	t.Parallel()
	a := mustConvert(t, argsDockerfile)
	img, warns, err := convertErr(argsDockerfile, amd64, withArgs("UNUSED", "x"))
	if err != nil {
		t.Fatal(err)
	}
	if got := changed(a.Root, img.Root); len(got) != 0 {
		t.Errorf("an unused build arg changed %q", got)
	}
	if len(warns) != 1 || warns[0].Rule != "UnusedBuildArg" || warns[0].Message != "build arg UNUSED was not consumed by any stage" {
		t.Errorf("warnings = %+v", warns)
	}
}

func TestUsedArgChangesOnlyItsUsers(t *testing.T) {
	t.Parallel()
	a := mustConvert(t, argsDockerfile)
	b := mustConvert(t, argsDockerfile, withArgs("VERSION", "2.0"))
	want := []string{
		"[4/7] COPY app-2.0.tar /b", // uses it
		"[5/7] RUN echo after",      // a RUN after the declaration sees it in its env
		"[6/7] WORKDIR /w",          // and everything after changes with its input
		"[7/7] COPY c /c",
	}
	if diff := cmp.Diff(want, changed(a.Root, b.Root)); diff != "" {
		t.Errorf("changed steps (-want +got):\n%s", diff)
	}
	if got := byName(t, b.Root, "RUN echo after").Op.Exec.Env; !cmp.Equal(got, []string{"PATH=" + defaultPath, "VERSION=2.0"}) {
		t.Errorf("RUN env = %q", got)
	}
	// The global ARG used in FROM changes the base and so everything.
	c := mustConvert(t, argsDockerfile, withArgs("BASE", "alpine"))
	if got := changed(a.Root, c.Root); len(got) != len(vertices(c.Root))-1 {
		t.Errorf("changing the base image changed only %q", got)
	}
}

func TestProxyArgs(t *testing.T) {
	t.Parallel()
	src := "FROM busybox\nRUN wget x\n"
	a := mustConvert(t, src)
	b := mustConvert(t, src, withArgs("HTTP_PROXY", "http://proxy:3128", "no_proxy", "localhost"))
	if got := changed(a.Root, b.Root); len(got) != 0 {
		t.Errorf("proxy args changed %q", got)
	}
	e := b.Root.Op.Exec
	if !cmp.Equal(e.ProxyEnv, []string{"HTTP_PROXY=http://proxy:3128", "no_proxy=localhost"}) || len(e.Env) != 1 {
		t.Errorf("proxy env %q, env %q: want the proxies in ProxyEnv only", e.ProxyEnv, e.Env)
	}
	_, warns, err := convertErr(src, amd64, withArgs("HTTP_PROXY", "http://proxy:3128"))
	if err != nil || len(warns) != 0 {
		t.Errorf("proxy args are never reported unused: %v %+v", err, warns)
	}
	// Declared, a proxy arg is an ordinary ARG.
	d := mustConvert(t, "FROM busybox\nARG HTTP_PROXY\nRUN wget x\n", withArgs("HTTP_PROXY", "http://p"))
	if e := d.Root.Op.Exec; e.ProxyEnv != nil || !cmp.Equal(e.Env, []string{"PATH=" + defaultPath, "HTTP_PROXY=http://p"}) {
		t.Errorf("declared proxy: proxy env %q, env %q", e.ProxyEnv, e.Env)
	}
}

func TestPlatformArgs(t *testing.T) {
	t.Parallel()
	src := `ARG TAG=3
FROM --platform=$BUILDPLATFORM alpine:$TAG AS build
ARG TARGETARCH TARGETPLATFORM BUILDARCH TARGETSTAGE
RUN echo $TARGETARCH
FROM busybox
RUN echo $TARGETARCH
ARG TARGETOS
RUN echo $TARGETOS
COPY --from=build /x /x
`
	img, _, err := convertErr(src, arm64)
	if err != nil {
		t.Fatal(err)
	}
	run := byName(t, img.Root, "[build 2/2] RUN")
	if !cmp.Equal(run.Op.Exec.Env, []string{"PATH=" + defaultPath, "TARGETARCH=arm64", "TARGETPLATFORM=linux/arm64", "BUILDARCH=amd64", "TARGETSTAGE=default"}) ||
		!cmp.Equal(*run.Op.Platform, amd64) {
		t.Errorf("build stage RUN: env %q on %v", run.Op.Exec.Env, run.Op.Platform)
	}
	if got := byName(t, img.Root, "[build 1/2] FROM").Op.Source.Image.Ref; got[:len("docker.io/library/alpine:3@")] != "docker.io/library/alpine:3@" {
		t.Errorf("FROM ref = %q, want alpine:3 (the global ARG)", got)
	}
	if got := byName(t, img.Root, "[2/4] RUN").Op.Exec.Env; len(got) != 1 {
		t.Errorf("an undeclared platform ARG reached the env: %q", got)
	}
	if got := byName(t, img.Root, "[3/4] RUN").Op.Exec.Env; !cmp.Equal(got, []string{"PATH=" + defaultPath, "TARGETOS=linux"}) {
		t.Errorf("env = %q", got)
	}
	// --build-arg overrides an automatic ARG.
	img2, _, err := convertErr(src, arm64, withArgs("TARGETOS", "plan9"))
	if err != nil {
		t.Fatal(err)
	}
	if got := byName(t, img2.Root, "[3/4] RUN").Op.Exec.Env; !cmp.Equal(got, []string{"PATH=" + defaultPath, "TARGETOS=plan9"}) {
		t.Errorf("env = %q", got)
	}
}

func TestMetaArgScoping(t *testing.T) {
	t.Parallel()
	src := "ARG V=global\nARG W=${V}-w\nFROM busybox\nRUN echo $V\nARG V\nARG W\nRUN echo $V\n"
	img := mustConvert(t, src)
	if got := byName(t, img.Root, "[2/3] RUN").Op.Exec.Env; len(got) != 1 {
		t.Errorf("a global ARG reached the stage without ARG: %q", got)
	}
	if got := byName(t, img.Root, "[3/3] RUN").Op.Exec.Env; !cmp.Equal(got, []string{"PATH=" + defaultPath, "V=global", "W=global-w"}) {
		t.Errorf("env = %q", got)
	}
	img = mustConvert(t, src, withArgs("V", "cli"))
	if got := byName(t, img.Root, "[3/3] RUN").Op.Exec.Env; !cmp.Equal(got, []string{"PATH=" + defaultPath, "V=cli", "W=cli-w"}) {
		t.Errorf("env with --build-arg = %q", got)
	}
}
