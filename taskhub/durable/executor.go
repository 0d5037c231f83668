package durable

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Executor replays one orchestration execution against its history and
// runs it forward on new events. It is not safe for concurrent use; the
// engine drives one Executor from one goroutine at a time.
type Executor struct {
	fn  OrchestratorFunc
	ctx *Context

	position int // history position of the next event to apply

	nextID   int32
	pending  []history.Event // actions produced by the code, not yet recorded in history
	open     map[int32]*task // scheduled tasks awaiting their result
	started  bool
	finished bool // the coroutine has returned (or failed)

	completion *history.Event // the completion action once produced
	recorded   bool           // the completion is recorded in history

	// coroutine plumbing: exactly one of executor and coroutine runs at a time.
	alive    bool
	aborting bool
	resumeCh chan struct{}
	yieldCh  chan struct{}
}

// NewExecutor returns an executor that will run fn for the given instance.
func NewExecutor(fn OrchestratorFunc, instanceID string) *Executor {
	e := &Executor{fn: fn, open: map[int32]*task{}}
	e.ctx = &Context{ex: e, instanceID: instanceID}
	return e
}

// Context returns the orchestration context (useful for tests and logging).
func (e *Executor) Context() *Context { return e.ctx }

// Position returns the number of history events applied so far.
func (e *Executor) Position() int { return e.position }

// Done reports whether the orchestration has produced its completion.
func (e *Executor) Done() bool { return e.completion != nil }

// Completion returns the completion action (ExecutionCompleted), or nil
// while the orchestration is still running.
func (e *Executor) Completion() *history.Event { return e.completion }

// Replay applies committed history events (IsReplaying is true while their
// effects run). It returns a *NonDeterminismError if the code disagrees with
// the history; the executor then holds a failed completion.
func (e *Executor) Replay(events []history.Event) error {
	for i := range events {
		if err := e.apply(events[i], true); err != nil {
			return err
		}
	}
	return nil
}

// Run applies new events (not yet in history) and returns the actions the
// orchestrator produced that history does not record yet, in order. The
// returned actions are considered recorded from now on: the caller must
// append the new events, then the actions, then one OrchestratorCompleted
// event to history (or discard the executor).
func (e *Executor) Run(events []history.Event) ([]history.Event, error) {
	var err error
	for i := range events {
		if err = e.apply(events[i], false); err != nil {
			break
		}
	}
	actions := e.pending
	e.pending = nil
	for _, a := range actions {
		if a.Type == history.ExecutionCompleted {
			e.recorded = true
		}
	}
	// The actions and the closing OrchestratorCompleted that the caller
	// appends advance the position too.
	e.position += len(actions) + 1
	return actions, err
}

// Close unwinds a parked orchestrator coroutine. The executor is unusable
// afterwards. It is safe to call more than once.
func (e *Executor) Close() {
	if !e.alive {
		return
	}
	e.aborting = true
	e.resumeCh <- struct{}{}
	<-e.yieldCh
}

// schedule records a new action produced by the code, assigning its id.
func (e *Executor) schedule(t *task, ev history.Event) {
	if e.completion != nil {
		// The orchestration already finished (e.g. code after a failure);
		// ignore further actions.
		t.done, t.err = true, fmt.Errorf("durable: orchestration has already completed")
		return
	}
	ev.EventID = e.nextID
	t.id = e.nextID
	e.nextID++
	e.open[t.id] = t
	e.pending = append(e.pending, ev)
}

// apply processes one history event.
func (e *Executor) apply(ev history.Event, replaying bool) error {
	pos := e.position
	e.position++
	e.ctx.replaying = replaying
	switch ev.Type {
	case history.OrchestratorStarted:
		e.ctx.currentTime = ev.Timestamp.UTC()
	case history.ExecutionStarted:
		if e.started {
			return nil // a duplicate start is ignored
		}
		e.started = true
		e.ctx.executionID = ev.Instance.ExecutionID
		if ev.Instance.InstanceID != "" {
			e.ctx.instanceID = ev.Instance.InstanceID
		}
		e.ctx.name = ev.Name
		e.ctx.input = ev.Input
		e.startCoroutine()
	case history.TaskScheduled:
		return e.matchAction(pos, ev)
	case history.TaskCompleted:
		if t := e.open[ev.TaskScheduledID]; t != nil && !t.done {
			delete(e.open, ev.TaskScheduledID)
			t.done, t.result = true, ev.Result
			e.resume()
		}
	case history.TaskFailed:
		if t := e.open[ev.TaskScheduledID]; t != nil && !t.done {
			delete(e.open, ev.TaskScheduledID)
			fd := FailureDetails{ErrorType: "TaskFailed", ErrorMessage: ev.Reason}
			if ev.Failure != nil {
				fd = *ev.Failure
			}
			t.done, t.err = true, &TaskFailedError{TaskName: t.name, TaskID: t.id, Failure: fd}
			e.resume()
		}
	case history.ExecutionCompleted:
		return e.matchCompletion(pos, ev)
	}
	return nil
}

// matchAction checks a recorded scheduling event against the code's action.
func (e *Executor) matchAction(pos int, ev history.Event) error {
	for i, a := range e.pending {
		if a.EventID != ev.EventID {
			continue
		}
		if a.Type != ev.Type || a.Name != ev.Name {
			return e.nondeterminism(pos, describe(ev), describe(a))
		}
		e.pending = append(e.pending[:i], e.pending[i+1:]...)
		return nil
	}
	produced := "no such action"
	if len(e.pending) > 0 {
		produced = describe(e.pending[0])
	} else if e.completion != nil {
		produced = "no further action (the orchestrator had already returned)"
	}
	return e.nondeterminism(pos, describe(ev), produced)
}

// matchCompletion checks a recorded completion against the code's outcome.
func (e *Executor) matchCompletion(pos int, ev history.Event) error {
	if e.completion == nil {
		return e.nondeterminism(pos, describe(ev), "no completion (the orchestrator is still waiting)")
	}
	for i, a := range e.pending {
		if a.Type == history.ExecutionCompleted {
			e.pending = append(e.pending[:i], e.pending[i+1:]...)
			break
		}
	}
	e.recorded = true
	return nil
}

func (e *Executor) nondeterminism(pos int, recorded, produced string) error {
	err := &NonDeterminismError{Position: pos, Recorded: recorded, Produced: produced}
	e.Close()
	// Whatever the code produced is void: the instance fails.
	e.pending = nil
	e.completion = nil
	e.complete("", err)
	return err
}

func describe(ev history.Event) string {
	switch ev.Type {
	case history.TaskScheduled:
		return fmt.Sprintf("TaskScheduled %q (task %d)", ev.Name, ev.EventID)
	case history.ExecutionCompleted:
		return fmt.Sprintf("ExecutionCompleted (%s)", ev.Status)
	default:
		return fmt.Sprintf("%s (event %d)", ev.Type, ev.EventID)
	}
}

// complete records the orchestration outcome as the completion action.
func (e *Executor) complete(output string, err error) {
	if e.completion != nil {
		return
	}
	e.finished = true
	ev := history.NewEvent(history.ExecutionCompleted, e.ctx.currentTime)
	ev.EventID = e.nextID
	e.nextID++
	if err != nil {
		ev.Status = history.StatusFailed
		ev.Failure = failureFromError(err)
	} else {
		ev.Status = history.StatusCompleted
		ev.Result = output
	}
	e.completion = &ev
	e.pending = append(e.pending, ev)
}

// startCoroutine runs the orchestrator until it parks or returns.
func (e *Executor) startCoroutine() {
	e.resumeCh = make(chan struct{})
	e.yieldCh = make(chan struct{})
	e.alive = true
	go e.coroutine()
	<-e.yieldCh
}

func (e *Executor) coroutine() {
	returned := false
	var out string
	var err error
	defer func() {
		if !returned {
			switch r := recover(); {
			case r != nil:
				err = &PanicError{Value: fmt.Sprint(r), Stack: string(debug.Stack())}
				e.complete("", err)
			case e.aborting:
				// unwound by Close: nothing to record
			default:
				e.complete("", fmt.Errorf("durable: orchestrator %q exited without returning (runtime.Goexit)", e.ctx.name))
			}
		} else {
			e.complete(out, err)
		}
		e.alive = false
		e.yieldCh <- struct{}{}
	}()
	out, err = e.fn(e.ctx)
	returned = true
}

// park hands control back to the executor until it resumes the coroutine.
// Called on the coroutine's goroutine.
func (e *Executor) park() {
	e.yieldCh <- struct{}{}
	<-e.resumeCh
	if e.aborting {
		runtime.Goexit()
	}
}

// resume lets a parked coroutine run until it parks again or returns.
func (e *Executor) resume() {
	if !e.alive {
		return
	}
	e.resumeCh <- struct{}{}
	<-e.yieldCh
}

// PanicError reports a panic in orchestrator code.
type PanicError struct {
	Value string
	Stack string
}

// Error implements error.
func (e *PanicError) Error() string { return "orchestrator panicked: " + e.Value }

// ErrorType implements the ErrorType convention.
func (e *PanicError) ErrorType() string { return "panic" }

// TaskState says how the recorded history stands for one task id.
type TaskState int

// Task states, as seen by the engine when a response arrives.
const (
	// TaskUnknown: history does not record the task's scheduling (yet); a
	// response for it is out of order.
	TaskUnknown TaskState = iota
	// TaskAwaiting: scheduled and recorded, waiting for its response.
	TaskAwaiting
	// TaskResolved: the task already has its response; another is a duplicate.
	TaskResolved
)

// TaskState reports the state of task id.
func (e *Executor) TaskState(id int32) TaskState {
	if id < 0 || id >= e.nextID {
		return TaskUnknown
	}
	for _, a := range e.pending {
		if a.EventID == id {
			return TaskUnknown
		}
	}
	if t, ok := e.open[id]; ok && !t.done {
		return TaskAwaiting
	}
	return TaskResolved
}
