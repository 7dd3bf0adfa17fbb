package registry

import (
	"errors"
	"net/http"
	"testing"
)

type countingRT struct{ n int }

func (c *countingRT) RoundTrip(*http.Request) (*http.Response, error) {
	c.n++
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

func TestSchemeGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		host      string
		plainHTTP bool
		insecure  bool
		url       string
		allowed   bool
	}{
		{"https to a TLS host", "registry.example.com", false, false, "https://registry.example.com/v2/", true},
		{"http to a TLS host", "registry.example.com", false, false, "http://registry.example.com/v2/", false},
		{"http to an RFC 1918 host", "10.0.0.5:5000", false, false, "http://10.0.0.5:5000/v2/", false},
		{"http to a .local host", "mirror.local:5000", false, false, "http://mirror.local:5000/v2/", false},
		{"http fallback to loopback", "127.0.0.1:5000", false, false, "http://127.0.0.1:5000/v2/", true},
		{"http fallback to localhost", "localhost:5000", false, false, "http://localhost:5000/v2/", true},
		{"http to a plain-HTTP host", "10.0.0.5:5000", true, false, "http://10.0.0.5:5000/v2/", true},
		{"https to a plain-HTTP host", "10.0.0.5:5000", true, false, "https://10.0.0.5:5000/v2/", false},
		{"https to an insecure plain-HTTP host", "10.0.0.5:5000", true, true, "https://10.0.0.5:5000/v2/", true},
		{"http to an insecure plain-HTTP host", "10.0.0.5:5000", true, true, "http://10.0.0.5:5000/v2/", true},
		{"http to an insecure TLS host", "10.0.0.5:5000", false, true, "http://10.0.0.5:5000/v2/", false},
		{"redirect to another host", "registry.example.com", false, false, "http://blobs.example.com/x", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := &countingRT{}
			g := newSchemeGuard(base, tc.host, tc.plainHTTP, tc.insecure)
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := g.RoundTrip(req)
			if tc.allowed {
				if err != nil || base.n != 1 {
					t.Fatalf("refused: %v", err)
				}
				resp.Body.Close()
				return
			}
			var se *errScheme
			if !errors.As(err, &se) || base.n != 0 {
				t.Fatalf("err = %v, sent %d; want refused", err, base.n)
			}
		})
	}
}

func TestParseMirror(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want mirror
	}{
		{"mirror.local:5000", mirror{registry: "mirror.local:5000"}},
		{"http://mirror.local:5000", mirror{registry: "mirror.local:5000", scheme: "http"}},
		{"https://harbor.local/hub-proxy/", mirror{registry: "harbor.local", prefix: "hub-proxy", scheme: "https"}},
		{"harbor.local/a/b", mirror{registry: "harbor.local", prefix: "a/b"}},
	}
	for _, tc := range tests {
		got, err := parseMirror(tc.in)
		if err != nil {
			t.Errorf("parseMirror(%q): %v", tc.in, err)
			continue
		}
		tc.want.raw = tc.in
		if got != tc.want {
			t.Errorf("parseMirror(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "http://", "ftp://m", "bad host", "m/UPPER"} {
		if _, err := parseMirror(bad); err == nil {
			t.Errorf("parseMirror(%q) accepted", bad)
		}
	}
}
