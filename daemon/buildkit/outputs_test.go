package buildkit

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	controlapi "github.com/moby/buildkit/api/services/control"

	"github.com/kiln-build/kiln/core/errdefs"
)

func TestOutputs(t *testing.T) {
	t.Parallel()
	s := newTestService(t)
	sess := &sessionAdapter{}
	req := &controlapi.SolveRequest{Exporters: []*controlapi.Exporter{
		{Type: "image", Attrs: map[string]string{"name": "r/a:1", "push": "true", "buildinfo": "false", "prefer-image-digest": "true"}},
		{Type: "oci", Attrs: map[string]string{"name": "a"}},
		{Type: "local", Attrs: map[string]string{"mode": "copy"}},
		{Type: "tar"},
	}}
	outs, err := s.outputs(context.Background(), req, sess)
	if err != nil {
		t.Fatal(err)
	}
	type out struct {
		Type   string
		Attrs  map[string]string
		Client bool
	}
	var got []out
	for _, o := range outs {
		got = append(got, out{o.Type, o.Attrs, o.Writer != nil})
	}
	want := []out{
		{"image", map[string]string{"name": "r/a:1", "push": "true"}, false},
		{"oci", map[string]string{"name": "a", "dest": clientDest}, true},
		{"local", map[string]string{"dest": clientDest}, true},
		{"tar", map[string]string{"dest": clientDest}, true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("outputs (-want +got):\n%s", d)
	}
	// The exporter of BuildKit's old single-exporter fields.
	outs, err = s.outputs(context.Background(), &controlapi.SolveRequest{ExporterDeprecated: "image", ExporterAttrsDeprecated: map[string]string{"name": "x"}}, sess)
	if err != nil || len(outs) != 1 || outs[0].Attrs["name"] != "x" {
		t.Errorf("deprecated exporter: %+v, %v", outs, err)
	}

	for _, tc := range []struct {
		name  string
		exp   *controlapi.Exporter
		class error
	}{
		{"unknown type", &controlapi.Exporter{Type: "s3"}, errdefs.ErrInvalidArgument},
		{"oci directory", &controlapi.Exporter{Type: "oci", Attrs: map[string]string{"tar": "false"}}, errdefs.ErrUnimplemented},
		{"local delete mode", &controlapi.Exporter{Type: "local", Attrs: map[string]string{"mode": "delete"}}, errdefs.ErrUnimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.outputs(context.Background(), &controlapi.SolveRequest{Exporters: []*controlapi.Exporter{tc.exp}}, sess)
			if !errors.Is(err, tc.class) {
				t.Errorf("err = %v, want class %v", err, tc.class)
			}
		})
	}
}

func TestUsageFilters(t *testing.T) {
	t.Parallel()
	types, until, err := usageFilters([]string{"", "type==regular,until=24h", "type=exec.cachemount"})
	if err != nil || len(types) != 2 || types[1] != "exec.cachemount" || until.Hours() != 24 {
		t.Errorf("filters = %v, %v, %v", types, until, err)
	}
	for _, bad := range []string{"id==x", "until=soon", "type==nothing"} {
		if _, _, err := usageFilters([]string{bad}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("filter %q: %v", bad, err)
		}
	}
}
