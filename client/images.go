package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/api"
)

// importChunk is the size of the ImportImage stream's messages (below
// gRPC's default 4 MiB message limit).
const importChunk = 1 << 20

// ListImages lists the daemon's local image store.
func (c *Client) ListImages(ctx context.Context) ([]*api.Image, error) {
	resp, err := c.ctl.ListImages(ctx, &api.ListImagesRequest{})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp.GetImages(), nil
}

// RemoveImages removes names from the image store. The response lists
// the removed images and, per name that could not be removed, an error
// message; err is for the call as a whole.
func (c *Client) RemoveImages(ctx context.Context, names ...string) (*api.RemoveImagesResponse, error) {
	resp, err := c.ctl.RemoveImages(ctx, &api.RemoveImagesRequest{Names: names})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp, nil
}

// InspectImage returns a stored image's index, manifests and configs.
func (c *Client) InspectImage(ctx context.Context, name string) (*api.InspectImageResponse, error) {
	resp, err := c.ctl.InspectImage(ctx, &api.InspectImageRequest{Name: name})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp, nil
}

// TagImage stores the image src names under dst too.
func (c *Client) TagImage(ctx context.Context, src, dst string) (*api.Image, error) {
	resp, err := c.ctl.TagImage(ctx, &api.TagImageRequest{Source: src, Target: dst})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp.GetImage(), nil
}

// ImportOptions describe an import.
type ImportOptions struct {
	// Name names the image (required for a root filesystem tarball;
	// archives name their images themselves unless it is set).
	Name string
	// SourceName is the file as the user named it, for messages.
	SourceName string
	// Platform of a root filesystem image ("" is the daemon's).
	Platform string
	// Message is the history comment of a root filesystem image.
	Message string
}

// ImportImage streams r to the daemon, which loads it as an image
// archive or a root filesystem (see api.ImportImageHeader).
func (c *Client) ImportImage(ctx context.Context, r io.Reader, o ImportOptions) (*api.ImportImageResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ctl.ImportImage(ctx)
	if err != nil {
		return nil, c.WrapErr(err)
	}
	hdr := &api.ImportImageHeader{Name: o.Name, SourceName: o.SourceName, Platform: o.Platform, Message: o.Message}
	if err := stream.Send(&api.ImportImageMessage{Header: hdr}); err != nil {
		return nil, c.importError(stream, err)
	}
	buf := make([]byte, importChunk)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&api.ImportImageMessage{Data: buf[:n]}); err != nil {
				return nil, c.importError(stream, err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("read %s: %w", o.SourceName, rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp, nil
}

// importError returns the daemon's answer when Send failed because the
// daemon ended the call (Send then returns io.EOF).
func (c *Client) importError(stream api.Control_ImportImageClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.CloseAndRecv(); rerr != nil {
			return c.WrapErr(rerr)
		}
	}
	return c.WrapErr(err)
}

// PushImage pushes a stored image to its registry with the given logins
// (the client's, by registry host) ahead of the daemon's.
func (c *Client) PushImage(ctx context.Context, name string, creds []*api.RegistryCredential) (*api.PushImageResponse, error) {
	resp, err := c.ctl.PushImage(ctx, &api.PushImageRequest{Name: name, Credentials: creds})
	if err != nil {
		return nil, c.WrapErr(err)
	}
	return resp, nil
}

// SaveOptions describe a save.
type SaveOptions struct {
	Format   string // "oci" (default) or "docker"
	Platform string // one platform of multi-platform images
}

// SaveImage writes the tarball of the named images to w as it arrives.
// On error w may hold part of it.
func (c *Client) SaveImage(ctx context.Context, names []string, o SaveOptions, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ctl.SaveImage(ctx, &api.SaveImageRequest{Names: names, Format: o.Format, Platform: o.Platform})
	if err != nil {
		return c.WrapErr(err)
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.WrapErr(err)
		}
		if _, err := w.Write(m.GetData()); err != nil {
			return err
		}
	}
}
