package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"

	"github.com/containerd/containerd/v2/pkg/archive"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/session/filesync"
	"github.com/tonistiigi/fsutil"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine"
	"github.com/kiln-build/kiln/exporter"
)

// droppedExportAttrs are BuildKit exporter attributes that change nothing
// in a Kiln export: build info (deprecated in BuildKit, never written by
// Kiln), the docker context a buildx --load targets, and the digest kind
// docker's image store prefers (the response carries both).
var droppedExportAttrs = []string{"buildinfo", "buildinfo-attrs", "context", "prefer-image-digest"}

// clientDest stands for the dest= of an output the client writes: BuildKit
// clients keep dest to themselves and receive the stream by exporter index.
const clientDest = "(client)"

// outputs maps the request's exporters to engine outputs. Client-side
// outputs (oci, docker, tar: a file; local: a directory) stream back over
// the session, addressed by the exporter's index as the client registered
// its targets.
func (s *Service) outputs(ctx context.Context, req *controlapi.SolveRequest, sess *sessionAdapter) ([]engine.Output, error) {
	exps := req.Exporters
	if len(exps) == 0 && req.ExporterDeprecated != "" {
		exps = []*controlapi.Exporter{{Type: req.ExporterDeprecated, Attrs: req.ExporterAttrsDeprecated}}
	}
	var out []engine.Output
	for i, e := range exps {
		attrs := maps.Clone(e.Attrs)
		if attrs == nil {
			attrs = map[string]string{}
		}
		for _, k := range droppedExportAttrs {
			delete(attrs, k)
		}
		o := engine.Output{Type: e.Type, Attrs: attrs}
		switch e.Type {
		case exporter.TypeImage:
		case exporter.TypeOCI, exporter.TypeDocker:
			if v, ok := attrs["tar"]; ok && v == "false" {
				return nil, unimplementedf("type=%s,tar=false (an OCI layout directory written through the session): use tar=true", e.Type)
			}
			attrs["dest"] = clientDest
			o.Writer = sess.fileWriter(ctx, i)
		case exporter.TypeTar:
			attrs["dest"] = clientDest
			o.Writer = sess.fileWriter(ctx, i)
		case exporter.TypeLocal:
			switch attrs["mode"] {
			case "", "copy":
				delete(attrs, "mode")
			default:
				return nil, unimplementedf("type=local,mode=%s: kilnd writes local outputs in mode=copy", attrs["mode"])
			}
			attrs["dest"] = clientDest
			o.Writer = sess.dirWriter(ctx, i, s.o.ScratchDir)
		default:
			return nil, errdefs.Invalidf("unknown exporter %q (kilnd has image, oci, docker, local and tar)", e.Type)
		}
		out = append(out, o)
	}
	return out, nil
}

// fileWriter opens the client's file target of exporter id.
func (a *sessionAdapter) fileWriter(ctx context.Context, id int) func() (io.WriteCloser, error) {
	return func() (io.WriteCloser, error) {
		ctx, cancel := context.WithCancelCause(ctx)
		w, err := filesync.CopyFileWriter(ctx, nil, id, a.caller)
		if err != nil {
			cancel(err)
			return nil, clientError(fmt.Sprintf("output %d", id), err)
		}
		return &cancelWriter{WriteCloser: w, cancel: cancel}, nil
	}
}

// cancelWriter ends the client's stream with an error (not a clean end
// of file) when the export fails.
type cancelWriter struct {
	io.WriteCloser
	cancel context.CancelCauseFunc
}

func (w *cancelWriter) Close() error {
	err := w.WriteCloser.Close()
	w.cancel(nil)
	return err
}

func (w *cancelWriter) CloseWithError(err error) error {
	w.cancel(err)
	return nil
}

// dirWriter receives a type=local output's tar stream into a scratch
// directory, then sends the directory to the client's target with
// BuildKit's DiffCopy (the client writes it under its dest).
func (a *sessionAdapter) dirWriter(ctx context.Context, id int, scratch string) func() (io.WriteCloser, error) {
	return func() (io.WriteCloser, error) {
		dir, err := os.MkdirTemp(scratch, "local-output-")
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		w := &dirSender{pw: pw, done: make(chan error, 1)}
		go func() {
			// archive.Apply keeps every entry inside dir.
			_, err := archive.Apply(ctx, dir, pr)
			_, _ = io.Copy(io.Discard, pr)
			var fsys fsutil.FS
			if err == nil {
				fsys, err = fsutil.NewFS(dir)
			}
			if err == nil {
				err = filesync.CopyToCaller(ctx, fsys, id, a.caller, nil)
				if err != nil {
					err = clientError(fmt.Sprintf("output %d", id), err)
				}
			}
			_ = os.RemoveAll(dir)
			w.done <- err
		}()
		return w, nil
	}
}

type dirSender struct {
	pw   *io.PipeWriter
	done chan error
}

func (w *dirSender) Write(p []byte) (int, error) { return w.pw.Write(p) }

func (w *dirSender) Close() error {
	_ = w.pw.Close()
	return <-w.done
}

func (w *dirSender) CloseWithError(err error) error {
	if err == nil {
		err = errors.New("export failed")
	}
	_ = w.pw.CloseWithError(err)
	<-w.done
	return nil
}
