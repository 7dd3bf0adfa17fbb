package testutil

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestStartRegistry(t *testing.T) {
	t.Parallel()
	host := StartRegistry(t)
	img := BusyboxImage(t, HostPlatform())
	dig := PushImage(t, host+"/busybox:1", img)
	got, err := remote.Image(dig)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled %s, pushed %s", d, want)
	}
	idx := BusyboxIndex(t)
	idig := PushIndex(t, host+"/busybox:multi", idx)
	if _, err := remote.Index(idig); err != nil {
		t.Fatal(err)
	}
}

func TestDistribution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts DistributionOptions
	}{
		{name: "plain", opts: DistributionOptions{}},
		{name: "filesystem", opts: DistributionOptions{Filesystem: true}},
		{name: "tls", opts: DistributionOptions{TLS: true}},
		{name: "client-certs", opts: DistributionOptions{ClientCerts: true}},
		{name: "basic-auth", opts: DistributionOptions{Users: map[string]string{"alice": "s3cret"}}},
		{name: "tls-basic-auth", opts: DistributionOptions{TLS: true, Users: map[string]string{"alice": "s3cret"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := StartDistribution(t, tc.opts)
			wantScheme := "http://"
			if tc.opts.TLS || tc.opts.ClientCerts {
				wantScheme = "https://"
			}
			if !strings.HasPrefix(d.URL, wantScheme) || !strings.HasPrefix(d.Host, "127.0.0.1:") {
				t.Errorf("URL = %q, Host = %q", d.URL, d.Host)
			}
			img := BusyboxImage(t, HostPlatform())
			dig := PushImage(t, d.Ref("app:1"), img, d.RemoteOptions()...)
			if _, err := remote.Image(dig, d.RemoteOptions()...); err != nil {
				t.Fatalf("pull back: %v", err)
			}
			if len(tc.opts.Users) > 0 {
				bad := []remote.Option{remote.WithTransport(d.Transport()), remote.WithAuth(&authn.Basic{Username: "alice", Password: "wrong"})}
				_, err := remote.Image(dig, bad...)
				var terr *transport.Error
				if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
					t.Errorf("wrong password: err = %v, want 401", err)
				}
			}
			if tc.opts.ClientCerts {
				tr := d.Transport()
				tr.TLSClientConfig.Certificates = nil
				if _, err := remote.Image(dig, remote.WithTransport(tr)); err == nil {
					t.Errorf("pull without a client certificate succeeded")
				}
			}
		})
	}
}

func TestDistributionProxy(t *testing.T) {
	t.Parallel()
	origin := StartDistribution(t, DistributionOptions{})
	img := BusyboxImage(t, HostPlatform())
	dig := PushImage(t, origin.Ref("library/busybox:1"), img)

	mirror := StartDistribution(t, DistributionOptions{Proxy: origin.URL})
	ref, err := name.NewDigest(mirror.Ref("library/busybox@" + dig.DigestStr()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull through the proxy: %v", err)
	}
	if d, _ := got.Digest(); d.String() != dig.DigestStr() {
		t.Errorf("proxy served %s, want %s", d, dig.DigestStr())
	}
}

func TestDistributionClose(t *testing.T) {
	t.Parallel()
	d := StartDistribution(t, DistributionOptions{})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	resp, err := http.Get(d.URL + "/v2/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("registry still answers after Close: %s", resp.Status)
	}
}

func TestDistributionMissingBinary(t *testing.T) {
	t.Parallel()
	_, err := NewDistribution(context.Background(), DistributionOptions{Binary: "/nonexistent/docker-registry"})
	if err == nil || !strings.Contains(err.Error(), "apt-get install docker-registry") {
		t.Fatalf("err = %v, want the install hint", err)
	}
}
