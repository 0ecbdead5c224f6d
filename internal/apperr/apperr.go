// Package apperr defines the small set of errors that clients may see.
//
// An *Error carries a public code (the GraphQL extensions.code) and a message written for the
// client. Everything else is an internal error: the client is told "internal error" and the log
// gets the full text. Code reads the code back with errors.As, so an *Error may be wrapped.
package apperr

import (
	"errors"
	"fmt"
)

// Code is a public error code, sent to clients as extensions.code.
type Code string

// The public codes. Clients and checks depend on these exact strings.
const (
	Unauthenticated Code = "UNAUTHENTICATED"
	NotFound        Code = "NOT_FOUND"
	// Forbidden: the viewer may see the object but not make this change to it (someone else's
	// message, a member removed by a non-owner).
	Forbidden               Code = "FORBIDDEN"
	BadUserInput            Code = "BAD_USER_INPUT"
	RateLimited             Code = "RATE_LIMITED"
	ComplexityLimitExceeded Code = "COMPLEXITY_LIMIT_EXCEEDED"
	PersistedQueryNotFound  Code = "PERSISTED_QUERY_NOT_FOUND"
	// PositionExpired: a stream position older than the events kept; the client refetches
	// and subscribes afresh.
	PositionExpired Code = "POSITION_EXPIRED"
	// ServiceUnavailable: the server is at capacity and refused the request at once; retry after
	// extensions.retryAfter seconds (HTTP 503 with Retry-After).
	ServiceUnavailable Code = "SERVICE_UNAVAILABLE"
	Internal           Code = "INTERNAL_SERVER_ERROR"
)

// Error is an error whose message may be shown to the client.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// New returns an *Error with the given code and client-facing message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports bad input in the named argument or field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: BadUserInput, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// ErrUnauthenticated is returned by every field that needs a viewer when there is none.
var ErrUnauthenticated = &Error{Code: Unauthenticated, Message: "authentication required"}

// ErrNotFound is returned for a missing object and, identically, for one the viewer may not see.
var ErrNotFound = &Error{Code: NotFound, Message: "not found"}

// Public returns the *Error in err's chain, or nil when err must be reported as internal.
func Public(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
