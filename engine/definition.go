package engine

import (
	"context"
	"encoding/json"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/core/imageconfig"
	"github.com/kiln-build/kiln/frontend"
	"github.com/kiln-build/kiln/frontend/llb"
	"github.com/kiln-build/kiln/progress"
)

// definition converts the build's LLB definition (BuildKit's Solve with a
// Definition) into one image for the first requested platform (the
// daemon's by default), with req.ImageConfig as its config.
func (e *Engine) definition(ctx context.Context, req Request, plats []ocispec.Platform, br *bridge) (*frontend.Result, error) {
	done := progress.InternalStep(br.pw, "[internal] load LLB definition")
	res, err := llb.Convert(ctx, req.Definition, llb.Options{ReadFile: br.readFile})
	done(err)
	if err != nil {
		return nil, err
	}
	plat := e.platform
	if len(plats) > 0 {
		plat = plats[0]
	}
	img := frontend.Image{Platform: plat, Root: res.Root}
	if len(req.ImageConfig) > 0 {
		var cfg imageconfig.DockerImage
		if err := json.Unmarshal(req.ImageConfig, &cfg); err != nil {
			return nil, errdefs.Invalidf("image config of the definition: %v", err)
		}
		img.Config, img.ConfigExt = cfg.Image, cfg.Config.ConfigExt
		img.Config.Config = cfg.Config.ImageConfig
	}
	if img.Config.OS == "" {
		img.Config.Platform = plat
	}
	img.Config.RootFS.Type = "layers"
	return &frontend.Result{Images: []frontend.Image{img}}, nil
}
