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
