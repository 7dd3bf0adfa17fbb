package registry

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushOptions returns what a push of ref needs: the reference to push to
// (ref itself, marked for plain HTTP when its host is configured so; use it
// rather than ref) and the go-containerregistry options carrying the
// context, the host's transport and the credentials. Pushes never use
// mirrors. Wrap errors from the push with WrapError("push", ref, err).
func (r *Resolver) PushOptions(ctx context.Context, ref name.Reference) (name.Reference, []remote.Option, error) {
	ep, opts, _, err := r.pushEndpoint(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	return ep.ref, opts, nil
}

func (r *Resolver) pushEndpoint(ctx context.Context, ref name.Reference) (endpoint, []remote.Option, credential, error) {
	eps, err := r.endpoints(ref, false)
	if err != nil {
		return endpoint{}, nil, credential{}, err
	}
	ep := eps[len(eps)-1]
	opts, cred, err := r.remoteOptions(ctx, ep)
	if err != nil {
		return endpoint{}, nil, cred, r.classifyAt(ctx, "push", ref, ep, cred, "manifest", err)
	}
	return ep, opts, cred, nil
}

// Write pushes img (its blobs, then its manifest) to ref. extra options
// (e.g. remote.WithProgress, remote.WithJobs) come after the resolver's.
func (r *Resolver) Write(ctx context.Context, ref name.Reference, img v1.Image, extra ...remote.Option) error {
	ep, opts, cred, err := r.pushEndpoint(ctx, ref)
	if err != nil {
		return err
	}
	if err := remote.Write(ep.ref, img, append(opts, extra...)...); err != nil {
		return r.classifyAt(ctx, "push", ref, ep, cred, "manifest", err)
	}
	return nil
}

// WriteIndex pushes idx and everything it references to ref.
func (r *Resolver) WriteIndex(ctx context.Context, ref name.Reference, idx v1.ImageIndex, extra ...remote.Option) error {
	ep, opts, cred, err := r.pushEndpoint(ctx, ref)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(ep.ref, idx, append(opts, extra...)...); err != nil {
		return r.classifyAt(ctx, "push", ref, ep, cred, "manifest", err)
	}
	return nil
}
