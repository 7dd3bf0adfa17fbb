package run

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
)

func TestRunProcess(t *testing.T) {
	t.Parallel()
	cfg := ocispec.ImageConfig{
		Entrypoint: []string{"/entry"}, Cmd: []string{"default", "args"},
		Env: []string{"PATH=/bin", "A=1"}, WorkingDir: "/app", User: "app",
	}
	tests := []struct {
		name string
		cfg  ocispec.ImageConfig
		req  Request
		want executor.Process
		err  string
	}{
		{
			name: "image config",
			cfg:  cfg, req: Request{},
			want: executor.Process{Args: []string{"/entry", "default", "args"}, Env: []string{"PATH=/bin", "A=1"}, Cwd: "/app", User: "app"},
		},
		{
			name: "arguments replace CMD",
			cfg:  cfg, req: Request{Args: []string{"x"}},
			want: executor.Process{Args: []string{"/entry", "x"}, Env: []string{"PATH=/bin", "A=1"}, Cwd: "/app", User: "app"},
		},
		{
			name: "entrypoint drops CMD",
			cfg:  cfg, req: Request{HasEntrypoint: true, Entrypoint: []string{"/bin/sh"}},
			want: executor.Process{Args: []string{"/bin/sh"}, Env: []string{"PATH=/bin", "A=1"}, Cwd: "/app", User: "app"},
		},
		{
			name: "empty entrypoint and arguments",
			cfg:  cfg, req: Request{HasEntrypoint: true, Args: []string{"ls", "-l"}},
			want: executor.Process{Args: []string{"ls", "-l"}, Env: []string{"PATH=/bin", "A=1"}, Cwd: "/app", User: "app"},
		},
		{
			name: "env, workdir, user, hostname",
			cfg:  cfg, req: Request{Env: []string{"A=2", "B=3"}, Workdir: "/tmp", User: "0:0", Hostname: "h"},
			want: executor.Process{Args: []string{"/entry", "default", "args"}, Env: []string{"PATH=/bin", "A=2", "B=3"}, Cwd: "/tmp", User: "0:0", Hostname: "h"},
		},
		{
			name: "no workdir is /",
			cfg:  ocispec.ImageConfig{Cmd: []string{"sh"}}, req: Request{},
			want: executor.Process{Args: []string{"sh"}, Env: []string{}, Cwd: "/"},
		},
		{
			name: "nothing to run",
			cfg:  ocispec.ImageConfig{}, req: Request{},
			err: "image app has no command to run",
		},
		{
			name: "entrypoint cleared and no arguments",
			cfg:  cfg, req: Request{HasEntrypoint: true},
			err: "has no command to run",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := runProcess("app", tc.cfg, tc.req, sandbox.NetDefault)
			if tc.err != "" {
				if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want an invalid-argument error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Env == nil {
				got.Env = []string{}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("process (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunNetwork(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]sandbox.NetMode{"": sandbox.NetDefault, "default": sandbox.NetDefault, "host": sandbox.NetHost, "none": sandbox.NetNone} {
		if got, err := runNetwork(in); err != nil || got != want {
			t.Errorf("runNetwork(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"bridge", "container:x", "HOST"} {
		if _, err := runNetwork(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("runNetwork(%q) = %v, want an invalid-argument error", in, err)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	t.Parallel()
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4", "A="})
	if diff := cmp.Diff([]string{"A=", "B=3", "C=4"}, got); diff != "" {
		t.Errorf("mergeEnv (-want +got):\n%s", diff)
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg  string
		code int
		ok   bool
	}{
		{`runc run failed: unable to start container process: exec: "/no/such": stat /no/such: no such file or directory`, 127, true},
		{`runc run failed: unable to start container process: exec: "nope": executable file not found in $PATH`, 127, true},
		{`runc run failed: unable to start container process: exec: "/etc/passwd": permission denied`, 126, true},
		{`unable to find user nosuchuser: no matching entries in passwd file`, 126, true},
		{`prepare snapshot: no space left on device`, 0, false},
	}
	for _, tc := range tests {
		code, ok := startFailure(errors.New(tc.msg))
		if code != tc.code || ok != tc.ok {
			t.Errorf("startFailure(%q) = %d, %v; want %d, %v", tc.msg, code, ok, tc.code, tc.ok)
		}
	}
}
