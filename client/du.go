package client

import (
	"context"
	"errors"
	"io"

	"github.com/kiln-build/kiln/api"
)

// DiskUsage lists what the daemon stores.
func (c *Client) DiskUsage(ctx context.Context) ([]*api.UsageRecord, error) {
	resp, err := c.ctl.DiskUsage(ctx, &api.DiskUsageRequest{})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp.GetRecords(), nil
}

// Prune removes what req selects, calling removed (if set) for each
// removed record as the daemon reports it.
func (c *Client) Prune(ctx context.Context, req *api.PruneRequest, removed func(*api.UsageRecord)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ctl.Prune(ctx, req)
	if err != nil {
		return c.WrapErr(err)
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.WrapErr(err)
		}
		if removed != nil {
			removed(r)
		}
	}
}

// CacheRecords lists the records of kilnd's shared cache indexes (kiln
// cache ls --remote), or those of build's keys when build is not empty,
// calling record for each as it arrives; an error from record stops the
// listing and is returned. It returns the indexes the daemon read, also
// when it lists no record. A daemon without a shared cache answers in the
// errdefs.ErrFailedPrecondition class, an unknown build in
// errdefs.ErrNotFound.
func (c *Client) CacheRecords(ctx context.Context, build string, record func(*api.CacheRecord) error) ([]*api.CacheIndex, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ctl.CacheRecords(ctx, &api.CacheRecordsRequest{Build: build})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	var indexes []*api.CacheIndex
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return indexes, nil
		}
		if err != nil {
			return indexes, c.WrapErr(err)
		}
		indexes = append(indexes, m.GetIndexes()...)
		if r := m.GetRecord(); r != nil && record != nil {
			if err := record(r); err != nil {
				return indexes, err
			}
		}
	}
}
