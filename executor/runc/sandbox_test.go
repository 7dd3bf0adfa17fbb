package runc

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/sandbox"
	"github.com/kiln-build/kiln/executor"
)

// dockerDefaultCaps is the capability mask of Docker's default set:
// CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
// NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
const dockerDefaultCaps = "00000000a80425fb"

func TestRunSandbox(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	hostStatus, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	hostCaps := statusField(string(hostStatus), "CapEff")

	script := `grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/self/status
echo sys=$(grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)
echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c)
echo procsys=$(grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)
echo devices=$(for d in null zero random urandom tty full ptmx; do test -c /dev/$d || echo missing-$d; done; test -d /dev/pts && test -d /dev/shm && echo ok)
echo zero=$(head -c 4 /dev/zero | od -An -tx1 | tr -d ' ')
echo null=$(echo discard > /dev/null && cat /dev/null | wc -c)
echo proc=$(cat /proc/1/cmdline | tr '\0' ' ')`
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			e := newTestExecutor(t, rt, WithInsecureAllowed(true))
			tests := []struct {
				name     string
				security sandbox.SecurityMode
				want     map[string]string
			}{{
				name: "sandbox",
				want: map[string]string{
					"CapEff": dockerDefaultCaps, "CapBnd": dockerDefaultCaps, "CapPrm": dockerDefaultCaps,
					"Seccomp": "2", "NoNewPrivs": "1", "sys": "ro", "kcore": "0", "procsys": "ro",
				},
			}, {
				name:     "insecure",
				security: sandbox.SecurityInsecure,
				want: map[string]string{
					"CapEff": hostCaps, "CapBnd": hostCaps, "CapPrm": hostCaps,
					"Seccomp": "0", "NoNewPrivs": "0", "sys": "rw", "procsys": "",
				},
			}}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					root, _ := overlayRoot(t, lower)
					out, errOut, err := run(t, e, root, nil, executor.Process{Args: sh(script), Security: tc.security})
					if err != nil {
						t.Fatalf("Run: %v (stderr %q)", err, errOut)
					}
					got := parseKV(out)
					for k, want := range tc.want {
						if got[k] != want {
							t.Errorf("%s = %q, want %q", k, got[k], want)
						}
					}
					if got["devices"] != "ok" {
						t.Errorf("devices: %q, want ok", got["devices"])
					}
					if got["zero"] != "00000000" || got["null"] != "0" {
						t.Errorf("/dev/zero read %q, /dev/null read %q bytes", got["zero"], got["null"])
					}
					if !strings.HasPrefix(got["proc"], "/bin/sh -c grep") {
						t.Errorf("/proc/1/cmdline = %q: /proc should show the container's own pid 1", got["proc"])
					}
				})
			}
		})
	}

	t.Run("insecure needs permission", func(t *testing.T) {
		e := newTestExecutor(t, "runc")
		root, _ := overlayRoot(t, lower)
		_, _, err := run(t, e, root, nil, executor.Process{Args: sh("true"), Security: sandbox.SecurityInsecure})
		if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "security.insecure") {
			t.Fatalf("Run = %v, want a permission error naming security.insecure", err)
		}
	})
}

// parseKV reads "key=value" and "Key:\tvalue" lines.
func parseKV(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.Contains(k, " ") {
			kv[k] = strings.TrimSpace(v)
		} else if k, v, ok := strings.Cut(line, ":"); ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}

func TestRunEtcFiles(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	writeFile(t, resolv, "# host\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\nsearch example.org\n")
	e := newTestExecutor(t, "runc", WithResolvConf(resolv))
	script := "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname; hostname; echo ---; echo x > /etc/hosts 2>/dev/null || echo hosts-ro"
	tests := []struct {
		name string
		p    executor.Process
		want string
	}{{
		name: "host network",
		p:    executor.Process{},
		want: "127.0.0.1\tlocalhost kilnsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n---\n" +
			"# host\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\nsearch example.org\n---\nkilnsandbox\nkilnsandbox\n---\nhosts-ro\n",
	}, {
		name: "no network with hostname and extra hosts",
		p: executor.Process{Net: sandbox.NetNone, Hostname: "builder", ExtraHosts: []sandbox.HostIP{
			{Host: "db", IP: netip.MustParseAddr("10.0.0.2")},
			{Host: "v6", IP: netip.MustParseAddr("fd00::1")},
		}},
		want: "127.0.0.1\tlocalhost builder\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\nfd00::1\tv6\n---\n" +
			"# host\nnameserver 10.1.2.3\nsearch example.org\n---\nbuilder\nbuilder\n---\nhosts-ro\n",
	}}
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
}

func TestRunNetwork(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	lower := busyboxLower(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello-from-host\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	script := "echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' ')\n" +
		"echo lo=$(cat /sys/class/net/lo/flags)\n" +
		"echo tcp=$(nc -w 2 127.0.0.1 " + strconv.Itoa(port) + " </dev/null 2>/dev/null || echo failed)"
	for _, rt := range runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			e := newTestExecutor(t, rt)
			for _, mode := range []sandbox.NetMode{sandbox.NetDefault, sandbox.NetHost, sandbox.NetNone} {
				t.Run(string(mode)+"-mode", func(t *testing.T) {
					root, _ := overlayRoot(t, lower)
					out, errOut, err := run(t, e, root, nil, executor.Process{Args: sh(script), Net: mode})
					if err != nil {
						t.Fatalf("Run: %v (stderr %q)", err, errOut)
					}
					got := parseKV(out)
					if mode == sandbox.NetNone {
						if got["ifaces"] != "lo" {
							t.Errorf("interfaces %q, want only lo", got["ifaces"])
						}
						if got["lo"] != "0x9" {
							t.Errorf("lo flags %q, want 0x9 (up, loopback)", got["lo"])
						}
						if got["tcp"] != "failed" {
							t.Errorf("connecting to the host's 127.0.0.1:%d gave %q, want failure", port, got["tcp"])
						}
						return
					}
					if got["tcp"] != "hello-from-host" {
						t.Errorf("connecting to the host's 127.0.0.1:%d gave %q, want hello-from-host", port, got["tcp"])
					}
					if !strings.Contains(got["ifaces"], "lo") || got["ifaces"] == "lo" {
						t.Errorf("interfaces %q: want the host's", got["ifaces"])
					}
				})
			}
		})
	}
}
