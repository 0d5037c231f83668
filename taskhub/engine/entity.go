package engine

import (
	"context"
	"fmt"
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

// entityConfirmations records the applied requests whose queue messages
// are confirmed deleted (written by background deletes).
type entityConfirmations struct {
	mu      sync.Mutex
	deleted map[string]bool
}

func (c *entityConfirmations) add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted == nil {
		c.deleted = map[string]bool{}
	}
	c.deleted[id] = true
}

// take returns the confirmed IDs and forgets them.
func (c *entityConfirmations) take() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.deleted
	c.deleted = nil
	return d
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

// processEntity runs one batch of an entity: the requests of the batch,
// in order, on the state of its current execution, committed as a new
// execution.
func (e *Engine) processEntity(ctx context.Context, inst *instance, batch []*inbound, id history.EntityID, fn replay.EntityFunc) {
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
	var (
		inputs   []*inbound
		requests []replay.EntityRequest
		senders  []history.EntityRequest
		seen     = map[string]bool{}
	)
	for _, in := range batch {
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
		case history.EntityMessageRelease, history.EntityMessageContinue:
			e.giveUp(in, fmt.Sprintf("entity message %q: locks are not supported yet", ev.Name), false)
			continue
		default:
			e.giveUp(in, fmt.Sprintf("event %q is not an entity message", ev.Name), false)
			continue
		}
		req, err := history.DecodeEntityRequest(ev)
		if err != nil {
			e.giveUp(in, err.Error(), false)
			continue
		}
		if !req.Signal || req.IsLockRequest() {
			e.giveUp(in, fmt.Sprintf("entity request %s: calls and locks are not supported yet", req.ID), false)
			continue
		}
		if _, applied := state.Applied[req.ID]; applied || seen[req.ID] {
			e.dropped(in, "an entity request already applied (request "+req.ID+")")
			e.removeHeld(in.ack)
			if applied && req.ParentInstanceID == "" {
				inst.entityDone.add(req.ID) // a client's request has one copy: this was it
			}
			continue
		}
		if !req.Due.IsZero() && req.Due.After(t) && in.ack != nil {
			// Delivered before it is due (the queue caps the delay): hide it again.
			e.held.release(ctx, in.ack, time.Until(req.Due))
			continue
		}
		seen[req.ID] = true
		inputs = append(inputs, in)
		senders = append(senders, req)
		requests = append(requests, replay.EntityRequest{Operation: req.Operation, Input: req.Input, IsSignal: true, RequestID: req.ID})
	}
	if len(requests) == 0 {
		return
	}
	res := fn(ctx, replay.EntityBatch{ID: id, State: state.State, HasState: state.Exists(), Requests: requests, Logger: e.opts.Logger})

	// The new scheduler state: the requests applied before whose deletes are
	// not confirmed (unless older than the horizon), and those of this batch.
	next := history.EntitySchedulerState{Sorter: state.Sorter, Applied: map[string]time.Time{}}
	if res.HasState {
		next.State = res.State
		if next.State == "" {
			next.State = "null"
		}
	}
	confirmed := inst.entityDone.take()
	for rid, at := range state.Applied {
		if !confirmed[rid] && t.Sub(maxTime(at, inst.entityLoaded)) < entityDedupHorizon {
			next.Applied[rid] = at
		}
	}
	for _, r := range requests {
		next.Applied[r.RequestID] = t
	}
	input, err := next.Encode()
	if err != nil {
		e.abandonEpisode(ctx, inst, &checkpoint{inputs: inputs}, "could not encode the entity's scheduler state", err)
		return
	}
	status, err := next.Status().Encode()
	if err != nil {
		e.abandonEpisode(ctx, inst, &checkpoint{inputs: inputs}, "could not encode the entity's status", err)
		return
	}

	start := history.NewEvent(history.ExecutionStarted, t)
	start.Name, start.Version, start.Input = inst.id, "", input
	start.Instance = history.OrchestrationInstance{InstanceID: inst.id, ExecutionID: history.NewID()}
	cp := checkpoint{executionID: start.Instance.ExecutionID, events: []history.Event{start}, replaced: inst.executionID,
		inputs: inputs, row: rowNow, customStatus: status, episodes: 1, opened: time.Now()}
	self := history.OrchestrationInstance{InstanceID: inst.id, ExecutionID: start.Instance.ExecutionID}
	for _, a := range res.Actions {
		c, err := entityActionMessage(self, a, t)
		if err != nil {
			e.abandonEpisode(ctx, inst, &checkpoint{inputs: inputs}, "could not build a message an entity operation sends", err)
			return
		}
		cp.control = append(cp.control, c)
	}
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
	e.commit(ctx, inst, &cp)
}

// entityActionMessage turns what an entity operation sends into the control
// message that carries it.
func entityActionMessage(self history.OrchestrationInstance, a replay.EntityAction, t time.Time) (controlSend, error) {
	switch a.Kind {
	case replay.EntitySignal:
		r := history.EntityRequest{Operation: a.Operation, Signal: true, Input: a.Input, ID: a.RequestID,
			ParentInstanceID: self.InstanceID, ParentExecutionID: self.ExecutionID, Due: a.ScheduledTime, Timestamp: t}
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
