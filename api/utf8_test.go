package api

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestValidUTF8(t *testing.T) {
	t.Parallel()
	bad := "RUN echo \"x\xfey\""
	tests := []struct {
		name  string
		msg   proto.Message
		field string // what InvalidUTF8Field names
	}{
		{name: "vertex name and error", field: "status.vertexes[1].name", msg: &BuildServerMessage{Msg: &BuildServerMessage_Status{Status: &StatusBatch{
			Vertexes: []*VertexStatus{{Name: "fine"}, {Name: "[2/2] " + bad, Error: bad, Location: "Docker\xfffile:2"}},
			Warnings: []*Warning{{Message: bad}},
		}}}},
		{name: "history", field: "records[0].error", msg: &HistoryResponse{Records: []*BuildRecord{{Error: bad, ExporterResponse: map[string]string{"k\xff": "v\xfe", "ok": "fine"}}}}},
		{name: "request map", field: "build_args[A\uFFFD]", msg: &BuildRequest{BuildArgs: map[string]string{"A\xff": "1"}, Tags: []string{"t"}}},
		{name: "request list", field: "tags[1]", msg: &BuildRequest{Tags: []string{"a", "b\xff"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := proto.Marshal(tt.msg); err == nil {
				t.Fatal("the message marshals before ValidUTF8: the test proves nothing")
			}
			if got := InvalidUTF8Field(tt.msg); got != tt.field {
				t.Errorf("InvalidUTF8Field = %q, want %q", got, tt.field)
			}
			if !ValidUTF8(tt.msg) {
				t.Error("ValidUTF8 reported no change")
			}
			if _, err := proto.Marshal(tt.msg); err != nil {
				t.Fatalf("after ValidUTF8: %v", err)
			}
			if got := InvalidUTF8Field(tt.msg); got != "" {
				t.Errorf("still invalid: %s", got)
			}
			if ValidUTF8(tt.msg) {
				t.Error("a second ValidUTF8 changed something")
			}
		})
	}
}

func TestValidUTF8KeepsValidText(t *testing.T) {
	t.Parallel()
	m := &VertexStatus{Name: "[1/2] RUN echo héllo ✓", Error: "plain"}
	want := proto.Clone(m)
	if ValidUTF8(m) || !proto.Equal(m, want) {
		t.Errorf("changed valid text: %v", m)
	}
	v := &VertexStatus{Name: "a\xffb"}
	ValidUTF8(v)
	if v.Name != "a\uFFFDb" {
		t.Errorf("got %q", v.Name)
	}
}

// File names and patterns are bytes on the wire: any name crosses it.
func TestBytesFieldsCarryAnyName(t *testing.T) {
	t.Parallel()
	m := &BuildClientMessage{Msg: &BuildClientMessage_Stats{Stats: &SyncStats{Stats: []*FileStat{{Path: []byte("caf\xe9.txt"), Linkname: []byte("\xff")}}}}}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got BuildClientMessage
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if p := string(got.GetStats().GetStats()[0].GetPath()); p != "caf\xe9.txt" {
		t.Errorf("path %q", p)
	}
	r := &SyncRequest{IncludePatterns: [][]byte{[]byte("caf\xe9*")}}
	if _, err := proto.Marshal(r); err != nil {
		t.Fatal(err)
	}
}
