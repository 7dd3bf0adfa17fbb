package ops

import "context"

// AdmitFunc waits until a step's container may start (or ctx ends) and
// returns the function that ends its admission, to call once.
type AdmitFunc func(ctx context.Context) (release func(), err error)

type admitKey struct{}

// WithAdmit returns ctx carrying admit: the admission of the container of
// an op whose CacheMap says AdmitsItself.
func WithAdmit(ctx context.Context, admit AdmitFunc) context.Context {
	return context.WithValue(ctx, admitKey{}, admit)
}

// Admit waits for the admission ctx carries, or returns at once without
// one. An executor calls it when the container is ready to start (root
// file system mounted, spec written), so that one step's preparation
// overlaps the steps running, and calls release when the container's
// process has ended.
func Admit(ctx context.Context) (release func(), err error) {
	admit, _ := ctx.Value(admitKey{}).(AdmitFunc)
	if admit == nil {
		return func() {}, nil
	}
	return admit(ctx)
}
