package durabletest

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// Durable entities in a run: the entities given to New run their real
// code, one operation at a time per entity, in the order the messages
// arrive, with Durable Task's lock semantics: a lock request takes the
// entity's lock (then goes on to the next entity of its set, or answers
// the orchestration), and while an entity is locked only its holder's
// requests run; the others wait, in order, for the release.

// entityState is one entity of a run.
type entityState struct {
	id       history.EntityID
	state    string
	has      bool
	lockedBy string // the instance holding the lock; "" = none
	lockID   string // the ID of the lock request that holds it
	queue    []history.EntityRequest
}

// entityCall is a call or lock request an instance sent.
type entityCall struct {
	eventID int32
	target  history.EntityID
	req     history.EntityRequest
}

// entity returns the run's entity id, created empty on first use.
func (r *runner) entity(id history.EntityID) *entityState {
	if r.entities == nil {
		r.entities = map[string]*entityState{}
	}
	e := r.entities[id.String()]
	if e == nil {
		e = &entityState{id: id}
		r.entities[id.String()] = e
	}
	return e
}

// sendToEntity routes an EventSent action of instance in to its entity,
// as the engine does: a request (at its due time if scheduled) or a
// release.
func (r *runner) sendToEntity(in *instState, a history.Event) error {
	bad := func(err error) error {
		return fmt.Errorf("durabletest: instance %q (%s) sends the entity message %q (task %d) to %s: %w",
			in.id, in.start.Name, a.Name, a.EventID, a.InstanceID, err)
	}
	id, ok := history.ParseEntityID(a.InstanceID)
	if !ok {
		return bad(fmt.Errorf("%q is not an entity instance ID", a.InstanceID))
	}
	if err := id.Validate(); err != nil {
		return bad(err)
	}
	if _, ok := replay.LookupEntity(r.tr.defs, id.Name); !ok {
		return bad(fmt.Errorf("%w: no entity %q is given to New (known: %v)", ErrEntityNotRegistered, id.Name, r.tr.defs.EntityNames()))
	}
	raised := history.NewEvent(history.EventRaised, r.now)
	raised.Name, raised.Input = a.Name, a.Input
	switch history.ClassifyEntityEvent(a.Name) {
	case history.EntityMessageRequest:
		req, err := history.DecodeEntityRequest(raised)
		if err != nil {
			return bad(err)
		}
		at := r.now
		if req.Due.After(at) {
			at = req.Due
		}
		if !req.Signal {
			in.calls = append(in.calls, entityCall{eventID: a.EventID, target: id, req: req})
		}
		r.deliverToEntity(at, id, req)
	case history.EntityMessageRelease:
		rel, err := history.DecodeEntityRelease(raised)
		if err != nil {
			return bad(err)
		}
		r.schedule(r.now, item{fn: func() { r.entityRelease(id, rel) },
			what: fmt.Sprintf("the release of %s by instance %q", id, rel.ParentInstanceID)})
	default:
		return bad(fmt.Errorf("the harness knows no entity message of that name"))
	}
	return nil
}

// deliverToEntity queues req for entity id at time at.
func (r *runner) deliverToEntity(at time.Time, id history.EntityID, req history.EntityRequest) {
	what := fmt.Sprintf("the operation %q on %s", req.Operation, id)
	if req.IsLockRequest() {
		what = fmt.Sprintf("the lock request of instance %q at %s", req.ParentInstanceID, id)
	}
	r.schedule(at, item{fn: func() { r.entityRequest(id, req) }, what: what})
}

// entityRequest takes in one request: it runs (or takes the lock) at once
// unless another holder has the entity locked, in which case it waits.
func (r *runner) entityRequest(id history.EntityID, req history.EntityRequest) {
	e := r.entity(id)
	if e.lockedBy != "" && (req.IsLockRequest() || e.lockedBy != req.ParentInstanceID) {
		e.queue = append(e.queue, req)
		return
	}
	if req.IsLockRequest() {
		e.lockedBy, e.lockID = req.ParentInstanceID, req.ID
		if next := req.Position + 1; next < len(req.LockSet) {
			fwd := req
			fwd.Position = next
			r.deliverToEntity(r.now, req.LockSet[next], fwd)
			return
		}
		r.respond(req, history.EntityResponse{Result: history.LockAcquisitionCompleted})
		return
	}
	r.runOperation(e, req)
}

// entityRelease frees the lock if rel names its holder and lock request,
// then takes in the requests that waited, in order.
func (r *runner) entityRelease(id history.EntityID, rel history.EntityRelease) {
	e := r.entity(id)
	if e.lockedBy != rel.ParentInstanceID || e.lockID != rel.ID {
		return // not the current lock: a stale or a second release
	}
	e.lockedBy, e.lockID = "", ""
	waiting := e.queue
	e.queue = nil
	for _, req := range waiting {
		r.entityRequest(id, req) // what must still wait joins the queue again, in order
	}
}

// runOperation runs one operation on the entity's real code and sends its
// result to a caller and its messages on.
func (r *runner) runOperation(e *entityState, req history.EntityRequest) {
	fn, _ := replay.LookupEntity(r.tr.defs, e.id.Name) // checked when the message was sent
	var res replay.EntityBatchResult
	batch := replay.EntityBatch{ID: e.id, State: e.state, HasState: e.has, Logger: r.cfg.logger,
		Requests: []replay.EntityRequest{{Operation: req.Operation, Input: req.Input, IsSignal: req.Signal, RequestID: req.ID}}}
	if err := r.guard(fmt.Sprintf("entity %s operation %q", e.id, req.Operation), func() { res = fn(r.ctx, batch) }); err != nil {
		r.fail(err)
		return
	}
	if len(res.Results) != 1 {
		r.fail(fmt.Errorf("durabletest: entity %s returned %d results for one operation", e.id, len(res.Results)))
		return
	}
	e.state, e.has = res.State, res.HasState
	if out := res.Results[0]; !req.Signal {
		resp := history.EntityResponse{Result: out.Result}
		if out.Failure != nil {
			resp = history.EntityResponse{ErrorMessage: out.Failure.ErrorMessage, Failure: out.Failure}
		}
		r.respond(req, resp)
	}
	for _, a := range res.Actions {
		switch a.Kind {
		case replay.EntitySignal:
			sig := history.EntityRequest{Operation: a.Operation, Signal: true, Input: a.Input, ID: a.RequestID,
				ParentInstanceID: e.id.String(), Due: a.ScheduledTime}
			at := r.now
			if a.ScheduledTime.After(at) {
				at = a.ScheduledTime
			}
			if _, ok := replay.LookupEntity(r.tr.defs, a.Target.Name); !ok {
				r.fail(fmt.Errorf("durabletest: entity %s signals %q to %s: %w: no entity %q is given to New",
					e.id, a.Operation, a.Target, ErrEntityNotRegistered, a.Target.Name))
				return
			}
			r.deliverToEntity(at, a.Target, sig)
		case replay.EntityStartOrchestration:
			if old := r.instances[a.InstanceID]; old != nil && !old.done {
				continue // as the engine: a start of a running instance is dropped
			}
			start := history.NewEvent(history.ExecutionStarted, r.now)
			start.Name, start.Input = a.Name, a.Input
			if a.Version != nil {
				start.Version = *a.Version
			}
			start.Instance = history.OrchestrationInstance{InstanceID: a.InstanceID, ExecutionID: derivedID(a.InstanceID, 0)}
			r.newInstance(start, nil)
		}
	}
}

// respond raises the response to req on the execution that sent it.
func (r *runner) respond(req history.EntityRequest, resp history.EntityResponse) {
	if r.answered == nil {
		r.answered = map[string]bool{}
	}
	r.answered[req.ID] = true
	ev, err := history.NewEntityResponseEvent(req.ID, resp, r.now)
	if err != nil {
		r.fail(fmt.Errorf("durabletest: the response to request %s: %w", req.ID, err))
		return
	}
	r.schedule(r.now, item{target: req.ParentInstanceID, execution: req.ParentExecutionID, ev: ev,
		what: fmt.Sprintf("the response to request %s", req.ID)})
}

// entityWaits describes the entity calls and lock requests of instance
// in that no entity has answered, and what they wait behind.
func (r *runner) entityWaits(in *instState) []string {
	var out []string
	for _, c := range in.calls {
		if r.answered[c.req.ID] {
			continue
		}
		if !c.req.IsLockRequest() {
			s := fmt.Sprintf("entity operation %q on %s (task %d)", c.req.Operation, c.target, c.eventID)
			if e := r.entities[c.target.String()]; e != nil && e.lockedBy != "" && e.lockedBy != in.id {
				s += fmt.Sprintf(", queued behind the lock that instance %q holds", e.lockedBy)
			}
			out = append(out, s)
			continue
		}
		names := make([]string, len(c.req.LockSet))
		for i, id := range c.req.LockSet {
			names[i] = id.String()
		}
		s := fmt.Sprintf("the locks of %s (task %d)", strings.Join(names, ", "), c.eventID)
		for _, id := range c.req.LockSet {
			e := r.entities[id.String()]
			if e == nil {
				continue
			}
			for _, q := range e.queue {
				if q.ID == c.req.ID {
					s += fmt.Sprintf(", queued at %s, which instance %q holds locked", id, e.lockedBy)
				}
			}
		}
		out = append(out, s)
	}
	return out
}
