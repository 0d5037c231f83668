package durable

import (
	"errors"
	"fmt"
)

// Sentinel errors of tasks; test with errors.Is.
var (
	// ErrCanceled: the timer (or event wait) was canceled.
	ErrCanceled = errors.New("durable: canceled")
	// ErrTimeout: an event did not arrive within its timeout.
	ErrTimeout = errors.New("durable: timed out")
	// ErrNoTasks: Any (or WhenAny) was given no task to wait for.
	ErrNoTasks = errors.New("durable: no tasks to wait for")
)

// task is the untyped state shared by every kind of durable task.
type task struct {
	id       int32 // action id; -1 for tasks without an action (event waits, compounds)
	kind     string
	name     string
	done     bool
	result   string // JSON
	err      error
	doneSeq  int    // completion order, for WhenAll/WhenAny
	resultOf string // description used in decoding errors, e.g. `activity "Hello"`
	onDone   []func()
}

// complete resolves the task (once) and runs its hooks.
func (e *executor) completeTask(t *task, result string, err error) {
	if t.done {
		return
	}
	t.done, t.result, t.err = true, result, err
	e.doneSeq++
	t.doneSeq = e.doneSeq
	hooks := t.onDone
	t.onDone = nil
	for _, h := range hooks {
		h()
	}
}

// Awaitable is any task an orchestrator can wait for.
type Awaitable interface {
	base() *task
}

// Task is the pending result of a durable operation started by an
// orchestrator. Await blocks the orchestrator until the result is known.
type Task[T any] struct {
	ctx *Context
	t   *task
}

func (t *Task[T]) base() *task { return t.t }

// Await waits for the task and returns its typed result or its error. A
// failed activity or sub-orchestration is a *TaskFailedError; a result that
// does not fit T is a *ResultError.
func (t *Task[T]) Await() (T, error) {
	var zero T
	t.ctx.waitUntil(func() bool { return t.t.done })
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

// Err returns the task's error once it is done (nil while pending or on success).
func (t *Task[T]) Err() error { return t.t.err }

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

// waitUntil parks the orchestrator coroutine until cond holds.
func (c *Context) waitUntil(cond func() bool) {
	for !cond() {
		c.ex.park()
	}
}

// WhenAll waits until every task has completed, or until one fails: it
// fails fast with the error of the first task to fail (in completion
// order). Tasks still running keep running; await them to see their results.
func WhenAll(ctx *Context, tasks ...Awaitable) error {
	return whenAll(ctx, len(tasks), func(i int) *task { return tasks[i].base() })
}

// whenAll is WhenAll over n tasks given by index, so that All needs no
// second slice.
func whenAll(ctx *Context, n int, at func(int) *task) error {
	var failed *task
	ctx.waitUntil(func() bool {
		all := true
		for i := range n {
			t := at(i)
			if t.done && t.err != nil && (failed == nil || t.doneSeq < failed.doneSeq) {
				failed = t
			}
			all = all && t.done
		}
		return all || failed != nil
	})
	if failed != nil {
		return failed.err
	}
	return nil
}

// All waits for every task and returns their results in the order of
// tasks. Like WhenAll it fails fast: as soon as one task fails it returns
// that task's error (the first failure in completion order) and no
// results; tasks still running keep running. A result that does not fit T
// is a *ResultError (the first such in the order of tasks). No tasks give
// an empty slice.
func All[T any](ctx *Context, tasks ...*Task[T]) ([]T, error) {
	if err := whenAll(ctx, len(tasks), func(i int) *task { return tasks[i].t }); err != nil {
		return nil, err
	}
	out := make([]T, len(tasks))
	for i, tk := range tasks {
		v, err := tk.Await() // done: decodes without parking
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// Any waits until the first of tasks finishes and returns its index in
// tasks with its outcome: its typed result, or its error (a failure is an
// outcome too; the other tasks keep running and can still be awaited).
// When several are already done, the one that finished first wins. No
// tasks give index -1 and ErrNoTasks.
func Any[T any](ctx *Context, tasks ...*Task[T]) (int, T, error) {
	i := whenAny(ctx, len(tasks), func(i int) *task { return tasks[i].t })
	if i < 0 {
		var zero T
		return -1, zero, fmt.Errorf("%w: Any needs at least one task", ErrNoTasks)
	}
	v, err := tasks[i].Await()
	return i, v, err
}

// WhenAny waits until one of the tasks completes and returns its index (the
// first to complete, successfully or not; inspect or Await it for its
// outcome). It fails only for an empty list.
func WhenAny(ctx *Context, tasks ...Awaitable) (int, error) {
	i := whenAny(ctx, len(tasks), func(i int) *task { return tasks[i].base() })
	if i < 0 {
		return -1, fmt.Errorf("%w: WhenAny needs at least one task", ErrNoTasks)
	}
	return i, nil
}

// whenAny waits for the first of n tasks given by index to finish and
// returns its index; -1 at once when n is 0.
func whenAny(ctx *Context, n int, at func(int) *task) int {
	if n == 0 {
		return -1
	}
	winner := -1
	ctx.waitUntil(func() bool {
		for i := range n {
			t := at(i)
			if t.done && (winner < 0 || t.doneSeq < at(winner).doneSeq) {
				winner = i
			}
		}
		return winner >= 0
	})
	return winner
}
