package git

import (
	"errors"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"https://github.com/o/r.git":               "https://github.com/o/r.git",
		"https://user:pw@github.com/o/r.git":       "https://user:xxxxx@github.com/o/r.git",
		"https://ghp_token@github.com/o/r.git":     "https://xxxxx@github.com/o/r.git",
		"ssh://git@host/r.git":                     "ssh://git@host/r.git",
		"git@github.com:o/r.git":                   "git@github.com:o/r.git",
		"http://x-access-token:t0k@h:8080/r?q=1#f": "http://x-access-token:xxxxx@h:8080/r?q=1#f",
	}
	for in, want := range tests {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
	msg := "fatal: unable to access 'https://ghp_token@github.com/o/r.git/': 403"
	if got := scrub(msg, "https://ghp_token@github.com/o/r.git"); got != "fatal: unable to access 'https://xxxxx@github.com/o/r.git/': 403" {
		t.Errorf("scrub = %q", got)
	}
}

func TestBrief(t *testing.T) {
	t.Parallel()
	tests := []struct{ stderr, want string }{
		{"remote: Repository not found.\nfatal: repository 'https://h/r/' not found\n", "repository 'https://h/r/' not found"},
		{"error: Server does not allow request for unadvertised object abc\nfatal: the remote end hung up\n",
			"Server does not allow request for unadvertised object abc; the remote end hung up"},
		{"Host key verification failed.\n", "Host key verification failed."},
		{"", ""},
	}
	for _, tt := range tests {
		if got := brief(tt.stderr); got != tt.want {
			t.Errorf("brief(%q) = %q, want %q", tt.stderr, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := map[string]error{
		"repository 'https://h/r/' not found":                       errdefs.ErrNotFound,
		"couldn't find remote ref refs/heads/x":                     errdefs.ErrNotFound,
		"could not read Username for 'https://h': terminal prompts": errdefs.ErrUnauthenticated,
		"git@h: Permission denied (publickey).":                     errdefs.ErrUnauthenticated,
		"Host key verification failed.":                             errdefs.ErrPermissionDenied,
		"unable to access 'https://h/': Could not resolve host: h":  errdefs.ErrUnavailable,
		"something odd": errdefs.ErrFailedPrecondition,
	}
	for stderr, want := range tests {
		if got := classify(stderr); !errors.Is(got, want) {
			t.Errorf("classify(%q) = %v, want %v", stderr, got, want)
		}
	}
}

func TestCleanSubdir(t *testing.T) {
	t.Parallel()
	tests := map[string]string{"": "", "/": "", ".": "", "a/b/": "a/b", "/a//b/./c": "a/b/c"}
	for in, want := range tests {
		if got, err := cleanSubdir(in); err != nil || got != want {
			t.Errorf("cleanSubdir(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"..", "a/../../b", "a\x00b"} {
		if _, err := cleanSubdir(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("cleanSubdir(%q) = %v, want an invalid-argument error", in, err)
		}
	}
}
