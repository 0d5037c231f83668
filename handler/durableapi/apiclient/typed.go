package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// The typed layer: an [Orchestrator] names an orchestrator of the app with
// its input and output types, [Start] checks the input at compile time and
// the returned [Instance] gives the output as an Out. The package stays
// free of the app's own packages (it is for other programs too), so the
// types are declared here rather than taken from the definitions:
//
//	var fulfil = apiclient.Orchestrator[Order, Receipt]{Name: "Fulfil"}
//	inst, err := apiclient.Start(ctx, c, fulfil, Order{Item: "tea"})
//	receipt, err := inst.Wait(ctx)          // a Receipt
//	st, err := inst.Status(ctx)
//	p, err := apiclient.CustomStatus[Progress](st)

// Errors of the typed layer; test with errors.Is, or errors.As with
// *FailedError, *TerminatedError and *DecodeError for the details.
var (
	// ErrFailed: the instance failed (a *FailedError carries the failure).
	ErrFailed = errors.New("apiclient: instance failed")
	// ErrTerminated: the instance was terminated (a *TerminatedError).
	ErrTerminated = errors.New("apiclient: instance terminated")
	// ErrCanceled: the instance was canceled (a *TerminatedError).
	ErrCanceled = errors.New("apiclient: instance canceled")
	// ErrOtherOrchestrator: Get found an instance of another orchestrator.
	ErrOtherOrchestrator = errors.New("apiclient: instance of another orchestrator")
)

// Orchestrator names an orchestrator of the app together with its input
// and output types (the app's durable.NewOrchestrator[In, Out]). JSON
// carries the values, so the types need only encode and decode alike.
type Orchestrator[In, Out any] struct {
	Name string
}

// Start starts an instance of o with input (see [Client.Start]) and
// returns a handle to its typed status and output.
func Start[In, Out any](ctx context.Context, c *Client, o Orchestrator[In, Out], input In, opts ...StartOption) (*Instance[Out], error) {
	if o.Name == "" {
		return nil, errors.New("apiclient: Start: the Orchestrator has no Name")
	}
	links, err := c.Start(ctx, o.Name, input, opts...)
	if err != nil {
		return nil, err
	}
	return &Instance[Out]{c: c, id: links.ID, name: o.Name, Links: links}, nil
}

// Get returns a handle to the existing instance id of o: ErrNotFound if
// there is none, ErrOtherOrchestrator if it runs another orchestrator.
func Get[In, Out any](ctx context.Context, c *Client, o Orchestrator[In, Out], id string) (*Instance[Out], error) {
	st, err := c.Status(ctx, id, ShowInput(false))
	if err != nil {
		return nil, err
	}
	if st.Name != o.Name {
		return nil, fmt.Errorf("%w: instance %q runs orchestrator %q, not %q", ErrOtherOrchestrator, id, st.Name, o.Name)
	}
	return &Instance[Out]{c: c, id: id, name: o.Name}, nil
}

// Instance is a handle to an orchestration instance whose output is an Out.
type Instance[Out any] struct {
	c    *Client
	id   string
	name string
	// Links are the instance's management URLs, when it was started by
	// Start (nil from Get).
	Links *ManagementURLs
	// PollInterval is how often Wait asks for the status; 0 follows the
	// server's Retry-After advice (see [Client.WaitForCompletion]).
	PollInterval time.Duration
}

// ID returns the instance ID.
func (i *Instance[Out]) ID() string { return i.id }

// Name returns the orchestrator's name.
func (i *Instance[Out]) Name() string { return i.name }

// Status reads the instance's status. The output of a Completed instance
// is decoded into Out: when it does not fit, Status returns the status
// (with a zero Output) and a *DecodeError.
func (i *Instance[Out]) Status(ctx context.Context) (*InstanceStatus[Out], error) {
	st, err := i.c.Status(ctx, i.id)
	if err != nil {
		return nil, err
	}
	return i.typed(ctx, st)
}

// WaitStatus waits until the instance has finished (Completed, Failed,
// Terminated or Canceled) and returns its final status, as Status does.
func (i *Instance[Out]) WaitStatus(ctx context.Context) (*InstanceStatus[Out], error) {
	st, err := i.c.WaitForCompletion(ctx, i.id, i.PollInterval)
	if err != nil {
		return nil, err
	}
	return i.typed(ctx, st)
}

// Wait waits until the instance has finished and returns its output. A
// Failed instance gives a *FailedError (ErrFailed) with the failure
// details, a Terminated or Canceled one a *TerminatedError (ErrTerminated,
// ErrCanceled), an output that does not fit Out a *DecodeError.
func (i *Instance[Out]) Wait(ctx context.Context) (Out, error) {
	var zero Out
	st, err := i.WaitStatus(ctx)
	if err != nil {
		return zero, err
	}
	if err := st.Err(); err != nil {
		return zero, err
	}
	return st.Output, nil
}

// typed builds the typed status of st; for a Failed instance it asks for
// the history, whose completion holds the whole failure.
func (i *Instance[Out]) typed(ctx context.Context, st *Status) (*InstanceStatus[Out], error) {
	ts := &InstanceStatus[Out]{
		InstanceID: st.InstanceID, Name: st.Name, RuntimeStatus: st.RuntimeStatus,
		CreatedTime: st.CreatedTime, LastUpdatedTime: st.LastUpdatedTime, Raw: st,
	}
	switch st.RuntimeStatus {
	case StatusCompleted:
		if err := json.Unmarshal(orNull(st.Output), &ts.Output); err != nil {
			var zero Out
			ts.Output = zero
			return ts, newDecodeError[Out](st, "output", st.Output, err)
		}
	case StatusFailed:
		fd, err := i.c.failureOf(ctx, st)
		if err != nil {
			return nil, err
		}
		ts.Failure = fd
	case StatusTerminated, StatusCanceled:
		ts.Reason = text(st.Output)
	}
	return ts, nil
}

// failureOf returns the failure of a Failed instance from the completion
// in its history; the status output holds only "ErrorType: message",
// which is what it falls back to when history has no failure details.
func (c *Client) failureOf(ctx context.Context, st *Status) (*FailureDetails, error) {
	full, err := c.Status(ctx, st.InstanceID, ShowHistory(), ShowInput(false))
	if err != nil {
		return nil, fmt.Errorf("apiclient: read the failure of instance %q: %w", st.InstanceID, err)
	}
	for k := len(full.History) - 1; k >= 0; k-- {
		h := full.History[k]
		if h.EventType != "ExecutionCompleted" || len(h.FailureDetails) == 0 || string(h.FailureDetails) == "null" {
			continue
		}
		var fd FailureDetails
		if err := json.Unmarshal(h.FailureDetails, &fd); err != nil {
			return nil, fmt.Errorf("apiclient: instance %q: the failure details in its history are not the expected JSON: %w", st.InstanceID, err)
		}
		return &fd, nil
	}
	typ, msg, ok := strings.Cut(text(st.Output), ": ")
	if !ok {
		typ, msg = "", text(st.Output)
	}
	return &FailureDetails{ErrorType: typ, ErrorMessage: msg}, nil
}

// FailureDetails describes a failure in the Durable Task shape.
type FailureDetails struct {
	// ErrorType names the kind of error, e.g. "TaskFailedError".
	ErrorType    string
	ErrorMessage string
	StackTrace   string
	// InnerFailure is the failure behind this one, e.g. the failed
	// activity's when the orchestrator returned its error.
	InnerFailure   *FailureDetails
	IsNonRetriable bool
	Properties     map[string]any
}

// String renders the failure as "ErrorType: ErrorMessage".
func (f *FailureDetails) String() string {
	if f == nil {
		return ""
	}
	return f.ErrorType + ": " + f.ErrorMessage
}

// InstanceStatus is the typed status of an instance whose output is an Out.
type InstanceStatus[Out any] struct {
	InstanceID    string
	Name          string // the orchestrator's name
	RuntimeStatus RuntimeStatus
	// Output is the decoded output of a Completed instance (zero otherwise).
	Output Out
	// Failure describes why a Failed instance failed (nil otherwise).
	Failure *FailureDetails
	// Reason is the reason given when the instance was terminated.
	Reason          string
	CreatedTime     time.Time
	LastUpdatedTime time.Time
	// Raw is the untyped status, with input, output and custom status as
	// JSON.
	Raw *Status
}

// Err is the error a finished instance ended with: a *FailedError for a
// Failed instance, a *TerminatedError for a Terminated or Canceled one,
// nil otherwise (also while it runs).
func (s *InstanceStatus[Out]) Err() error {
	switch s.RuntimeStatus {
	case StatusFailed:
		fd := FailureDetails{}
		if s.Failure != nil {
			fd = *s.Failure
		}
		return &FailedError{InstanceID: s.InstanceID, Name: s.Name, Failure: fd}
	case StatusTerminated, StatusCanceled:
		return &TerminatedError{InstanceID: s.InstanceID, Name: s.Name, Status: s.RuntimeStatus, Reason: s.Reason}
	}
	return nil
}

func (s *InstanceStatus[Out]) untyped() *Status { return s.Raw }

func (s *Status) untyped() *Status { return s }

// StatusSource is a status CustomStatus can read: a *Status or an
// *InstanceStatus.
type StatusSource interface{ untyped() *Status }

// CustomStatus decodes the custom status the orchestrator last set into a
// T; none gives T's zero value. One that does not fit T is a *DecodeError.
func CustomStatus[T any](st StatusSource) (T, error) {
	raw := st.untyped()
	var v T
	if raw == nil {
		return v, errors.New("apiclient: CustomStatus of no status")
	}
	if err := json.Unmarshal(orNull(raw.CustomStatus), &v); err != nil {
		var zero T
		return zero, newDecodeError[T](raw, "custom status", raw.CustomStatus, err)
	}
	return v, nil
}

// FailedError is the error of a Failed instance.
type FailedError struct {
	InstanceID string
	Name       string
	// Failure is the failure as the instance's history records it.
	Failure FailureDetails
}

// Error implements error.
func (e *FailedError) Error() string {
	return fmt.Sprintf("orchestration %q (instance %q) failed: %s", e.Name, e.InstanceID, e.Failure.String())
}

// Is reports whether target is ErrFailed.
func (e *FailedError) Is(target error) bool { return target == ErrFailed }

// TerminatedError is the error of an instance that was terminated (or
// canceled) instead of completing.
type TerminatedError struct {
	InstanceID string
	Name       string
	// Status is StatusTerminated or StatusCanceled.
	Status RuntimeStatus
	// Reason is the reason given to Terminate.
	Reason string
}

// Error implements error.
func (e *TerminatedError) Error() string {
	msg := fmt.Sprintf("orchestration %q (instance %q) was %s", e.Name, e.InstanceID, strings.ToLower(string(e.Status)))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is reports whether target is ErrTerminated (for a Terminated instance)
// or ErrCanceled (for a Canceled one).
func (e *TerminatedError) Is(target error) bool {
	return (target == ErrTerminated && e.Status == StatusTerminated) ||
		(target == ErrCanceled && e.Status == StatusCanceled)
}

// DecodeError reports an output or custom status that does not fit the
// type it was read into.
type DecodeError struct {
	InstanceID string
	Name       string
	// What is "output" or "custom status".
	What string
	// Type is the Go type it was decoded into, e.g. "[]string".
	Type string
	// JSON is the value that did not fit.
	JSON json.RawMessage
	Err  error
}

// maxQuoted bounds how much of the JSON a DecodeError message quotes.
const maxQuoted = 120

// Error implements error.
func (e *DecodeError) Error() string {
	t := string(e.JSON)
	if len(t) > maxQuoted {
		t = t[:maxQuoted] + "..."
	}
	return fmt.Sprintf("apiclient: the %s of instance %q (orchestrator %q) does not fit type %s: %v (JSON: %s)",
		e.What, e.InstanceID, e.Name, e.Type, e.Err, t)
}

// Unwrap returns the JSON decoding error.
func (e *DecodeError) Unwrap() error { return e.Err }

func newDecodeError[T any](st *Status, what string, raw json.RawMessage, err error) *DecodeError {
	return &DecodeError{InstanceID: st.InstanceID, Name: st.Name, What: what, Type: reflect.TypeFor[T]().String(),
		JSON: append(json.RawMessage(nil), raw...), Err: err}
}
