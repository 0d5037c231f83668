package durable

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Entities seen from an orchestration: signals, calls and critical
// sections. Every message is an EventSent action addressed to the entity's
// instance ID ("@name@key"); the engine delivers it as an EventRaised of
// the same name and input. Answers come back as EventRaised events named
// after the request's ID (history.EntityResponseEventName). The rules of
// critical sections are Durable Task's (OrchestrationEntityContext.cs).

// entityBook is the entity state of one execution. Replay rebuilds it
// exactly, because the code produces the same requests again and the same
// responses are applied in the same order.
type entityBook struct {
	lastLabel map[string]time.Time   // per target instance ID: the Timestamp of the last unscheduled request
	lastSeq   map[string]int64       // per target instance ID: the Seq of the last unscheduled request
	waiting   map[string]*entityWait // requests awaiting their response, by request ID
	answered  map[string]bool        // request IDs whose response was applied (a second copy is dropped)
	// early are responses that came before their request was made: a
	// lost episode's request was answered, and the episode runs again.
	early   map[string]history.Event
	section *CriticalSection // the critical section the code is in; nil outside
}

// entityWait is a call or lock request waiting for its response.
type entityWait struct {
	t       *task
	target  EntityID
	section *CriticalSection // the critical section a call was made in; nil outside one
	lock    bool
}

// LockingRulesError reports a use of entities that breaks the rules of
// critical sections (Durable Functions' LockingRulesViolation): no
// critical section inside another; inside one, calls only to the locked
// entities and only one at a time to each, no signals to a locked entity,
// and no sub-orchestrations. Nothing is sent for the offending call.
type LockingRulesError struct {
	// Op is the call that broke the rule, e.g. `CallEntity "add"`.
	Op string
	// Entity is the entity the call addressed; zero when the rule is not
	// about one (a nested LockEntities, a sub-orchestration).
	Entity EntityID
	// Locked are the entities of the critical section the code was in.
	Locked []EntityID
	// Rule says which rule was broken.
	Rule string
}

// Error implements error.
func (e *LockingRulesError) Error() string {
	var b strings.Builder
	b.WriteString("durable: locking rules violation: ")
	b.WriteString(e.Op)
	if e.Entity != (EntityID{}) {
		b.WriteString(" on ")
		b.WriteString(e.Entity.String())
	}
	b.WriteString(": ")
	b.WriteString(e.Rule)
	if len(e.Locked) > 0 {
		b.WriteString(" (the critical section holds ")
		for i, id := range e.Locked {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(id.String())
		}
		b.WriteString(")")
	}
	return b.String()
}

// ErrorType implements the ErrorType convention: an orchestrator that
// returns the error fails with Durable Functions' type name.
func (e *LockingRulesError) ErrorType() string { return "LockingRulesViolation" }

// CriticalSection is a set of entities an orchestration holds locked
// (LockEntities): no other orchestration's operations run on them until it
// is released. Inside it the orchestration may call the locked entities,
// one call at a time per entity.
type CriticalSection struct {
	ex        *executor
	id        string     // the lock request's ID, named in the releases
	locks     []EntityID // sorted, distinct
	available map[EntityID]bool
	released  bool
}

// Entities returns the locked entities, in lock order (EntityID.Compare).
func (s *CriticalSection) Entities() []EntityID { return slices.Clone(s.locks) }

// Release ends the critical section: it sends a release to every locked
// entity. A second Release does nothing. Locks still held when the
// orchestrator returns (with a result, an error, a panic or ContinueAsNew)
// are released then, just before the completion; a terminated
// orchestration releases nothing (cleaning entity storage frees its locks).
// Calls still in flight keep their tasks: their responses still complete
// them.
func (s *CriticalSection) Release() {
	if s.released {
		return
	}
	s.released = true
	e := s.ex
	if e.ent.section == s {
		e.ent.section = nil
	}
	if e.completion != nil {
		return // nothing can be sent any more
	}
	for _, id := range s.locks {
		raised, err := history.NewEntityReleaseEvent(history.EntityRelease{ParentInstanceID: e.ctx.instanceID, ID: s.id}, e.ctx.currentTime)
		if err != nil {
			panic(fmt.Sprintf("durable: encoding a release: %v", err)) // two strings always encode
		}
		e.send(e.nextID, id, raised)
	}
}

// InCriticalSection reports whether the orchestration holds entity locks
// taken with LockEntities and not yet released.
func (c *Context) InCriticalSection() bool { return c.ex.ent.section != nil }

// SignalEntity sends operation op with input (encoded as JSON; nil for
// none) to the entity id, one-way: the orchestration does not wait and
// learns nothing of the outcome. Signals from one orchestration to one
// entity run in the order they were sent. It returns an error, and sends
// nothing, for an invalid id, an empty op, an input that cannot be
// encoded, or a *LockingRulesError (a signal to an entity the critical
// section holds).
func (c *Context) SignalEntity(id EntityID, op string, input any) error {
	return c.signalEntity(id, op, input, time.Time{})
}

// SignalEntityAt is SignalEntity with the operation run at time at (taken
// at the precision history stores). A time not after CurrentTime signals
// at once. A scheduled signal does not take part in the ordering of the
// orchestration's other messages to the entity.
func (c *Context) SignalEntityAt(id EntityID, op string, input any, at time.Time) error {
	return c.signalEntity(id, op, input, history.StorageTime(at))
}

func (c *Context) signalEntity(id EntityID, op string, input any, at time.Time) error {
	id = history.NewEntityID(id.Name, id.Key)
	in, err := c.checkEntityOp("SignalEntity", id, op, input, true)
	if err != nil {
		return err
	}
	req := history.EntityRequest{Operation: op, Signal: true, Input: in}
	if at.After(c.currentTime) {
		req.Due = at
	}
	_, _, err = c.ex.sendRequest(id, req)
	return err
}

// CallEntity sends operation op with input (encoded as JSON; nil for none)
// to the entity id and returns a task for the operation's result, decoded
// into Out. A failed operation is a *TaskFailedError of Kind "entity"
// carrying the entity's failure details, so errors.Is and errors.As match
// the entity's error as they match an activity's. Inside a critical
// section only the locked entities may be called, one call at a time per
// entity. An invalid id, an empty op, an input that cannot be encoded or a
// *LockingRulesError gives a task that has already failed, and nothing is
// sent.
func CallEntity[Out any](ctx *Context, id EntityID, op string, input any) *Task[Out] {
	return &Task[Out]{ctx: ctx, t: ctx.callEntity(id, op, input)}
}

func (c *Context) callEntity(id EntityID, op string, input any) *task {
	id = history.NewEntityID(id.Name, id.Key)
	name := fmt.Sprintf("%q on %s", op, id)
	t := &task{id: -1, kind: "entity", name: name, resultOf: "entity operation " + name}
	in, err := c.checkEntityOp("CallEntity", id, op, input, false)
	if err != nil {
		c.ex.completeTask(t, "", err)
		return t
	}
	eventID, reqID, err := c.ex.sendRequest(id, history.EntityRequest{Operation: op, Input: in})
	if err != nil {
		c.ex.completeTask(t, "", err)
		return t
	}
	t.id = eventID
	w := &entityWait{t: t, target: id}
	if s := c.ex.ent.section; s != nil {
		s.available[id] = false // until the response arrives
		w.section = s
	}
	c.ex.waitResponse(reqID, w)
	return t
}

// checkEntityOp validates a signal or call and returns its input as JSON.
func (c *Context) checkEntityOp(kind string, id EntityID, op string, input any, oneWay bool) (string, error) {
	if err := id.Validate(); err != nil {
		return "", fmt.Errorf("durable: %s %q: %w", kind, op, err)
	}
	if op == "" {
		return "", fmt.Errorf("durable: %s to %s: the operation name is empty", kind, id)
	}
	if s := c.ex.ent.section; s != nil {
		rule := &LockingRulesError{Op: fmt.Sprintf("%s %q", kind, op), Entity: id, Locked: slices.Clone(s.locks)}
		_, held := s.available[id]
		switch {
		case oneWay && held:
			rule.Rule = "must not signal a locked entity from a critical section"
			return "", rule
		case !oneWay && !held:
			rule.Rule = "must not call an entity from a critical section if it is not one of the locked entities"
			return "", rule
		case !oneWay && !s.available[id]:
			rule.Rule = "must not call an entity from a critical section while a prior call to the same entity is still pending"
			return "", rule
		}
	}
	if input == nil {
		return "", nil
	}
	in, err := encodeJSON(input)
	if err != nil {
		return "", fmt.Errorf("durable: %s %q on %s: input: %w", kind, op, id, err)
	}
	return in, nil
}

// LockEntities enters a critical section over the entities ids: it asks
// for their locks, in the global order of EntityID.Compare (so that two
// orchestrations locking overlapping sets cannot deadlock), and waits like
// Await until all are held. Duplicates are ignored. Release the section
// with Release (or return: the orchestrator's end releases it). It fails
// for no ids, an invalid id, or inside another critical section (a
// *LockingRulesError); nothing is sent then.
//
//	cs, err := ctx.LockEntities(from, to)
//	if err != nil {
//		return err
//	}
//	defer cs.Release()
func (c *Context) LockEntities(ids ...EntityID) (*CriticalSection, error) {
	if s := c.ex.ent.section; s != nil {
		return nil, &LockingRulesError{Op: "LockEntities", Locked: slices.Clone(s.locks),
			Rule: "must not enter another critical section from within a critical section"}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("durable: LockEntities needs at least one entity")
	}
	set := make([]EntityID, 0, len(ids))
	for i, id := range ids {
		id = history.NewEntityID(id.Name, id.Key)
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("durable: LockEntities: entity %d: %w", i, err)
		}
		set = append(set, id)
	}
	slices.SortFunc(set, EntityID.Compare)
	set = slices.Compact(set)
	eventID, reqID, err := c.ex.sendRequest(set[0], history.EntityRequest{LockSet: set})
	if err != nil {
		return nil, err
	}
	cs := &CriticalSection{ex: c.ex, id: reqID, locks: set, available: make(map[EntityID]bool, len(set))}
	name := "lock of " + entityList(set)
	t := &task{id: eventID, kind: "entity", name: name, resultOf: name}
	c.ex.waitResponse(reqID, &entityWait{t: t, target: set[0], lock: true})
	c.ex.ent.section = cs
	c.waitUntil(func() bool { return t.done })
	if t.err == nil && t.result != history.LockAcquisitionCompleted {
		t.err = fmt.Errorf("durable: the %s got the answer %q instead of %q", name, t.result, history.LockAcquisitionCompleted)
	}
	if t.err != nil {
		cs.Release() // frees the locks that were granted
		return nil, t.err
	}
	for _, id := range set {
		cs.available[id] = true
	}
	return cs, nil
}

func entityList(ids []EntityID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return strings.Join(s, ", ")
}

// sendRequest records an EventSent action carrying req to the entity
// target and returns its event ID and the request's ID. It fills in the
// sender (this execution), the request ID, and for an unscheduled request
// Durable Task's ordering labels and our sequence numbers.
func (e *executor) sendRequest(target EntityID, req history.EntityRequest) (eventID int32, requestID string, err error) {
	if e.completion != nil {
		return 0, "", fmt.Errorf("durable: orchestration has already completed")
	}
	eventID = e.nextID
	// Derived from the execution and the action's position, not from the
	// episode's time: a lost episode run again sends the same request ID.
	requestID = uuidV5(guidNamespace, e.ctx.instanceID+"_"+e.ctx.executionID+"_"+strconv.Itoa(int(eventID)))
	req.ID = requestID
	req.ParentInstanceID, req.ParentExecutionID = e.ctx.instanceID, e.ctx.executionID
	key := target.String()
	now := e.ctx.currentTime
	var label time.Time
	if req.Due.IsZero() {
		// MessageSorter.LabelOutgoingMessage: a timestamp after the
		// previous one to the same entity, which it names.
		label = now
		if last, ok := e.ent.lastLabel[key]; ok {
			req.Predecessor = last
			if !label.After(last) {
				label = last.Add(100 * time.Nanosecond) // one .NET tick
			}
		}
		req.Timestamp = label
		req.Seq = int64(eventID) + 1
		req.PredSeq = e.ent.lastSeq[key]
	}
	raised, err := history.NewEntityRequestEvent(req, now)
	if err != nil {
		return 0, "", fmt.Errorf("durable: request to %s: %w", target, err)
	}
	if req.Due.IsZero() {
		if e.ent.lastLabel == nil {
			e.ent.lastLabel, e.ent.lastSeq = map[string]time.Time{}, map[string]int64{}
		}
		e.ent.lastLabel[key], e.ent.lastSeq[key] = label, req.Seq
	}
	e.send(eventID, target, raised)
	return eventID, requestID, nil
}

// send records the EventSent action that delivers raised (an EventRaised)
// to the entity target, with event ID id (the next one).
func (e *executor) send(id int32, target EntityID, raised history.Event) {
	ev := history.NewEvent(history.EventSent, e.ctx.currentTime)
	ev.EventID = id
	e.nextID = id + 1
	ev.InstanceID, ev.Name, ev.Input = target.String(), raised.Name, raised.Input
	e.pending = append(e.pending, ev)
}

// waitResponse registers w for the response to requestID, and applies the
// response at once if it came early.
func (e *executor) waitResponse(requestID string, w *entityWait) {
	b := &e.ent
	if b.waiting == nil {
		b.waiting = map[string]*entityWait{}
	}
	b.waiting[requestID] = w
	if ev, ok := b.early[requestID]; ok {
		delete(b.early, requestID)
		e.entityResponse(ev)
	}
}

// entityResponse applies ev if it is the response to one of the
// orchestration's entity requests, and reports whether ev was an entity
// response (applied, or dropped as a second copy or as a response to no
// request of this execution), so that it reaches no event wait or buffer.
func (e *executor) entityResponse(ev history.Event) bool {
	k := eventKey(ev.Name)
	w := e.ent.waiting[k]
	if w == nil {
		if e.ent.answered[k] {
			e.debug("dropping a second copy of an entity response", "requestId", k)
			return true
		}
		if looksLikeEntityResponse(k, ev.Input) {
			// The answer to a request this execution has not made (yet):
			// a crash lost the episode that sent it after the request went
			// out, and the episode runs again. Its request ID is derived
			// from the execution and the action's position, so the
			// request made again takes this response; the entity does not
			// answer the copy.
			if b := &e.ent; b.early == nil {
				b.early = map[string]history.Event{}
			}
			e.ent.early[k] = ev
			return true
		}
		return false
	}
	delete(e.ent.waiting, k)
	if e.ent.answered == nil {
		e.ent.answered = map[string]bool{}
	}
	e.ent.answered[k] = true
	if w.section != nil && w.section == e.ent.section {
		w.section.available[w.target] = true // the entity may be called again
	}
	r, err := history.DecodeEntityResponse(ev)
	switch {
	case err != nil:
		e.completeTask(w.t, "", fmt.Errorf("durable: the response to %s cannot be read: %w", w.t.resultOf, err))
	case r.IsError():
		fd := FailureDetails{ErrorType: "EntityOperationFailed", ErrorMessage: r.ErrorMessage}
		if r.Failure != nil {
			fd = *r.Failure
		}
		e.completeTask(w.t, "", &TaskFailedError{Kind: "entity", TaskName: w.t.name, TaskID: w.t.id, Failure: fd})
	default:
		e.completeTask(w.t, r.Result, nil)
	}
	return true
}

// looksLikeEntityResponse reports whether an event named name (lowercased)
// with this input is an entity response: named by a request ID (a
// lowercase, hyphenated GUID) and carrying a response message. Such names
// are reserved: an orchestration does not see them as external events.
func looksLikeEntityResponse(name, input string) bool {
	if len(name) != 36 {
		return false
	}
	for i, r := range name {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return false
			}
		}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(input), &m) != nil {
		return false
	}
	_, result := m["result"]
	_, failed := m["exceptionType"]
	_, details := m["failureDetails"]
	return result || failed || details
}

// debug logs a line about the executor's own decisions, outside replay.
func (e *executor) debug(msg string, args ...any) {
	if e.logger == nil || e.ctx.replaying {
		return
	}
	e.logger.Debug(msg, append(args, "instanceId", e.ctx.instanceID)...)
}
