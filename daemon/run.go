package daemon

import (
	"context"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/engine/run"
)

// runChunk bounds one RunOutput message.
const runChunk = 64 << 10

// RunStream is one Run call's stream. Send is not safe for concurrent use.
type RunStream interface {
	Send(*api.RunServerMessage) error
	Recv() (*api.RunClientMessage, error)
}

func (v *service) Run(stream grpc.BidiStreamingServer[api.RunClientMessage, api.RunServerMessage]) error {
	if v.s.svc.Runs == nil {
		return unimplemented("Run")
	}
	return runStream(stream.Context(), v.s.svc.Runs, stream)
}

// runStream serves one Run call: the first message is the RunRequest;
// the output streams back as it comes, then the exit status. A process
// that cannot start at all is an error instead. The stream's context
// ending (the client went, Ctrl-C) kills the container.
func runStream(ctx context.Context, svc RunService, s RunStream) error {
	first, err := s.Recv()
	if err != nil {
		return fmt.Errorf("run: read request: %w", err)
	}
	req := first.GetRequest()
	if req == nil {
		return errdefs.Invalidf("run: the first message must be a RunRequest")
	}
	out := &runSender{s: s}
	rreq := run.Request{
		Image: req.GetImage(), Args: req.GetArgs(), Entrypoint: req.GetEntrypoint(), HasEntrypoint: req.GetHasEntrypoint(),
		Env: req.GetEnv(), Workdir: req.GetWorkdir(), User: req.GetUser(), Hostname: req.GetHostname(),
		Network: req.GetNetwork(), Platform: req.GetPlatform(),
		Stdout: out.writer(1), Stderr: out.writer(2),
		Started: func(st run.Started) error {
			return out.send(&api.RunServerMessage{Started: &api.RunStarted{Image: st.Image, Digest: st.Digest.String()}})
		},
	}
	if req.GetStdin() {
		pr, pw := io.Pipe()
		defer pr.Close()
		go receiveStdin(s, pw)
		rreq.Stdin = pr
	}
	exit, err := svc.Run(ctx, rreq)
	if err != nil {
		return err
	}
	return out.send(&api.RunServerMessage{Exit: &api.RunExit{Code: int32(exit.Code), Error: exit.Error}})
}

// receiveStdin copies the client's stdin messages into w until the client
// says EOF or its stream ends.
func receiveStdin(s RunStream, w *io.PipeWriter) {
	for {
		m, err := s.Recv()
		if err != nil {
			_ = w.Close()
			return
		}
		if len(m.GetStdin()) > 0 {
			if _, err := w.Write(m.GetStdin()); err != nil {
				return // the process is gone
			}
		}
		if m.GetStdinEof() {
			_ = w.Close()
			return
		}
	}
}

// runSender serialises the stream's sends (stdout and stderr are copied
// by two goroutines).
type runSender struct {
	s  RunStream
	mu sync.Mutex
}

func (r *runSender) send(m *api.RunServerMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.s.Send(m); err != nil {
		return errdefs.WithClass(errdefs.ErrUnavailable, fmt.Errorf("send to client: %w", err))
	}
	return nil
}

func (r *runSender) writer(stream int32) io.Writer {
	return runWriter{r: r, stream: stream}
}

type runWriter struct {
	r      *runSender
	stream int32
}

func (w runWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += runChunk {
		end := min(off+runChunk, len(p))
		// Send marshals before it returns, so p is not kept.
		if err := w.r.send(&api.RunServerMessage{Output: &api.RunOutput{Stream: w.stream, Data: p[off:end]}}); err != nil {
			return off, err
		}
	}
	return len(p), nil
}
