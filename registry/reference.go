package registry

import (
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/core/errdefs"
)

// DockerHub is the configuration key of Docker Hub, the default registry.
const DockerHub = "docker.io"

// ggcr's spelling of Docker Hub in references it parses.
const ggcrDockerHub = name.DefaultRegistry // "index.docker.io"

// ParseReference parses an image reference the way Docker does: "busybox" is
// docker.io/library/busybox:latest and "user/app" is docker.io/user/app:latest.
// A malformed reference is an errdefs.ErrInvalidArgument error that quotes
// it.
func ParseReference(s string) (name.Reference, error) {
	if s == "" {
		return nil, errdefs.Invalidf("invalid image reference: empty")
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, errdefs.Invalidf("invalid image reference %q: %s", s, referenceProblem(s))
	}
	return ref, nil
}

// referenceProblem says what is wrong with a reference ParseReference
// refused (its own error only repeats the input): the tag or digest
// parser's reason, and for a repository with capitals, that it must be
// lowercase.
func referenceProblem(s string) string {
	var err error
	if strings.Contains(s, "@") {
		_, err = name.NewDigest(s)
	} else {
		_, err = name.NewTag(s)
	}
	if err == nil {
		return "not a valid image reference"
	}
	// The repository is what comes before the tag: the last ':' after the
	// last '/' (a ':' before that is a registry port).
	repo, rest := s, ""
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') && !strings.Contains(s, "@") {
		repo, rest = s[:i], s[i:]
	}
	if lower := strings.ToLower(repo); lower != repo {
		if _, lerr := name.ParseReference(lower + rest); lerr == nil {
			return fmt.Sprintf("repository names must be lowercase (%s%s)", lower, rest)
		}
	}
	return err.Error()
}

// HostKey returns the configuration key of a registry host: Docker Hub's
// aliases (docker.io, index.docker.io, registry-1.docker.io) are DockerHub,
// and the host is lowercased. A scheme or path ("https://h/v1/", as docker
// config.json keys are written) is dropped.
func HostKey(host string) string {
	h := strings.ToLower(strings.TrimSpace(host))
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	switch h {
	case DockerHub, ggcrDockerHub, "registry-1.docker.io":
		return DockerHub
	}
	return h
}

// NormalizedName returns ref as Docker prints it in full, with docker.io
// rather than go-containerregistry's index.docker.io:
// "docker.io/library/busybox:latest".
func NormalizedName(ref name.Reference) string {
	s := ref.Name()
	if rest, ok := strings.CutPrefix(s, ggcrDockerHub+"/"); ok {
		return DockerHub + "/" + rest
	}
	return s
}

// isLoopback reports whether a registry host (host[:port]) is on this
// machine. Docker lets such registries fall back to plain HTTP.
func isLoopback(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// withRegistry returns ref moved to registry reg (host[:port]), with prefix
// (possibly empty) put before its repository path. insecure lets
// go-containerregistry use plain HTTP for it.
func withRegistry(ref name.Reference, reg, prefix string, insecure bool) (name.Reference, error) {
	repo := ref.Context().RepositoryStr()
	if prefix != "" {
		repo = prefix + "/" + repo
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	full := reg + "/" + repo
	switch r := ref.(type) {
	case name.Digest:
		return name.NewDigest(full+"@"+r.DigestStr(), opts...)
	case name.Tag:
		return name.NewTag(full+":"+r.TagStr(), opts...)
	default:
		return nil, fmt.Errorf("unsupported reference type %T", ref)
	}
}
