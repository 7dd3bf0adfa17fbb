package convert

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/graph"
)

func intp(i int) *int { return &i }

// TestRun checks the ExecOp each form of RUN becomes.
func TestRun(t *testing.T) {
	t.Parallel()
	path := "PATH=" + defaultPath
	tests := []struct {
		name string
		src  string
		want graph.ExecOp // Root 0 unless a test says otherwise; ProxyEnv nil
	}{
		{"shell form", "FROM busybox\nRUN echo hi\n",
			graph.ExecOp{Args: []string{"/bin/sh", "-c", "echo hi"}, Env: []string{path}, Cwd: "/"}},
		{"exec form", "FROM busybox\nRUN [\"echo\", \"hi\"]\n",
			graph.ExecOp{Args: []string{"echo", "hi"}, Env: []string{path}, Cwd: "/"}},
		{"shell, workdir, user, env", "FROM busybox\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nWORKDIR app\nUSER nobody:nogroup\nENV A=1\nRUN make $A\n",
			graph.ExecOp{Args: []string{"/bin/bash", "-eu", "-c", "make $A"}, Env: []string{path, "A=1"}, Cwd: "/app", User: "nobody:nogroup"}},
		{"declared args join env, ENV wins", "FROM busybox\nARG A=1 B=x$A\nENV A=2\nARG C\nRUN true\n",
			graph.ExecOp{Args: []string{"/bin/sh", "-c", "true"}, Env: []string{path, "A=2", "B=x1"}, Cwd: "/"}},
		{"heredoc body runs with the shell", "FROM busybox\nRUN <<EOF\necho a\necho b\nEOF\n",
			graph.ExecOp{Args: []string{"/bin/sh", "-c", "echo a\necho b\n"}, Env: []string{path}, Cwd: "/"}},
		{"heredoc with more on the line goes to the shell", "FROM busybox\nRUN cat <<EOF > /x\nhello\nEOF\n",
			graph.ExecOp{Args: []string{"/bin/sh", "-c", "cat <<EOF > /x\nhello\nEOF"}, Env: []string{path}, Cwd: "/"}},
		{"network and security", "FROM busybox\nRUN --network=none --security=insecure true\n",
			graph.ExecOp{Args: []string{"/bin/sh", "-c", "true"}, Env: []string{path}, Cwd: "/", Network: sandbox.NetNone, Security: sandbox.SecurityInsecure}},
		{"mounts", "FROM busybox AS tools\nFROM busybox\n" +
			"RUN --mount=type=bind,from=tools,source=/bin,target=/tools " +
			"--mount=type=cache,target=cache,id=gomod,sharing=locked,uid=1000,mode=0700 " +
			"--mount=type=tmpfs,target=/tmp,size=64m " +
			"--mount=type=secret,id=tok,env=TOKEN --mount=type=ssh --mount=type=bind,target=/ctx true\n",
			graph.ExecOp{Args: []string{"/bin/sh", "-c", "true"}, Env: []string{path, "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"}, Cwd: "/",
				Mounts: []graph.Mount{
					{Type: graph.MountBind, Target: "/tools", Input: 0, Selector: "bin", Readonly: true},
					{Type: graph.MountCache, Target: "/cache", Input: graph.NoInput, CacheID: "gomod", Sharing: graph.SharingLocked, UID: intp(1000), Mode: u32p(0o700)},
					{Type: graph.MountTmpfs, Target: "/tmp", Input: graph.NoInput, TmpfsSize: 64 << 20},
					{Type: graph.MountSecret, Input: graph.NoInput, SecretID: "tok", Env: "TOKEN", Readonly: true},
					{Type: graph.MountSSH, Target: "/run/buildkit/ssh_agent.0", Input: graph.NoInput, SSHID: "default", Readonly: true},
					{Type: graph.MountBind, Target: "/ctx", Input: 1, Readonly: true},
				}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := mustConvert(t, tt.src)
			if img.Root.Op.Exec == nil {
				t.Fatalf("last vertex is %s, want exec", img.Root.Op.Kind())
			}
			if diff := cmp.Diff(&tt.want, img.Root.Op.Exec); diff != "" {
				t.Errorf("exec op (-want +got):\n%s", diff)
			}
			if got := img.Root.Op.Platform; got == nil || !cmp.Equal(*got, amd64) {
				t.Errorf("platform = %v, want linux/amd64", got)
			}
		})
	}
}

func u32p(v uint32) *uint32 { return &v }

func TestRunMountInputs(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM busybox AS tools\nRUN touch /t\nFROM busybox\nRUN --mount=from=tools,target=/x --mount=target=/c true\n")
	in := img.Root.Inputs
	if len(in) != 3 {
		t.Fatalf("inputs = %v, want root, tools, context", names(img.Root))
	}
	if in[1].Meta.Name != "[tools 2/2] RUN touch /t" || in[2].Op.Source.Local == nil {
		t.Errorf("inputs = %q, %q; want the tools stage and the context", in[1].Meta.Name, in[2].Meta.Name)
	}
}

func TestRunHeredocShebang(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM busybox\nRUN <<EOT\n#!/usr/bin/env python3\nprint(1)\nEOT\n")
	e := img.Root.Op.Exec
	if diff := cmp.Diff([]string{"/bin/sh", "-c", "/dev/pipes/EOT"}, e.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if len(e.Mounts) != 1 || e.Mounts[0].Target != "/dev/pipes/" || !e.Mounts[0].Readonly {
		t.Fatalf("mounts = %+v, want the script at /dev/pipes/", e.Mounts)
	}
	f := img.Root.Inputs[e.Mounts[0].Input].Op.File
	want := &graph.FileOp{Base: graph.NoInput, Actions: []graph.FileAction{{Mkfile: &graph.MkfileAction{Path: "/EOT", Mode: 0o755, Data: []byte("#!/usr/bin/env python3\nprint(1)\n")}}}}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("script file op (-want +got):\n%s", diff)
	}
	if got := img.Root.Meta.Name; got != "[2/2] RUN <<EOT (#!/usr/bin/env python3...)" {
		t.Errorf("name = %q", got)
	}
}

func TestRunNames(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM busybox\nENV WHO=world\nARG SECRETVAR=x\nRUN --mount=type=secret,id=s,env=SECRETVAR echo $WHO $SECRETVAR \"$UNSET\"\n")
	if got, want := img.Root.Meta.Name, `[2/2] RUN --mount=type=secret,id=s,env=SECRETVAR echo world $SECRETVAR "$UNSET"`; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	if got := img.Root.Meta.Location; got == nil || got.File != "Dockerfile" || got.Start != 4 || got.End != 4 {
		t.Errorf("location = %+v", got)
	}
}

// --network sets the network of RUN steps that do not ask for one.
func TestRunBuildNetwork(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		build sandbox.NetMode
		run   string
		want  sandbox.NetMode
	}{
		{"", "", ""},
		{"none", "", sandbox.NetNone},
		{"host", "", sandbox.NetHost},
		{"none", "--network=default ", sandbox.NetNone}, // default is the build's
		{"none", "--network=host ", sandbox.NetHost},    // the step's own wins
		{"host", "--network=none ", sandbox.NetNone},
	} {
		img := mustConvert(t, "FROM busybox\nRUN "+tc.run+"true\n", func(r *frontend.Request) { r.Network = tc.build })
		if got := img.Root.Op.Exec.Network; got != tc.want {
			t.Errorf("--network %q, RUN %q: network %q, want %q", tc.build, tc.run, got, tc.want)
		}
	}
}

// --add-host entries reach every RUN step (and so its cache key).
func TestRunExtraHosts(t *testing.T) {
	t.Parallel()
	hosts := []sandbox.HostIP{{Host: "db", IP: netip.MustParseAddr("10.0.0.5")}}
	with := mustConvert(t, "FROM busybox\nRUN true\n", func(r *frontend.Request) { r.ExtraHosts = hosts })
	without := mustConvert(t, "FROM busybox\nRUN true\n")
	if diff := cmp.Diff(hosts, with.Root.Op.Exec.ExtraHosts); diff != "" {
		t.Errorf("extra hosts (-want +got):\n%s", diff)
	}
	if with.Root.Digest() == without.Root.Digest() {
		t.Error("an extra host does not change the step's digest")
	}
}
