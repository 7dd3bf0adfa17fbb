package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/internal/testutil"
)

// These tests run against the real distribution server (Debian's
// docker-registry) on 127.0.0.1; they skip under -short.

func TestDistributionMirrorFallback(t *testing.T) {
	t.Parallel()
	origin := testutil.StartDistribution(t, testutil.DistributionOptions{})
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	dig := testutil.PushImage(t, origin.Ref("library/busybox:1"), img)

	emptyMirror := testutil.StartDistribution(t, testutil.DistributionOptions{})
	proxy := testutil.StartDistribution(t, testutil.DistributionOptions{Proxy: origin.URL})
	down := testutil.StartDistribution(t, testutil.DistributionOptions{})
	if err := down.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		mirrors  []string
		wantFrom string
	}{
		{"first mirror down, second missing the image, then origin", []string{down.Host, emptyMirror.Host}, origin.Host},
		{"pull-through mirror answers", []string{down.Host, proxy.Host}, proxy.Host},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			r, err := New(map[string]HostConfig{
				origin.Host:      {Mirrors: tc.mirrors, PlainHTTP: true},
				emptyMirror.Host: {PlainHTTP: true},
				proxy.Host:       {PlainHTTP: true},
			}, WithLogger(logs.logger()))
			if err != nil {
				t.Fatal(err)
			}
			desc, err := r.Get(context.Background(), mustRef(t, origin.Ref("library/busybox:1")))
			if err != nil {
				t.Fatal(err)
			}
			if got := desc.Source.Context().RegistryStr(); got != tc.wantFrom {
				t.Errorf("answered by %s, want %s", got, tc.wantFrom)
			}
			if desc.Digest.String() != dig.DigestStr() {
				t.Errorf("digest %s, want %s", desc.Digest, dig.DigestStr())
			}
			if !strings.Contains(logs.String(), "mirror="+down.Host) || !strings.Contains(logs.String(), "connection refused") {
				t.Errorf("the down mirror was not logged:\n%s", logs.String())
			}
			pulled, err := desc.Image()
			if err != nil {
				t.Fatal(err)
			}
			layers, err := pulled.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("layers: %d, %v", len(layers), err)
			}
			rc, err := layers[0].Compressed()
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()
		})
	}
}

func TestDistributionPlainHTTP(t *testing.T) {
	t.Parallel()
	d := testutil.StartDistribution(t, testutil.DistributionOptions{})
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	ref := mustRef(t, d.Ref("app:1"))
	for _, hosts := range []map[string]HostConfig{
		{d.Host: {PlainHTTP: true}},
		{d.Host: {PlainHTTP: true, Insecure: true}},
		nil, // a loopback registry may fall back to HTTP without configuration
	} {
		r, err := New(hosts)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := r.Write(ctx, ref, img); err != nil {
			t.Fatalf("push (hosts %v): %v", hosts, err)
		}
		if _, err := r.Image(ctx, ref, testutil.HostPlatform()); err != nil {
			t.Fatalf("pull (hosts %v): %v", hosts, err)
		}
	}
}

func TestDistributionTLS(t *testing.T) {
	t.Parallel()
	d := testutil.StartDistribution(t, testutil.DistributionOptions{TLS: true})
	mtls := testutil.StartDistribution(t, testutil.DistributionOptions{ClientCerts: true})
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	testutil.PushImage(t, d.Ref("app:1"), img, d.RemoteOptions()...)
	testutil.PushImage(t, mtls.Ref("app:1"), img, mtls.RemoteOptions()...)

	tests := []struct {
		name    string
		reg     *testutil.Distribution
		host    HostConfig
		class   error
		wantErr string
	}{
		{name: "custom CA", reg: d, host: HostConfig{CAFiles: []string{d.CAFile}}},
		{name: "insecure", reg: d, host: HostConfig{Insecure: true}},
		{name: "http and insecure", reg: d, host: HostConfig{PlainHTTP: true, Insecure: true}},
		{
			name: "unknown CA", reg: d, class: errdefs.ErrUnavailable,
			wantErr: "cannot reach registry " + d.Host + ": its TLS certificate is signed by an unknown authority: add the CA (ca = [...]) for " + d.Host + " or mark it insecure",
		},
		{
			name: "plain HTTP configured for a TLS registry", reg: d, host: HostConfig{PlainHTTP: true}, class: errdefs.ErrUnavailable,
			wantErr: "cannot reach registry " + d.Host + ": it speaks HTTPS, not plain HTTP: do not set http = true for " + d.Host,
		},
		{name: "client certificate", reg: mtls, host: HostConfig{CAFiles: []string{mtls.CAFile}, KeyPairs: []KeyPair{{CertFile: mtls.ClientCertFile, KeyFile: mtls.ClientKeyFile}}}},
		{
			name: "missing client certificate", reg: mtls, host: HostConfig{CAFiles: []string{mtls.CAFile}}, class: errdefs.ErrUnavailable,
			wantErr: "cannot reach registry " + mtls.Host + ": it wants a client certificate (TLS ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(map[string]HostConfig{tc.reg.Host: tc.host}, fastRetry)
			if err != nil {
				t.Fatal(err)
			}
			ref := mustRef(t, tc.reg.Ref("app:1"))
			_, err = r.Image(context.Background(), ref, testutil.HostPlatform())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				// Pushes use the same TLS settings.
				if err := r.Write(context.Background(), mustRef(t, tc.reg.Ref("app:2")), img); err != nil {
					t.Fatalf("push: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want class %v", err, tc.class)
			}
			if want := "pull " + tc.reg.Ref("app:1") + ": " + tc.wantErr; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("err = %q\nwant prefix %q", err, want)
			}
		})
	}
}

func TestDistributionBasicAuth(t *testing.T) {
	t.Parallel()
	d := testutil.StartDistribution(t, testutil.DistributionOptions{Users: map[string]string{"alice": "s3cret"}})
	img := testutil.BusyboxImage(t, testutil.HostPlatform())
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "config.json", `{"auths": {"`+d.Host+`": {"auth": "`+b64("alice:s3cret")+`"}}}`)
	ref := mustRef(t, d.Ref("app:1"))

	// Push with the right password, from the config.
	r, err := New(map[string]HostConfig{d.Host: {Username: "alice", Password: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Write(context.Background(), ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}

	tests := []struct {
		name    string
		host    HostConfig
		client  map[string]authn.AuthConfig
		class   error
		wantErr string
	}{
		{name: "right password", host: HostConfig{Username: "alice", Password: "s3cret"}},
		{name: "config.json", host: HostConfig{ConfigFile: cfgFile}},
		{name: "forwarded", client: map[string]authn.AuthConfig{d.Host: {Username: "alice", Password: "s3cret"}}},
		{
			name: "wrong password", host: HostConfig{Username: "alice", Password: "wrong"}, class: errdefs.ErrUnauthenticated,
			wantErr: "pull " + d.Host + "/app:1: registry " + d.Host + " answered 401 Unauthorized: check the credentials for " + d.Host + " (wrong password?); they came from the username/password configured for " + d.Host,
		},
		{
			name: "no credentials", class: errdefs.ErrUnauthenticated,
			wantErr: "pull " + d.Host + "/app:1: registry " + d.Host + " answered 401 Unauthorized: no credentials for " + d.Host + ": log in on the client (docker login " + d.Host + ") or configure username/password or config-file for " + d.Host,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(map[string]HostConfig{d.Host: tc.host}, fastRetry)
			if err != nil {
				t.Fatal(err)
			}
			if tc.client != nil {
				f := &forwarded{creds: tc.client}
				r = r.WithCredentials(f.get)
			}
			_, err = r.Image(context.Background(), ref, testutil.HostPlatform())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want class %v", err, tc.class)
			}
			if diff := cmp.Diff(tc.wantErr, err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			var re *Error
			if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
				t.Errorf("StatusCode = %+v, want 401", re)
			}
		})
	}
}

func TestDistributionErrors(t *testing.T) {
	t.Parallel()
	d := testutil.StartDistribution(t, testutil.DistributionOptions{})
	testutil.PushImage(t, d.Ref("app:1"), testutil.BusyboxImage(t, testutil.HostPlatform()))
	proxy := testutil.StartDistribution(t, testutil.DistributionOptions{Proxy: d.URL})
	down := testutil.StartDistribution(t, testutil.DistributionOptions{})
	if err := down.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := New(nil, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name    string
		do      func() error
		class   error
		wantErr string
	}{
		{
			name: "missing tag", class: errdefs.ErrNotFound,
			do:      func() error { _, err := r.Get(ctx, mustRef(t, d.Ref("app:2"))); return err },
			wantErr: "pull " + d.Ref("app:2") + ": registry " + d.Host + ": manifest unknown (404 Not Found)",
		},
		{
			name: "missing repository", class: errdefs.ErrNotFound,
			do:      func() error { _, err := r.Get(ctx, mustRef(t, d.Ref("nope:1"))); return err },
			wantErr: "pull " + d.Ref("nope:1") + ": registry " + d.Host + ": manifest unknown (404 Not Found)",
		},
		{
			name: "unreachable", class: errdefs.ErrUnavailable,
			do: func() error {
				_, err := r.Image(ctx, mustRef(t, down.Ref("app:1")), testutil.HostPlatform())
				return err
			},
			wantErr: "pull " + down.Ref("app:1") + ": cannot reach registry " + down.Host + ": connection refused",
		},
		{
			name: "push to a pull-through mirror", class: errdefs.ErrUnimplemented,
			do: func() error {
				return r.Write(ctx, mustRef(t, proxy.Ref("app:9")), testutil.BusyboxImage(t, testutil.HostPlatform()))
			},
			wantErr: "push " + proxy.Ref("app:9") + ": registry " + proxy.Host + " answered 405 Method Not Allowed: it does not allow this (a read-only mirror?)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.do()
			if !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want class %v", err, tc.class)
			}
			if !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("err = %q\nwant prefix %q", err, tc.wantErr)
			}
		})
	}
}

func TestDistributionMultiPlatform(t *testing.T) {
	t.Parallel()
	d := testutil.StartDistribution(t, testutil.DistributionOptions{})
	idx := testutil.BusyboxIndex(t)
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, d.Ref("busybox:multi"))
	ctx := context.Background()
	if err := r.WriteIndex(ctx, ref, idx); err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := r.Image(ctx, ref, v1.Platform{OS: "linux", Architecture: arch})
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != arch {
			t.Errorf("got %s for %s", cf.Architecture, arch)
		}
	}
	_, err = r.Image(ctx, ref, v1.Platform{OS: "linux", Architecture: "s390x"})
	if err == nil {
		t.Fatal("no error for a platform the index lacks")
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("err = %v, want not found", err)
	}
	if want := "pull " + ref.Name() + ": no linux/s390x image in the index (it has linux/amd64, linux/arm64/v8)"; err.Error() != want {
		t.Errorf("err = %q\nwant   %q", err, want)
	}
}
