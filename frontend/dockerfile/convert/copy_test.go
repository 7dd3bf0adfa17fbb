package convert

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/graph"
)

// TestCopy checks the FileOp COPY, ADD and WORKDIR become and what they
// read from.
func TestCopy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want graph.FileOp
		// inputs names the kinds of the vertex's inputs after the base.
		inputs []string
	}{
		{"relative dest against workdir", "FROM busybox\nWORKDIR /app\nCOPY a.txt ./b/\n",
			graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 1, Src: []string{"a.txt"}, Dest: "/app/b/", FollowSymlinks: true}}}},
			[]string{"local"}},
		{"dot dest is the workdir", "FROM busybox\nWORKDIR /app\nCOPY . .\n",
			graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 1, Src: []string{"."}, Dest: "/app/", FollowSymlinks: true}}}},
			[]string{"local"}},
		{"flags and expansion", "FROM busybox\nARG U=app\nCOPY --chown=$U:staff --chmod=u+x --exclude=*.md ./src/../bin/* /usr/local/bin/\n",
			graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 1, Src: []string{"bin/*"}, Dest: "/usr/local/bin/",
				Chown: &graph.Chown{User: "app", Group: "staff"}, Chmod: "u+x", Exclude: []string{"*.md"}, FollowSymlinks: true}}}},
			[]string{"local"}},
		{"parents keeps the path", "FROM busybox\nCOPY --parents ./x/./y/*.go /dst/\n",
			graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 1, Src: []string{"./x/./y/*.go"}, Dest: "/dst/", Parents: true, FollowSymlinks: true}}}},
			[]string{"local"}},
		{"from a stage is relative to its root", "FROM busybox AS build\nWORKDIR /src\nRUN make\nFROM scratch\nCOPY --from=build out/app /app\n",
			graph.FileOp{Base: graph.NoInput, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 0, Src: []string{"out/app"}, Dest: "/app", FollowSymlinks: true}}}},
			[]string{"exec"}},
		{"from an image", "FROM scratch\nCOPY --from=alpine:3.19 /etc/os-release /\n",
			graph.FileOp{Base: graph.NoInput, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 0, Src: []string{"etc/os-release"}, Dest: "/", FollowSymlinks: true}}}},
			[]string{"image"}},
		{"add unpacks local archives", "FROM busybox\nADD rootfs.tar.gz /\n",
			graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 1, Src: []string{"rootfs.tar.gz"}, Dest: "/", FollowSymlinks: true, Unpack: true}}}},
			[]string{"local"}},
		{"add url and git", "FROM busybox\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/x/tool.tgz /opt/\nADD https://github.com/a/b.git#v1:docs /docs\n",
			graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 1, Src: []string{"."}, Dest: "/docs"}}}},
			[]string{"source"}},
		{"heredoc", "FROM busybox\nCOPY --chmod=0755 <<EOF /usr/bin/hello\necho $HOME\nEOF\n",
			graph.FileOp{Base: 0, Actions: []graph.FileAction{{Copy: &graph.CopyAction{Input: 1, Src: []string{"EOF"}, Dest: "/usr/bin/hello", Chmod: "0755"}}}},
			[]string{"file"}},
		{"workdir makes the directory as the user", "FROM busybox\nUSER 1000:1000\nWORKDIR /home/app\n",
			graph.FileOp{Base: 0, Actions: []graph.FileAction{{Mkdir: &graph.MkdirAction{Path: "/home/app", Mode: 0o755, MakeParents: true, Chown: &graph.Chown{User: "1000", Group: "1000"}}}}},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := mustConvert(t, tt.src)
			if img.Root.Op.File == nil {
				t.Fatalf("last vertex is %s, want file", img.Root.Op.Kind())
			}
			if diff := cmp.Diff(&tt.want, img.Root.Op.File); diff != "" {
				t.Errorf("file op (-want +got):\n%s", diff)
			}
			var kinds []string
			for i, in := range img.Root.Inputs {
				if i == tt.want.Base {
					continue
				}
				k := in.Op.Kind()
				if s := in.Op.Source; s != nil {
					switch {
					case s.Local != nil:
						k = "local"
					case s.Image != nil:
						k = "image"
					}
				}
				kinds = append(kinds, k)
			}
			if diff := cmp.Diff(tt.inputs, kinds); diff != "" {
				t.Errorf("input kinds (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAddRemoteSources(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM busybox\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/x/tool.tgz /opt/\n")
	h := img.Root.Inputs[1].Op.Source.HTTP
	want := &graph.HTTPSource{URL: "https://example.com/x/tool.tgz", Filename: "tool.tgz", Checksum: "sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d"}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("http source (-want +got):\n%s", diff)
	}
	if c := img.Root.Op.File.Actions[0].Copy; c.Src[0] != "tool.tgz" || c.Unpack || c.Dest != "/opt/" {
		t.Errorf("copy = %+v, want tool.tgz into /opt/ without unpacking", c)
	}
	img = mustConvert(t, "FROM busybox\nADD --keep-git-dir https://github.com/a/b.git#v1:docs /docs\n")
	g := img.Root.Inputs[1].Op.Source.Git
	if diff := cmp.Diff(&graph.GitSource{Remote: "https://github.com/a/b.git", Ref: "v1", Subdir: "docs", KeepGitDir: true}, g); diff != "" {
		t.Errorf("git source (-want +got):\n%s", diff)
	}
}

func TestCopyHeredocInline(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM busybox\nENV HOME=/root\nCOPY <<EOF <<'RAW' /etc/\nhome=$HOME\nEOF\nhome=$HOME\nRAW\n")
	inline := img.Root.Inputs[1].Op.File
	want := &graph.FileOp{Base: graph.NoInput, Actions: []graph.FileAction{
		{Mkfile: &graph.MkfileAction{Path: "/EOF", Mode: 0o644, Data: []byte("home=/root\n")}},
		{Mkfile: &graph.MkfileAction{Path: "/RAW", Mode: 0o644, Data: []byte("home=$HOME\n")}},
	}}
	if diff := cmp.Diff(want, inline); diff != "" {
		t.Errorf("inline documents (-want +got):\n%s", diff)
	}
}

func TestCopyLink(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM busybox\nCOPY --link a /a\n")
	if img.Root.Op.Merge == nil || len(img.Root.Inputs) != 2 {
		t.Fatalf("root is %s with %d inputs, want a merge of 2", img.Root.Op.Kind(), len(img.Root.Inputs))
	}
	base, cp := img.Root.Inputs[0], img.Root.Inputs[1]
	if base.Op.Source == nil || base.Op.Source.Image == nil {
		t.Errorf("merge input 0 is %q, want the base image", base.Meta.Name)
	}
	if cp.Op.File == nil || cp.Op.File.Base != graph.NoInput || !cp.Op.File.Actions[0].Copy.Link || cp.Op.Platform != nil {
		t.Errorf("merge input 1 = %+v, want a platform-independent copy onto an empty base", cp.Op)
	}
	if cp.Meta.Name != "[2/2] COPY --link a /a" || img.Root.Meta.Name != "[2/2] LINK COPY --link a /a" {
		t.Errorf("names = %q, %q", cp.Meta.Name, img.Root.Meta.Name)
	}
	// The linked layer does not depend on the base: same digest on another base.
	other := mustConvert(t, "FROM alpine\nRUN true\nCOPY --link a /a\n")
	if other.Root.Inputs[1].Digest() != cp.Digest() {
		t.Errorf("the --link copy depends on its base")
	}
}

func TestWorkdirRoot(t *testing.T) {
	t.Parallel()
	img := mustConvert(t, "FROM busybox\nWORKDIR /\nRUN pwd\n")
	if got := names(img.Root); !cmp.Equal(got, []string{"[1/3] FROM docker.io/library/busybox:latest@" + img.Root.Inputs[0].Op.Source.Image.Ref[len("docker.io/library/busybox:latest@"):], "[3/3] RUN pwd"}) {
		t.Errorf("names = %q: WORKDIR / makes no vertex but keeps its number", got)
	}
}

func TestCopyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src, want string }{
		{"copy url", "FROM busybox\nCOPY https://example.com/a /a\n", "Dockerfile:2: COPY does not download URLs (https://example.com/a); use ADD for a remote file"},
		{"git checksum", "FROM busybox\nADD --checksum=0123456789abcdef https://github.com/a/b.git /b\n", "Dockerfile:2: ADD --checksum is not supported for Git sources yet"},
		{"copy from empty stage", "FROM scratch AS empty\nFROM busybox\nCOPY --from=empty /a /a\n", "Dockerfile:3: COPY --from=empty: nothing to copy: its filesystem is empty"},
		{"copy from scratch", "FROM busybox\nCOPY --from=scratch /a /a\n", "Dockerfile:2: COPY --from=scratch: nothing to copy"},
		{"bad checksum", "FROM busybox\nARG C=md5:abc\nADD --checksum=$C https://example.com/a /a\n", "Dockerfile:3: ADD --checksum: invalid checksum \"md5:abc\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := convertErr(tt.src, amd64)
			if got := errorText(err); len(got) < len(tt.want) || got[:len(tt.want)] != tt.want {
				t.Errorf("error = %q, want prefix %q", got, tt.want)
			}
		})
	}
}
