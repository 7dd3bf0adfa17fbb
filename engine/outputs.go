package engine

import (
	"context"
	"strings"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/exporter"
	"github.com/kiln-build/kiln/progress"
	"github.com/kiln-build/kiln/registry"
)

// exporters makes the exporters of the outputs, by type, from the
// factories cmd/kilnd registered. Tags without an output that stores
// images add an image output.
func (e *Engine) exporters(req Request, resolver *registry.Resolver, sde *time.Time, pw progress.Writer) (exporter.Exporter, error) {
	outs := req.Outputs
	stores := false
	for _, o := range outs {
		if f, ok := e.outputs[o.Type]; ok && f.Stores {
			stores = true
		}
	}
	if len(req.Tags) > 0 && !stores {
		outs = append(outs, Output{Type: exporter.TypeImage, Attrs: map[string]string{}})
	}
	if len(outs) == 0 {
		pw.Write(progress.Event{Warning: &progress.Warning{Message: "no output specified: the build result stays only in the build cache (use -t NAME or -o type=...)"}})
		return nil, nil
	}
	var exps []exporter.Exporter
	for _, o := range outs {
		f, ok := e.outputs[o.Type]
		if !ok {
			types := mapKeys(e.outputs)
			exporter.SortTypes(types)
			return nil, errdefs.Invalidf("unknown exporter type %q (valid types: %s)", o.Type, strings.Join(types, ", "))
		}
		deps := exporter.Deps{
			Layers: e.layers, Images: e.imageStore, Resolver: resolver, Writer: o.Writer, SourceDateEpoch: sde, Tags: req.Tags,
		}
		ex, err := f.New(o.Attrs, deps)
		if err != nil {
			return nil, err
		}
		exps = append(exps, ex)
	}
	return exporter.Multi(exps...), nil
}

// imageOutput reports whether req exports an image (inline cache needs
// one).
func (e *Engine) imageOutput(req Request) bool {
	if len(req.Tags) > 0 {
		return true
	}
	for _, o := range req.Outputs {
		if f, ok := e.outputs[o.Type]; ok && f.Image {
			return true
		}
	}
	return false
}

func (e *Engine) export(ctx context.Context, ex exporter.Exporter, r exporter.Result, pw progress.Writer) (exporter.Response, error) {
	done := progress.InternalStep(pw, "exporting to image")
	// Exporters that report progress of their own (exporter plugins'
	// stderr) find pw in the context.
	resp, err := ex.Export(progress.WithWriter(ctx, pw), r)
	done(err)
	return resp, err
}
