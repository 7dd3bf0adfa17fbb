package client

import (
	"context"

	"github.com/kiln-build/kiln/api"
)

// HistoryOptions select the records History returns.
type HistoryOptions struct {
	// Ref is one build's ref (all builds when empty).
	Ref string
	// Limit is the most records returned, newest first (0: all).
	Limit int
	// Trace asks for each record's steps; the daemon sends them for one
	// ref, or for at most 10 records.
	Trace bool
}

// History lists the daemon's finished builds, newest first.
func (c *Client) History(ctx context.Context, o HistoryOptions) ([]*api.BuildRecord, error) {
	resp, err := c.ctl.History(ctx, &api.HistoryRequest{Ref: o.Ref, Limit: int32(o.Limit), Trace: o.Trace})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp.GetRecords(), nil
}
