// Package ctrderr maps containerd's error classes (github.com/containerd/errdefs)
// to Kiln's (core/errdefs) for the packages that wrap containerd: content and
// snapshot. core must not import containerd, so the table lives here.
package ctrderr

import (
	"errors"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/kiln-build/kiln/core/errdefs"
)

// classes maps containerd's error classes to Kiln's.
var classes = []struct{ ctrd, kiln error }{
	{cerrdefs.ErrNotFound, errdefs.ErrNotFound},
	{cerrdefs.ErrAlreadyExists, errdefs.ErrAlreadyExists},
	{cerrdefs.ErrInvalidArgument, errdefs.ErrInvalidArgument},
	{cerrdefs.ErrFailedPrecondition, errdefs.ErrFailedPrecondition},
	{cerrdefs.ErrUnavailable, errdefs.ErrUnavailable},
	{cerrdefs.ErrPermissionDenied, errdefs.ErrPermissionDenied},
	{cerrdefs.ErrNotImplemented, errdefs.ErrUnimplemented},
	{cerrdefs.ErrResourceExhausted, errdefs.ErrResourceExhausted},
	{cerrdefs.ErrUnauthenticated, errdefs.ErrUnauthenticated},
	{cerrdefs.ErrInternal, errdefs.ErrInternal},
}

// Classify marks err with the Kiln class matching its containerd class, so
// callers can test it with errors.Is against core/errdefs. The containerd
// class stays in the chain for containerd's own helpers.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	for _, c := range classes {
		if errors.Is(err, c.ctrd) {
			return errdefs.WithClass(c.kiln, err)
		}
	}
	return err
}
