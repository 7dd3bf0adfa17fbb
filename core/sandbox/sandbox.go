// Package sandbox is the vocabulary of how a build step or a container is
// confined, shared by the Dockerfile frontend, the build graph, the engine,
// the worker and the executor: its network (NetMode), its privileges
// (SecurityMode) and the extra lines of its /etc/hosts (HostIP). Values
// are parsed once, where users give them (RUN flags, kiln build and kiln
// run flags, kilnd.toml), and travel typed from there.
//
// It imports no other Kiln package but core/errdefs.
package sandbox

import (
	"net/netip"
	"strings"

	"github.com/kiln-build/kiln/core/errdefs"
)

// NetMode is the network a process runs with.
type NetMode string

// The network modes. The empty value is NetDefault.
const (
	// NetDefault is the daemon's default network: the host's, as
	// BuildKit's default worker, unless kilnd.toml's network-mode says
	// none.
	NetDefault NetMode = ""
	// NetNone is an isolated network namespace with loopback only.
	NetNone NetMode = "none"
	// NetHost is explicitly the host's network (a build step needs the
	// network.host entitlement for it).
	NetHost NetMode = "host"
)

// ParseNetMode reads a network mode as users spell it: "" and "default"
// are NetDefault, then "none" and "host". ok is false for anything else;
// the caller says what it accepts, in its own terms.
func ParseNetMode(s string) (m NetMode, ok bool) {
	switch s {
	case "", "default":
		return NetDefault, true
	case "none":
		return NetNone, true
	case "host":
		return NetHost, true
	}
	return "", false
}

// String is the mode as users spell it ("default" for NetDefault).
func (m NetMode) String() string {
	if m == NetDefault {
		return "default"
	}
	return string(m)
}

// SecurityMode is the privilege level of a process.
type SecurityMode string

// The security modes. The empty value is SecuritySandbox.
const (
	// SecuritySandbox: Docker's default capabilities, its default seccomp
	// profile, no-new-privileges, masked and read-only /proc paths and a
	// read-only /sys.
	SecuritySandbox SecurityMode = ""
	// SecurityInsecure: all capabilities, no seccomp, the host's devices,
	// a writable /sys and nothing masked. Executors refuse it unless they
	// were configured to allow it; a build step needs the
	// security.insecure entitlement.
	SecurityInsecure SecurityMode = "insecure"
)

// ParseSecurityMode reads a security mode as users spell it: "" and
// "sandbox" are SecuritySandbox, "insecure" is SecurityInsecure. ok is
// false for anything else.
func ParseSecurityMode(s string) (m SecurityMode, ok bool) {
	switch s {
	case "", "sandbox":
		return SecuritySandbox, true
	case "insecure":
		return SecurityInsecure, true
	}
	return "", false
}

// String is the mode as users spell it ("sandbox" for SecuritySandbox).
func (m SecurityMode) String() string {
	if m == SecuritySandbox {
		return "sandbox"
	}
	return string(m)
}

// HostIP is one extra line of /etc/hosts (docker build --add-host): Host
// resolves to IP. Its JSON form is {"host": "db", "ip": "10.0.0.5"}.
type HostIP struct {
	Host string     `json:"host"`
	IP   netip.Addr `json:"ip"`
}

// Equal reports whether h and o are the same entry.
func (h HostIP) Equal(o HostIP) bool { return h == o }

// Valid reports whether h is a usable entry: a host name without blanks
// and an IP address.
func (h HostIP) Valid() bool {
	return h.Host != "" && !strings.ContainsAny(h.Host, " \t\n") && h.IP.IsValid()
}

// ParseHostIPs reads --add-host values: "host:ip" or "host=ip" (an IPv6
// address keeps its colons: the host ends at the first one; it may be in
// brackets). A bad value is an errdefs.ErrInvalidArgument error naming it.
func ParseHostIPs(list []string) ([]HostIP, error) {
	var out []HostIP
	for _, s := range list {
		host, ip, ok := strings.Cut(s, "=")
		if !ok {
			host, ip, ok = strings.Cut(s, ":")
		}
		host, ip = strings.TrimSpace(host), strings.TrimSpace(ip)
		addr, err := netip.ParseAddr(strings.Trim(ip, "[]"))
		switch {
		case !ok || host == "" || strings.ContainsAny(host, " \t\n"):
			return nil, errdefs.Invalidf("--add-host %q: want host:ip or host=ip", s)
		case err != nil:
			return nil, errdefs.Invalidf("--add-host %q: %q is not an IP address", s, ip)
		}
		out = append(out, HostIP{Host: host, IP: addr})
	}
	return out, nil
}
