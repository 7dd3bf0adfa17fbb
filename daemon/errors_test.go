package daemon

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/core/errdefs"
)

func errdefsIs(err, class error) bool { return errors.Is(err, class) }

func TestToGRPC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{errdefs.Invalidf("Dockerfile:3: unknown instruction"), codes.InvalidArgument, "Dockerfile:3: unknown instruction"},
		{fmt.Errorf("resolve base: %w", errdefs.NotFoundf("busybox:nope")), codes.NotFound, "resolve base: busybox:nope"},
		{&errdefs.SourceError{File: "kilnd.toml", Range: errdefs.Range{Start: 2}, Err: errdefs.ErrInvalidArgument}, codes.InvalidArgument, "kilnd.toml:2: invalid argument"},
		{errdefs.WithClass(errdefs.ErrPermissionDenied, errors.New("entitlement network.host is not allowed")), codes.PermissionDenied, "entitlement network.host is not allowed"},
		{fmt.Errorf("step: %w", context.Canceled), codes.Canceled, "step: context canceled"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "context deadline exceeded"},
		{errdefs.WithClass(errdefs.ErrUnavailable, errors.New("redis down")), codes.Unavailable, "redis down"},
		{errors.New("something odd"), codes.Unknown, "something odd"},
		{status.Error(codes.Aborted, "already a status"), codes.Aborted, "already a status"},
	}
	for _, tt := range tests {
		st, ok := status.FromError(toGRPC(tt.err))
		if !ok || st.Code() != tt.code || st.Message() != tt.msg {
			t.Errorf("toGRPC(%v) = %v %q, want %v %q", tt.err, st.Code(), st.Message(), tt.code, tt.msg)
		}
	}
	if toGRPC(nil) != nil {
		t.Error("toGRPC(nil) != nil")
	}
}
