package durabletest

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// Run runs the orchestrator orch with input on the Tester's virtual clock
// until it finishes, and checks that the histories it produced replay
// deterministically (unless SkipDeterminismCheck).
//
// The error is nil exactly when the orchestration completed and the check
// passed. Otherwise it is (or joins) a *FailedError (the orchestration
// failed or was terminated), a *NotFinishedError (it can never finish, or
// a limit was reached), a *DeterminismError, a *BlockedError or a
// *PanicError, or an error of the setup or of ctx. The Result is returned
// whenever the orchestration ran, with everything it did so far; it is nil
// only when the run could not start.
func Run[In, Out any](ctx context.Context, tr *Tester, orch *durable.Orchestrator[In, Out], input In, opts ...RunOption) (*Result[Out], error) {
	if tr == nil || orch == nil {
		return nil, errors.New("durabletest: Run needs a Tester (from New) and an orchestrator definition")
	}
	if _, ok := replay.LookupOrchestrator(tr.defs, orch.Name()); !ok {
		if err := tr.defs.Add(orch); err != nil {
			return nil, fmt.Errorf("durabletest: %w", err)
		}
	}
	inst, err := tr.RunByName(ctx, orch.Name(), input, opts...)
	if inst == nil {
		return nil, err
	}
	res := &Result[Out]{Instance: inst}
	if inst.Status == history.StatusCompleted {
		if derr := decode(inst.RawOutput, &res.Output); derr != nil {
			err = errors.Join(err, fmt.Errorf("durabletest: the output %s does not fit type %T: %w", inst.RawOutput, res.Output, derr))
		}
	}
	return res, err
}

// RunByName is Run for an orchestrator known by name (registered with New
// or mocked with OnOrchestratorName), with input encoded as JSON (a
// json.RawMessage is used as is; nil means no input).
func (tr *Tester) RunByName(ctx context.Context, name string, input any, opts ...RunOption) (*Instance, error) {
	if tr.run != nil {
		return nil, ErrAlreadyRun
	}
	cfg := runConfig{start: DefaultStartTime, instanceID: DefaultInstanceID, maxEpisodes: 10000, blockTimeout: time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	if err := errors.Join(tr.errs...); err != nil {
		return nil, err
	}
	in, err := encodePayload(input)
	if err != nil {
		return nil, fmt.Errorf("durabletest: the input of %q: %w", name, err)
	}
	if _, ok := tr.lookupOrchestrator(name); !ok {
		return nil, fmt.Errorf("durabletest: orchestrator %q is neither given to New nor mocked (known: %v)", name, tr.defs.OrchestratorNames())
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runner{tr: tr, ctx: runCtx, cfg: cfg, start: cfg.start, now: cfg.start, instances: map[string]*instState{}}
	tr.run = r

	start := history.NewEvent(history.ExecutionStarted, r.now)
	start.Name, start.Input, start.Version = name, in, cfg.version
	start.Instance = history.OrchestrationInstance{InstanceID: cfg.instanceID, ExecutionID: derivedID(cfg.instanceID, 0)}
	gen := int32(0)
	start.Generation = &gen // as the client records a first start
	r.root = r.newInstance(start, nil)
	for _, s := range tr.early {
		r.schedule(r.start.Add(s.after), item{fn: s.fn, what: s.what})
	}

	runErr := r.loop()
	// After a BlockedError, user code still holds an executor: leave it.
	abandoned := errors.As(runErr, new(*BlockedError))
	r.closeAll(!abandoned)
	root := r.root.rec
	if runErr == nil {
		runErr = root.Err()
	}
	if !cfg.noCheck && !abandoned && ctx.Err() == nil {
		if err := r.checkAll(); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	return root, runErr
}

// runner is one run: the instances, the virtual clock and the queue of
// what is due.
type runner struct {
	tr    *Tester
	ctx   context.Context
	cfg   runConfig
	start time.Time
	now   time.Time

	queue     itemQueue
	seq       int
	instances map[string]*instState
	all       []*instState // every instance, in creation order
	ready     []*instState // instances with events to apply, in order
	root      *instState
	episodes  int
	err       error                   // first error of a callback, ends the run
	entities  map[string]*entityState // by instance ID ("@name@key")
	answered  map[string]bool         // IDs of the entity requests answered
}

// item is something due at a virtual time: an event for an instance, or
// a callback.
type item struct {
	at  time.Time
	seq int

	target    string // instance ID; "" = the root
	execution string // the execution a response belongs to; "" = any
	ev        history.Event
	fn        func()
	what      string
}

type itemQueue []item

func (q itemQueue) Len() int { return len(q) }
func (q itemQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q itemQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *itemQueue) Push(x any)   { *q = append(*q, x.(item)) }
func (q *itemQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

func (r *runner) schedule(at time.Time, it item) {
	if at.Before(r.now) {
		at = r.now
	}
	it.at = at
	r.seq++
	it.seq = r.seq
	heap.Push(&r.queue, it)
}

// send queues ev for instance id ("" = the root) at the current time.
func (r *runner) send(id string, ev history.Event, what string) {
	r.schedule(r.now, item{target: id, ev: ev, what: what})
}

func (r *runner) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// instState is one instance while the run goes on.
type instState struct {
	id      string
	start   history.Event // the current execution's ExecutionStarted
	parent  *instState
	parentX string // the parent's execution that started it
	ex      replay.Executor
	hist    []history.Event
	actions map[int32]history.Event // the current execution's actions, by id
	calls   []entityCall            // the current execution's entity calls and lock requests
	inbox   []history.Event
	queued  bool
	done    bool

	rec  *Instance
	exec *Execution
}

func (in *instState) customStatus() string {
	if in.ex == nil {
		return in.exec.RawCustomStatus
	}
	return in.ex.CustomStatus()
}

// newInstance creates an instance whose first execution starts with
// start, now.
func (r *runner) newInstance(start history.Event, parent *instState) *instState {
	in := &instState{id: start.Instance.InstanceID, parent: parent}
	in.rec = &Instance{ID: in.id, Name: start.Name, Version: start.Version, Status: history.StatusPending, Started: r.now}
	if parent != nil {
		in.parentX = parent.start.Instance.ExecutionID
		parent.rec.Children = append(parent.rec.Children, in.rec)
	}
	r.instances[in.id] = in
	r.all = append(r.all, in)
	r.beginExecution(in, start)
	in.inbox = append(in.inbox, start)
	r.markReady(in)
	return in
}

// beginExecution gives the instance a fresh executor for start.
func (r *runner) beginExecution(in *instState, start history.Event) {
	in.start = start
	in.hist = nil
	in.actions = map[int32]history.Event{}
	in.calls = nil
	code, ok := r.tr.lookupOrchestrator(start.Name)
	if !ok {
		// As the engine: the instance fails, naming the missing code.
		code = replay.Failing(&notRegisteredError{kind: "orchestrator", name: start.Name})
	}
	in.ex = replay.NewExecutor(code, in.id)
	in.ex.SetLogger(r.cfg.logger)
	in.exec = &Execution{ExecutionID: start.Instance.ExecutionID, Input: start.Input, Version: start.Version, Status: history.StatusRunning, Started: r.now}
	in.rec.Version = start.Version
	in.rec.Executions = append(in.rec.Executions, in.exec)
}

func (r *runner) markReady(in *instState) {
	if !in.queued {
		in.queued = true
		r.ready = append(r.ready, in)
	}
}

// loop runs episodes while instances have events, and otherwise moves the
// virtual clock to the next item due, until the root finishes.
func (r *runner) loop() error {
	for {
		if err := r.ctx.Err(); err != nil {
			return fmt.Errorf("durabletest: the run was canceled at virtual time %s: %w", r.now.Format(time.RFC3339Nano), err)
		}
		if r.err != nil {
			return r.err
		}
		if r.root.done {
			return nil
		}
		if len(r.ready) > 0 {
			in := r.ready[0]
			r.ready = r.ready[1:]
			in.queued = false
			if err := r.episode(in); err != nil {
				return err
			}
			continue
		}
		it, ok := r.next()
		if !ok {
			return r.notFinished("nothing is due and nothing can run, so it waits forever")
		}
		if it.at.After(r.now) {
			if limit := r.start.Add(r.cfg.stopAfter); r.cfg.stopAfter > 0 && it.at.After(limit) {
				heap.Push(&r.queue, it)
				r.now = limit
				return r.notFinished(fmt.Sprintf("the run's time limit (StopAfter %v) was reached", r.cfg.stopAfter))
			}
			r.now = it.at
		}
		r.apply(it)
	}
}

// next pops the next item that still matters: responses for tasks nobody
// awaits any more (a canceled timer, a call of an execution that ended)
// are dropped, as the engine drops them, without moving the clock.
func (r *runner) next() (item, bool) {
	for r.queue.Len() > 0 {
		it := heap.Pop(&r.queue).(item)
		if it.fn != nil {
			return it, true
		}
		in := r.target(it.target)
		if in == nil {
			return it, true // apply reports it
		}
		if in.done || (it.execution != "" && it.execution != in.start.Instance.ExecutionID) {
			continue
		}
		if id, ok := responseTo(it.ev); ok && in.ex.TaskState(id) != replay.TaskAwaiting {
			continue
		}
		return it, true
	}
	return item{}, false
}

func (r *runner) target(id string) *instState {
	if id == "" {
		return r.root
	}
	return r.instances[id]
}

// apply delivers an item: a callback runs, an event joins its instance's
// next episode.
func (r *runner) apply(it item) {
	if it.fn != nil {
		r.callback(it)
		return
	}
	in := r.target(it.target)
	if in == nil {
		r.fail(fmt.Errorf("durabletest: %s for instance %q at virtual time %s: the run has no such instance",
			it.what, it.target, r.now.Format(time.RFC3339Nano)))
		return
	}
	if in.done {
		return // as the engine: events for a finished instance are dropped
	}
	in.inbox = append(in.inbox, it.ev)
	r.markReady(in)
}

func (r *runner) callback(it item) {
	defer func() {
		if v := recover(); v != nil {
			r.fail(&PanicError{What: it.what, Value: v, Stack: string(debug.Stack())})
		}
	}()
	it.fn()
}

// episode runs the instance's orchestrator on its inbox and handles what
// it did.
func (r *runner) episode(in *instState) error {
	if r.episodes >= r.cfg.maxEpisodes {
		return r.notFinished(fmt.Sprintf("the run's episode limit (MaxEpisodes %d) was reached", r.cfg.maxEpisodes))
	}
	r.episodes++
	events := in.inbox
	in.inbox = nil
	var episode, actions []history.Event
	var stepErr error
	clock := func() time.Time { return r.now }
	if err := r.guard(fmt.Sprintf("orchestrator %q (instance %q)", in.start.Name, in.id), func() {
		episode, actions, stepErr = in.ex.Step(clock, events)
	}); err != nil {
		return err
	}
	if stepErr != nil {
		return fmt.Errorf("durabletest: instance %q: %w", in.id, stepErr)
	}
	in.hist = append(in.hist, episode...)
	in.exec.History = in.hist
	in.rec.Status = history.StatusRunning
	if in.ex.Suspended() {
		in.rec.Status = history.StatusSuspended
	}
	for _, a := range actions {
		if err := r.act(in, a); err != nil {
			return err
		}
	}
	in.exec.RawCustomStatus = in.ex.CustomStatus()
	if c := in.ex.Completion(); c != nil {
		r.finish(in, *c)
	}
	return nil
}

// act carries out one action of an episode, as the engine routes it.
func (r *runner) act(in *instState, a history.Event) error {
	if !a.Type.EndsExecution() {
		in.actions[a.EventID] = a
	}
	self := history.OrchestrationInstance{InstanceID: in.id, ExecutionID: in.start.Instance.ExecutionID}
	switch a.Type {
	case history.TaskScheduled:
		return r.runActivity(in, a)
	case history.TimerCreated:
		fired := history.NewEvent(history.TimerFired, a.Timestamp)
		fired.TimerID, fired.FireAt = a.EventID, a.FireAt
		r.schedule(a.FireAt, item{target: in.id, execution: self.ExecutionID, ev: fired, what: "TimerFired"})
	case history.SubOrchestrationInstanceCreated:
		return r.startChild(in, a)
	case history.EventSent:
		if history.IsEntityInstanceID(a.InstanceID) {
			return r.sendToEntity(in, a)
		}
		ev := history.NewEvent(history.EventRaised, r.now)
		ev.Name, ev.Input = a.Name, a.Input
		r.send(a.InstanceID, ev, fmt.Sprintf("the event %q sent by instance %q", a.Name, in.id))
	}
	return nil
}

// startChild starts a sub-orchestration as the engine does: an
// ExecutionStarted with a parent link and an execution ID derived from
// the parent's execution and the call's sequence number.
func (r *runner) startChild(parent *instState, a history.Event) error {
	if old := r.instances[a.InstanceID]; old != nil && !old.done {
		return fmt.Errorf("durabletest: instance %q (%s) starts sub-orchestration %q with instance ID %q, which is still running",
			parent.id, parent.start.Name, a.Name, a.InstanceID)
	}
	self := history.OrchestrationInstance{InstanceID: parent.id, ExecutionID: parent.start.Instance.ExecutionID}
	child := history.NewEvent(history.ExecutionStarted, r.now)
	// The call records the child's version: the parent's unless it used
	// durable.WithVersion, as the engine passes it on.
	child.Name, child.Version, child.Input = a.Name, a.Version, a.Input
	child.Instance = history.OrchestrationInstance{InstanceID: a.InstanceID, ExecutionID: derivedID(self.ExecutionID, a.EventID)}
	child.Parent = &history.ParentInstance{Name: parent.start.Name, TaskScheduleID: a.EventID, Instance: self}
	if m := r.tr.orchestratorMocks[a.Name]; m != nil {
		m.called(a.Input)
	}
	r.newInstance(child, parent)
	return nil
}

// runActivity runs an activity call (mock, real code, or the engine's
// failure for a name nobody registered) and queues its result.
func (r *runner) runActivity(in *instState, a history.Event) error {
	var delay time.Duration
	fn, ok := replay.LookupActivity(r.tr.mocks, a.Name)
	if m := r.tr.activityMocks[a.Name]; ok && m != nil {
		m.called(a.Input)
		delay = m.delay
	} else {
		fn, ok = replay.LookupActivity(r.tr.defs, a.Name)
	}
	var result string
	var failure *durable.FailureDetails
	if !ok {
		err := &notRegisteredError{kind: "activity", name: a.Name}
		failure = &durable.FailureDetails{ErrorType: err.ErrorType(), ErrorMessage: err.Error(), IsNonRetriable: true}
	} else {
		var err error
		result, failure, err = r.callWithDeadline(in, fn, a)
		if err != nil {
			return err
		}
	}
	at := r.now.Add(delay)
	var resp history.Event
	if failure != nil {
		resp = history.NewEvent(history.TaskFailed, at)
		resp.Reason, resp.Failure = failure.ErrorMessage, failure
	} else {
		resp = history.NewEvent(history.TaskCompleted, at)
		resp.Result = result
	}
	resp.TaskScheduledID = a.EventID
	r.schedule(at, item{target: in.id, execution: in.start.Instance.ExecutionID, ev: resp, what: "the result of activity " + a.Name})
	return nil
}

// callWithDeadline runs an activity call as the engine's worker does,
// with the deadline of a call made WithTimeout (the TaskScheduled tag
// replay.DeadlineTag). ActivityInfo.Deadline is that deadline as recorded,
// in virtual time. The activity runs in real time, though, so its context
// gets a real deadline as far away as the virtual one is (the call's
// timeout, since activities run as soon as they are scheduled): an activity
// that works longer than its timeout is cancelled, and its failure is then
// recorded as the engine records it, as a TimeoutError.
func (r *runner) callWithDeadline(in *instState, fn replay.ActivityFunc, a history.Event) (result string, failure *durable.FailureDetails, err error) {
	deadline, hasDeadline, refuse := replay.ActivityDeadline(a, in.id, r.now)
	if refuse != nil {
		return "", refuse, nil
	}
	ctx := r.ctx
	if hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, deadline.Sub(r.now))
		defer cancel()
	}
	actx := replay.WithActivityInfo(ctx, replay.ActivityInfo{
		Name: a.Name, InstanceID: in.id, ExecutionID: in.start.Instance.ExecutionID, TaskID: a.EventID, Deadline: deadline,
	})
	err = r.guard(fmt.Sprintf("activity %q (task %d of instance %q)", a.Name, a.EventID, in.id), func() {
		result, failure = callActivity(actx, fn, a)
	})
	if err == nil && failure != nil && hasDeadline && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.ctx.Err() == nil {
		failure = replay.CancelledAtDeadline(a, deadline, failure) // as the engine records it
	}
	return result, failure, err
}

// callActivity runs activity code, turning errors and panics into failure
// details as the engine does.
func callActivity(ctx context.Context, fn replay.ActivityFunc, a history.Event) (result string, failure *durable.FailureDetails) {
	returned := false
	defer func() {
		if v := recover(); v != nil {
			failure = &durable.FailureDetails{ErrorType: "panic", ErrorMessage: fmt.Sprintf("activity %q panicked: %v", a.Name, v), StackTrace: string(debug.Stack())}
		} else if !returned {
			failure = &durable.FailureDetails{ErrorType: "panic", ErrorMessage: fmt.Sprintf("activity %q exited without returning (runtime.Goexit, t.FailNow?)", a.Name)}
		}
	}()
	out, err := fn(ctx, a.Input)
	returned = true
	if err != nil {
		return "", replay.FailureFromError(err)
	}
	return out, nil
}

// finish records the end of an execution: the next one starts at once
// after a ContinueAsNew; otherwise the instance is done and its parent
// hears of it.
func (r *runner) finish(in *instState, c history.Event) {
	x := in.exec
	x.Status, x.Finished = c.Status, r.now
	switch {
	case c.Type == history.ContinueAsNew:
		x.Status, x.RawOutput = history.StatusContinuedAsNew, c.Result
		carry := in.ex.CarryOver()
		in.ex.Close()
		next := in.start
		next.Timestamp = r.now
		next.Instance.ExecutionID = derivedID(in.start.Instance.ExecutionID, -1)
		next.Input = c.Result
		next.Version = c.Version // kept, or the one WithNewVersion named
		next.Generation = nil
		r.beginExecution(in, next)
		in.inbox = append(append([]history.Event{next}, carry...), in.inbox...)
		// The new execution's first episode runs before anything else, as
		// the engine runs it in the same checkpoint.
		if !in.queued {
			in.queued = true
			r.ready = append([]*instState{in}, r.ready...)
		}
		return
	case c.Status == history.StatusCompleted, c.Status == history.StatusTerminated:
		x.RawOutput = c.Result
	default:
		x.Failure = c.Failure
	}
	in.done = true
	in.ex.Close()
	in.rec.Finished = r.now
	if p := in.parent; p != nil {
		r.schedule(r.now, item{target: p.id, execution: in.parentX, ev: replay.ParentNotice(in.start.Parent, c, c.Timestamp),
			what: fmt.Sprintf("the outcome of sub-orchestration %q", in.id)})
	}
}

// guard runs f, user code, and gives up on it after the run's
// BlockTimeout of real time (see guardFor).
func (r *runner) guard(what string, f func()) error { return guardFor(r.cfg.blockTimeout, what, f) }

// guardFor runs f on its own goroutine and gives up on it after timeout of
// real time (0 or less: no limit). The executor hands control back and
// forth over channels, so driving it from another goroutine is safe.
func guardFor(timeout time.Duration, what string, f func()) error {
	if timeout <= 0 {
		return runCaught(what, f)
	}
	done := make(chan error, 1)
	go func() { done <- runCaught(what, f) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return &BlockedError{What: what, Timeout: timeout}
	}
}

// runCaught runs f and turns a panic that escaped it into an error (the
// replay core and callActivity catch those of user code themselves).
func runCaught(what string, f func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{What: what, Value: v, Stack: string(debug.Stack())}
		}
	}()
	f()
	return nil
}

// notFinished describes why the root has not finished and what it waits for.
func (r *runner) notFinished(reason string) error {
	in := r.root
	status := in.rec.Status // Pending until its first episode, then Running or Suspended
	return &NotFinishedError{InstanceID: in.id, Name: in.start.Name, Status: status, Reason: reason,
		At: r.now, Elapsed: r.now.Sub(r.start), Waiting: r.waitingFor(in, 0)}
}

// waitingFor describes what an unfinished instance waits for: its open
// calls and timers, the external events it awaits, and, for a
// sub-orchestration, what that one waits for.
func (r *runner) waitingFor(in *instState, depth int) []string {
	if in.done || in.ex == nil {
		return nil
	}
	var out []string
	if in.ex.Suspended() {
		out = append(out, "a Resume (it is suspended)")
	}
	ids := make([]int32, 0, len(in.actions))
	for id := range in.actions {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if in.ex.TaskState(id) != replay.TaskAwaiting {
			continue
		}
		a := in.actions[id]
		switch a.Type {
		case history.TaskScheduled:
			out = append(out, fmt.Sprintf("activity %q (task %d)", a.Name, id))
		case history.TimerCreated:
			out = append(out, fmt.Sprintf("timer (task %d) due at %s", id, a.FireAt.Format(time.RFC3339Nano)))
		case history.SubOrchestrationInstanceCreated:
			s := fmt.Sprintf("sub-orchestration %q (task %d, instance %q)", a.Name, id, a.InstanceID)
			if c := r.instances[a.InstanceID]; c != nil && depth < 5 {
				if w := r.waitingFor(c, depth+1); len(w) > 0 {
					s += fmt.Sprintf(", which waits for %v", w)
				}
			}
			out = append(out, s)
		}
	}
	out = append(out, r.entityWaits(in)...)
	for _, name := range replay.EventsAwaited(in.ex) {
		out = append(out, fmt.Sprintf("external event %q", name))
	}
	return out
}

// record completes the instance's public record as of virtual time now.
func (in *instState) record(now time.Time) {
	rec := in.rec
	rec.History = in.hist
	rec.RawCustomStatus = in.exec.RawCustomStatus
	if in.done {
		rec.Status = in.exec.Status
		rec.RawOutput, rec.Failure = in.exec.RawOutput, in.exec.Failure
		rec.Elapsed = rec.Finished.Sub(rec.Started)
	} else {
		rec.Elapsed = now.Sub(rec.Started)
	}
}

// closeAll completes the records and, if unwind, unwinds the executors
// still parked.
func (r *runner) closeAll(unwind bool) {
	for _, in := range r.all {
		if unwind && in.ex != nil {
			in.ex.Close()
		}
		in.record(r.now)
	}
}

// responseTo returns the task a response event answers.
func responseTo(ev history.Event) (int32, bool) {
	switch ev.Type {
	case history.TimerFired:
		return ev.TimerID, true
	case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
		return ev.TaskScheduledID, true
	}
	return 0, false
}

// derivedID derives a stable execution ID (32 hex digits, as Durable Task
// IDs) from a seed and a number: the engine's formula for a child's first
// execution, reused here for the root and for ContinueAsNew, so that runs
// are reproducible.
func derivedID(seed string, seq int32) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s:%d", seed, seq)))
	return hex.EncodeToString(sum[:16])
}

// notRegisteredError is the engine's failure for a function name the app
// does not know, with the same type name and message.
type notRegisteredError struct {
	kind string
	name string
}

func (e *notRegisteredError) Error() string {
	return fmt.Sprintf("%s %q is not registered in this app", e.kind, e.name)
}

// ErrorType implements the durable ErrorType convention.
func (e *notRegisteredError) ErrorType() string { return "NotRegisteredError" }
