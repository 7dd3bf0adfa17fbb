package config

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/core/errdefs"
)

// Cache tables load whatever keys they have: the backend their type
// names checks them, and its errors carry the file and line.
func TestCacheTables(t *testing.T) {
	t.Parallel()
	doc := "[[cache.blob]]\ntype = \"filesystem\"\npath = \"/c\"\n\n" +
		"[[cache.registry]]\ntype = \"mine\"\ndir = \"/x\"\nttl = \"soon\"\ncolour = 3\nname = 7\n"
	cfg, _, err := LoadFor(strings.NewReader(doc), "kilnd.toml", rootEnv)
	if err != nil {
		t.Fatal(err)
	}
	blobs, idx := cfg.CacheTables("blob"), cfg.CacheTables("registry")
	if len(blobs) != 1 || blobs[0].Type() != "filesystem" || len(idx) != 1 || idx[0].Type() != "mine" || idx[0].Header() != "[[cache.registry]]" {
		t.Fatalf("tables: %+v %+v", blobs, idx)
	}
	tests := []struct {
		name string
		bind func(p *TableParser)
		want []string // one line per problem, in file order
	}{
		{
			name: "every key bound, bad values",
			bind: func(p *TableParser) {
				var dir, name string
				var ttl time.Duration
				p.String("dir", &dir)
				p.Duration("ttl", &ttl)
				p.Func("colour", func(any) error { return nil })
				p.String("name", &name)
			},
			want: []string{
				`kilnd.toml:8: [[cache.registry]] ttl: bad duration "soon": want seconds (172800) or a duration ("48h", "90m", "7d")`,
				`kilnd.toml:10: [[cache.registry]] name: wrong type: want a string, got an integer`,
			},
		},
		{
			name: "unknown keys",
			bind: func(p *TableParser) {
				p.Func("dir", func(any) error { return nil })
				p.Func("ttl", func(any) error { return nil })
			},
			want: []string{
				`kilnd.toml:9: [[cache.registry]] colour: unknown key for type "mine" (valid: type, dir, ttl)`,
				`kilnd.toml:10: [[cache.registry]] name: unknown key for type "mine" (valid: type, dir, ttl)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := idx[0].Parser()
			tt.bind(p)
			err := p.Parse()
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Parse = %v, want an invalid-argument error", err)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Parse:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
	// A missing key is reported at the table's header.
	if err := blobs[0].Errorf("ref", "missing"); err.Error() != "kilnd.toml:1: [[cache.blob]] ref: missing" || !errdefs.IsInvalidArgument(err) {
		t.Errorf("Errorf = %v", err)
	}
	if err := idx[0].Errorf("", "needs a blob store"); err.Error() != "kilnd.toml:5: [[cache.registry]]: needs a blob store" {
		t.Errorf("Errorf(table) = %v", err)
	}
}
