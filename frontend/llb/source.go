package llb

import (
	"encoding/json"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/graph"
)

// Source attribute values Kiln accepts because they are what it does
// anyway.
const (
	gitTokenSecret  = "GIT_AUTH_TOKEN"
	gitHeaderSecret = "GIT_AUTH_HEADER"
)

// source converts a source op by the scheme of its identifier.
func (o *opCtx) source(s *pb.SourceOp, index int) (*graph.Vertex, error) {
	if index != 0 {
		return nil, o.errorf("a source has one output, output %d was asked for", index)
	}
	if len(o.op.Inputs) != 0 {
		return nil, o.errorf("a source takes no inputs, has %d", len(o.op.Inputs))
	}
	scheme, rest, ok := strings.Cut(s.Identifier, "://")
	if !ok {
		return nil, o.errorf("source identifier %q has no scheme", s.Identifier)
	}
	attrs := s.Attrs
	var (
		src graph.SourceOp
		err error
	)
	switch scheme {
	case "docker-image":
		src.Image, err = o.imageSource(rest, attrs)
	case "local":
		return o.localSource(rest, attrs)
	case "git":
		src.Git, err = o.gitSource(rest, attrs)
	case "http", "https":
		src.HTTP, err = o.httpSource(s.Identifier, attrs)
	case "oci-layout":
		return nil, o.errorf("oci-layout sources are not supported")
	default:
		return nil, o.errorf("source %q: scheme %q is not supported (want docker-image, local, git, http or https)", s.Identifier, scheme)
	}
	if err != nil {
		return nil, err
	}
	return o.vertex(graph.Op{Source: &src}, s.Identifier)
}

// checkAttrs fails on attributes that Kiln does not know for the source
// kind; known lists the accepted keys (a trailing "." accepts a prefix).
func (o *opCtx) checkAttrs(kind string, attrs map[string]string, known ...string) error {
	var unknown []string
	for k, v := range attrs {
		ok := false
		for _, kn := range known {
			if k == kn || (strings.HasSuffix(kn, ".") && strings.HasPrefix(k, kn)) {
				ok = true
			}
		}
		if !ok && v != "" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return o.errorf("%s source attribute %s is not supported", kind, strings.Join(unknown, ", "))
	}
	return nil
}

func (o *opCtx) imageSource(ref string, attrs map[string]string) (*graph.ImageSource, error) {
	if err := o.checkAttrs("image", attrs, pb.AttrImageResolveMode, pb.AttrImageRecordType, pb.AttrImageChecksum); err != nil {
		return nil, err
	}
	switch attrs[pb.AttrImageResolveMode] {
	case "", pb.AttrImageResolveModeDefault, pb.AttrImageResolveModeForcePull, pb.AttrImageResolveModePreferLocal:
	default:
		return nil, o.errorf("image source %s: image.resolvemode %q is unknown", ref, attrs[pb.AttrImageResolveMode])
	}
	if ref == "" {
		return nil, o.errorf("image source has no reference")
	}
	if sum := attrs[pb.AttrImageChecksum]; sum != "" {
		d, err := digest.Parse(sum)
		if err != nil {
			return nil, o.errorf("image source %s: image.checksum %q: %v", ref, sum, err)
		}
		name, pinned, hasDigest := strings.Cut(ref, "@")
		switch {
		case !hasDigest:
			ref = name + "@" + d.String()
		case pinned != d.String():
			return nil, o.errorf("image source %s: image.checksum %s does not match the pinned digest", ref, d)
		}
	}
	return &graph.ImageSource{Ref: ref}, nil
}

func (o *opCtx) localSource(name string, attrs map[string]string) (*graph.Vertex, error) {
	if err := o.checkAttrs("local", attrs, pb.AttrLocalSessionID, pb.AttrLocalUniqueID, pb.AttrIncludePatterns,
		pb.AttrExcludePatterns, pb.AttrFollowPaths, pb.AttrSharedKeyHint, pb.AttrLocalDiffer,
		pb.AttrMetadataTransfer, pb.AttrMetadataTransferExclude); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, o.errorf("local source has no name")
	}
	src := graph.LocalSource{Name: name, SharedKeyHint: attrs[pb.AttrSharedKeyHint]}
	for _, f := range []struct {
		key string
		dst *[]string
	}{
		{pb.AttrIncludePatterns, &src.IncludePatterns},
		{pb.AttrExcludePatterns, &src.ExcludePatterns},
		{pb.AttrFollowPaths, &src.FollowPaths},
	} {
		v := attrs[f.key]
		if v == "" {
			continue
		}
		if err := json.Unmarshal([]byte(v), f.dst); err != nil {
			return nil, o.errorf("local source %s: %s is not a JSON list of strings: %v", name, f.key, err)
		}
	}
	if o.c.opts.Local != nil {
		v, err := o.c.opts.Local(&src)
		if err != nil {
			return nil, o.errorf("local source %s: %v", name, err)
		}
		if v != nil {
			return v, nil
		}
	}
	return o.vertex(graph.Op{Source: &graph.SourceOp{Local: &src}}, "local://"+name)
}

func (o *opCtx) gitSource(id string, attrs map[string]string) (*graph.GitSource, error) {
	if err := o.checkAttrs("git", attrs, pb.AttrKeepGitDir, pb.AttrFullRemoteURL, pb.AttrAuthTokenSecret,
		pb.AttrAuthHeaderSecret, pb.AttrKnownSSHHosts, pb.AttrMountSSHSock, pb.AttrGitAdvice); err != nil {
		return nil, err
	}
	for key, want := range map[string]string{pb.AttrAuthTokenSecret: gitTokenSecret, pb.AttrAuthHeaderSecret: gitHeaderSecret} {
		if v := attrs[key]; v != "" && v != want {
			return nil, o.errorf("git source %s: %s %q is not supported (Kiln reads the %s secret)", id, key, v, want)
		}
	}
	if v := attrs[pb.AttrMountSSHSock]; v != "" && v != "default" {
		return nil, o.errorf("git source %s: %s %q is not supported (Kiln uses the build's default ssh agent)", id, pb.AttrMountSSHSock, v)
	}
	remote, frag, _ := strings.Cut(id, "#")
	ref, subdir, _ := strings.Cut(frag, ":")
	if full := attrs[pb.AttrFullRemoteURL]; full != "" {
		remote = full
	} else {
		remote = "https://" + remote
	}
	g := &graph.GitSource{Remote: remote, Ref: ref, Subdir: strings.Trim(path.Clean("/"+subdir), "/")}
	if v := attrs[pb.AttrKeepGitDir]; v != "" {
		keep, err := strconv.ParseBool(v)
		if err != nil {
			return nil, o.errorf("git source %s: %s %q is not a boolean", id, pb.AttrKeepGitDir, v)
		}
		g.KeepGitDir = keep
	}
	return g, nil
}

func (o *opCtx) httpSource(id string, attrs map[string]string) (*graph.HTTPSource, error) {
	if err := o.checkAttrs("http", attrs, pb.AttrHTTPChecksum, pb.AttrHTTPFilename, pb.AttrHTTPPerm, pb.AttrHTTPUID, pb.AttrHTTPGID); err != nil {
		return nil, err
	}
	if _, err := url.Parse(id); err != nil {
		return nil, o.errorf("http source: %v", err)
	}
	h := &graph.HTTPSource{URL: id, Filename: attrs[pb.AttrHTTPFilename]}
	if v := attrs[pb.AttrHTTPChecksum]; v != "" {
		d, err := digest.Parse(v)
		if err != nil {
			return nil, o.errorf("http source: %s %q: %v", pb.AttrHTTPChecksum, v, err)
		}
		h.Checksum = d
	}
	if v := attrs[pb.AttrHTTPPerm]; v != "" {
		m, err := strconv.ParseUint(v, 0, 32)
		if err != nil {
			return nil, o.errorf("http source: %s %q is not a mode", pb.AttrHTTPPerm, v)
		}
		h.Mode = uint32(m)
	}
	for key, dst := range map[string]*int{pb.AttrHTTPUID: &h.UID, pb.AttrHTTPGID: &h.GID} {
		if v := attrs[key]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, o.errorf("http source: %s %q is not an id", key, v)
			}
			*dst = n
		}
	}
	return h, nil
}
