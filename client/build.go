package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/filesync"
)

// BuildOptions are the client side of one build.
type BuildOptions struct {
	// Request is sent first. Its outputs with ClientSide set are answered
	// through Outputs, index for index.
	Request *api.BuildRequest
	// Dirs maps sync names ("context", "context:<name>") to directories.
	Dirs map[string]string
	// Secrets returns the value of a secret the daemon asks for; ok=false
	// when the client has none by that id.
	Secrets func(id string) (data []byte, ok bool, err error)
	// SSH maps agent ids to the unix sockets of ssh agents.
	SSH map[string]string
	// Credentials answers the daemon's questions for registry logins.
	Credentials func(host string) (username, secret, identityToken string)
	// Outputs opens the destination of client-side output i.
	Outputs func(i int) (io.WriteCloser, error)
	// Status receives progress batches; nil drops them.
	Status func(*api.StatusBatch)
}

// Build runs a build on the daemon and answers its requests until the
// result arrives. Cancelling ctx cancels the build.
func (c *Client) Build(ctx context.Context, o BuildOptions) (*api.BuildResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if f := api.InvalidUTF8Field(o.Request); f != "" {
		return nil, errdefs.Invalidf("%s is not valid UTF-8: the build request carries text as UTF-8", requestField(f))
	}
	stream, err := c.ctl.Build(ctx)
	if err != nil {
		return nil, c.WrapErr(err)
	}
	b := &clientBuild{o: o, stream: stream, syncs: map[uint32]chan *api.FileRequest{}, conns: map[uint64]net.Conn{}, outputs: map[uint32]io.WriteCloser{}}
	defer b.close()
	if err := b.send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Request{Request: o.Request}}); err != nil {
		return nil, c.WrapErr(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("kilnd closed the build stream without a result")
			}
			if bErr := b.failure(); bErr != nil {
				return nil, bErr
			}
			return nil, c.WrapErr(err)
		}
		if res, err := b.handle(ctx, m); err != nil || res != nil {
			if err != nil {
				return nil, err
			}
			return res, b.finish()
		}
	}
}

type clientBuild struct {
	o      BuildOptions
	stream interface {
		Send(*api.BuildClientMessage) error
	}
	sendMu sync.Mutex

	mu      sync.Mutex
	syncs   map[uint32]chan *api.FileRequest
	conns   map[uint64]net.Conn
	outputs map[uint32]io.WriteCloser
	err     error // a client-side failure (an output could not be written)
	wg      sync.WaitGroup
}

// send sends m with its text made valid UTF-8 (error messages may quote
// file names that are not).
func (b *clientBuild) send(m *api.BuildClientMessage) error {
	api.ValidUTF8(m)
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	return b.stream.Send(m)
}

// requestFlags names the kiln build flag behind a BuildRequest field.
var requestFlags = map[string]string{
	"build_args": "--build-arg", "labels": "--label", "tags": "--tag", "target": "--target",
	"dockerfile_name": "--file", "platforms": "--platform", "add_hosts": "--add-host",
	"no_cache_filter": "--no-cache-filter", "network": "--network", "context_path": "the context path",
	"secret_ids": "--secret", "ssh_ids": "--ssh",
}

// requestField describes a BuildRequest field for a message:
// "--build-arg A (build_args[A])".
func requestField(f string) string {
	name, _, _ := strings.Cut(f, "[")
	name, _, _ = strings.Cut(name, ".")
	if flag, ok := requestFlags[name]; ok {
		return flag + " (" + f + ")"
	}
	return f
}

func (b *clientBuild) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

func (b *clientBuild) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *clientBuild) handle(ctx context.Context, m *api.BuildServerMessage) (*api.BuildResult, error) {
	switch x := m.GetMsg().(type) {
	case *api.BuildServerMessage_Result:
		return x.Result, nil
	case *api.BuildServerMessage_Status:
		if b.o.Status != nil {
			b.o.Status(x.Status)
		}
	case *api.BuildServerMessage_Sync:
		b.startSync(ctx, x.Sync)
	case *api.BuildServerMessage_Files:
		b.mu.Lock()
		ch := b.syncs[x.Files.GetId()]
		b.mu.Unlock()
		if ch != nil {
			select {
			case ch <- x.Files:
			case <-ctx.Done():
			}
		}
	case *api.BuildServerMessage_Secret:
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.answerSecret(x.Secret)
		}()
	case *api.BuildServerMessage_Credentials:
		r := &api.CredentialsResponse{RequestId: x.Credentials.GetRequestId()}
		if b.o.Credentials != nil {
			r.Username, r.Secret, r.IdentityToken = b.o.Credentials(x.Credentials.GetHost())
		}
		_ = b.send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Credentials{Credentials: r}})
	case *api.BuildServerMessage_Ssh:
		b.ssh(x.Ssh)
	case *api.BuildServerMessage_Export:
		if err := b.export(x.Export); err != nil {
			b.fail(err)
			return nil, err
		}
	}
	return nil, nil
}

func (b *clientBuild) startSync(ctx context.Context, req *api.SyncRequest) {
	dir, ok := b.o.Dirs[req.GetName()]
	ch := make(chan *api.FileRequest, 64)
	b.mu.Lock()
	b.syncs[req.GetId()] = ch
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if !ok {
			_ = b.send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Stats{Stats: &api.SyncStats{
				Id: req.GetId(), Done: true, Error: fmt.Sprintf("the client has no directory %q", req.GetName()),
			}}})
			return
		}
		_ = filesync.Send(ctx, dir, req, filesync.SendConn{Send: b.send, Requests: ch})
	}()
}

func (b *clientBuild) answerSecret(req *api.SecretRequest) {
	r := &api.SecretResponse{RequestId: req.GetRequestId()}
	if b.o.Secrets == nil {
		r.NotFound = true
	} else {
		data, ok, err := b.o.Secrets(req.GetId())
		if err != nil || !ok {
			r.NotFound = true
		}
		r.Data = data
	}
	_ = b.send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Secret{Secret: r}})
}

// ssh relays one agent connection.
func (b *clientBuild) ssh(m *api.SSHData) {
	b.mu.Lock()
	conn := b.conns[m.GetConnId()]
	b.mu.Unlock()
	if conn == nil {
		sock, ok := b.o.SSH[m.GetId()]
		var err error
		if ok {
			conn, err = net.Dial("unix", sock)
		}
		if !ok || err != nil {
			msg := fmt.Sprintf("no ssh agent %q", m.GetId())
			if err != nil {
				msg = err.Error()
			}
			_ = b.send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Ssh{Ssh: &api.SSHData{ConnId: m.GetConnId(), Eof: true, Error: msg}}})
			return
		}
		b.mu.Lock()
		b.conns[m.GetConnId()] = conn
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := conn.Read(buf)
				if n > 0 {
					if b.send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Ssh{Ssh: &api.SSHData{ConnId: m.GetConnId(), Data: append([]byte(nil), buf[:n]...)}}}) != nil {
						return
					}
				}
				if err != nil {
					_ = b.send(&api.BuildClientMessage{Msg: &api.BuildClientMessage_Ssh{Ssh: &api.SSHData{ConnId: m.GetConnId(), Eof: true}}})
					return
				}
			}
		}()
	}
	if len(m.GetData()) > 0 {
		_, _ = conn.Write(m.GetData())
	}
	if m.GetEof() {
		_ = conn.Close()
	}
}

func (b *clientBuild) export(d *api.ExportData) error {
	b.mu.Lock()
	w := b.outputs[d.GetOutput()]
	b.mu.Unlock()
	if w == nil {
		if b.o.Outputs == nil {
			return fmt.Errorf("kilnd sent data for output %d, which is not client-side", d.GetOutput())
		}
		var err error
		if w, err = b.o.Outputs(int(d.GetOutput())); err != nil {
			return err
		}
		b.mu.Lock()
		b.outputs[d.GetOutput()] = w
		b.mu.Unlock()
	}
	if len(d.GetData()) > 0 {
		if _, err := w.Write(d.GetData()); err != nil {
			return fmt.Errorf("write output %d: %w", d.GetOutput(), err)
		}
	}
	if d.GetEof() {
		b.mu.Lock()
		delete(b.outputs, d.GetOutput())
		b.mu.Unlock()
		if err := w.Close(); err != nil {
			return fmt.Errorf("write output %d: %w", d.GetOutput(), err)
		}
	}
	return nil
}

// finish closes what the build left open; an output still open at the end
// was not completed.
func (b *clientBuild) finish() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for i, w := range b.outputs {
		errs = append(errs, w.Close(), fmt.Errorf("output %d was not completed", i))
	}
	b.outputs = map[uint32]io.WriteCloser{}
	return errors.Join(errs...)
}

func (b *clientBuild) close() {
	b.mu.Lock()
	for _, ch := range b.syncs {
		close(ch)
	}
	b.syncs = map[uint32]chan *api.FileRequest{}
	for _, c := range b.conns {
		_ = c.Close()
	}
	for _, w := range b.outputs {
		if cw, ok := w.(interface{ CloseWithError(error) error }); ok {
			_ = cw.CloseWithError(errors.New("build failed"))
		} else {
			_ = w.Close()
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// ReadSecretFile reads a secret from a file; a missing file is not found.
func ReadSecretFile(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	return b, err == nil, err
}
