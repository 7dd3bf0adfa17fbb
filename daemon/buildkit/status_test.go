package buildkit

import (
	"context"
	"errors"
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"

	"github.com/kiln-build/kiln/core/errdefs"
)

type statusStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*controlapi.StatusResponse
}

func (s *statusStream) Context() context.Context { return s.ctx }

func (s *statusStream) Send(m *controlapi.StatusResponse) error {
	s.sent = append(s.sent, m)
	return nil
}

// A Status call for a Solve that is refused before its build starts ends
// with it, instead of waiting for a build that never comes.
func TestStatusEndsWithRefusedSolve(t *testing.T) {
	t.Parallel()
	s := newTestService(t)
	c := &control{s: s}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Status(&controlapi.StatusRequest{Ref: "r1"}, &statusStream{ctx: ctx}) }()
	_, err := c.Solve(ctx, &controlapi.SolveRequest{Ref: "r1", Frontend: "make.v0"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("solve with an unknown frontend: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("status: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Status did not end with the refused Solve")
	}
	// A Status that comes after the refused Solve ends at once too.
	if err := c.Status(&controlapi.StatusRequest{Ref: "r1"}, &statusStream{ctx: ctx}); err != nil {
		t.Errorf("late status: %v", err)
	}
	// The same ref cannot be solved twice.
	if _, err := c.Solve(ctx, &controlapi.SolveRequest{Ref: "r1", Frontend: "make.v0"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second solve of r1: %v", err)
	}
	if _, err := c.Solve(ctx, &controlapi.SolveRequest{Frontend: "make.v0"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("solve without a ref: %v", err)
	}
}
