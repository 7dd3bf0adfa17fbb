package client

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
)

// A build request whose flags are not UTF-8 fails in the client, naming
// the flag, instead of in gRPC's marshalling.
func TestBuildRequestNotUTF8(t *testing.T) {
	t.Parallel()
	c, err := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		req  *api.BuildRequest
		want string
	}{
		{req: &api.BuildRequest{BuildArgs: map[string]string{"A": "x\xff"}}, want: "--build-arg (build_args[A]) is not valid UTF-8"},
		{req: &api.BuildRequest{Tags: []string{"ok", "b\xff"}}, want: "--tag (tags[1]) is not valid UTF-8"},
		{req: &api.BuildRequest{Target: "\xfe"}, want: "--target (target) is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := c.Build(context.Background(), BuildOptions{Request: tt.req})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("got %v, want %q (invalid argument)", err, tt.want)
			}
		})
	}
}
