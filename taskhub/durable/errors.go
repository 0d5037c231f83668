package durable

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// FailureDetails describes a failure in the Durable Task shape.
type FailureDetails = history.FailureDetails

// DetailsProperty is the key of FailureDetails.Properties under which an
// *Error's details are recorded (as a JSON value).
const DetailsProperty = "details"

// Error is an application error with a stable type: activities and
// orchestrators return it (or wrap it) to fail with a type string that the
// calling orchestrator can match, a message, and JSON details.
//
// It is recorded in history as FailureDetails{ErrorType: Type,
// ErrorMessage: Error(), IsNonRetriable: NonRetriable, Properties:
// {"details": the details}}, and Cause (if any) as its InnerFailure. On the
// orchestrator side, errors.As(err, &e) on the *TaskFailedError of the
// call rebuilds it from those details, and errors.Is(err, sentinel) holds
// when sentinel is an *Error of the same Type (see Is).
type Error struct {
	// Type is the error's stable type string (FailureDetails.ErrorType).
	Type string
	// Message describes this occurrence.
	Message string
	// RawDetails is the JSON encoding of the details (nil: none). Decode
	// it with Details.
	RawDetails json.RawMessage
	// NonRetriable stops RetryPolicy retries of a call failing with it.
	NonRetriable bool
	// Cause is the error this one wraps (recorded as the InnerFailure). A
	// rebuilt error's Cause is rebuilt from the InnerFailure.
	Cause error

	detailsErr error // why details could not be encoded (recorded with the failure)
}

// NewError returns an application error of type typ with message msg and
// details (encoded as JSON; nil for none). Defined at package level it
// serves as a sentinel for errors.Is, which matches by type:
//
//	var ErrDeclined = durable.NewError("CardDeclined", "card declined", nil)
//	return durable.NewError("CardDeclined", "card 4242 declined", map[string]any{"code": 51})
//
// Details that cannot be encoded as JSON are dropped, and the failure
// records why in its Properties under "detailsError".
func NewError(typ, msg string, details any) *Error {
	e := &Error{Type: typ, Message: msg}
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			e.detailsErr = fmt.Errorf("durable: details of error type %q cannot be encoded as JSON: %w", typ, err)
		} else {
			e.RawDetails = b
		}
	}
	return e
}

// Error implements error: the message, followed by the cause's if any.
func (e *Error) Error() string {
	switch {
	case e.Cause == nil:
		return e.Message
	case e.Message == "":
		return e.Cause.Error()
	}
	return e.Message + ": " + e.Cause.Error()
}

// ErrorType implements the ErrorType convention: the type is recorded as is.
func (e *Error) ErrorType() string {
	if e.Type == "" {
		return "Error"
	}
	return e.Type
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is an *Error of the same (non-empty) Type:
// errors.Is matches application errors by type, not by message or details.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Type != "" && t.Type == e.Type
}

// Details decodes the error's JSON details into v (a pointer). Without
// details v is left unchanged and Details returns nil.
func (e *Error) Details(v any) error {
	if len(e.RawDetails) == 0 {
		return nil
	}
	if err := json.Unmarshal(e.RawDetails, v); err != nil {
		return fmt.Errorf("durable: details of error type %q do not fit %T: %w", e.Type, v, err)
	}
	return nil
}

// WithCause returns a copy of e that wraps cause (a sentinel stays as it is).
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// NonRetriable wraps err so that its failure is recorded with
// IsNonRetriable set: a RetryPolicy does not retry it. Its type and message
// are err's; errors.Is and errors.As see through it. NonRetriable(nil) is nil.
func NonRetriable(err error) error {
	if err == nil {
		return nil
	}
	return &nonRetriableError{err: err}
}

// nonRetriableError is NonRetriable's marker; it records as the error it wraps.
type nonRetriableError struct{ err error }

func (e *nonRetriableError) Error() string { return e.err.Error() }
func (e *nonRetriableError) Unwrap() error { return e.err }

// isNonRetriable reports whether err carries a non-retriable marker: a
// NonRetriable wrapper, an *Error with NonRetriable set, or a re-raised
// *TaskFailedError whose failure is non-retriable.
func isNonRetriable(err error) bool {
	for _, e := range chain(err) {
		switch v := e.(type) {
		case *nonRetriableError:
			return true
		case *Error:
			if v.NonRetriable {
				return true
			}
		case *TaskFailedError:
			if v.Failure.IsNonRetriable {
				return true
			}
		}
	}
	return false
}

// chain lists err and the errors it wraps, depth first (the first of an
// Unwrap() []error list comes before the rest).
func chain(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		for e != nil && len(out) < 100 { // a cyclic chain stops somewhere
			out = append(out, e)
			switch u := e.(type) {
			case interface{ Unwrap() error }:
				e = u.Unwrap()
			case interface{ Unwrap() []error }:
				for _, x := range u.Unwrap() {
					walk(x)
				}
				return
			default:
				return
			}
		}
	}
	walk(err)
	return out
}

// TaskFailedError is returned by Await when an activity, a
// sub-orchestration or an entity operation (CallEntity) failed. Use
// errors.As to inspect it, or to get the failure as an application *Error;
// errors.Is matches it against *Error sentinels by type (see Is).
type TaskFailedError struct {
	// Kind is "activity", "sub-orchestration" or "entity" (CallEntity).
	Kind string
	// TaskName is the activity or orchestrator name; for an entity call,
	// the operation and the entity: `"add" on @counter@k`.
	TaskName string
	// TaskID is the action's sequence number in the orchestration.
	TaskID int32
	// Failure holds the failure as recorded in history (for an entity
	// call, as the entity's response reports it).
	Failure FailureDetails
}

// Error implements error.
func (e *TaskFailedError) Error() string {
	kind := e.Kind
	switch kind {
	case "":
		kind = "activity"
	case "entity":
		// TaskName says `"op" on @name@key` already.
		return fmt.Sprintf("entity operation %s (task %d) failed: %s", e.TaskName, e.TaskID, e.Failure.String())
	}
	return fmt.Sprintf("%s %q (task %d) failed: %s", kind, e.TaskName, e.TaskID, e.Failure.String())
}

// ErrorType implements the ErrorType convention so that a TaskFailedError
// re-raised by an orchestrator is recorded as such.
func (e *TaskFailedError) ErrorType() string { return "TaskFailedError" }

// Is reports whether target is an *Error whose Type is the ErrorType of the
// failure or of one of its inner failures (so a sub-orchestration that
// re-raised an activity's failure still matches the activity's type), or
// ErrTimeout for a call that failed because it timed out, or
// ErrInvalidHTTPRequest for a durable HTTP request the activity refused.
func (e *TaskFailedError) Is(target error) bool {
	typ := sentinelType(target)
	if typ == "" {
		t, ok := target.(*Error)
		if !ok || t == nil || t.Type == "" {
			return false
		}
		typ = t.Type
	}
	for f := &e.Failure; f != nil; f = f.InnerFailure {
		if f.ErrorType == typ {
			return true
		}
	}
	return false
}

// sentinelType returns the failure type that one of the package's sentinel
// errors stands for when a failure comes back across the activity or
// sub-orchestration boundary, or "". (A switch, not a map: target may be
// of a type that cannot be a map key.)
func sentinelType(target error) string {
	switch target {
	case ErrTimeout:
		return timeoutErrorType
	case ErrInvalidHTTPRequest:
		return "HTTPRequestError"
	}
	return ""
}

// As sets target, a **Error, to the application error the failure records:
// the outermost failure that is not a re-raised TaskFailedError (so, for a
// sub-orchestration that returned its activity's error, the activity's),
// with its type, message, details, non-retriable flag and cause.
func (e *TaskFailedError) As(target any) bool {
	p, ok := target.(**Error)
	if !ok {
		return false
	}
	f := &e.Failure
	for f.ErrorType == "TaskFailedError" && f.InnerFailure != nil {
		f = f.InnerFailure
	}
	*p = errorFromFailure(f)
	return true
}

// errorFromFailure rebuilds an application error from failure details.
func errorFromFailure(f *FailureDetails) *Error {
	e := &Error{Type: f.ErrorType, Message: f.ErrorMessage, NonRetriable: f.IsNonRetriable}
	if d, ok := f.Properties[DetailsProperty]; ok && d != nil {
		if b, err := json.Marshal(d); err == nil {
			e.RawDetails = b
		}
	}
	if f.InnerFailure != nil {
		e.Cause = errorFromFailure(f.InnerFailure)
		// The recorded message includes the cause's text; keep it once.
		e.Message = strings.TrimSuffix(e.Message, ": "+e.Cause.Error())
	}
	return e
}

// TimeoutError is the error of a call made WithTimeout that did not finish
// in time; errors.Is(err, ErrTimeout) holds for it.
type TimeoutError struct {
	// Kind is "activity" or "sub-orchestration".
	Kind string
	// TaskName is the activity or orchestrator name.
	TaskName string
	// TaskID is the timed-out attempt's sequence number in the orchestration.
	TaskID int32
	// Timeout is the call's timeout.
	Timeout time.Duration
}

// timeoutErrorType is TimeoutError's recorded type; the engine records an
// activity stopped by its deadline under it too.
const timeoutErrorType = "TimeoutError"

// Error implements error.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s %q (task %d) timed out after %v", e.Kind, e.TaskName, e.TaskID, e.Timeout)
}

// ErrorType implements the ErrorType convention.
func (e *TimeoutError) ErrorType() string { return timeoutErrorType }

// Is makes errors.Is(err, ErrTimeout) hold.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

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

// ErrorType implements the ErrorType convention.
func (e *NonDeterminismError) ErrorType() string { return "NonDeterminismError" }

// ErrorTypeName returns the failure type recorded for err:
//   - the value of the ErrorType() string method of the first error in
//     err's chain that has one (*Error, the engine's own errors, and any
//     user type following the convention);
//   - otherwise the Go type name, without '*', of the first error in the
//     chain whose type is not an unexported type of the standard library
//     (errors.New, fmt.Errorf and errors.Join values are skipped, so
//     fmt.Errorf("...: %w", &fs.PathError{...}) records "fs.PathError");
//   - otherwise "Error": a plain errors.New or fmt.Errorf value.
//
// The standard library's private types are implementation details that
// change between Go versions; "Error" is what other Durable Task SDKs
// record for a plain error.
func ErrorTypeName(err error) string {
	if typed := typedError(err); typed != nil {
		return typed.ErrorType()
	}
	for _, e := range chain(err) {
		if _, marker := e.(*nonRetriableError); marker {
			continue
		}
		t := reflect.TypeOf(e)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Name() == "" || (isStdlib(t.PkgPath()) && !isExported(t.Name())) {
			continue
		}
		return t.String()
	}
	return "Error"
}

// typedError returns the first error in err's chain with an ErrorType
// method, or nil.
func typedError(err error) interface{ ErrorType() string } {
	for _, e := range chain(err) {
		if typed, ok := e.(interface{ ErrorType() string }); ok {
			return typed
		}
	}
	return nil
}

// isStdlib reports whether a package path is the standard library's (no
// dot in its first element).
func isStdlib(pkgPath string) bool {
	first, _, _ := strings.Cut(pkgPath, "/")
	return pkgPath != "" && !strings.Contains(first, ".") && pkgPath != "main"
}

func isExported(name string) bool { return name != "" && name[0] >= 'A' && name[0] <= 'Z' }

// failureFromError converts a Go error into Durable Task failure details.
// The error that names the type contributes the rest: a re-raised
// *TaskFailedError its failure as the InnerFailure, an *Error its details
// (Properties) and its cause (InnerFailure).
func failureFromError(err error) *FailureDetails {
	fd := &FailureDetails{ErrorType: ErrorTypeName(err), ErrorMessage: err.Error(), IsNonRetriable: isNonRetriable(err)}
	var pe *PanicError
	if errors.As(err, &pe) {
		fd.StackTrace = pe.Stack
	}
	switch typed := typedError(err).(type) {
	case *TaskFailedError:
		inner := typed.Failure
		fd.InnerFailure = &inner
	case *Error:
		if len(typed.RawDetails) > 0 {
			var v any
			if json.Unmarshal(typed.RawDetails, &v) == nil {
				fd.Properties = map[string]any{DetailsProperty: v}
			} else {
				fd.Properties = map[string]any{"detailsError": fmt.Sprintf("durable: RawDetails of error type %q are not JSON", typed.Type)}
			}
		}
		if typed.detailsErr != nil {
			fd.Properties = map[string]any{"detailsError": typed.detailsErr.Error()}
		}
		if typed.Cause != nil {
			fd.InnerFailure = failureFromError(typed.Cause)
		}
	}
	return fd
}
