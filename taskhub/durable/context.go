package durable

import (
	"context"
	"fmt"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Context is handed to orchestrator code. Its methods must be called only
// from the orchestrator's own goroutine, and orchestrator code must be
// deterministic: use CurrentTime instead of time.Now, activities for I/O.
type Context struct {
	ex          *Executor
	instanceID  string
	executionID string
	name        string
	input       string
	currentTime time.Time
	replaying   bool
}

// InstanceID returns the orchestration instance ID.
func (c *Context) InstanceID() string { return c.instanceID }

// ExecutionID returns the ID of the current execution of the instance.
func (c *Context) ExecutionID() string { return c.executionID }

// Name returns the orchestrator name.
func (c *Context) Name() string { return c.name }

// CurrentTime returns the deterministic current time: the start time of the
// episode being replayed or run, always UTC.
func (c *Context) CurrentTime() time.Time { return c.currentTime }

// IsReplaying reports whether the code is re-running past steps from history.
func (c *Context) IsReplaying() bool { return c.replaying }

// Input decodes the orchestration input into v.
func (c *Context) Input(v any) error { return decodeJSON(c.input, v) }

// task is the untyped state shared by every kind of durable task.
type task struct {
	id       int32
	name     string
	done     bool
	result   string // JSON
	err      error
	resultOf string // description used in decoding errors, e.g. `activity "Hello"`
}

// Task is the pending result of a durable operation started by an
// orchestrator. Await blocks the orchestrator until the result is known.
type Task[T any] struct {
	ctx *Context
	t   *task
}

// Await waits for the task and returns its typed result or its error. An
// activity failure is a *TaskFailedError; a result that does not fit T is a
// *ResultError.
func (t *Task[T]) Await() (T, error) {
	var zero T
	t.ctx.waitFor(t.t)
	if t.t.err != nil {
		return zero, t.t.err
	}
	var out T
	if err := decodeJSON(t.t.result, &out); err != nil {
		return zero, &ResultError{Of: t.t.resultOf, Type: fmt.Sprintf("%T", out), Err: err}
	}
	return out, nil
}

// Done reports whether the task has completed (successfully or not).
func (t *Task[T]) Done() bool { return t.t.done }

// ResultError reports a task result that does not fit the awaited type.
type ResultError struct {
	Of   string
	Type string
	Err  error
}

// Error implements error.
func (e *ResultError) Error() string {
	return fmt.Sprintf("result of %s does not fit type %s: %v", e.Of, e.Type, e.Err)
}

// Unwrap returns the JSON decoding error.
func (e *ResultError) Unwrap() error { return e.Err }

// ErrorType implements the ErrorType convention.
func (e *ResultError) ErrorType() string { return "ResultError" }

// CallActivity schedules the activity registered under name with input
// (encoded as JSON) and returns a task for its result of type Out.
func CallActivity[Out any](ctx *Context, name string, input any) *Task[Out] {
	t := &task{name: name, resultOf: fmt.Sprintf("activity %q", name)}
	in, err := encodeJSON(input)
	if err != nil {
		t.done, t.err = true, err
		return &Task[Out]{ctx: ctx, t: t}
	}
	ev := history.NewEvent(history.TaskScheduled, ctx.currentTime)
	ev.Name = name
	ev.Input = in
	ctx.ex.schedule(t, ev)
	return &Task[Out]{ctx: ctx, t: t}
}

// waitFor parks the orchestrator coroutine until t is done.
func (c *Context) waitFor(t *task) {
	for !t.done {
		c.ex.park()
	}
}

// ActivityInfo describes the activity call an activity function is serving.
type ActivityInfo struct {
	Name        string
	InstanceID  string // the orchestration that called it
	ExecutionID string
	TaskID      int32
}

type activityInfoKey struct{}

// WithActivityInfo returns a context carrying info (used by the engine).
func WithActivityInfo(ctx context.Context, info ActivityInfo) context.Context {
	return context.WithValue(ctx, activityInfoKey{}, info)
}

// ActivityInfoFrom returns the activity call details from an activity's context.
func ActivityInfoFrom(ctx context.Context) (ActivityInfo, bool) {
	info, ok := ctx.Value(activityInfoKey{}).(ActivityInfo)
	return info, ok
}
