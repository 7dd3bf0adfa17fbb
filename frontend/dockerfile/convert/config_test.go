package convert

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
)

// baseConfig is a base image config as a registry would return it.
const baseConfig = `{
  "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
  "config": {
    "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
    "WorkingDir": "/srv", "User": "www",
    "Cmd": ["serve"], "Entrypoint": ["/entry"],
    "Labels": {"base": "yes"}, "ExposedPorts": {"8080/tcp": {}},
    "Healthcheck": {"Test": ["CMD", "true"], "Retries": 2},
    "Shell": ["/bin/ash", "-c"]
  },
  "rootfs": {"type": "layers", "diff_ids": ["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},
  "history": [{"created_by": "base layer"}]
}`

func TestConfigInheritance(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{configs: map[string]string{"docker.io/library/base:latest": baseConfig}}
	img := mustConvert(t, "FROM base\nRUN make\nENTRYPOINT [\"/new\"]\n", withResolver(res),
		func(r *frontend.Request) { r.Labels = map[string]string{"org.opencontainers.image.title": "app"} })
	e := img.Root.Op.Exec
	if e.Cwd != "/srv" || e.User != "www" || !cmp.Equal(e.Env, []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}) ||
		!cmp.Equal(e.Args, []string{"/bin/ash", "-c", "make"}) {
		t.Errorf("RUN does not inherit the base config: %+v", e)
	}
	c := img.Config.Config
	if c.Cmd != nil || !cmp.Equal(c.Entrypoint, []string{"/new"}) {
		t.Errorf("ENTRYPOINT without CMD must reset Cmd: cmd %q entrypoint %q", c.Cmd, c.Entrypoint)
	}
	if !cmp.Equal(c.Labels, map[string]string{"base": "yes", "org.opencontainers.image.title": "app"}) {
		t.Errorf("labels = %v", c.Labels)
	}
	if img.ConfigExt.Healthcheck == nil || img.ConfigExt.Healthcheck.Retries != 2 || img.Config.Created != nil {
		t.Errorf("ext = %+v, created = %v", img.ConfigExt, img.Config.Created)
	}
	if len(img.Config.History) != 3 || img.Config.History[0].CreatedBy != "base layer" || len(img.Config.RootFS.DiffIDs) != 1 {
		t.Errorf("history %+v / rootfs %+v: want the base's, then ours", img.Config.History, img.Config.RootFS)
	}
	if img.BaseImage != img.Root.Inputs[0].Op.Source.Image.Ref || img.BaseImage == "docker.io/library/base:latest" {
		t.Errorf("BaseImage = %q, want the pinned base reference", img.BaseImage)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	src := `FROM scratch
ENV A=1 B="two words"
ENV A=3
LABEL version=1.0 "x y"=z
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data", "/logs"]
USER app:app
WORKDIR /a
WORKDIR b
SHELL ["/bin/bash", "-c"]
CMD echo $A
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/
MAINTAINER me@example.com
ONBUILD RUN echo child
`
	img := mustConvert(t, src)
	var want imageconfig.DockerImage
	want.OS, want.Architecture = "linux", "amd64"
	want.Author = "me@example.com"
	want.RootFS.Type = "layers"
	want.Config.Env = []string{"PATH=" + defaultPath, "A=3", "B=two words"} // ENV replaces in place
	want.Config.Labels = map[string]string{"version": "1.0", "x y": "z"}
	want.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
	want.Config.Volumes = map[string]struct{}{"/data": {}, "/logs": {}}
	want.Config.User = "app:app"
	want.Config.WorkingDir = "/a/b"
	want.Config.Shell = []string{"/bin/bash", "-c"}
	want.Config.Cmd = []string{"/bin/bash", "-c", "echo $A"}
	//lint:ignore SA1019 set as Docker sets it
	want.Config.ArgsEscaped = true
	want.Config.StopSignal = "SIGINT"
	want.Config.Healthcheck = &imageconfig.HealthConfig{Test: []string{"CMD-SHELL", "curl -f http://localhost/"}, Interval: 30 * time.Second, Retries: 3}
	want.Config.OnBuild = []string{"RUN echo child"}
	got := img.DockerConfig()
	got.History = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	src := `FROM busybox AS base
ARG V=1 W
ENV A=1 B=2
LABEL a=b
RUN echo $V
COPY --chown=1:2 --chmod=0644 a.txt b.txt /dst/
ADD <<EOF /x
hi
EOF
WORKDIR /app
WORKDIR /
EXPOSE 80 443/tcp
VOLUME /data
USER nobody
CMD ["cat", "/hello.txt"]
ENTRYPOINT /bin/entry
SHELL ["/bin/ash", "-c"]
STOPSIGNAL SIGTERM
HEALTHCHECK NONE
ONBUILD COPY . /src
MAINTAINER me
`
	img := mustConvert(t, src, withArgs("W", "from-cli"))
	type entry struct {
		CreatedBy string
		Empty     bool
	}
	var got []entry
	for _, h := range img.Config.History {
		if h.Comment != historyComment || h.Created != nil {
			t.Errorf("entry %+v: want comment %q and no time", h, historyComment)
		}
		got = append(got, entry{h.CreatedBy, h.EmptyLayer})
	}
	want := []entry{
		{"ARG V=1 W=from-cli", true},
		{"ENV A=1 B=2", true},
		{"LABEL a=b", true},
		{"RUN |2 V=1 W=from-cli /bin/sh -c echo $V # buildkit", false},
		{"COPY --chown=1:2 --chmod=0644 a.txt b.txt /dst/ # buildkit", false},
		{"ADD <<EOF /x # buildkit", false},
		{"WORKDIR /app", false},
		{"WORKDIR /", true},
		{"EXPOSE [443/tcp 80/tcp]", true}, // sorted, as BuildKit writes it
		{"VOLUME [/data]", true},
		{"USER nobody", true},
		{`CMD ["cat" "/hello.txt"]`, true},
		{`ENTRYPOINT ["/bin/sh" "-c" "/bin/entry"]`, true},
		{"SHELL [/bin/ash -c]", true},
		{"STOPSIGNAL SIGTERM", true},
		{"HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}", true},
		// ONBUILD makes no history entry in BuildKit.
		{"MAINTAINER me", true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

func TestDockerConfigJSON(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM scratch\nSHELL [\"/bin/ash\", \"-c\"]\nONBUILD RUN x\n")
	data, err := json.Marshal(img.DockerConfig())
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Shell", "OnBuild", "Env"} {
		if _, ok := raw.Config[k]; !ok {
			t.Errorf("config JSON lacks %s: %s", k, data)
		}
	}
	var back imageconfig.DockerImage
	if err := json.Unmarshal(data, &back); err != nil || !cmp.Equal(back.Config.Shell, []string{"/bin/ash", "-c"}) {
		t.Errorf("round trip: %v, shell %q", err, back.Config.Shell)
	}
	if back.Platform.OS != "linux" || back.RootFS.Type != "layers" {
		t.Errorf("round trip lost the OCI fields: %+v", back.Image)
	}
}

// TestWorkingDirAsBuildKit checks the working directory and WORKDIR
// history as BuildKit writes them: "/" for scratch, absolute paths kept as
// written (trailing slash included), relative ones joined and cleaned.
func TestWorkingDirAsBuildKit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		want      string
		history   []string
		mkdirs    []string
	}{
		{"scratch", "FROM scratch\nENV A=1\n", "/", nil, nil},
		{"image without one", "FROM busybox\n", "", nil, nil},
		{"trailing slash", "FROM busybox\nWORKDIR /app/\n", "/app/", []string{"WORKDIR /app/"}, []string{"/app"}},
		{"as written", "FROM busybox\nWORKDIR /x//y/../z\n", "/x//y/../z", []string{"WORKDIR /x//y/../z"}, []string{"/x/z"}},
		{"relative joined", "FROM busybox\nWORKDIR /a/\nWORKDIR b/\nWORKDIR ./c/.\n", "/a/b/c",
			[]string{"WORKDIR /a/", "WORKDIR /a/b", "WORKDIR /a/b/c"}, []string{"/a", "/a/b", "/a/b/c"}},
		{"root makes no layer", "FROM scratch\nWORKDIR /\n", "/", []string{"WORKDIR /"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img := mustConvert(t, tc.src)
			if got := img.Config.Config.WorkingDir; got != tc.want {
				t.Errorf("WorkingDir = %q, want %q", got, tc.want)
			}
			var hist []string
			for _, h := range img.Config.History {
				if strings.HasPrefix(h.CreatedBy, "WORKDIR") {
					hist = append(hist, h.CreatedBy)
				}
			}
			if diff := cmp.Diff(tc.history, hist); diff != "" {
				t.Errorf("WORKDIR history (-want +got):\n%s", diff)
			}
			var mkdirs []string
			for _, v := range vertices(img.Root) {
				if f := v.Op.File; f != nil {
					for _, a := range f.Actions {
						if a.Mkdir != nil {
							mkdirs = append(mkdirs, a.Mkdir.Path)
						}
					}
				}
			}
			if diff := cmp.Diff(tc.mkdirs, mkdirs); diff != "" {
				t.Errorf("mkdir actions (-want +got):\n%s", diff)
			}
		})
	}
}
