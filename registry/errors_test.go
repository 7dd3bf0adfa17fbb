package registry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	ref := mustRef(t, "registry.example.com/team/app:1")
	hub := mustRef(t, "busybox")
	withCreds := credential{cfg: authn.AuthConfig{Username: "u", Password: "p"}, source: "config-file /etc/kiln/docker.json"}
	status := func(code int, diags ...transport.Diagnostic) error {
		return &transport.Error{StatusCode: code, Errors: diags}
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name  string
		op    string
		ref   string // default ref
		cred  credential
		err   error
		class error
		want  string
	}{
		{
			name: "401 anonymous on docker hub", ref: "hub", err: status(401), class: errdefs.ErrUnauthenticated,
			want: "pull docker.io/library/busybox:latest: registry docker.io answered 401 Unauthorized: no credentials for docker.io: log in on the client (docker login docker.io) or configure username/password or config-file for docker.io (Docker Hub also answers so when the repository does not exist)",
		},
		{
			name: "401 with credentials", cred: withCreds, err: status(401), class: errdefs.ErrUnauthenticated,
			want: "pull registry.example.com/team/app:1: registry registry.example.com answered 401 Unauthorized: check the credentials for registry.example.com (wrong password?); they came from config-file /etc/kiln/docker.json",
		},
		{
			name: "401 with unknown credentials", cred: credential{unknown: true}, err: status(401), class: errdefs.ErrUnauthenticated,
			want: "pull registry.example.com/team/app:1: registry registry.example.com answered 401 Unauthorized: check the credentials for registry.example.com",
		},
		{
			name: "403 push", op: "push", cred: withCreds, err: status(403, transport.Diagnostic{Code: transport.DeniedErrorCode, Message: "requested access to the resource is denied"}), class: errdefs.ErrPermissionDenied,
			want: "push registry.example.com/team/app:1: registry registry.example.com answered 403 Forbidden: the credentials from config-file /etc/kiln/docker.json may not push this repository (DENIED: requested access to the resource is denied)",
		},
		{
			name: "404 blob", err: status(404, transport.Diagnostic{Code: transport.BlobUnknownErrorCode}), class: errdefs.ErrNotFound,
			want: "pull registry.example.com/team/app:1: registry registry.example.com: blob unknown (404 Not Found)",
		},
		{
			name: "404 repository", err: status(404, transport.Diagnostic{Code: transport.NameUnknownErrorCode}), class: errdefs.ErrNotFound,
			want: "pull registry.example.com/team/app:1: registry registry.example.com: repository team/app unknown (404 Not Found)",
		},
		{
			name: "429", err: status(429, transport.Diagnostic{Code: transport.TooManyRequestsErrorCode, Message: "slow down"}), class: errdefs.ErrResourceExhausted,
			want: "pull registry.example.com/team/app:1: registry registry.example.com answered 429 Too Many Requests: rate limit reached; wait, or log in for a higher limit (TOOMANYREQUESTS: slow down)",
		},
		{
			name: "503", err: status(503), class: errdefs.ErrUnavailable,
			want: "pull registry.example.com/team/app:1: registry registry.example.com answered 503 Service Unavailable",
		},
		{
			name: "400 on push", op: "push", err: status(400, transport.Diagnostic{Code: transport.ManifestInvalidErrorCode, Message: "manifest invalid"}), class: errdefs.ErrInvalidArgument,
			want: "push registry.example.com/team/app:1: registry registry.example.com answered 400 Bad Request (MANIFEST_INVALID: manifest invalid)",
		},
		{
			name: "connection refused", err: fmt.Errorf("Get %q: %w", "https://registry.example.com/v2/", refused), class: errdefs.ErrUnavailable,
			want: "pull registry.example.com/team/app:1: cannot reach registry registry.example.com: connection refused",
		},
		{
			name: "no such host", err: &net.DNSError{Err: "no such host", Name: "registry.example.com", IsNotFound: true}, class: errdefs.ErrUnavailable,
			want: "pull registry.example.com/team/app:1: cannot reach registry registry.example.com: cannot resolve registry.example.com: no such host",
		},
		{
			name: "unknown authority", err: fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), class: errdefs.ErrUnavailable,
			want: "pull registry.example.com/team/app:1: cannot reach registry registry.example.com: its TLS certificate is signed by an unknown authority: add the CA (ca = [...]) for registry.example.com or mark it insecure",
		},
		{
			name: "plain HTTP registry", err: errors.New(`Get "https://registry.example.com/v2/": http: server gave HTTP response to HTTPS client`), class: errdefs.ErrUnavailable,
			want: "pull registry.example.com/team/app:1: cannot reach registry registry.example.com: it speaks plain HTTP: set http = true for registry.example.com",
		},
		{
			name: "http refused by policy", err: errors.Join(&errScheme{host: "registry.example.com", scheme: "http"}), class: errdefs.ErrFailedPrecondition,
			want: "pull registry.example.com/team/app:1: cannot reach registry registry.example.com: plain HTTP to registry.example.com is not allowed: set http = true for it in the registry configuration",
		},
		{
			name: "schema 1", err: fmt.Errorf("unsupported MediaType: %w", remote.ErrSchema1), class: errdefs.ErrUnimplemented,
			want: "pull registry.example.com/team/app:1: registry registry.example.com serves a Docker schema 1 manifest, which is not supported; push the image again with a current client",
		},
		{
			name: "canceled", err: fmt.Errorf("Get: %w", context.Canceled), class: errdefs.ErrCanceled,
			want: "pull registry.example.com/team/app:1: canceled",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, op := ref, tc.op
			if tc.ref == "hub" {
				r = hub
			}
			if op == "" {
				op = "pull"
			}
			e := classify(op, r, r.Context().RegistryStr(), tc.cred, "manifest", tc.err)
			if !errors.Is(e, tc.class) {
				t.Errorf("class: errors.Is(%v) is false", tc.class)
			}
			if !errors.Is(e, tc.err) {
				t.Errorf("the cause is not reachable with errors.Is")
			}
			if diff := cmp.Diff(tc.want, e.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWrapError(t *testing.T) {
	t.Parallel()
	ref := mustRef(t, "registry.example.com/app:1")
	if WrapError("pull", ref, nil) != nil {
		t.Error("WrapError(nil) != nil")
	}
	first := WrapError("pull", ref, &transport.Error{StatusCode: http.StatusNotFound})
	if !errors.Is(first, errdefs.ErrNotFound) {
		t.Errorf("err = %v, want not found", first)
	}
	if again := WrapError("push", ref, fmt.Errorf("layer: %w", first)); again.Error() != "layer: "+first.Error() {
		t.Errorf("an *Error was wrapped twice: %v", again)
	}
	var re *Error
	if !errors.As(first, &re) || re.StatusCode != 404 || re.Registry != "registry.example.com" || re.Ref != "registry.example.com/app:1" {
		t.Errorf("fields = %+v", re)
	}
}
