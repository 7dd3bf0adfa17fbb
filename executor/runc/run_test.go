package runc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/executor"
)

func TestRunOutputAndExit(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			e := newTestExecutor(t, rt)

			t.Run("stdout and stderr", func(t *testing.T) {
				root, _ := overlayRoot(t, lower)
				out, errOut, err := run(t, e, root, nil, executor.Process{Args: sh("echo to-out; echo to-err >&2")})
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errOut)
				}
				if out != "to-out\n" || errOut != "to-err\n" {
					t.Errorf("stdout %q, stderr %q; want \"to-out\\n\", \"to-err\\n\"", out, errOut)
				}
			})

			t.Run("exit code", func(t *testing.T) {
				root, _ := overlayRoot(t, lower)
				_, _, err := run(t, e, root, nil, executor.Process{Args: sh("exit 3")})
				var exit *executor.ExitError
				if !errors.As(err, &exit) {
					t.Fatalf("Run: %v; want an *executor.ExitError", err)
				}
				if exit.Code != 3 {
					t.Errorf("Code = %d, want 3", exit.Code)
				}
				want := `process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`
				if err.Error() != want {
					t.Errorf("error = %q, want %q", err, want)
				}
			})

			t.Run("missing command", func(t *testing.T) {
				root, _ := overlayRoot(t, lower)
				_, _, err := run(t, e, root, nil, executor.Process{Args: []string{"/nosuch"}})
				var exit *executor.ExitError
				if err == nil || errors.As(err, &exit) {
					t.Fatalf("Run: %v; want a start error", err)
				}
				if !strings.Contains(err.Error(), rt+" run failed") || !strings.Contains(err.Error(), "/nosuch") {
					t.Errorf("error %q should say %q and name /nosuch", err, rt+" run failed")
				}
			})

			t.Run("output streams live", func(t *testing.T) {
				root, _ := overlayRoot(t, lower)
				// The process waits for a line that the test writes only
				// after it has seen "ready": without live output, this
				// would hang until the timeout.
				inR, inW := io.Pipe()
				outR, outW := io.Pipe()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				done := make(chan error, 1)
				go func() {
					done <- e.Run(ctx, root, nil, executor.Process{
						Args:   sh("echo ready; read line; echo got-$line"),
						Stdin:  inR,
						Stdout: outW,
					})
					outW.Close()
				}()
				sc := bufio.NewScanner(outR)
				if !sc.Scan() || sc.Text() != "ready" {
					t.Fatalf("first line %q, want ready", sc.Text())
				}
				if _, err := io.WriteString(inW, "hello\n"); err != nil {
					t.Fatal(err)
				}
				inW.Close()
				if !sc.Scan() || sc.Text() != "got-hello" {
					t.Errorf("second line %q, want got-hello", sc.Text())
				}
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		})
	}
}

func TestRunEnvCwdUser(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			e := newTestExecutor(t, rt)
			tests := []struct {
				name string
				p    executor.Process
				want string
			}{{
				name: "env and defaults",
				p:    executor.Process{Env: []string{"FOO=bar baz"}, SecretEnv: []string{"TOKEN=s3cret"}},
				want: "FOO=bar baz\nHOME=/root\nPATH=" + strings.TrimPrefix(defaultPathEnv, "PATH=") + "\nTOKEN=s3cret\nuid=0 gid=0 groups=0\ncwd=/\n",
			}, {
				name: "user by name",
				p:    executor.Process{User: "app"},
				want: "HOME=/home/app\nPATH=" + strings.TrimPrefix(defaultPathEnv, "PATH=") + "\nuid=1000 gid=1000 groups=50,1000\ncwd=/\n",
			}, {
				name: "uid:gid without passwd entry",
				p:    executor.Process{User: "4242:50", Env: []string{"PATH=/bin"}},
				want: "HOME=/\nPATH=/bin\nuid=4242 gid=50 groups=50\ncwd=/\n",
			}, {
				name: "name:group",
				p:    executor.Process{User: "app:staff", Env: []string{"PATH=/bin"}},
				want: "HOME=/home/app\nPATH=/bin\nuid=1000 gid=50 groups=50\ncwd=/\n",
			}, {
				name: "existing cwd",
				p:    executor.Process{Cwd: "/tmp", Env: []string{"PATH=/bin"}},
				want: "HOME=/root\nPATH=/bin\nuid=0 gid=0 groups=0\ncwd=/tmp\n",
			}}
			script := `env | grep -v -e '^PWD=' -e '^SHLVL=' -e '^HOSTNAME=' | sort
echo "uid=$(id -u) gid=$(id -g) groups=$(grep '^Groups:' /proc/self/status | cut -f2 | tr ' ' ',' | sed 's/,$//')"
echo "cwd=$(pwd)"`
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					root, _ := overlayRoot(t, lower)
					tc.p.Args = sh(script)
					out, errOut, err := run(t, e, root, nil, tc.p)
					if err != nil {
						t.Fatalf("Run: %v (stderr %q)", err, errOut)
					}
					if diff := cmp.Diff(tc.want, out); diff != "" {
						t.Errorf("output (-want +got):\n%s", diff)
					}
				})
			}

			t.Run("missing cwd is created for the user", func(t *testing.T) {
				root, upper := overlayRoot(t, lower)
				out, errOut, err := run(t, e, root, nil, executor.Process{Args: sh("pwd; touch f"), Cwd: "/work/dir", User: "app"})
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errOut)
				}
				if out != "/work/dir\n" {
					t.Errorf("pwd = %q, want /work/dir", out)
				}
				for _, p := range []string{"work", "work/dir", "work/dir/f"} {
					fi, err := os.Stat(filepath.Join(upper, p))
					if err != nil {
						t.Fatalf("%s not in the upper dir: %v", p, err)
					}
					if uid, gid := owner(fi); uid != 1000 || gid != 1000 {
						t.Errorf("%s owned by %d:%d, want 1000:1000", p, uid, gid)
					}
				}
			})

			t.Run("unknown user", func(t *testing.T) {
				root, _ := overlayRoot(t, lower)
				_, _, err := run(t, e, root, nil, executor.Process{Args: sh("true"), User: "nosuch"})
				if err == nil || !strings.Contains(err.Error(), "nosuch") {
					t.Fatalf("Run: %v; want an error naming nosuch", err)
				}
				if !errors.Is(err, errdefs.ErrNotFound) {
					t.Errorf("error %v is not ErrNotFound", err)
				}
			})
		})
	}
}

func TestRunWritesLandInUpperDir(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			e := newTestExecutor(t, rt)
			root, upper := overlayRoot(t, lower)
			if _, errOut, err := run(t, e, root, nil, executor.Process{Args: sh("echo data > /newfile; rm /etc/group")}); err != nil {
				t.Fatalf("Run: %v (stderr %q)", err, errOut)
			}
			got, err := os.ReadFile(filepath.Join(upper, "newfile"))
			if err != nil || string(got) != "data\n" {
				t.Errorf("upper/newfile = %q, %v; want \"data\\n\"", got, err)
			}
			if fi, err := os.Lstat(filepath.Join(upper, "etc/group")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
				t.Errorf("upper/etc/group should be a whiteout: %v, %v", fi, err)
			}
			// The mount points the executor needed are gone again.
			for _, p := range []string{"proc", "dev", "sys", "etc/hosts", "etc/resolv.conf", "etc/hostname"} {
				if _, err := os.Lstat(filepath.Join(upper, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("upper dir has %s (err %v); mount points must not land in the snapshot", p, err)
				}
			}
			if _, err := os.Lstat(filepath.Join(lower, "newfile")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the lower dir was written to")
			}
		})
	}
}

func TestRunReadonlyRoot(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	e := newTestExecutor(t, "runc")
	root, upper := overlayRoot(t, lower)
	root.Readonly = true
	out, _, err := run(t, e, root, nil, executor.Process{Args: sh("touch /x 2>&1; cat /etc/hostname")})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(out, "Read-only file system") || !strings.Contains(out, DefaultHostname) {
		t.Errorf("output %q: want a read-only error and the hostname", out)
	}
	if _, err := os.Lstat(filepath.Join(upper, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("write to a read-only root reached the upper dir")
	}
}
