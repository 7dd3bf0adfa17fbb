package dockerfile

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/graph"
)

func request(src string) frontend.Request {
	return frontend.Request{
		Dockerfile:     []byte(src),
		DockerfileName: "Dockerfile",
		BuildPlatform:  ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Resolver:       OfflineResolver{},
	}
}

func TestSolvePlatforms(t *testing.T) {
	t.Parallel()
	req := request("FROM --platform=$BUILDPLATFORM busybox AS b\nRUN make\nFROM busybox\nCOPY --from=b /x /x\n")
	req.Platforms = []ocispec.Platform{{OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "amd64"}}
	res, err := New().Solve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 2 || res.Images[0].Platform.Architecture != "arm64" || res.Images[1].Platform.Architecture != "amd64" {
		t.Fatalf("images = %+v, want arm64 then amd64", res.Images)
	}
	for _, img := range res.Images {
		if err := graph.Validate(img.Root); err != nil {
			t.Errorf("%s: %v", img.Platform.Architecture, err)
		}
	}
	// The build-platform stage is one vertex for both.
	a, b := res.Images[0].Root.Inputs[1], res.Images[1].Root.Inputs[1]
	if a.Digest() != b.Digest() {
		t.Errorf("the BUILDPLATFORM stage differs between targets")
	}
}

func TestSolveWarnings(t *testing.T) {
	t.Parallel()
	req := request("FROM busybox AS Build\nMAINTAINER me\n")
	req.BuildArgs = map[string]string{"NOPE": "1", "HTTPS_PROXY": "x"}
	res, err := New().Solve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings {
		got = append(got, w.Rule)
	}
	if diff := cmp.Diff([]string{"StageNameCasing", "MaintainerDeprecated", "UnusedBuildArg"}, got); diff != "" {
		t.Errorf("warning rules (-want +got):\n%s", diff)
	}
}

func TestSolveErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src, want string }{
		{"empty", " \n", "Dockerfile: the Dockerfile cannot be empty"},
		{"parse", "FROM busybox\nCOPPY a b\n", "Dockerfile:2: unknown instruction: COPPY (did you mean COPY?)"},
		{"check error", "# check=error=true\nFROM busybox AS Build\n", "Dockerfile:2: lint violation StageNameCasing: Stage name 'Build' should be lowercase"},
		{"no resolver", "FROM busybox\n", "Dockerfile:1: FROM busybox: resolve image docker.io/library/busybox:latest for linux/amd64: cannot resolve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := request(tt.src)
			if tt.name == "no resolver" {
				req.Resolver = nil
			}
			_, err := New().Solve(context.Background(), req)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("error = %v, want invalid argument %q", err, tt.want)
			}
		})
	}
}

func TestSolveScratchOnly(t *testing.T) {
	t.Parallel()
	req := request("FROM scratch\nENV A=1\n")
	req.Resolver = nil
	res, err := New().Solve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Images[0].Root != nil || res.Images[0].BaseImage != "" {
		t.Errorf("FROM scratch with no changes: root %v, base %q", res.Images[0].Root, res.Images[0].BaseImage)
	}
}
