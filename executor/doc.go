// Package executor runs one process in a container for a build step.
//
// An Executor takes the step's root filesystem (a Mount at "/", usually an
// active overlay snapshot whose writes become the step's result), extra
// mounts (RUN --mount=type=bind|cache|tmpfs|secret|ssh are built from the
// primitives here: BindMount, TmpfsMount, FileMount) and a Process (argv,
// env, user, working directory, network and security mode, output writers).
// Run blocks until the process exits. A non-zero exit is an *ExitError;
// cancelling the context kills the container, and Run returns only after
// every container, mount and temporary directory of the step is gone.
//
// The runtime-backed implementation lives in executor/runc (runc or crun,
// from a generated OCI runtime spec). ResolveUser resolves a USER value
// against a root filesystem's /etc/passwd and /etc/group (executor/user
// holds the parser, shared with the COPY --chown code).
//
// This package imports only core/ and executor/user from Kiln; it must not
// import the solver, ops, cache or anything above them.
package executor
