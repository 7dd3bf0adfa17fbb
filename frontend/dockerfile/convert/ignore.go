package convert

import (
	"bytes"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/kiln-build/kiln/core/errdefs"
)

// ParseDockerignore returns the exclude patterns of a .dockerignore file
// with Docker's cleaning rules (comments and blank lines dropped, paths
// cleaned, a leading "/" removed, "!" exceptions kept), checked for
// syntax. nil content gives no patterns.
func ParseDockerignore(data []byte) ([]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	pats, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, errdefs.Invalidf(".dockerignore: %v", err)
	}
	if _, err := patternmatcher.New(pats); err != nil {
		return nil, errdefs.Invalidf(".dockerignore: %v", err)
	}
	return pats, nil
}
