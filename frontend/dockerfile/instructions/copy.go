package instructions

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// SourcesAndDest is what COPY and ADD copy.
type SourcesAndDest struct {
	// Sources are the source paths (or URLs for ADD), as written until
	// expanded. Heredoc sources are in Contents instead.
	Sources []string
	// Contents are the heredoc sources ("COPY <<EOF /dst"), in order.
	Contents []SourceContent
	// Dest is the destination, as written until expanded.
	Dest string
	// JSON is set for the ["src", ..., "dest"] form.
	JSON bool
}

// SourceContent is a file given inline as a heredoc.
type SourceContent struct {
	// Path is the heredoc name, used as the file name when Dest is a
	// directory.
	Path string
	// Data is the body (leading tabs already removed for <<-).
	Data string
	// Expand is false for a quoted delimiter; Expand then leaves Data as
	// it is.
	Expand bool
}

// CopyFlags are the flags COPY and ADD share.
type CopyFlags struct {
	// Chown is --chown=user[:group], as written until expanded.
	Chown string
	// Chmod is --chmod as written until expanded, and Mode its parsed
	// form (nil when not given, or when it still holds a variable).
	Chmod string
	Mode  *FileMode
	// Link is --link: copy into an independent layer.
	Link bool
	// Parents is --parents: keep the sources' directory structure.
	Parents bool
	// Excludes are the --exclude patterns, in order.
	Excludes []string
}

// CopyCommand is COPY.
type CopyCommand struct {
	Location
	SourcesAndDest
	CopyFlags
	// From is --from=stage|image|index ("" for the build context). It is
	// never expanded.
	From string
}

// AddCommand is ADD.
type AddCommand struct {
	Location
	SourcesAndDest
	CopyFlags
	// Checksum is --checksum=<algorithm>:<hex> for URL and Git sources.
	Checksum string
	// KeepGitDir is --keep-git-dir for Git sources.
	KeepGitDir bool
	// Unpack is --unpack; nil when not given (see Unpacks).
	Unpack *bool
}

// Unpacks reports whether src (an expanded source of c) is to be
// extracted if it turns out to be an archive: local sources by default,
// URLs only with --unpack=true, Git repositories never.
func (c *AddCommand) Unpacks(src AddSource) bool {
	switch src.Kind {
	case SourceLocal:
		return c.Unpack == nil || *c.Unpack
	case SourceURL:
		return c.Unpack != nil && *c.Unpack
	}
	return false
}

// SourceKind says what an ADD source refers to.
type SourceKind int

// The kinds of ADD source.
const (
	// SourceLocal is a path in the build context (or --from image/stage).
	SourceLocal SourceKind = iota
	// SourceURL is an http:// or https:// URL to download.
	SourceURL
	// SourceGit is a Git repository to clone.
	SourceGit
)

func (k SourceKind) String() string {
	switch k {
	case SourceURL:
		return "url"
	case SourceGit:
		return "git"
	}
	return "local"
}

// AddSource is one ADD source, classified.
type AddSource struct {
	Kind SourceKind
	// Raw is the source as given.
	Raw string
	// Remote is the repository or download URL without the Git fragment.
	Remote string
	// Ref and Subdir come from a Git URL's "#ref:subdir" fragment.
	Ref    string
	Subdir string
}

var reSCPLike = regexp.MustCompile(`^[A-Za-z0-9_.+-]+@[A-Za-z0-9.-]+:[^/]`)

// ParseAddSource classifies an (expanded) ADD source. Git sources are
// git://, ssh:// and git@host:path URLs and http(s) URLs whose path ends in
// ".git"; other http(s) URLs are downloads; anything else is local.
func ParseAddSource(src string) AddSource {
	s := AddSource{Kind: SourceLocal, Raw: src}
	remote, fragment, hasFragment := strings.Cut(src, "#")
	lower := strings.ToLower(remote)
	isGit := false
	switch {
	case strings.HasPrefix(lower, "git://"), strings.HasPrefix(lower, "ssh://"), reSCPLike.MatchString(remote):
		isGit = true
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		u, err := url.Parse(remote)
		if err == nil && strings.HasSuffix(u.Path, ".git") {
			isGit = true
		} else {
			s.Kind, s.Remote = SourceURL, src
			return s
		}
	}
	if !isGit {
		return s
	}
	s.Kind, s.Remote = SourceGit, remote
	if hasFragment {
		s.Ref, s.Subdir, _ = strings.Cut(fragment, ":")
	}
	return s
}

var reChecksum = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$`)

// validateChecksum checks an --checksum value: a digest, or for Git
// sources a commit hash.
func validateChecksum(s string) error {
	if reChecksum.MatchString(s) || regexp.MustCompile(`^[a-f0-9]{7,64}$`).MatchString(s) {
		return nil
	}
	return fmt.Errorf("invalid checksum %q: want sha256:<64 hex digits> (or sha384, sha512), or a Git commit hash", s)
}
