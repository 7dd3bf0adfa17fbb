package redis

import (
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	for in, wantErr := range map[string]string{
		"redis://localhost:6379":        "",
		"rediss://u:p@cache:6380/3":     "",
		"redis://:p@cache:6379":         "",
		"http://localhost:6379":         "scheme must be redis:// or rediss://",
		"redis://localhost":             "want redis://",
		"redis://localhost:0":           "port",
		"redis://localhost:6379/db":     `database "db" is not a number`,
		"redis://user:sekrit@x:1/db":    "redis://user:****@x:1/db",
		"redis://user:sekrit@x:notport": "user:****@",
	} {
		t.Run(in, func(t *testing.T) {
			err := checkAddr(in)
			if wantErr == "" {
				if err != nil {
					t.Errorf("checkAddr(%q) = %v", in, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("checkAddr(%q) = %v, want error containing %q", in, err, wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "sekrit") {
				t.Errorf("checkAddr(%q) leaks the password: %v", in, err)
			}
		})
	}
}
