package cdc

import (
	"errors"
	"fmt"
)

// Error is a failure to turn input into state, carrying what a dead-letter
// entry needs: a stable reason code and whether retrying can help.
type Error struct {
	Reason    string // stable code: unknown_framing, schema_not_found, malformed_avro, ...
	Retryable bool
	Err       error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return fmt.Sprintf("%s: %v", e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent returns a non-retryable Error with the given reason.
func Permanent(reason string, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Transient returns a retryable Error with the given reason.
func Transient(reason string, err error) *Error {
	return &Error{Reason: reason, Retryable: true, Err: err}
}

// Reason codes shared by decode and apply.
const (
	ReasonUnknownFraming  = "unknown_framing"
	ReasonSchemaNotFound  = "schema_not_found"
	ReasonSchemaInvalid   = "schema_invalid"
	ReasonMalformedAvro   = "malformed_avro"
	ReasonNotAChangeEvent = "not_a_change_event"
	ReasonBadBitmap       = "bad_bitmap"
	ReasonTooLarge        = "too_large"
	ReasonRegistry        = "schema_registry_unavailable"
	ReasonBadEvent        = "bad_event"
	ReasonInternalError   = "internal_error" // handling it panicked: a bug, the stack is in the log
)

// IsRetryable is the one place that decides whether an error is worth
// retrying: a cdc.Error says so itself; anything else (I/O, timeouts) is
// presumed transient.
func IsRetryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable
	}
	return err != nil
}

// ReasonOf returns the reason code of err, or "internal".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "internal"
}
