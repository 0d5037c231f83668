package durable

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// FailureDetails describes a failure in the Durable Task shape.
type FailureDetails = history.FailureDetails

// TaskFailedError is returned by Await when an activity or a
// sub-orchestration failed. Use errors.As to inspect it.
type TaskFailedError struct {
	// Kind is "activity" or "sub-orchestration".
	Kind string
	// TaskName is the activity or orchestrator name.
	TaskName string
	// TaskID is the action's sequence number in the orchestration.
	TaskID int32
	// Failure holds the failure as recorded in history.
	Failure FailureDetails
}

// Error implements error.
func (e *TaskFailedError) Error() string {
	kind := e.Kind
	if kind == "" {
		kind = "activity"
	}
	return fmt.Sprintf("%s %q (task %d) failed: %s", kind, e.TaskName, e.TaskID, e.Failure.String())
}

// NonDeterminismError reports that orchestrator code, replayed against its
// history, did something other than what the history records.
type NonDeterminismError struct {
	// Position is the history position (0-based row) where the mismatch was found.
	Position int
	// Recorded describes the history event at that position.
	Recorded string
	// Produced describes what the code did instead ("nothing" if no action).
	Produced string
}

// Error implements error.
func (e *NonDeterminismError) Error() string {
	return fmt.Sprintf("non-deterministic orchestration: history position %d records %s, but the orchestrator code produced %s",
		e.Position, e.Recorded, e.Produced)
}

// ErrorTypeName returns the failure type recorded for err: the value of an
// ErrorType() string method if err (or an error it wraps) has one, otherwise
// the Go type name of err without a leading '*'.
func ErrorTypeName(err error) string {
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		return typed.ErrorType()
	}
	t := reflect.TypeOf(err)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "error"
	}
	return t.String()
}

// ErrorType implements the ErrorType convention so that a TaskFailedError
// re-raised by an orchestrator is recorded as such.
func (e *TaskFailedError) ErrorType() string { return "TaskFailedError" }

// ErrorType implements the ErrorType convention.
func (e *NonDeterminismError) ErrorType() string { return "NonDeterminismError" }

// failureFromError converts a Go error into Durable Task failure details.
func failureFromError(err error) *FailureDetails {
	fd := &FailureDetails{ErrorType: ErrorTypeName(err), ErrorMessage: err.Error()}
	var pe *PanicError
	if errors.As(err, &pe) {
		fd.StackTrace = pe.Stack
	}
	var tf *TaskFailedError
	if errors.As(err, &tf) {
		inner := tf.Failure
		fd.InnerFailure = &inner
	}
	return fd
}
