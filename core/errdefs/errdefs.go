// Package errdefs defines the error classes shared by every Kiln package.
//
// Errors are classified with the sentinels below and checked with errors.Is.
// Packages wrap them with fmt.Errorf("...: %w", errdefs.ErrNotFound) or with
// the typed wrappers in this package; only daemon/ and client/ translate the
// classes to and from gRPC status codes. This package imports no other Kiln
// package.
package errdefs

import (
	"errors"
)

// The error classes. Each maps to one gRPC status code at the API edge.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrCanceled           = errors.New("canceled")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
	ErrUnimplemented      = errors.New("not implemented")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrInternal           = errors.New("internal error")
)

// IsNotFound reports whether err is in the not-found class.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is in the already-exists class.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsInvalidArgument reports whether err is in the invalid-argument class.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsUnavailable reports whether err is in the unavailable class.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// classed is an error that belongs to a class but keeps its own message.
type classed struct {
	class error
	err   error
}

func (c *classed) Error() string { return c.err.Error() }

// Unwrap exposes both the class and the underlying error to errors.Is/As.
func (c *classed) Unwrap() []error { return []error{c.class, c.err} }

// WithClass returns err marked as belonging to class (one of the Err*
// sentinels) without changing its message. It returns nil for a nil err.
func WithClass(class, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, class) {
		return err
	}
	return &classed{class: class, err: err}
}

// Invalidf returns an invalid-argument error with the formatted message.
func Invalidf(format string, args ...any) error {
	return WithClass(ErrInvalidArgument, errorf(format, args...))
}

// NotFoundf returns a not-found error with the formatted message.
func NotFoundf(format string, args ...any) error {
	return WithClass(ErrNotFound, errorf(format, args...))
}
