package llb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Everything Kiln cannot run faithfully is an invalid-argument error that
// names the op and the field.
func TestConvertErrors(t *testing.T) {
	t.Parallel()
	img := bk.Image("busybox")
	tests := []struct {
		name string
		st   bk.State
		want string
	}{
		{"ulimit", img.Run(bk.Shlex("true"), bk.AddUlimit(bk.UlimitNofile, 1, 2)).Root(), "exec op"},
		{"ulimit field", img.Run(bk.Shlex("true"), bk.AddUlimit(bk.UlimitNofile, 1, 2)).Root(), "meta.ulimit is not supported"},
		{"cgroup parent", img.Run(bk.Shlex("true"), bk.WithCgroupParent("/x")).Root(), "meta.cgroupParent is not supported"},
		{"cdi device", img.Run(bk.Shlex("true"), bk.AddCDIDevice(bk.CDIDeviceName("vendor.com/gpu=0"))).Root(), "cdiDevices are not supported"},
		{"image layer limit", bk.Image("busybox", bk.WithLayerLimit(1)), "image source attribute image.layerlimit is not supported"},
		{"oci layout", bk.OCILayout("busybox@sha256:" + strings.Repeat("a", 64)), "oci-layout sources are not supported"},
		{"git checksum", bk.Git("https://example.com/r.git", "main", bk.GitChecksum(strings.Repeat("a", 40))), "git source attribute git.checksum is not supported"},
		{"git token secret", bk.Git("https://example.com/r.git", "main", bk.AuthTokenSecret("MY_TOKEN")), `git.authtokensecret "MY_TOKEN" is not supported`},
		{"http header", bk.HTTP("https://example.com/f", bk.Header(bk.HTTPHeader{Accept: "x"})), "http source attribute http.header.accept is not supported"},
		{"diff onto scratch", bk.Diff(img, bk.Scratch()), "a diff onto an empty upper"},
		{"sub-second time", bk.Scratch().File(bk.Mkdir("/a", 0o755, bk.WithCreatedTime(time.Unix(1, 5)))), "sub-second precision"},
		{"copy from scratch", bk.Scratch().File(bk.Copy(bk.Scratch(), "/a", "/b")), "the source is an empty filesystem"},
		{"output with selector", selectorOutput(img), "an output mount with a selector"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := convertErr(tc.st, Options{})
			if err == nil {
				t.Fatalf("converted; want an error containing %q", tc.want)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %q is not in the invalid-argument class", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "llb ") {
				t.Errorf("error %q does not contain %q and name the op", err, tc.want)
			}
		})
	}
}

func selectorOutput(base bk.State) bk.State {
	return base.Run(bk.Shlex("true")).AddMount("/o", base, bk.SourcePath("/etc"))
}

// Malformed definitions: errors, never panics.
func TestConvertMalformed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	good, err := bk.Image("busybox").Run(bk.Shlex("true")).Root().Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	execOnly := &pb.Definition{Def: good.Def[:len(good.Def)-1]}
	selfRef := func() *pb.Definition {
		op := &pb.Op{Inputs: []*pb.Input{{Digest: "sha256:" + strings.Repeat("0", 64)}}, Op: &pb.Op_Merge{Merge: &pb.MergeOp{Inputs: []*pb.MergeInput{{Input: 0}}}}}
		b, _ := op.MarshalVT()
		term, _ := (&pb.Op{Inputs: []*pb.Input{{Digest: digestOf(b)}}}).MarshalVT()
		return &pb.Definition{Def: [][]byte{b, term}}
	}()
	execDef := func(mounts ...*pb.Mount) *pb.Definition {
		root := &pb.Mount{Dest: "/", Input: -1, Output: 0}
		op := &pb.Op{Op: &pb.Op_Exec{Exec: &pb.ExecOp{Meta: &pb.Meta{Args: []string{"true"}}, Mounts: append([]*pb.Mount{root}, mounts...)}}}
		b, _ := op.MarshalVT()
		term, _ := (&pb.Op{Inputs: []*pb.Input{{Digest: digestOf(b), Index: 1}}}).MarshalVT()
		return &pb.Definition{Def: [][]byte{b, term}}
	}
	tests := []struct {
		name string
		def  *pb.Definition
		want string
	}{
		{"readonly output", execDef(&pb.Mount{Dest: "/o", Input: -1, Output: 1, Readonly: true}), "only a writable bind mount can be an output"},
		{"cache without id", execDef(&pb.Mount{Dest: "/c", Input: -1, Output: 1, MountType: pb.MountType_CACHE}), "cache mount /c has no id"},
		{"tmpfs size", execDef(&pb.Mount{Dest: "/t", Input: -1, Output: -1, MountType: pb.MountType_TMPFS, TmpfsOpt: &pb.TmpfsOpt{Size: -1}}), "negative size"},
		{"relative mount", execDef(&pb.Mount{Dest: "t", Input: -1, Output: 1}), "is not absolute"},
		{"garbage", &pb.Definition{Def: [][]byte{{0xff, 0xff, 0xff}}}, "cannot be decoded"},
		{"no terminal", execOnly, "last op must be its terminal"},
		{"missing input", selfRef, "is not in the definition"},
		{"bad output index", withOutput(t, good.ToPB(), 5), "has no output 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Convert(ctx, tc.def, Options{})
			if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Convert: %v, want an invalid-argument error containing %q", err, tc.want)
			}
		})
	}
}

// withOutput points the terminal of def at output index of its result.
func withOutput(t *testing.T, def *pb.Definition, index int64) *pb.Definition {
	t.Helper()
	term := &pb.Op{}
	if err := term.UnmarshalVT(def.Def[len(def.Def)-1]); err != nil {
		t.Fatal(err)
	}
	term.Inputs[0].Index = index
	b, err := term.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	out := &pb.Definition{Def: append(append([][]byte{}, def.Def[:len(def.Def)-1]...), b), Metadata: def.Metadata}
	return out
}

// A definition with source locations puts the file and line in the error.
func TestConvertErrorLocation(t *testing.T) {
	t.Parallel()
	sm := bk.NewSourceMap(nil, "Dockerfile", "Dockerfile", []byte("FROM busybox\nRUN true\n"))
	st := bk.Image("busybox").Run(bk.Shlex("true"), bk.WithCgroupParent("/x"), sm.Location([]*pb.Range{{Start: &pb.Position{Line: 2}, End: &pb.Position{Line: 2}}})).Root()
	_, err := convertErr(st, Options{})
	var se *errdefs.SourceError
	if !errors.As(err, &se) || se.File != "Dockerfile" || se.Range.Start != 2 {
		t.Fatalf("error %v, want a SourceError at Dockerfile:2", err)
	}
	if !strings.HasPrefix(err.Error(), "Dockerfile:2: ") {
		t.Errorf("message %q does not start with the location", err)
	}
}
