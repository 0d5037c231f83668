package durable

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// CallOption tunes an activity or sub-orchestration call.
type CallOption func(*callOptions)

type callOptions struct {
	retry      *RetryPolicy
	instanceID string
	version    *string
	timeout    time.Duration
}

// WithTimeout limits each attempt of an activity or sub-orchestration call
// to d, measured on the orchestration's clock from the moment the attempt
// is scheduled. The orchestrator races the attempt against a durable timer,
// so the outcome is recorded in history and replays the same: if the timer
// fires first, the attempt fails with a *TimeoutError (errors.Is(err,
// ErrTimeout) holds); if the call finishes first, the timer is cancelled.
//
// With WithRetry the timeout applies to every attempt (Temporal's
// start-to-close timeout); a timed-out attempt is retried unless the
// policy's Handle says otherwise. A result that arrives after the timeout
// is recorded in history once and ignored.
//
// An activity's context.Context carries the deadline and is cancelled
// when it passes; an activity dequeued after its deadline does not run. A
// timed-out sub-orchestration is not stopped: the parent stops waiting,
// the child runs on, and its outcome is ignored.
func WithTimeout(d time.Duration) CallOption {
	return func(o *callOptions) { o.timeout = d }
}

// WithRetry retries a failed call according to p, with durable timers
// between attempts.
func WithRetry(p RetryPolicy) CallOption {
	return func(o *callOptions) { o.retry = &p }
}

// WithInstanceID gives a sub-orchestration a chosen instance ID (default:
// derived from the parent's execution ID and the call's sequence number).
func WithInstanceID(id string) CallOption {
	return func(o *callOptions) { o.instanceID = id }
}

// WithVersion starts a sub-orchestration with orchestration version v
// (recorded in SubOrchestrationInstanceCreated.Version and the child's
// ExecutionStarted.Version; "" is a version too, the oldest). Without it the
// child gets the calling orchestration's version (Context.Version). It has
// no effect on activity calls.
func WithVersion(v string) CallOption {
	return func(o *callOptions) { o.version = &v }
}

// RetryPolicy says how to retry a failed activity or sub-orchestration.
// Attempt n (n ≥ 1 failures so far) waits
// min(FirstRetryInterval × BackoffCoefficient^(n-1), MaxRetryInterval).
type RetryPolicy struct {
	// MaxAttempts is the total number of attempts, the first included (≥ 1).
	MaxAttempts int
	// FirstRetryInterval is the wait before the second attempt (> 0).
	FirstRetryInterval time.Duration
	// BackoffCoefficient multiplies the wait after each failure (default 1).
	BackoffCoefficient float64
	// MaxRetryInterval caps the wait (default 6 days).
	MaxRetryInterval time.Duration
	// RetryTimeout stops retrying once this long has passed since the first
	// attempt (0 = no limit).
	RetryTimeout time.Duration
	// Handle decides whether an error is worth retrying (nil = all are).
	Handle func(error) bool
}

// delay returns the wait after the n-th failure.
func (p *RetryPolicy) delay(n int) time.Duration {
	coef := p.BackoffCoefficient
	if coef <= 0 {
		coef = 1
	}
	maxInterval := p.MaxRetryInterval
	if maxInterval <= 0 {
		maxInterval = 6 * 24 * time.Hour
	}
	d := float64(p.FirstRetryInterval) * math.Pow(coef, float64(n-1))
	if d > float64(maxInterval) || math.IsInf(d, 0) || math.IsNaN(d) {
		return maxInterval
	}
	return time.Duration(d)
}

func (p *RetryPolicy) validate() error {
	if p.MaxAttempts < 1 {
		return fmt.Errorf("durable: RetryPolicy.MaxAttempts must be at least 1, got %d", p.MaxAttempts)
	}
	if p.FirstRetryInterval <= 0 {
		return fmt.Errorf("durable: RetryPolicy.FirstRetryInterval must be positive, got %v", p.FirstRetryInterval)
	}
	return nil
}

// CallActivity schedules the activity registered under name with input
// (encoded as JSON) and returns a task for its result of type Out.
func CallActivity[Out any](ctx *Context, name string, input any, opts ...CallOption) *Task[Out] {
	in, err := encodeJSON(input)
	return callWith[Out](ctx, "activity", name, in, err, opts, func(o *callOptions) *task {
		ev := history.NewEvent(history.TaskScheduled, ctx.currentTime)
		ev.Name, ev.Input = name, in
		if o.timeout > 0 {
			// The worker cancels the activity's context at the same instant
			// as the attempt's timer fires.
			ev.Tags = map[string]string{replay.DeadlineTag: replay.FormatDeadline(ctx.currentTime.Add(o.timeout))}
		}
		return ctx.ex.schedule("activity", name, ev)
	})
}

// CallSubOrchestrator starts the orchestrator registered under name as a
// child of this one and returns a task for its output of type Out. A failed
// child surfaces as a *TaskFailedError carrying the child's failure.
// Inside a critical section (LockEntities) the task fails at once with a
// *LockingRulesError and nothing is started.
func CallSubOrchestrator[Out any](ctx *Context, name string, input any, opts ...CallOption) *Task[Out] {
	in, err := encodeJSON(input)
	if s := ctx.ex.ent.section; s != nil && err == nil {
		err = &LockingRulesError{Op: fmt.Sprintf("CallSubOrchestrator %q", name), Locked: slices.Clone(s.locks),
			Rule: "must not call a sub-orchestrator from a critical section"}
	}
	return callWith[Out](ctx, "sub-orchestration", name, in, err, opts, func(o *callOptions) *task {
		ev := history.NewEvent(history.SubOrchestrationInstanceCreated, ctx.currentTime)
		ev.Name, ev.Input = name, in
		ev.Version = ctx.version // the parent's, unless the call names one
		if o.version != nil {
			ev.Version = *o.version
		}
		ev.InstanceID = o.instanceID
		if ev.InstanceID == "" {
			// Durable Task's default: stable across replays and retries' attempts differ.
			ev.InstanceID = fmt.Sprintf("%s:%d", ctx.executionID, ctx.ex.nextID)
		}
		return ctx.ex.schedule("sub-orchestration", name, ev)
	})
}

// Call starts this orchestrator as a sub-orchestration of ctx's.
func (o *Orchestrator[In, Out]) Call(ctx *Context, input In, opts ...CallOption) *Task[Out] {
	return CallSubOrchestrator[Out](ctx, o.name, input, opts...)
}

// callWith builds the user-facing task of a call, with retries if asked.
func callWith[Out any](ctx *Context, kind, name, in string, encErr error, opts []CallOption, attempt func(*callOptions) *task) *Task[Out] {
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	if encErr == nil && o.retry != nil {
		encErr = o.retry.validate()
	}
	if encErr == nil && o.timeout < 0 {
		encErr = fmt.Errorf("durable: WithTimeout needs a positive duration, got %v", o.timeout)
	}
	if o.timeout > 0 {
		plain := attempt
		attempt = func(o *callOptions) *task { return ctx.withTimeout(plain(o), o.timeout) }
	}
	if encErr != nil {
		t := &task{id: -1, kind: kind, name: name, resultOf: kind + " " + fmt.Sprintf("%q", name)}
		ctx.ex.completeTask(t, "", encErr)
		return &Task[Out]{ctx: ctx, t: t}
	}
	if o.retry == nil {
		return &Task[Out]{ctx: ctx, t: attempt(&o)}
	}
	// The user's task completes when an attempt succeeds or retrying stops.
	user := &task{id: -1, kind: kind, name: name, resultOf: fmt.Sprintf("%s %q", kind, name)}
	policy := *o.retry
	first := ctx.currentTime
	failures := 0
	var run func()
	run = func() {
		a := attempt(&o)
		a.onDone = append(a.onDone, func() {
			if a.err == nil {
				ctx.ex.completeTask(user, a.result, nil)
				return
			}
			failures++
			if retry, final := shouldRetry(&policy, a.err, failures, first, ctx.currentTime); !retry {
				ctx.ex.completeTask(user, "", final)
				return
			}
			// A durable timer like CreateTimer's: waits longer than
			// MaxTimerLeg are chained.
			timer := ctx.CreateTimer(ctx.currentTime.Add(policy.delay(failures)))
			timer.t.onDone = append(timer.t.onDone, run)
		})
	}
	run()
	return &Task[Out]{ctx: ctx, t: user}
}

// withTimeout returns a task that completes as the call a does, unless a
// durable timer of length d, started now, fires first: then it fails with a
// *TimeoutError, and a's late outcome is ignored. A failure that the worker
// recorded because a's deadline passed (the activity's context was
// cancelled, or it was dequeued too late) counts as the timeout too, so the
// outcome does not depend on which of the two messages arrives first.
func (c *Context) withTimeout(a *task, d time.Duration) *task {
	if a.done {
		return a
	}
	out := &task{id: -1, kind: a.kind, name: a.name, resultOf: a.resultOf}
	timeout := func() error { return &TimeoutError{Kind: a.kind, TaskName: a.name, TaskID: a.id, Timeout: d} }
	timer := c.CreateTimer(c.currentTime.Add(d))
	a.onDone = append(a.onDone, func() {
		timer.Cancel()
		var tf *TaskFailedError
		if errors.As(a.err, &tf) && replay.IsDeadlineFailure(&tf.Failure) {
			c.ex.completeTask(out, "", timeout())
			return
		}
		c.ex.completeTask(out, a.result, a.err)
	})
	timer.t.onDone = append(timer.t.onDone, func() {
		if timer.t.err == nil {
			c.ex.completeTask(out, "", timeout())
		}
	})
	return out
}

// shouldRetry decides whether to retry after the failures-th failure err.
// If not, final is the error the call fails with: err, or a *PanicError if
// the policy's Handle panicked (Handle runs on the executor's goroutine, so
// its panic must not escape into the engine).
func shouldRetry(p *RetryPolicy, err error, failures int, first, now time.Time) (retry bool, final error) {
	if failures >= p.MaxAttempts {
		return false, err
	}
	if p.RetryTimeout > 0 && !now.Before(first.Add(p.RetryTimeout)) {
		return false, err
	}
	var tf *TaskFailedError
	if errors.As(err, &tf) && tf.Failure.IsNonRetriable {
		return false, err
	}
	if p.Handle != nil {
		ok, perr := callHandle(p.Handle, err)
		if perr != nil {
			return false, perr
		}
		if !ok {
			return false, err
		}
	}
	return true, nil
}

// callHandle runs a RetryPolicy.Handle, turning a panic into a *PanicError.
func callHandle(handle func(error) bool, err error) (ok bool, perr error) {
	defer func() {
		if r := recover(); r != nil {
			perr = &PanicError{Value: fmt.Sprintf("RetryPolicy.Handle: %v", r), Stack: string(debug.Stack())}
		}
	}()
	return handle(err), nil
}

// MaxTimerLeg is the longest single durable timer: longer timers are
// chained in legs of at most this length, because queue messages cannot
// stay invisible for more than 7 days.
const MaxTimerLeg = 3 * 24 * time.Hour

// Timer is a durable timer: a task that completes at its fire time.
type Timer struct {
	Task[struct{}]
	cancel func()
}

// Cancel stops the timer: Await returns ErrCanceled. A canceled timer does
// not keep the orchestration waiting.
func (t *Timer) Cancel() { t.cancel() }

// CreateTimer returns a durable timer that fires at fireAt (any distance in
// the future: long waits are chained in legs of MaxTimerLeg). fireAt is
// taken at the precision history stores (history.StorageTime).
func (c *Context) CreateTimer(fireAt time.Time) *Timer {
	// Legs are cut from the stored value, so that a replay, which computes
	// them again, agrees with the first run.
	fireAt = history.StorageTime(fireAt)
	user := &task{id: -1, kind: "timer", resultOf: "timer"}
	var leg *task
	var next func()
	next = func() {
		end := fireAt
		if end.Sub(c.currentTime) > MaxTimerLeg {
			end = c.currentTime.Add(MaxTimerLeg)
		}
		l := c.ex.newTimer(end)
		leg = l
		l.onDone = append(l.onDone, func() {
			if l.err != nil || user.done {
				return
			}
			if end.Equal(fireAt) {
				c.ex.completeTask(user, "", nil)
				return
			}
			next()
		})
	}
	next()
	tm := &Timer{Task: Task[struct{}]{ctx: c, t: user}}
	tm.cancel = func() {
		if user.done {
			return
		}
		c.ex.cancelTimer(leg)
		c.ex.completeTask(user, "", ErrCanceled)
	}
	return tm
}

// Sleep waits durably for d.
func (c *Context) Sleep(d time.Duration) error {
	_, err := c.CreateTimer(c.currentTime.Add(d)).Await()
	return err
}

// WaitForExternalEvent returns a task that completes with the payload of
// the next event raised to this instance under name (case-insensitive).
// Events that arrived before the wait are buffered; several waits on one
// name are served in the order they were made. Entity responses are not
// external events: an event named like a request ID (a lowercase GUID)
// whose payload is an entity response message never reaches a wait.
func WaitForExternalEvent[T any](ctx *Context, name string) *Task[T] {
	return &Task[T]{ctx: ctx, t: ctx.ex.waitEvent(name)}
}

// WaitForExternalEventTimeout is WaitForExternalEvent with a durable
// timeout: if no event arrives within timeout, the task fails with
// ErrTimeout (and a later event stays buffered for the next wait).
func WaitForExternalEventTimeout[T any](ctx *Context, name string, timeout time.Duration) *Task[T] {
	w := ctx.ex.waitEvent(name)
	if w.done {
		return &Task[T]{ctx: ctx, t: w}
	}
	timer := ctx.CreateTimer(ctx.currentTime.Add(timeout))
	w.onDone = append(w.onDone, timer.Cancel)
	timer.t.onDone = append(timer.t.onDone, func() {
		if timer.t.err == nil && !w.done {
			ctx.ex.unwaitEvent(name, w)
			ctx.ex.completeTask(w, "", fmt.Errorf("%w: no event %q within %v", ErrTimeout, name, timeout))
		}
	})
	return &Task[T]{ctx: ctx, t: w}
}

func eventKey(name string) string { return strings.ToLower(name) }
