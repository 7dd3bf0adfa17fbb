package client

import (
	"context"
	"errors"
	"io"

	"github.com/kiln-build/kiln/api"
)

// RunOptions are the client side of one kiln run.
type RunOptions struct {
	Request *api.RunRequest
	// Stdin, when Request.Stdin is set, is sent to the process.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output; nil discards it.
	Stdout, Stderr io.Writer
	// Started, if set, is called when the container starts.
	Started func(*api.RunStarted)
}

// StartError is a command that could not start (not found, not
// executable, unknown user); Code is docker run's exit code for it (127,
// 126).
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// Run runs a stored image's process on the daemon and returns its exit
// code. A command that cannot start is a *StartError. Cancelling ctx
// kills the container.
func (c *Client) Run(ctx context.Context, o RunOptions) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ctl.Run(ctx)
	if err != nil {
		return 0, c.WrapErr(err)
	}
	if err := stream.Send(&api.RunClientMessage{Request: o.Request}); err != nil && !errors.Is(err, io.EOF) {
		return 0, c.WrapErr(err)
	}
	if o.Request.GetStdin() && o.Stdin != nil {
		go sendStdin(stream, o.Stdin)
	} else {
		_ = stream.CloseSend()
	}
	stdout, stderr := o.Stdout, o.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return 0, errors.New("kilnd ended kiln run without an exit status")
		}
		if err != nil {
			return 0, c.WrapErr(err)
		}
		switch {
		case m.GetOutput() != nil:
			w := stdout
			if m.GetOutput().GetStream() == 2 {
				w = stderr
			}
			if _, err := w.Write(m.GetOutput().GetData()); err != nil {
				return 0, err
			}
		case m.GetStarted() != nil:
			if o.Started != nil {
				o.Started(m.GetStarted())
			}
		case m.GetExit() != nil:
			if msg := m.GetExit().GetError(); msg != "" {
				return int(m.GetExit().GetCode()), &StartError{Code: int(m.GetExit().GetCode()), Msg: msg}
			}
			return int(m.GetExit().GetCode()), nil
		}
	}
}

// sendStdin sends r in chunks, then EOF. Errors end it quietly: the call's
// result says what happened.
func sendStdin(stream api.Control_RunClient, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if stream.Send(&api.RunClientMessage{Stdin: append([]byte(nil), buf[:n]...)}) != nil {
				return
			}
		}
		if err != nil {
			_ = stream.Send(&api.RunClientMessage{StdinEof: true})
			_ = stream.CloseSend()
			return
		}
	}
}
