package filesync

import (
	"context"
	"fmt"

	"github.com/kiln-build/kiln/api"
	"github.com/kiln-build/kiln/session"
)

// Local syncs the directory src into dest through the whole protocol, with
// Send and Receive joined by in-memory channels: what an in-process
// session (tests, an embedded engine) does for SyncDir. It returns
// Receive's statistics.
func Local(ctx context.Context, src, dest string, o session.SyncOptions, opts ...Option) (session.SyncStats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	const id = 1
	stats := make(chan *api.SyncStats, 4)
	files := make(chan *api.FileData, 16)
	reqs := make(chan *api.FileRequest, 16)
	deliver := func(m *api.BuildClientMessage) error {
		switch x := m.GetMsg().(type) {
		case *api.BuildClientMessage_Stats:
			select {
			case stats <- x.Stats:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		case *api.BuildClientMessage_File:
			select {
			case files <- x.File:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		return fmt.Errorf("sync: unexpected client message %T", m.GetMsg())
	}
	request := func(r *api.FileRequest) error {
		select {
		case reqs <- r:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}

	sendErr := make(chan error, 1)
	go func() {
		err := Send(ctx, src, NewSyncRequest(id, "context", o), SendConn{Send: deliver, Requests: reqs}, opts...)
		if err != nil {
			cancel(fmt.Errorf("client: %w", err))
		}
		sendErr <- err
	}()
	st, err := Receive(ctx, dest, ReceiveConn{ID: id, Stats: stats, Files: files, Request: request}, opts...)
	if err != nil {
		cancel(err)
	}
	serr := <-sendErr
	if err == nil && serr != nil {
		err = fmt.Errorf("client: %w", serr)
	}
	return st, err
}
