package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// Durable entities, as Durable Task runs them (see history/entitymsg.go):
// an entity @name@key is an instance whose every batch of operations
// starts a new execution; its ExecutionStarted input is the scheduler
// state (the entity's state, and here the requests it applied whose queue
// messages may still exist). A batch is committed through commit like an
// episode: the messages its operations send, then history, then the
// Instances row, then the deletes of the consumed requests.

// entityDedupHorizon is how long an applied request's ID is kept in the
// scheduler state when it may still be delivered again: a client's request
// whose delete was not confirmed (a crash after the commit: its copy
// reappears within MessageVisibility), or any signal from an entity (its
// batch may be retried and send it again). It is counted from when this
// worker loaded the entity.
const entityDedupHorizon = 10 * time.Minute

// entityReorderWait is how long after it was sent an orchestration's
// request waits for its predecessor to arrive before it is taken in ahead
// of it: long enough for a crashed sender's lost episode to run again
// (its messages reappear after MessageVisibility).
func (e *Engine) entityReorderWait() time.Duration {
	return max(5*e.opts.MessageVisibility, time.Minute)
}

// unregisteredEntityRetry is how long a message for an entity that this
// app does not define stays hidden before it is looked at again.
const unregisteredEntityRetry = time.Minute

// entityOf returns the entity code for an entity instance ID whose name is
// registered here.
func (e *Engine) entityOf(instanceID string) (history.EntityID, replay.EntityFunc, bool) {
	id, ok := history.ParseEntityID(instanceID)
	if !ok {
		return history.EntityID{}, nil, false
	}
	fn, ok := replay.LookupEntity(e.opts.Registry, id.Name)
	return id, fn, ok
}

// entityConfirmations records the client requests an entity took in whose
// queue copies are confirmed deleted (written by background deletes), and
// remembers them for a while in this process: a queue message can be
// dequeued twice (its visibility ran out while it waited in memory), so a
// second copy may still be on its way here after the first was deleted.
// Another process's stale copy cannot be applied: that process no longer
// owns the partition, which it checks before every commit.
type entityConfirmations struct {
	mu      sync.Mutex
	deleted map[string]bool
	recent  map[string]time.Time // confirmed and no longer in the scheduler state, with when
}

func (c *entityConfirmations) add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted == nil {
		c.deleted = map[string]bool{}
	}
	c.deleted[id] = true
}

// take returns the confirmed IDs, which the scheduler state may forget:
// from now on they are remembered here, for keep.
func (c *entityConfirmations) take(now time.Time, keep time.Duration) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, at := range c.recent {
		if now.Sub(at) >= keep {
			delete(c.recent, id)
		}
	}
	d := c.deleted
	c.deleted = nil
	for id := range d {
		if c.recent == nil {
			c.recent = map[string]time.Time{}
		}
		c.recent[id] = now
	}
	return d
}

// seen reports whether id is a confirmed request remembered here.
func (c *entityConfirmations) seen(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.recent[id]
	return ok
}

// keepUnregisteredEntity handles messages for an entity whose name this
// app does not register (its code was removed, or another app of the hub
// defines it): they stay in the queue, hidden for a minute at a time, and
// are neither applied nor parked as poison; the first batch per entity
// and process is logged.
func (e *Engine) keepUnregisteredEntity(ctx context.Context, inst *instance, batch []*inbound) {
	if _, seen := e.unknownEntities.LoadOrStore(inst.id, true); !seen {
		e.log.Warn("messages for an entity this app does not define are kept in the queue, unapplied",
			"entity", inst.id, "messages", len(batch), "retryEvery", unregisteredEntityRetry)
	}
	for _, in := range batch {
		if in.internal() {
			continue
		}
		if in.ack == nil {
			e.dropped(in, "a message for an unregistered entity without a queue copy")
			continue
		}
		e.held.release(ctx, in.ack, unregisteredEntityRetry)
	}
}

// processEntity runs one batch of an entity: it takes in the batch's
// messages (see entitysched.go), runs the operations that may run now, in
// order, on the state of its current execution, grants a lock request
// that comes next, and commits all of it as a new execution: the new
// scheduler state, the responses to callers, the messages the operations
// sent, and the lock's forward or answer.
func (e *Engine) processEntity(ctx context.Context, inst *instance, batch []*inbound, id history.EntityID, fn replay.EntityFunc) {
	began := begin(e.metrics.episodeDuration)
	if inst.entityLoaded.IsZero() {
		inst.entityLoaded = now()
	}
	var state history.EntitySchedulerState
	if inst.start != nil {
		s, err := history.ParseEntitySchedulerState(inst.start.Input)
		if err != nil {
			// Never apply operations on a state we cannot read: the
			// messages wait, and the log says why.
			e.log.Error("the entity's scheduler state cannot be read; its messages wait", "entity", inst.id, "err", err)
			for _, in := range batch {
				e.retryLater(ctx, in, unregisteredEntityRetry)
			}
			inst.forget()
			return
		}
		state = s
	}
	t := now()
	step := entityStep{state: &state, now: t, loaded: inst.entityLoaded, reorderWait: e.entityReorderWait(),
		forgotten: inst.entityDone.seen}
	inputs, later := e.intakeEntity(ctx, inst, batch, &step)
	e.putBack(ctx, inst, later)
	if len(inputs) == 0 {
		return
	}
	ops, lock := step.work()
	// Copies of a message dequeued twice are processed within a few
	// visibility periods.
	step.prune(inst.entityDone.take(t, 3*e.opts.MessageVisibility+time.Minute))

	requests := make([]replay.EntityRequest, len(ops))
	for i, r := range ops {
		requests[i] = replay.EntityRequest{Operation: r.Operation, Input: r.Input, IsSignal: r.Signal, RequestID: r.ID}
	}
	var res replay.EntityBatchResult
	if len(requests) > 0 {
		res = fn(ctx, replay.EntityBatch{ID: id, State: state.State, HasState: state.Exists(), Requests: requests, Logger: e.opts.Logger})
		state.State = ""
		if res.HasState {
			state.State = res.State
			if state.State == "" {
				state.State = "null"
			}
		}
	}

	start := history.NewEvent(history.ExecutionStarted, t)
	start.Name, start.Version = inst.id, ""
	start.Instance = history.OrchestrationInstance{InstanceID: inst.id, ExecutionID: history.NewID()}
	self := history.OrchestrationInstance{InstanceID: inst.id, ExecutionID: start.Instance.ExecutionID}
	var control []controlSend
	fail := func(what string, err error) {
		e.abandonEpisode(ctx, inst, &checkpoint{inputs: inputs}, what, err)
	}
	for i, r := range res.Results {
		if r.IsSignal || ops[i].ParentInstanceID == "" {
			continue
		}
		c, err := entityResponse(self, ops[i], r, t)
		if err != nil {
			fail("could not build the response to an entity call", err)
			return
		}
		control = append(control, c)
	}
	spans, opTrace := entityOpSpans(inst.id, id, ops, res)
	for i, a := range res.Actions {
		var tc *history.TraceContext
		if opTrace != nil {
			if s, c, ok := entityActionSpan(inst.id, id, ops, opTrace, res, a); ok {
				spans, tc = append(spans, s), c
			}
		}
		var num *signalNumber
		if a.Kind == replay.EntitySignal && a.ScheduledTime.IsZero() {
			// Numbered in the order the batch sends them, from the
			// committed counter: the receiver applies them in this order.
			seq, pred, predAt := step.numberSignal(a.Target.String())
			num = &signalNumber{seq: seq, pred: pred, predAt: predAt}
		}
		c, err := entityActionMessage(self, a, int32(i), t, tc, num)
		if err != nil {
			fail("could not build a message an entity operation sends", err)
			return
		}
		control = append(control, c)
	}
	if lock != nil {
		c, err := e.grantLock(self, &step, *lock, t)
		if err != nil {
			fail("could not build the message that grants a lock", err)
			return
		}
		control = append(control, c)
	}

	input, err := state.Encode()
	if err != nil {
		fail("could not encode the entity's scheduler state", err)
		return
	}
	status, err := state.Status().Encode()
	if err != nil {
		fail("could not encode the entity's status", err)
		return
	}
	start.Input = input
	// The new execution's history as Durable Task writes it
	// (TaskEntityDispatcher.cs): OrchestratorStarted, ExecutionStarted,
	// OrchestratorCompleted.
	events := []history.Event{history.NewEvent(history.OrchestratorStarted, t), start, history.NewEvent(history.OrchestratorCompleted, t)}
	cp := checkpoint{executionID: start.Instance.ExecutionID, events: events, replaced: inst.executionID,
		inputs: inputs, row: rowNow, customStatus: status, episodes: 1, opened: time.Now(), control: control, spans: spans}
	cp.deleted = func(in *inbound) {
		// A client sends a request once, so once its copy is deleted its ID
		// can go. An entity's batch retried after a failed commit sends its
		// signals again under the same IDs: those IDs stay for the horizon.
		if r, err := history.DecodeEntityRequest(in.msg.Event); err == nil && r.ParentInstanceID == "" {
			inst.entityDone.add(r.ID)
		}
	}
	inst.closeExecutor()
	inst.start, inst.executionID = &start, start.Instance.ExecutionID
	inst.terminal, inst.completion, inst.unrun = false, nil, false
	e.count(func(s *Stats) { s.Episodes++ })
	outcome := "running"
	if !e.commit(ctx, inst, &cp) {
		outcome = outcomeAbandoned
	}
	e.metrics.episode(typeEntity, id.Name, outcome, began)
}

// intakeEntity takes in the batch's messages, in order (an orchestration's
// requests by their numbers): it returns those whose copies the commit
// deletes, and those to put back (out of order). Duplicates are deleted,
// early scheduled requests hidden until due, and messages that are not
// entity messages parked.
func (e *Engine) intakeEntity(ctx context.Context, inst *instance, batch []*inbound, step *entityStep) (inputs, later []*inbound) {
	reqs := make([]*history.EntityRequest, len(batch))
	errs := make([]error, len(batch))
	for i, in := range batch {
		ev := in.msg.Event
		if in.internal() || ev.Type != history.EventRaised || history.ClassifyEntityEvent(ev.Name) != history.EntityMessageRequest {
			continue
		}
		r, err := history.DecodeEntityRequest(ev)
		if err != nil {
			errs[i] = err
			continue
		}
		reqs[i] = &r
	}
	orderBatch(batch, reqs)
	for i, in := range batch {
		ev := in.msg.Event
		switch {
		case in.internal():
			continue
		case ev.Type != history.EventRaised:
			e.dropped(in, "an entity receives only entity messages (EventRaised)")
			e.removeHeld(in.ack)
			continue
		}
		switch history.ClassifyEntityEvent(ev.Name) {
		case history.EntityMessageRequest:
			if reqs[i] == nil {
				err := errs[i]
				if err == nil {
					err = fmt.Errorf("entity request %q could not be read", ev.Name)
				}
				e.giveUp(in, err.Error(), false)
				continue
			}
			r := *reqs[i]
			if !r.Due.IsZero() && r.Due.After(step.now) && in.ack != nil {
				// Delivered before it is due (the queue caps the delay): hide it again.
				e.held.release(ctx, in.ack, time.Until(r.Due))
				continue
			}
			verdict := step.takeRequest(r)
			if e.log.Enabled(ctx, slog.LevelDebug) {
				e.log.Debug("entity request", "entity", inst.id, "id", r.ID, "from", r.ParentInstanceID, "seq", r.Seq, "predSeq", r.PredSeq,
					"verdict", verdict.String(), "record", step.state.Senders[history.RequestSenderKey(&r)].Last)
			}
			switch verdict {
			case intakeTaken:
				inputs = append(inputs, in)
			case intakeDupPending:
				e.dropped(in, "a second copy of an entity request this batch takes in (request "+r.ID+")")
				inputs = append(inputs, in) // deleted once the batch is committed
			case intakeDup:
				e.dropped(in, "an entity request already taken in (request "+r.ID+")")
				if h := in.ack; h != nil {
					e.background(func(ctx context.Context) {
						// A client's request has one queue message: once
						// this copy deleted it, no other copy comes from
						// the queue. (A failed delete means another
						// dequeue holds it, still to come.)
						if e.held.removeOK(ctx, h) && r.ParentInstanceID == "" {
							inst.entityDone.add(r.ID)
						}
					})
				}
			case intakeWait:
				// Waiting for a predecessor is not a failure: it is
				// retried, never parked, until the reorder wait is over.
				in.wait("", false)
				later = append(later, in)
			}
		case history.EntityMessageRelease:
			r, err := history.DecodeEntityRelease(ev)
			if err != nil {
				e.giveUp(in, err.Error(), false)
				continue
			}
			if !step.takeRelease(r) {
				e.log.Debug("an entity ignores a release of a lock it does not hold for that holder",
					"entity", inst.id, "holder", r.ParentInstanceID, "lock", r.ID, "lockedBy", step.state.LockedBy)
			}
			inputs = append(inputs, in)
		case history.EntityMessageContinue:
			step.state.Suspended = false
			inputs = append(inputs, in)
		default:
			e.giveUp(in, fmt.Sprintf("event %q is not an entity message", ev.Name), false)
		}
	}
	return inputs, later
}

// grantLock gives the entity's lock to a lock request and returns the
// message that follows: the request forwarded to the next entity of its
// lock set, or the answer to the orchestration once the last lock is held.
func (e *Engine) grantLock(self history.OrchestrationInstance, step *entityStep, r history.EntityRequest, t time.Time) (controlSend, error) {
	forward, done := step.grant(r)
	if !done {
		ev, err := history.NewEntityRequestEvent(*forward, t)
		if err != nil {
			return controlSend{}, err
		}
		target := history.OrchestrationInstance{InstanceID: forward.LockSet[forward.Position].String()}
		return controlSend{msg: backend.Message{Event: ev, Target: target, Sender: self}}, nil
	}
	ev, err := history.NewEntityResponseEvent(r.ID, history.EntityResponse{Result: history.LockAcquisitionCompleted}, t)
	if err != nil {
		return controlSend{}, err
	}
	target := history.OrchestrationInstance{InstanceID: r.ParentInstanceID, ExecutionID: r.ParentExecutionID}
	return controlSend{msg: backend.Message{Event: ev, Target: target, Sender: self}}, nil
}

// entityResponse is the answer to a call: the operation's result, or its
// failure, raised on the calling orchestration's execution.
func entityResponse(self history.OrchestrationInstance, r history.EntityRequest, res replay.EntityOperationResult, t time.Time) (controlSend, error) {
	resp := history.EntityResponse{Result: res.Result}
	if f := res.Failure; f != nil {
		resp = history.EntityResponse{ErrorMessage: f.ErrorMessage, Failure: f}
		if resp.ErrorMessage == "" {
			resp.ErrorMessage = f.ErrorType
		}
		if resp.ErrorMessage == "" {
			resp.ErrorMessage = "entity operation failed"
		}
	}
	ev, err := history.NewEntityResponseEvent(r.ID, resp, t)
	if err != nil {
		return controlSend{}, err
	}
	target := history.OrchestrationInstance{InstanceID: r.ParentInstanceID, ExecutionID: r.ParentExecutionID}
	return controlSend{msg: backend.Message{Event: ev, Target: target, Sender: self}}, nil
}

// signalNumber is the numbering of an entity's signal to another entity
// (see entityStep.numberSignal).
type signalNumber struct {
	seq, pred int64
	predAt    time.Time
}

// entityActionMessage turns what an entity operation sends into the control
// message that carries it, with trace context tc (nil: none) and, for a
// signal, its number (nil: not numbered).
//
// A started orchestration is a fire-and-forget child of the entity, as
// Durable Task starts it (TaskEntityDispatcher.ProcessSendStartMessage):
// the entity is its parent (seq numbers the batch's messages), and the
// FireAndForget tag says no completion goes back to it.
func entityActionMessage(self history.OrchestrationInstance, a replay.EntityAction, seq int32, t time.Time, tc *history.TraceContext, num *signalNumber) (controlSend, error) {
	switch a.Kind {
	case replay.EntitySignal:
		r := history.EntityRequest{Operation: a.Operation, Signal: true, Input: a.Input, ID: a.RequestID,
			ParentInstanceID: self.InstanceID, ParentExecutionID: self.ExecutionID, Due: a.ScheduledTime, Timestamp: t}
		if num != nil {
			r.Seq, r.PredSeq, r.Predecessor = num.seq, num.pred, num.predAt
		}
		if err := r.SetTraceContext(tc); err != nil {
			return controlSend{}, err
		}
		ev, err := history.NewEntityRequestEvent(r, t)
		if err != nil {
			return controlSend{}, err
		}
		target := history.OrchestrationInstance{InstanceID: a.Target.String()}
		return controlSend{msg: backend.Message{Event: ev, Target: target, Sender: self}, at: a.ScheduledTime}, nil
	case replay.EntityStartOrchestration:
		ev := history.NewEvent(history.ExecutionStarted, t)
		ev.Name, ev.Input = a.Name, a.Input
		if a.Version != nil {
			ev.Version = *a.Version
		}
		// Deterministic: the batch run again after a crash sends the same start.
		ev.Instance = history.OrchestrationInstance{InstanceID: a.InstanceID, ExecutionID: derivedID(self.InstanceID+"/"+a.InstanceID, 0)}
		ev.ParentTraceContext = tc
		ev.Parent = &history.ParentInstance{Name: self.InstanceID, TaskScheduleID: seq, Instance: self}
		ev.Tags = map[string]string{history.TagFireAndForget: ""}
		return controlSend{msg: backend.Message{Event: ev, Target: ev.Instance, Sender: self}}, nil
	}
	return controlSend{}, fmt.Errorf("unknown entity action %s", a.Kind)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
