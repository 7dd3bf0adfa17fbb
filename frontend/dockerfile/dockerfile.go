package dockerfile

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/dockerfile/convert"
	"github.com/kiln-build/kiln/frontend/dockerfile/instructions"
)

// Frontend is the Dockerfile frontend.
type Frontend struct{}

var _ frontend.Frontend = Frontend{}

// New returns the Dockerfile frontend.
func New() frontend.Frontend { return Frontend{} }

// Solve parses req.Dockerfile and converts it for every requested
// platform. Images come back in the order of req.Platforms.
func (Frontend) Solve(ctx context.Context, req frontend.Request) (*frontend.Result, error) {
	name := req.DockerfileName
	if name == "" {
		name = "Dockerfile"
	}
	if len(strings.TrimSpace(string(req.Dockerfile))) == 0 {
		return nil, &errdefs.SourceError{File: name, Err: errdefs.Invalidf("the Dockerfile cannot be empty")}
	}
	df, err := instructions.Parse(ctx, req.Dockerfile, name)
	if err != nil {
		return nil, err
	}
	c, err := convert.New(df, req)
	if err != nil {
		return nil, err
	}
	plats := c.Platforms()
	res := &frontend.Result{Images: make([]frontend.Image, len(plats))}
	warns := make([][]frontend.Warning, len(plats))
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range plats {
		g.Go(func() error {
			img, w, err := c.Convert(gctx, p)
			if err != nil {
				return err
			}
			res.Images[i], warns[i] = *img, w
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res.Warnings = c.Warnings()
	seen := map[string]bool{}
	for _, ws := range warns {
		for _, w := range ws {
			if !seen[w.Rule+"\x00"+w.Message] {
				seen[w.Rule+"\x00"+w.Message] = true
				res.Warnings = append(res.Warnings, w)
			}
		}
	}
	if df.Checks.Error && len(res.Warnings) > 0 {
		return nil, checkError(name, res.Warnings)
	}
	return res, nil
}

// checkError is the error for warnings under "# check=error=true".
func checkError(name string, ws []frontend.Warning) error {
	w := ws[0]
	more := ""
	if len(ws) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(ws)-1)
	}
	err := errdefs.Invalidf("lint violation %s: %s%s; the check directive turns warnings into errors", w.Rule, w.Message, more)
	if w.File != "" {
		return &errdefs.SourceError{File: w.File, Range: w.Range, Err: err}
	}
	return &errdefs.SourceError{File: name, Err: err}
}
