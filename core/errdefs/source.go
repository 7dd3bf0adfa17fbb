package errdefs

import (
	"fmt"
	"strings"
)

// Range is a span of lines in a source file, 1-based and inclusive.
type Range struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// SourceError is an error tied to a place in a user's file: a Dockerfile
// instruction or a kilnd.toml key. Its message starts with "file:line:" so
// that editors and CI logs can jump to it.
type SourceError struct {
	File  string // path as the user gave it; may be empty
	Range Range  // 1-based lines; zero if unknown
	Err   error
}

func (e *SourceError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("<input>")
	}
	if e.Range.Start > 0 {
		fmt.Fprintf(&b, ":%d", e.Range.Start)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *SourceError) Unwrap() error { return e.Err }

// VertexError marks an error as coming from one vertex of the build graph, so
// progress renderers and the client can point at the step that failed.
type VertexError struct {
	Vertex   string // the vertex digest
	Name     string // the vertex's display name, e.g. "[2/3] RUN make"
	Location string // where the step comes from, e.g. "Dockerfile:3"
	Err      error
}

func (e *VertexError) Error() string {
	var b strings.Builder
	if e.Location != "" {
		b.WriteString(e.Location)
		b.WriteString(": ")
	}
	if e.Name != "" {
		b.WriteString(e.Name)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *VertexError) Unwrap() error { return e.Err }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
