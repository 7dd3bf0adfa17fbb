package executor

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
)

func TestExitError(t *testing.T) {
	t.Parallel()
	var err error = fmt.Errorf("step: %w", &ExitError{Code: 3, Args: []string{"/bin/sh", "-c", `echo "x"; exit 3`}})
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("errors.As = %v, %+v", errors.As(err, &exit), exit)
	}
	want := `process "/bin/sh -c echo \"x\"; exit 3" did not complete successfully: exit code: 3`
	if got := exit.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestProcessValidate(t *testing.T) {
	t.Parallel()
	ok := Process{Args: []string{"true"}}
	tests := []struct {
		name string
		edit func(*Process)
		want string // "" means valid
	}{
		{"minimal", func(*Process) {}, ""},
		{"all set", func(p *Process) {
			p.Env, p.SecretEnv, p.Cwd, p.Net, p.Security = []string{"A=1", "B="}, []string{"S=x"}, "/w", sandbox.NetNone, sandbox.SecurityInsecure
			p.ExtraHosts = []sandbox.HostIP{{Host: "db", IP: netip.MustParseAddr("10.0.0.2")}}
		}, ""},
		{"no args", func(p *Process) { p.Args = nil }, "no command"},
		{"empty argv0", func(p *Process) { p.Args = []string{""} }, "no command"},
		{"relative cwd", func(p *Process) { p.Cwd = "work" }, `working directory "work" is not an absolute path`},
		{"bad network", func(p *Process) { p.Net = "bridge" }, `unknown network mode "bridge"`},
		{"bad security", func(p *Process) { p.Security = "root" }, `unknown security mode "root"`},
		{"env without name", func(p *Process) { p.Env = []string{"=x"} }, "environment entry without a name"},
		{"secret env without name is redacted", func(p *Process) { p.SecretEnv = []string{"=topsecret"} }, `"=..."`},
		{"bad extra host", func(p *Process) { p.ExtraHosts = []sandbox.HostIP{{Host: "a b", IP: netip.MustParseAddr("10.0.0.1")}} }, "invalid extra host"},
		{"extra host without IP", func(p *Process) { p.ExtraHosts = []sandbox.HostIP{{Host: "db"}} }, "invalid extra host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := ok
			tc.edit(&p)
			err := p.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Validate() error is not ErrInvalidArgument")
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("Validate() leaks a secret value: %v", err)
			}
		})
	}
}

func TestMountPrimitives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  Mount
		want Mount
	}{{
		name: "bind rw",
		got:  BindMount("/cache", "/var/lib/kiln/cachemounts/x", false),
		want: Mount{Dest: "/cache", Source: []mount.Mount{{Type: "bind", Source: "/var/lib/kiln/cachemounts/x", Options: []string{"rbind", "rw"}}}},
	}, {
		name: "bind ro file",
		got:  BindMount("/run/secrets/token", "/run/kiln/s/token", true),
		want: Mount{Dest: "/run/secrets/token", Readonly: true, Source: []mount.Mount{{Type: "bind", Source: "/run/kiln/s/token", Options: []string{"rbind", "ro"}}}},
	}, {
		name: "tmpfs with size",
		got:  TmpfsMount("/tmp", 64<<20, "mode=1777"),
		want: Mount{Dest: "/tmp", Source: []mount.Mount{{Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=67108864", "mode=1777"}}}},
	}, {
		name: "tmpfs default size",
		got:  TmpfsMount("/tmp", 0),
		want: Mount{Dest: "/tmp", Source: []mount.Mount{{Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}}}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if err := tc.got.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestMountValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		m    Mount
		want string
	}{
		{Mount{Dest: "rel", Source: []mount.Mount{{Type: "tmpfs"}}}, `mount destination "rel" is not an absolute path`},
		{Mount{Dest: "/x"}, "mount /x has no source"},
		{Mount{Dest: "/x", Source: []mount.Mount{{Source: "/a"}}}, `mount /x: source "/a" has no type`},
	}
	for _, tc := range tests {
		err := tc.m.Validate()
		if err == nil || err.Error() != tc.want || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Validate(%+v) = %v, want invalid argument %q", tc.m, err, tc.want)
		}
	}
}
