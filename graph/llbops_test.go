package graph

import (
	"strings"
	"testing"
)

func TestValidateLLBFields(t *testing.T) {
	t.Parallel()
	bind := Mount{Type: MountBind, Target: "/out", Input: NoInput}
	tests := []struct {
		name string
		op   Op
		n    int
		want string // "" means valid
	}{
		{"diff", Op{Diff: &DiffOp{}}, 2, ""},
		{"diff with one input", Op{Diff: &DiffOp{}}, 1, "diff op must have 2 inputs"},
		{"exec output", Op{Exec: &ExecOp{Args: []string{"x"}, Root: NoInput, Mounts: []Mount{bind}, Output: "/out"}}, 0, ""},
		{"exec output not a mount", Op{Exec: &ExecOp{Args: []string{"x"}, Root: NoInput, Output: "/out"}}, 0, "not one of its mounts"},
		{"exec output readonly", Op{Exec: &ExecOp{Args: []string{"x"}, Root: NoInput, Mounts: []Mount{{Type: MountBind, Target: "/out", Input: NoInput, Readonly: true}}, Output: "/out"}}, 0, "not a writable bind mount"},
		{"path copy input", Op{File: &FileOp{Base: NoInput, Actions: []FileAction{{PathCopy: &PathCopyAction{Input: 3, Src: "/a", Dest: "/b"}}}}}, 1, "copy source refers to input 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.op.Validate(tc.n)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	if k := (Op{Diff: &DiffOp{}}).Kind(); k != "diff" {
		t.Errorf("Kind = %q", k)
	}
}
