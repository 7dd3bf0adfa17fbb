package imagestore

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/registry"
)

// NormalizeName returns the full name of an image tag as the store keys it:
// "my-app" is "docker.io/library/my-app:latest", "user/app:1" is
// "docker.io/user/app:1", "reg.local:5000/app" is "reg.local:5000/app:latest".
// A malformed name, or one with a digest (stored names are tags), is an
// errdefs.ErrInvalidArgument error.
func NormalizeName(s string) (string, error) {
	ref, err := registry.ParseReference(s)
	if err != nil {
		return "", err
	}
	if _, ok := ref.(name.Tag); !ok || strings.Contains(s, "@") {
		return "", errdefs.Invalidf("image name %q: a name to store an image under is a tag, not a digest", s)
	}
	return registry.NormalizedName(ref), nil
}

// FamiliarName returns a full image name the way Docker shows it: without
// "docker.io/" and, for official images, without "library/":
// "docker.io/library/my-app:latest" is "my-app:latest",
// "docker.io/user/app:1" is "user/app:1"; other registries' names are
// unchanged. A string that is not an image reference is returned as is.
func FamiliarName(full string) string {
	ref, err := name.ParseReference(full)
	if err != nil {
		return full
	}
	s := registry.NormalizedName(ref)
	rest, ok := strings.CutPrefix(s, registry.DockerHub+"/")
	if !ok {
		return s
	}
	if r, ok := strings.CutPrefix(rest, "library/"); ok && !strings.Contains(beforeTagOrDigest(r), "/") {
		return r
	}
	return rest
}

// beforeTagOrDigest returns the repository part of "repo:tag" or
// "repo@digest".
func beforeTagOrDigest(s string) string {
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "/") {
		s = s[:i]
	}
	return s
}

// RepositoryName returns the full name of a repository as Docker prints it:
// "docker.io/library/busybox" (go-containerregistry says index.docker.io).
func RepositoryName(repo name.Repository) string {
	full := registry.NormalizedName(repo.Tag("latest"))
	return strings.TrimSuffix(full, ":latest")
}
