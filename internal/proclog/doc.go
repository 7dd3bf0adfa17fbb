// Package proclog collects what a child process of kilnd (runc, crun,
// git, xz) writes to its standard error and logs it as a record of its
// own, with the process, its command and how it ended as attributes:
//
//	stderr := proclog.NewStderr()
//	cmd.Stderr = stderr
//	err := cmd.Run()
//	stderr.Log(ctx, log, "runc", cmd.Args[1:], err)
//	// level=WARN msg="child process stderr" process=runc command="delete --force x" error="exit status 1" stderr="..."
//
// The text never becomes part of another log line or of an error message:
// errors carry Brief, one line. It imports only the standard library.
package proclog
