package attrs

import (
	"errors"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/core/errdefs"
)

type opts struct {
	Dest  string
	Tar   bool
	Level string
	Other []string
}

func parse(attrs map[string]string) (opts, error) {
	o := opts{Dest: "default"}
	p := New("type=x", attrs)
	p.String("dest", &o.Dest)
	p.Bool("tar", &o.Tar)
	p.Func("level", func(v string) error {
		if v == "bad" {
			return errors.New("not a level")
		}
		if v == "worse" {
			return errdefs.Invalidf("level=worse: says so itself")
		}
		o.Level = v
		return nil
	})
	p.Other(func(k, v string) (bool, error) {
		if !strings.HasPrefix(k, "annotation.") {
			return false, nil
		}
		if v == "" {
			return true, errdefs.Invalidf("%s: empty", k)
		}
		o.Other = append(o.Other, k)
		return true, nil
	}, "annotation.*")
	return o, p.Parse()
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		want  opts
		err   string
	}{
		{"nothing", nil, opts{Dest: "default"}, ""},
		{"values", map[string]string{"dest": "d", "tar": "false", "level": "3", "annotation.a": "1"}, opts{Dest: "d", Level: "3", Other: []string{"annotation.a"}}, ""},
		{"bare bool is true", map[string]string{"tar": ""}, opts{Dest: "default", Tar: true}, ""},
		{"empty string is not given", map[string]string{"dest": ""}, opts{Dest: "default"}, ""},
		{"bad bool", map[string]string{"tar": "maybe"}, opts{}, "type=x: tar=maybe: want true or false"},
		{"bad value", map[string]string{"level": "bad"}, opts{}, "type=x: level=bad: not a level"},
		{"classed error", map[string]string{"level": "worse"}, opts{}, "type=x: level=worse: says so itself"},
		{"other's error", map[string]string{"annotation.b": ""}, opts{}, "type=x: annotation.b: empty"},
		{"unknown", map[string]string{"dset": "d"}, opts{}, `type=x: unknown attribute "dset" (valid: annotation.*, dest, level, tar)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(tc.attrs)
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || err.Error() != tc.err {
					t.Errorf("error = %v, want invalid argument %q", err, tc.err)
				}
				return
			}
			if err != nil || got.Dest != tc.want.Dest || got.Tar != tc.want.Tar || got.Level != tc.want.Level || len(got.Other) != len(tc.want.Other) {
				t.Errorf("parse = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
