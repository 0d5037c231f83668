package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// The typed client: Start and Get take an orchestrator definition, so the
// input is checked at compile time and the output comes back as the
// definition's Out, without JSON in the caller's code. (Go has no generic
// methods, hence functions taking the *Client.) StartNew and the Status
// methods stay for orchestrators whose name is only known at run time.

// Errors of the typed client; test with errors.Is, or errors.As with
// *FailedError, *TerminatedError and *DecodeError for the details.
var (
	// ErrFailed: the instance failed (a *FailedError carries the failure).
	ErrFailed = errors.New("instance failed")
	// ErrTerminated: the instance was terminated (a *TerminatedError).
	ErrTerminated = errors.New("instance terminated")
	// ErrCanceled: the instance was canceled (a *TerminatedError).
	ErrCanceled = errors.New("instance canceled")
	// ErrOtherOrchestrator: Get found an instance of another orchestrator.
	ErrOtherOrchestrator = errors.New("instance of another orchestrator")
)

// StartOption tunes Start.
type StartOption func(*StartOptions)

// WithInstanceID starts the instance under id instead of a generated ID.
// Starting an ID whose instance is still Pending, Running or Suspended
// fails with ErrInstanceExists; a finished instance is replaced.
func WithInstanceID(id string) StartOption {
	return func(o *StartOptions) { o.InstanceID = id }
}

// WithVersion starts the instance at orchestration version v instead of
// the client's default version (StartOptions.Version).
func WithVersion(v string) StartOption {
	return func(o *StartOptions) { o.Version = v }
}

// Start starts an instance of the orchestrator def with input and returns
// a handle to read its typed status and output. The errors are those of
// StartNew; an input that cannot be encoded as JSON is ErrInvalidInput.
func Start[In, Out any](ctx context.Context, c *Client, def *durable.Orchestrator[In, Out], input In, opts ...StartOption) (*Instance[Out], error) {
	b, err := json.Marshal(input)
	if err != nil {
		return nil, fmt.Errorf("%w: the input of orchestrator %q (type %T) cannot be encoded as JSON: %w", ErrInvalidInput, def.Name(), input, err)
	}
	var o StartOptions
	for _, opt := range opts {
		opt(&o)
	}
	o.RawInput, o.Input = string(b), nil
	if o.RawInput == "null" {
		o.RawInput = "" // stored as no input, like an untyped start without one
	}
	id, err := c.StartNew(ctx, def.Name(), o)
	if err != nil {
		return nil, err
	}
	return &Instance[Out]{c: c, id: id, name: def.Name()}, nil
}

// Get returns a handle to the existing instance id of the orchestrator
// def: ErrNotFound if there is none, ErrOtherOrchestrator if the instance
// runs another orchestrator.
func Get[In, Out any](ctx context.Context, c *Client, def *durable.Orchestrator[In, Out], id string) (*Instance[Out], error) {
	st, err := c.GetStatus(ctx, id, false)
	if err != nil {
		return nil, err
	}
	if st.Name != def.Name() {
		return nil, fmt.Errorf("%w: instance %q runs orchestrator %q, not %q", ErrOtherOrchestrator, id, st.Name, def.Name())
	}
	return &Instance[Out]{c: c, id: id, name: def.Name()}, nil
}

// Instance is a handle to an orchestration instance whose output is an Out.
type Instance[Out any] struct {
	c    *Client
	id   string
	name string
	// PollInterval is how often Wait reads the status of an instance that
	// the engine in this process does not finish (whose completion it
	// cannot be told of); 0 means every second.
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
	st, err := i.c.GetStatus(ctx, i.id, true)
	if err != nil {
		return nil, err
	}
	return i.typed(ctx, st)
}

// WaitStatus waits until the instance has finished (Completed, Failed,
// Terminated or Canceled) and returns its final status, as Status does.
// When ctx ends first it returns ctx's error.
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

// typed builds the typed status of st, reading the failure details of a
// Failed instance from its history.
func (i *Instance[Out]) typed(ctx context.Context, st Status) (*InstanceStatus[Out], error) {
	ts := &InstanceStatus[Out]{
		InstanceID: st.InstanceID, Name: st.Name, Version: st.Version, ExecutionID: st.ExecutionID,
		RuntimeStatus: st.Status, CreatedTime: st.CreatedTime, LastUpdatedTime: st.LastUpdatedTime,
		CompletedTime: st.CompletedTime, Raw: st,
	}
	switch st.Status {
	case history.StatusCompleted:
		if err := decodeText(st.Output, &ts.Output); err != nil {
			var zero Out
			ts.Output = zero // not half decoded
			return ts, newDecodeError[Out](st, "output", st.Output, err)
		}
	case history.StatusFailed:
		fd, err := i.c.failureOf(ctx, st)
		if err != nil {
			return nil, err
		}
		ts.Failure = fd
	case history.StatusTerminated, history.StatusCanceled:
		ts.Reason = reasonText(st.Output)
	}
	return ts, nil
}

// failureOf returns the failure details of a Failed instance as its
// history records them (with the inner failure of a failed activity or
// sub-orchestration); the Instances row keeps only "ErrorType: message",
// which is what it falls back to when history holds no failure.
func (c *Client) failureOf(ctx context.Context, st Status) (*durable.FailureDetails, error) {
	events, err := c.GetHistory(ctx, st.InstanceID)
	if err != nil {
		return nil, fmt.Errorf("client: read the failure of instance %q: %w", st.InstanceID, err)
	}
	for k := len(events) - 1; k >= 0; k-- {
		if ev := events[k]; ev.Type == history.ExecutionCompleted && ev.Failure != nil {
			fd := *ev.Failure
			return &fd, nil
		}
	}
	typ, msg, ok := strings.Cut(st.Output, ": ")
	if !ok {
		typ, msg = "", st.Output
	}
	return &durable.FailureDetails{ErrorType: typ, ErrorMessage: msg}, nil
}

// InstanceStatus is the typed status of an instance whose output is an Out.
type InstanceStatus[Out any] struct {
	InstanceID    string
	Name          string // the orchestrator's name
	Version       string
	ExecutionID   string
	RuntimeStatus history.OrchestrationStatus
	// Output is the decoded output of a Completed instance (zero otherwise).
	Output Out
	// Failure describes why a Failed instance failed (nil otherwise).
	Failure *durable.FailureDetails
	// Reason is the reason given when the instance was terminated.
	Reason          string
	CreatedTime     time.Time
	LastUpdatedTime time.Time
	CompletedTime   time.Time // zero until finished
	// Raw is the untyped status, with input, output and custom status as
	// JSON text.
	Raw Status
}

// Err is the error a finished instance ended with: a *FailedError for a
// Failed instance, a *TerminatedError for a Terminated or Canceled one,
// nil otherwise (also while it runs).
func (s *InstanceStatus[Out]) Err() error {
	switch s.RuntimeStatus {
	case history.StatusFailed:
		fd := durable.FailureDetails{}
		if s.Failure != nil {
			fd = *s.Failure
		}
		return &FailedError{InstanceID: s.InstanceID, Name: s.Name, Failure: fd}
	case history.StatusTerminated, history.StatusCanceled:
		return &TerminatedError{InstanceID: s.InstanceID, Name: s.Name, Status: s.RuntimeStatus, Reason: s.Reason}
	}
	return nil
}

func (s *InstanceStatus[Out]) untyped() Status { return s.Raw }

func (s Status) untyped() Status { return s }

// StatusSource is a status CustomStatus can read: a Status or an
// *InstanceStatus.
type StatusSource interface{ untyped() Status }

// CustomStatus decodes the custom status the orchestrator last set
// (ctx.SetCustomStatus) into a T; none gives T's zero value. A custom
// status that does not fit T is a *DecodeError.
func CustomStatus[T any](st StatusSource) (T, error) {
	raw := st.untyped()
	var v T
	if err := decodeText(raw.CustomStatus, &v); err != nil {
		var zero T
		return zero, newDecodeError[T](raw, "custom status", raw.CustomStatus, err)
	}
	return v, nil
}

// FailedError is the error of a Failed instance.
type FailedError struct {
	InstanceID string
	Name       string
	// Failure is the failure as recorded in history: the error the
	// orchestrator returned, with the failure of the activity or
	// sub-orchestration behind it as InnerFailure.
	Failure durable.FailureDetails
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
	Status history.OrchestrationStatus
	// Reason is the reason given to Terminate.
	Reason string
}

// Error implements error.
func (e *TerminatedError) Error() string {
	msg := fmt.Sprintf("orchestration %q (instance %q) was %s", e.Name, e.InstanceID, strings.ToLower(e.Status.String()))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is reports whether target is ErrTerminated (for a Terminated instance)
// or ErrCanceled (for a Canceled one).
func (e *TerminatedError) Is(target error) bool {
	return (target == ErrTerminated && e.Status == history.StatusTerminated) ||
		(target == ErrCanceled && e.Status == history.StatusCanceled)
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
	// JSON is the text that did not fit.
	JSON string
	Err  error
}

// maxQuoted bounds how much of the JSON a DecodeError message quotes.
const maxQuoted = 120

// Error implements error.
func (e *DecodeError) Error() string {
	text := e.JSON
	if len(text) > maxQuoted {
		text = text[:maxQuoted] + "..."
	}
	return fmt.Sprintf("client: the %s of instance %q (orchestrator %q) does not fit type %s: %v (JSON: %s)",
		e.What, e.InstanceID, e.Name, e.Type, e.Err, text)
}

// Unwrap returns the JSON decoding error.
func (e *DecodeError) Unwrap() error { return e.Err }

func newDecodeError[T any](st Status, what, text string, err error) *DecodeError {
	return &DecodeError{InstanceID: st.InstanceID, Name: st.Name, What: what, Type: reflect.TypeFor[T]().String(), JSON: text, Err: err}
}

// decodeText decodes stored JSON text into v; "" (null) leaves v zero.
func decodeText(text string, v any) error {
	if text == "" {
		return nil
	}
	return json.Unmarshal([]byte(text), v)
}

// reasonText renders a termination reason stored as a JSON string.
func reasonText(output string) string {
	var s string
	if json.Unmarshal([]byte(output), &s) == nil {
		return s
	}
	return output
}

// ReadEntity reads the state of the entity def with key, decoded into S;
// ErrNotFound (wrapped) when the entity has no state.
func ReadEntity[S any](ctx context.Context, c *Client, def *durable.Entity[S], key string) (S, error) {
	var s S
	st, err := c.ReadEntityState(ctx, def.ID(key))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(st.State), &s); err != nil {
		return s, fmt.Errorf("client: the state of entity %q does not decode into %T: %w", st.ID, s, err)
	}
	return s, nil
}
