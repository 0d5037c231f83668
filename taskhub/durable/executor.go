package durable

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// The executor is the replay core the engine drives through replay.Executor.
var _ replay.Executor = (*executor)(nil)

// executor replays one orchestration execution against its history and
// runs it forward on new events: the replay core behind replay.Executor,
// whose documentation its exported methods follow. It is not safe for
// concurrent use; the engine drives one executor from one goroutine at a
// time.
type executor struct {
	fn     orchestratorFunc
	ctx    *Context
	logger *slog.Logger

	position int // history position of the next event to apply

	nextID  int32
	pending []history.Event // actions produced by the code, not yet recorded in history
	open    map[int32]*task // scheduled tasks awaiting their response
	started bool
	doneSeq int

	completion *history.Event  // the completion action once produced
	failWith   *FailureDetails // set by Fail: how the next Run ends the execution
	carry      []history.Event

	waiters      map[string][]*task         // event waits by lower-cased name, in order
	buffered     map[string][]history.Event // events nobody waited for yet
	arrivals     []history.Event            // buffered events in arrival order (for carry-over)
	suspended    bool
	held         []history.Event // deliveries held while suspended
	customStatus string

	ent entityBook // entity requests, responses and the critical section

	httpPollInterval time.Duration // the app's default for CallHTTP (0 = DefaultHTTPPollInterval)

	// coroutine plumbing: exactly one of executor and coroutine runs at a time.
	alive    bool
	aborting bool
	resumeCh chan struct{}
	yieldCh  chan struct{}
}

// newExecutor returns an executor that will run fn for the given instance.
func newExecutor(fn orchestratorFunc, instanceID string) *executor {
	e := &executor{fn: fn, open: map[int32]*task{}, waiters: map[string][]*task{}, buffered: map[string][]history.Event{}}
	e.ctx = &Context{ex: e, instanceID: instanceID}
	return e
}

// SetLogger sets the logger behind Context.Logger.
func (e *executor) SetLogger(l *slog.Logger) { e.logger = l }

// Done reports whether the orchestration has produced its completion.
func (e *executor) Done() bool { return e.completion != nil }

// Completion returns the completion action (ExecutionCompleted or
// ContinueAsNew), or nil while the orchestration is still running.
func (e *executor) Completion() *history.Event { return e.completion }

// CarryOver returns the events a ContinueAsNew completion hands to the next
// execution (unconsumed external events, when asked for).
func (e *executor) CarryOver() []history.Event { return e.carry }

// CustomStatus returns the custom status the code set (JSON, "" = none).
func (e *executor) CustomStatus() string { return e.customStatus }

// Suspended reports whether the instance is suspended.
func (e *executor) Suspended() bool { return e.suspended }

// Replay applies committed history events (IsReplaying is true while their
// effects run). It returns a *NonDeterminismError if the code disagrees with
// the history; the executor then holds a failed completion.
func (e *executor) Replay(events []history.Event) error {
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
func (e *executor) Run(events []history.Event) ([]history.Event, error) {
	var err error
	for i := range events {
		if err = e.apply(events[i], false); err != nil {
			break
		}
	}
	if f := e.failWith; f != nil {
		e.failWith = nil
		e.fail(*f)
	}
	actions := e.pending
	e.pending = nil
	// The actions and the closing OrchestratorCompleted that the caller
	// appends advance the position too.
	e.position += len(actions) + 1
	return actions, err
}

// Step runs one episode: it applies an OrchestratorStarted event stamped
// clock() and then events (new, not yet in history), and returns the whole
// episode as history records it: OrchestratorStarted, events, the actions
// the orchestrator produced, and a closing OrchestratorCompleted stamped
// clock() once the code has run; and, separately, the actions alone. From
// then on the episode counts as recorded: the caller appends it to history
// as returned, or discards the executor.
func (e *executor) Step(clock func() time.Time, events []history.Event) (episode, actions []history.Event, err error) {
	episode = make([]history.Event, 0, len(events)+4)
	episode = append(episode, history.NewEvent(history.OrchestratorStarted, clock()))
	episode = append(episode, events...)
	actions, err = e.Run(episode)
	episode = append(episode, actions...)
	episode = append(episode, history.NewEvent(history.OrchestratorCompleted, clock()))
	return episode, actions, err
}

// Fail makes the next Run end the execution as Failed with fd once it has
// applied its events, like a termination: whatever the code does in that
// Run is void. The engine uses it when a message of the instance can never
// be processed, so that the instance does not wait for it forever. It has no
// effect on an execution that has already completed.
func (e *executor) Fail(fd FailureDetails) { e.failWith = &fd }

// fail ends the execution at once as Failed with fd.
func (e *executor) fail(fd FailureDetails) {
	if e.completion != nil {
		return
	}
	e.Close()
	e.pending = nil
	c := history.NewEvent(history.ExecutionCompleted, e.ctx.currentTime)
	c.EventID = e.nextID
	e.nextID++
	c.Status = history.StatusFailed
	c.Failure = &fd
	e.completion = &c
	e.pending = append(e.pending, c)
}

// Close unwinds a parked orchestrator coroutine. The executor is unusable
// afterwards. It is safe to call more than once.
func (e *executor) Close() {
	if !e.alive {
		return
	}
	e.aborting = true
	e.resumeCh <- struct{}{}
	<-e.yieldCh
}

// schedule records a new action produced by the code, assigning its id,
// and returns the task its response completes.
func (e *executor) schedule(kind, name string, ev history.Event) *task {
	t := &task{id: e.nextID, kind: kind, name: name, resultOf: fmt.Sprintf("%s %q", kind, name)}
	if e.completion != nil {
		// The orchestration already finished: nothing more is scheduled.
		e.completeTask(t, "", errors.New("durable: orchestration has already completed"))
		return t
	}
	ev.EventID = e.nextID
	e.nextID++
	e.open[t.id] = t
	e.pending = append(e.pending, ev)
	return t
}

// newTimer schedules one durable timer (a single leg).
func (e *executor) newTimer(fireAt time.Time) *task {
	ev := history.NewEvent(history.TimerCreated, e.ctx.currentTime)
	ev.FireAt = history.StorageTime(fireAt)
	return e.schedule("timer", "", ev)
}

// cancelTimer resolves a timer leg early; its TimerFired is then ignored.
func (e *executor) cancelTimer(t *task) {
	if t == nil || t.done {
		return
	}
	delete(e.open, t.id)
	e.completeTask(t, "", ErrCanceled)
}

// waitEvent registers a wait for an external event, served from the
// buffer if one already arrived.
func (e *executor) waitEvent(name string) *task {
	k := eventKey(name)
	t := &task{id: -1, kind: "event", name: name, resultOf: fmt.Sprintf("event %q", name)}
	if q := e.buffered[k]; len(q) > 0 {
		ev := q[0]
		e.buffered[k] = q[1:]
		e.dropArrival(ev)
		e.completeTask(t, ev.Input, nil)
		return t
	}
	e.waiters[k] = append(e.waiters[k], t)
	return t
}

// unwaitEvent withdraws a wait (its timeout fired).
func (e *executor) unwaitEvent(name string, t *task) {
	k := eventKey(name)
	q := e.waiters[k]
	for i, w := range q {
		if w == t {
			e.waiters[k] = append(q[:i], q[i+1:]...)
			return
		}
	}
}

func (e *executor) dropArrival(ev history.Event) {
	for i, a := range e.arrivals {
		if a.Timestamp.Equal(ev.Timestamp) && a.Name == ev.Name && a.Input == ev.Input {
			e.arrivals = append(e.arrivals[:i], e.arrivals[i+1:]...)
			return
		}
	}
}

// apply processes one history event.
func (e *executor) apply(ev history.Event, replaying bool) error {
	pos := e.position
	e.position++
	e.ctx.replaying = replaying
	switch ev.Type {
	case history.OrchestratorStarted:
		// At storage precision even if the caller's event is finer: the
		// first run must see the value that replay reads back.
		e.ctx.currentTime = history.StorageTime(ev.Timestamp)
		return nil
	case history.ExecutionStarted:
		if e.started {
			return nil // a duplicate start is ignored
		}
		e.started = true
		e.ctx.executionID = ev.Instance.ExecutionID
		if ev.Instance.InstanceID != "" {
			e.ctx.instanceID = ev.Instance.InstanceID
		}
		if ev.Parent != nil {
			e.ctx.parent = ev.Parent.Instance.InstanceID
		}
		e.ctx.name = ev.Name
		e.ctx.version = ev.Version
		e.ctx.input = ev.Input
		if e.completion != nil {
			return nil // terminated before it started: the code never runs
		}
		e.startCoroutine()
		return nil
	case history.TaskScheduled, history.TimerCreated, history.SubOrchestrationInstanceCreated, history.EventSent:
		return e.matchAction(pos, ev)
	case history.ExecutionCompleted, history.ContinueAsNew:
		return e.matchCompletion(pos, ev)
	case history.ExecutionTerminated:
		e.terminate(ev)
		return nil
	case history.ExecutionSuspended:
		e.suspended = true
		return nil
	case history.ExecutionResumed:
		e.suspended = false
		held := e.held
		e.held = nil
		for _, h := range held {
			e.deliver(h)
		}
		e.resume()
		return nil
	}
	if e.suspended {
		e.held = append(e.held, ev)
		return nil
	}
	e.deliver(ev)
	e.resume()
	return nil
}

// deliver applies a response or an external event to the tasks waiting.
func (e *executor) deliver(ev history.Event) {
	switch ev.Type {
	case history.TaskCompleted, history.SubOrchestrationInstanceCompleted:
		if t := e.open[ev.TaskScheduledID]; t != nil {
			delete(e.open, ev.TaskScheduledID)
			e.completeTask(t, ev.Result, nil)
		}
	case history.TaskFailed, history.SubOrchestrationInstanceFailed:
		if t := e.open[ev.TaskScheduledID]; t != nil {
			delete(e.open, ev.TaskScheduledID)
			fd := FailureDetails{ErrorType: "TaskFailed", ErrorMessage: ev.Reason}
			if ev.Failure != nil {
				fd = *ev.Failure
			}
			e.completeTask(t, "", &TaskFailedError{Kind: t.kind, TaskName: t.name, TaskID: t.id, Failure: fd})
		}
	case history.TimerFired:
		if t := e.open[ev.TimerID]; t != nil {
			delete(e.open, ev.TimerID)
			e.completeTask(t, "", nil)
		}
	case history.EventRaised:
		if e.entityResponse(ev) {
			return
		}
		k := eventKey(ev.Name)
		if q := e.waiters[k]; len(q) > 0 {
			w := q[0]
			e.waiters[k] = q[1:]
			e.completeTask(w, ev.Input, nil)
			return
		}
		e.buffered[k] = append(e.buffered[k], ev)
		e.arrivals = append(e.arrivals, ev)
	}
}

// terminate ends the execution at once with the given reason.
func (e *executor) terminate(ev history.Event) {
	if e.completion != nil {
		return
	}
	e.Close()
	e.pending = nil
	c := history.NewEvent(history.ExecutionCompleted, e.ctx.currentTime)
	c.EventID = e.nextID
	e.nextID++
	c.Status = history.StatusTerminated
	c.Result = ev.Input
	e.completion = &c
	e.pending = append(e.pending, c)
}

// matchAction checks a recorded scheduling event against the code's action.
func (e *executor) matchAction(pos int, ev history.Event) error {
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
	produced := "nothing" // as documented on NonDeterminismError.Produced
	if len(e.pending) > 0 {
		produced = describe(e.pending[0])
	} else if e.completion != nil {
		produced = "no further action (the orchestrator had already returned)"
	}
	return e.nondeterminism(pos, describe(ev), produced)
}

// matchCompletion checks a recorded completion against the code's outcome.
func (e *executor) matchCompletion(pos int, ev history.Event) error {
	if e.completion == nil {
		return e.nondeterminism(pos, describe(ev), "no completion (the orchestrator is still waiting)")
	}
	for i, a := range e.pending {
		if a.Type.EndsExecution() {
			e.pending = append(e.pending[:i], e.pending[i+1:]...)
			break
		}
	}
	return nil
}

func (e *executor) nondeterminism(pos int, recorded, produced string) error {
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
	case history.TaskScheduled, history.SubOrchestrationInstanceCreated, history.EventSent:
		return fmt.Sprintf("%s %q (task %d)", ev.Type, ev.Name, ev.EventID)
	case history.TimerCreated:
		return fmt.Sprintf("TimerCreated (task %d)", ev.EventID)
	case history.ExecutionCompleted, history.ContinueAsNew:
		return fmt.Sprintf("%s (%s)", ev.Type, ev.Status)
	default:
		return fmt.Sprintf("%s (event %d)", ev.Type, ev.EventID)
	}
}

// complete records the orchestration outcome as the completion action.
func (e *executor) complete(output string, err error) {
	if e.completion != nil {
		return
	}
	var can *ContinueAsNewError
	if errors.As(err, &can) {
		// Work scheduled but not awaited is abandoned with the execution;
		// messages sent (entity signals and releases) are sent, as Durable
		// Task sends them.
		kept := e.pending[:0]
		for _, a := range e.pending {
			if a.Type.EndsExecution() || a.Type == history.EventSent {
				kept = append(kept, a)
			}
		}
		e.pending = kept
		c := history.NewEvent(history.ContinueAsNew, e.ctx.currentTime)
		c.EventID = e.nextID
		e.nextID++
		c.Status = history.StatusContinuedAsNew
		c.Result = can.Input
		// The version of the next execution, always set (the current one
		// unless WithNewVersion names another), so that the engine never
		// has to tell "keep" from "the empty version".
		c.Version = e.ctx.version
		if can.HasNewVersion {
			c.Version = can.NewVersion
		}
		if can.KeepUnprocessedEvents {
			e.carry = append(e.carry, e.arrivals...)
			for _, h := range e.held {
				if h.Type == history.EventRaised {
					e.carry = append(e.carry, h)
				}
			}
		}
		e.completion = &c
		e.pending = append(e.pending, c)
		return
	}
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
func (e *executor) startCoroutine() {
	e.resumeCh = make(chan struct{})
	e.yieldCh = make(chan struct{})
	e.alive = true
	go e.coroutine()
	<-e.yieldCh
}

func (e *executor) coroutine() {
	returned := false
	var out string
	var err error
	defer func() {
		if s := e.ent.section; s != nil && !e.aborting {
			// Locks still held are released just before the completion.
			s.Release()
		}
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
func (e *executor) park() {
	e.yieldCh <- struct{}{}
	<-e.resumeCh
	if e.aborting {
		runtime.Goexit()
	}
}

// resume lets a parked coroutine run until it parks again or returns.
func (e *executor) resume() {
	if !e.alive || e.completion != nil {
		return
	}
	e.resumeCh <- struct{}{}
	<-e.yieldCh
}

// PanicError reports a panic in orchestrator or entity code.
type PanicError struct {
	// Kind names the code that panicked ("" = the orchestrator).
	Kind  string
	Value string
	Stack string
}

// Error implements error.
func (e *PanicError) Error() string {
	kind := e.Kind
	if kind == "" {
		kind = "orchestrator"
	}
	return kind + " panicked: " + e.Value
}

// ErrorType implements the ErrorType convention.
func (e *PanicError) ErrorType() string { return "panic" }

// TaskState reports the state of task id.
func (e *executor) TaskState(id int32) replay.TaskState {
	if id < 0 || id >= e.nextID {
		return replay.TaskUnknown
	}
	for _, a := range e.pending {
		if a.EventID == id {
			return replay.TaskUnknown
		}
	}
	if t, ok := e.open[id]; ok && !t.done {
		return replay.TaskAwaiting
	}
	return replay.TaskResolved
}
