package llb

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/llbbuild"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/graph"
)

// convert marshals st with BuildKit's client and converts it.
func convert(t *testing.T, st bk.State, opts Options) *Result {
	t.Helper()
	res, err := convertErr(st, opts)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	return res
}

func convertErr(st bk.State, opts Options) (*Result, error) {
	ctx := context.Background()
	def, err := st.Marshal(ctx, bk.LinuxAmd64)
	if err != nil {
		return nil, err
	}
	return Convert(ctx, def.ToPB(), opts)
}

func ptr[T any](v T) *T { return &v }

func TestConvertSources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		st   bk.State
		want graph.SourceOp
	}{
		{"image", bk.Image("busybox:1.36"), graph.SourceOp{Image: &graph.ImageSource{Ref: "docker.io/library/busybox:1.36"}}},
		{"image pinned", bk.Image("busybox@sha256:" + strings.Repeat("a", 64)),
			graph.SourceOp{Image: &graph.ImageSource{Ref: "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64)}}},
		{"local", bk.Local("context", bk.IncludePatterns([]string{"src"}), bk.ExcludePatterns([]string{"*.log"}), bk.FollowPaths([]string{"Dockerfile"}), bk.SharedKeyHint("ctx"), bk.SessionID("s1")),
			graph.SourceOp{Local: &graph.LocalSource{Name: "context", IncludePatterns: []string{"src"}, ExcludePatterns: []string{"*.log"}, FollowPaths: []string{"Dockerfile"}, SharedKeyHint: "ctx"}}},
		{"git", bk.Git("https://example.com/repo.git", "v1:sub/dir", bk.KeepGitDir()),
			graph.SourceOp{Git: &graph.GitSource{Remote: "https://example.com/repo.git", Ref: "v1", Subdir: "sub/dir", KeepGitDir: true}}},
		{"http", bk.HTTP("https://example.com/a.tgz", bk.Filename("b.tgz"), bk.Chmod(0o644), bk.Chown(1, 2), bk.Checksum(digest.Digest("sha256:"+strings.Repeat("b", 64)))),
			graph.SourceOp{HTTP: &graph.HTTPSource{URL: "https://example.com/a.tgz", Filename: "b.tgz", Mode: 0o644, UID: 1, GID: 2, Checksum: digest.Digest("sha256:" + strings.Repeat("b", 64))}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := convert(t, tc.st, Options{})
			if res.Root == nil || res.Root.Op.Source == nil {
				t.Fatalf("root = %+v, want a source", res.Root)
			}
			if diff := cmp.Diff(tc.want, *res.Root.Op.Source); diff != "" {
				t.Errorf("source (-want +got):\n%s", diff)
			}
			if p := res.Root.Op.Platform; tc.want.Image != nil && (p == nil || p.Architecture != "amd64" || p.OS != "linux") {
				t.Errorf("platform = %+v, want linux/amd64", p)
			}
		})
	}
}

func TestConvertExec(t *testing.T) {
	t.Parallel()
	base := bk.Image("busybox")
	ctxSrc := bk.Local("context")
	run := base.Run(
		bk.Args([]string{"/bin/sh", "-c", "make"}),
		bk.AddEnv("A", "1"), bk.Dir("/src"), bk.User("1000:1000"),
		bk.Network(bk.NetModeNone), bk.Security(bk.SecurityModeInsecure),
		bk.AddExtraHost("db", []byte{10, 0, 0, 1}), bk.Hostname("builder"),
		bk.WithProxy(bk.ProxyEnv{HTTPProxy: "http://proxy:3128"}),
		bk.AddMount("/ctx", ctxSrc, bk.SourcePath("sub"), bk.Readonly),
		bk.AddMount("/cache", bk.Scratch(), bk.AsPersistentCacheDir("go", bk.CacheMountLocked)),
		bk.AddMount("/tmp", bk.Scratch(), bk.Tmpfs(bk.TmpfsSize(1<<20))),
		bk.AddSecret("/run/secrets/tok", bk.SecretID("tok"), bk.SecretFileOpt(1, 2, 0o440)),
		bk.AddSecretWithDest("env", nil, bk.SecretID("envsec"), bk.SecretAsEnvName("TOKEN")),
		bk.AddSSHSocket(bk.SSHID("agent"), bk.SSHSocketTarget("/ssh.sock"), bk.SSHOptional),
		bk.ValidExitCodes(0, 3),
	)
	res := convert(t, run.Root(), Options{})
	v := res.Root
	x := v.Op.Exec
	if x == nil {
		t.Fatalf("root is not an exec: %+v", v.Op)
	}
	if diff := cmp.Diff([]string{"/bin/sh", "-c", "make"}, x.Args); diff != "" {
		t.Errorf("args: %s", diff)
	}
	if !containsStr(x.Env, "A=1") || x.Cwd != "/src" || x.User != "1000:1000" || x.Hostname != "builder" {
		t.Errorf("env %v cwd %q user %q hostname %q", x.Env, x.Cwd, x.User, x.Hostname)
	}
	if x.Network != sandbox.NetNone || x.Security != sandbox.SecurityInsecure {
		t.Errorf("network %q security %q", x.Network, x.Security)
	}
	if diff := cmp.Diff([]sandbox.HostIP{{Host: "db", IP: netip.MustParseAddr("10.0.0.1")}}, x.ExtraHosts); diff != "" {
		t.Errorf("extra hosts: %s", diff)
	}
	if diff := cmp.Diff([]string{"HTTP_PROXY=http://proxy:3128", "http_proxy=http://proxy:3128"}, x.ProxyEnv); diff != "" {
		t.Errorf("proxy env: %s", diff)
	}
	if diff := cmp.Diff([]int{0, 3}, x.ValidExitCodes); diff != "" {
		t.Errorf("valid exit codes: %s", diff)
	}
	if x.Root < 0 || v.Inputs[x.Root].Op.Source.Image == nil {
		t.Errorf("root input %d is not the image", x.Root)
	}
	byTarget := map[string]graph.Mount{}
	for _, m := range x.Mounts {
		byTarget[m.Target+"|"+m.Env] = m
	}
	ctxIdx := -1
	for i, in := range v.Inputs {
		if in.Op.Source != nil && in.Op.Source.Local != nil {
			ctxIdx = i
		}
	}
	want := map[string]graph.Mount{
		"/ctx|":             {Type: graph.MountBind, Target: "/ctx", Input: ctxIdx, Selector: "sub", Readonly: true},
		"/cache|":           {Type: graph.MountCache, Target: "/cache", Input: graph.NoInput, CacheID: "go", Sharing: graph.SharingLocked},
		"/tmp|":             {Type: graph.MountTmpfs, Target: "/tmp", Input: graph.NoInput, TmpfsSize: 1 << 20},
		"/run/secrets/tok|": {Type: graph.MountSecret, Target: "/run/secrets/tok", Input: graph.NoInput, SecretID: "tok", Required: true, UID: ptr(1), GID: ptr(2), Mode: ptr(uint32(0o440))},
		"|TOKEN":            {Type: graph.MountSecret, Input: graph.NoInput, SecretID: "envsec", Env: "TOKEN", Required: true},
		"/ssh.sock|":        {Type: graph.MountSSH, Target: "/ssh.sock", Input: graph.NoInput, SSHID: "agent", UID: ptr(0), GID: ptr(0), Mode: ptr(uint32(0o600))},
	}
	if diff := cmp.Diff(want, byTarget); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// An exec's mount output is its own vertex: the same command, keeping
// that mount's filesystem.
func TestConvertExecOutputs(t *testing.T) {
	t.Parallel()
	run := bk.Image("busybox").Run(bk.Shlex("touch /out/a /b"))
	out := run.AddMount("/out", bk.Scratch())
	merged := bk.Merge([]bk.State{run.Root(), out})
	res := convert(t, merged, Options{})
	m := res.Root
	if m.Op.Merge == nil || len(m.Inputs) != 2 {
		t.Fatalf("root = %+v, want a merge of two inputs", m.Op)
	}
	root, mnt := m.Inputs[0].Op.Exec, m.Inputs[1].Op.Exec
	if root == nil || mnt == nil {
		t.Fatalf("merge inputs are not execs")
	}
	if root.Output != "" || mnt.Output != "/out" {
		t.Errorf("outputs %q and %q, want root and /out", root.Output, mnt.Output)
	}
	if m.Inputs[0].Digest() == m.Inputs[1].Digest() {
		t.Errorf("both outputs have one digest")
	}
}

func TestConvertFileActions(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 0)
	src := bk.Local("context")
	st := bk.Image("busybox").File(
		bk.Mkdir("/app", 0o755, bk.WithParents(true), bk.WithUser("app"), bk.WithCreatedTime(ts)).
			Mkfile("/app/f", 0o600, []byte("hi"), bk.WithUIDGID(7, 8)).
			Copy(src, "/src/*.go", "/app/", &bk.CopyInfo{
				FollowSymlinks: true, CopyDirContentsOnly: true, AttemptUnpack: true, CreateDestPath: true,
				AllowWildcard: true, AllowEmptyWildcard: true, IncludePatterns: []string{"a"}, ExcludePatterns: []string{"b"},
				AlwaysReplaceExistingDestPaths: true, Mode: &bk.ChmodOpt{Mode: 0o755}, CreatedTime: &ts,
				RequiredPaths: []string{"/src"},
			}, bk.WithUser("1000")).
			Rm("/app/old", bk.WithAllowNotFound(true), bk.WithAllowWildcard(true)).
			Symlink("/app/f", "/app/l", bk.WithUser("app:staff")),
	)
	res := convert(t, st, Options{})
	v := res.Root
	if v.Op.File == nil {
		t.Fatalf("root is a %s op", v.Op.Kind())
	}
	f := v.Op.File
	if len(f.Actions) != 5 || f.Base < 0 || v.Inputs[f.Base].Op.Source.Image == nil {
		t.Fatalf("one file op on the image with 5 actions expected, got %d actions, base %d", len(f.Actions), f.Base)
	}
	sec := int64(1700000000)
	want := []graph.FileAction{
		{Mkdir: &graph.MkdirAction{Path: "/app", Mode: 0o755, MakeParents: true, Chown: &graph.Chown{User: "app"}, Timestamp: &sec}},
		{Mkfile: &graph.MkfileAction{Path: "/app/f", Mode: 0o600, Data: []byte("hi"), Chown: &graph.Chown{User: "7", Group: "8"}}},
		{PathCopy: &graph.PathCopyAction{Input: 1, Src: "/src/*.go", Dest: "/app/", Chown: &graph.Chown{User: "1000", Group: "1000"}, Mode: ptr(uint32(0o755)),
			FollowSymlinks: true, DirContents: true, Unpack: true, CreateDestPath: true, Wildcard: true, AllowEmptyWildcard: true,
			Include: []string{"a"}, Exclude: []string{"b"}, RequiredPaths: []string{"/src"}, ReplaceExisting: true, Timestamp: &sec}},
		{Rm: &graph.RmAction{Path: "/app/old", AllowNotFound: true, AllowWildcard: true}},
		{Symlink: &graph.SymlinkAction{Oldpath: "/app/f", Newpath: "/app/l", Chown: &graph.Chown{User: "app", Group: "staff"}}},
	}
	if diff := cmp.Diff(want, f.Actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if in := v.Inputs[1]; in.Op.Source == nil || in.Op.Source.Local == nil {
		t.Errorf("copy input is %+v, want the local source", in.Op)
	}
}

// A file op action result used twice is a vertex of its own; the rest
// chains.
func TestConvertFileShared(t *testing.T) {
	t.Parallel()
	a := bk.Scratch().File(bk.Mkdir("/a", 0o755))
	b := a.File(bk.Mkfile("/a/b", 0o644, nil))
	c := a.File(bk.Mkfile("/a/c", 0o644, nil))
	res := convert(t, bk.Merge([]bk.State{b, c}), Options{})
	m := res.Root
	if m.Op.Merge == nil || len(m.Inputs) != 2 {
		t.Fatalf("root is %s", m.Op.Kind())
	}
	for _, in := range m.Inputs {
		if in.Op.File == nil || len(in.Inputs) != 1 || in.Inputs[0].Digest() != m.Inputs[0].Inputs[0].Digest() {
			t.Fatalf("both files should build on the one mkdir vertex")
		}
	}
}

func TestConvertMergeDiff(t *testing.T) {
	t.Parallel()
	base := bk.Image("busybox")
	upper := base.Run(bk.Shlex("touch /x")).Root()
	res := convert(t, bk.Merge([]bk.State{bk.Scratch(), bk.Diff(base, upper)}), Options{})
	if res.Root.Op.Diff == nil || len(res.Root.Inputs) != 2 {
		t.Fatalf("a merge of scratch and a diff is the diff; got %s", res.Root.Op.Kind())
	}
	res = convert(t, bk.Diff(bk.Scratch(), upper), Options{})
	if res.Root.Op.Exec == nil {
		t.Errorf("a diff from scratch is the upper; got %s", res.Root.Op.Kind())
	}
	res = convert(t, bk.Scratch(), Options{})
	if res.Root != nil {
		t.Errorf("scratch converts to %+v, want nil", res.Root)
	}
}

func TestConvertMetadata(t *testing.T) {
	t.Parallel()
	st := bk.Image("busybox").Run(bk.Shlex("true"), bk.WithCustomName("[stage 2/3] RUN true"), bk.IgnoreCache).Root()
	res := convert(t, st, Options{})
	m := res.Root.Meta
	if m.Name != "[stage 2/3] RUN true" || !m.IgnoreCache || m.StepID != "llb\x00RUN true" {
		t.Errorf("meta = %+v", m)
	}
	if len(res.Outputs) != 2 {
		t.Errorf("outputs = %d, want 2 (image, exec)", len(res.Outputs))
	}
}

func TestConvertLocalHook(t *testing.T) {
	t.Parallel()
	repl := graph.NewVertex(graph.Op{File: &graph.FileOp{Base: graph.NoInput, Actions: []graph.FileAction{{Mkfile: &graph.MkfileAction{Path: "/Dockerfile", Mode: 0o644}}}}}, graph.Meta{})
	res := convert(t, bk.Local("dockerfile"), Options{Local: func(src *graph.LocalSource) (*graph.Vertex, error) {
		if src.Name == "dockerfile" {
			return repl, nil
		}
		return nil, nil
	}})
	if res.Root != repl {
		t.Errorf("the hook's vertex was not used")
	}
}

func TestConvertBuildOp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner, err := bk.Image("busybox").Run(bk.Shlex("true")).Root().Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := inner.ToPB().MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	builder := bk.Scratch().File(bk.Mkfile("/def.pb", 0o644, dt))
	st := builder.With(llbbuild.Build(llbbuild.WithFilename("def.pb")))
	def, err := st.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var read string
	res, err := Convert(ctx, def.ToPB(), Options{ReadFile: func(_ context.Context, v *graph.Vertex, p string) ([]byte, error) {
		read = p
		return v.Op.File.Actions[0].Mkfile.Data, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if read != "/def.pb" || res.Root == nil || res.Root.Op.Exec == nil {
		t.Errorf("read %q, root %+v", read, res.Root)
	}
	if _, err := Convert(ctx, def.ToPB(), Options{}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "build op") {
		t.Errorf("without ReadFile: %v", err)
	}
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }

func TestCaps(t *testing.T) {
	t.Parallel()
	caps := Caps()
	byID := map[string]bool{}
	for _, c := range caps {
		byID[c.ID] = c.Enabled
	}
	for id, want := range map[string]bool{"mergeop": true, "diffop": true, "exec.mount.cache.sharing": true, "source.image.layerlimit": false, "exec.meta.ulimit": false} {
		if got, ok := byID[id]; !ok || got != want {
			t.Errorf("cap %s enabled = %v (listed %v), want %v", id, got, ok, want)
		}
	}
	b, _ := json.Marshal(caps)
	if len(b) == 0 {
		t.Error("caps do not marshal")
	}
}
