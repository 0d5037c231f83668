package engine

import (
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// checkpoint is what one episode, or a coalesced run of episodes, needs
// made durable. decide builds it without I/O; commit applies it in the
// crash-safe order (see the package comment).
type checkpoint struct {
	// executionID is the execution the events belong to.
	executionID string
	// from is the history position of events[0]; 0 for a new execution,
	// whose history replaces the old one.
	from   int
	events []history.Event
	// replaced is the execution a ContinueAsNew or rewind replaces: the
	// Instances row may still name it.
	replaced string
	// newAnchor: the execution changes (ContinueAsNew), so the anchor held
	// for the old one goes once history holds the new one.
	newAnchor bool
	oldAnchor *held
	// start is the start message the checkpoint begins an execution from;
	// it becomes the instance's recovery anchor.
	start *inbound
	// inputs are the inbound events the episodes applied: their queue
	// copies go once history holds them.
	inputs []*inbound
	// workItems are activity calls for any worker; local are those this
	// process runs itself (covered by the anchor instead of a message), of
	// which the first running already run (in a coalesced window).
	workItems []backend.Message
	local     []backend.Message
	running   int
	// control are timers, child starts and parent notices.
	control []controlSend
	// completion ends the execution, if it does.
	completion *history.Event
	// row says when the Instances row must follow history.
	row          rowChange
	customStatus string
	// episodes counts the episodes in the checkpoint; opened is when the
	// first of them was decided.
	episodes int
	opened   time.Time
	// spans are the spans of the steps the checkpoint records, emitted once
	// history holds it.
	spans []spanRecord
	// deleted, if set, is told of each input whose queue copy the commit
	// deleted (an entity forgets the request's ID then).
	deleted func(in *inbound)
}

// rowChange says when a checkpoint's Instances row is written.
type rowChange int

const (
	rowKeep     rowChange = iota // the row already says what history says
	rowDeferred                  // Pending→Running, custom status: after StatusFlushDelay
	rowNow                       // final status, suspend/resume, a new execution
)

// maxCheckpointEvents is the most history rows a coalesced checkpoint
// holds, so that it is one entity-group transaction with its sentinel.
const maxCheckpointEvents = 99

// maxCheckpointBytes bounds the payload a coalesced checkpoint carries
// (inputs and results), well inside a transaction's 4 MiB.
const maxCheckpointBytes = 1 << 20

// decide runs the orchestrator on the plan's events and returns the
// checkpoint they call for. It does no I/O: it changes only the instance's
// in-memory execution state (executor, current start) and reserves local
// activity slots, which an abandoned checkpoint gives back (see unreserve).
func (e *Engine) decide(inst *instance, plan batchPlan) checkpoint {
	cp := checkpoint{from: inst.historyLen, opened: time.Now(), episodes: 1}
	if w := inst.window; w != nil {
		cp.from = w.from + len(w.events)
	}
	var inputs []history.Event
	if plan.start != nil {
		start := plan.start.msg.Event
		if start.Instance.InstanceID == "" {
			start.Instance.InstanceID = inst.id
		}
		if start.Instance.ExecutionID == "" {
			start.Instance.ExecutionID = plan.start.msg.Target.ExecutionID
		}
		stampStart(&start, now())
		inst.closeExecutor()
		inst.start = &start
		inst.executionID = start.Instance.ExecutionID
		inst.traced, inst.tracedCalls, inst.tracedEarly = nil, nil, nil
		inst.terminal, inst.completion, inst.unrun = false, nil, false
		inst.episodes = 0
		inst.outstanding = map[int32]history.Event{}
		inst.ex = e.newExecutor(inst, start.Name)
		// A new execution overwrites history from row 0 (an unrun one its
		// lone ExecutionStarted, with the same event in its first episode).
		cp.from = 0
		if !plan.start.recorded {
			cp.start = plan.start
		}
		inputs = append(inputs, start)
	}
	for _, in := range plan.apply {
		inputs = append(inputs, in.msg.Event)
		cp.inputs = append(cp.inputs, in)
	}
	cp.inputs = append(cp.inputs, plan.copies...) // deleted with the events they copy
	events, actions, err := inst.ex.Step(now, inputs)
	if err != nil {
		e.log.Error("orchestration failed its determinism check", "instance", inst.id, "err", err)
	}
	e.traceStep(inst, &cp, events, actions)
	// ContinueAsNew: the new execution starts in this same episode, and its
	// history replaces the old one from row 0; unless its version is one
	// this worker rejects: then it is recorded unrun (deferContinuation).
	for hops := 0; ; hops++ {
		c := findCompletion(actions)
		if c == nil || c.Type != history.ContinueAsNew || hops >= 100 {
			break
		}
		if cp.replaced == "" {
			cp.replaced, cp.newAnchor = inst.executionID, true
		}
		carry := inst.ex.CarryOver()
		start := *inst.start
		start.Timestamp = now()
		// Derived, not random: if this checkpoint is lost in a crash, the
		// episode run again continues into the same execution, so that the
		// messages its first episode sent (child starts, entity requests,
		// named after the execution) are the same messages.
		start.Instance.ExecutionID = derivedID(inst.executionID, -1)
		start.Input = c.Result
		start.Version = c.Version // the current one, or durable.WithNewVersion's
		start.Generation = nil
		start.ParentTraceContext = continuedTrace(start.ParentTraceContext)
		stampStart(&start, start.Timestamp)
		inst.closeExecutor()
		inst.start, inst.executionID, inst.traced, inst.tracedCalls, inst.tracedEarly = &start, start.Instance.ExecutionID, nil, nil, nil
		inst.outstanding, inst.local, inst.episodes = map[int32]history.Event{}, nil, 0
		cp.from = 0
		if mm := e.rejects(start.Version); mm != nil {
			events, actions = e.deferContinuation(inst, &cp, carry, mm), nil
			break
		}
		inst.ex = e.newExecutor(inst, start.Name)
		if events, actions, err = inst.ex.Step(now, append([]history.Event{start}, carry...)); err != nil {
			e.log.Error("orchestration failed its determinism check", "instance", inst.id, "err", err)
		}
		e.traceStep(inst, &cp, events, actions)
	}
	inst.episodes++
	e.count(func(s *Stats) { s.Episodes++ })
	cp.executionID = inst.executionID
	cp.events = events
	cp.completion = findCompletion(actions)
	if inst.ex != nil {
		cp.customStatus = inst.ex.CustomStatus()
	}
	e.route(inst, &cp, actions)
	live := e.liveStatus(inst)
	switch {
	case cp.completion != nil, cp.replaced != "", inst.row == nil,
		inst.row.Status != live && inst.row.Status != history.StatusPending:
		cp.row = rowNow
	case inst.row.Status != live || inst.row.CustomStatus != cp.customStatus:
		cp.row = rowDeferred
	}
	return cp
}

// route turns an episode's actions into the messages the checkpoint sends:
//   - an activity runs in this process when the runner has room: it gets no
//     work-item message, the instance's anchor covers it instead; otherwise
//     a visible work item lets any worker run it;
//   - a timer is a TimerFired message to the instance's own control queue,
//     hidden until it is due;
//   - a sub-orchestration is an ExecutionStarted message to the child;
//   - an entity request or release (EventSent) is an EventRaised to the
//     entity;
//   - the completion of a sub-orchestration notifies its parent.
func (e *Engine) route(inst *instance, cp *checkpoint, actions []history.Event) {
	self := history.OrchestrationInstance{InstanceID: inst.id, ExecutionID: inst.executionID}
	for _, a := range actions {
		switch a.Type {
		case history.TaskScheduled:
			msg := backend.Message{Event: a, Target: self, Sender: self, Episode: inst.episodes}
			if inst.start != nil {
				msg.OrchestrationTags = inst.start.Tags
			}
			if !e.isDraining() && e.acts.reserve() {
				cp.local = append(cp.local, msg)
			} else {
				e.noteLeftWork() // while draining: for another worker
				cp.workItems = append(cp.workItems, msg)
			}
		case history.TimerCreated:
			fired := history.NewEvent(history.TimerFired, a.Timestamp)
			fired.TimerID, fired.FireAt = a.EventID, a.FireAt
			cp.control = append(cp.control, controlSend{msg: backend.Message{Event: fired, Target: self, Sender: self}, at: a.FireAt, timer: true})
		case history.SubOrchestrationInstanceCreated:
			child := history.NewEvent(history.ExecutionStarted, now())
			child.Name, child.Version, child.Input = a.Name, a.Version, a.Input
			// Deterministic: a replayed parent re-sends the very same start.
			child.Instance = history.OrchestrationInstance{InstanceID: a.InstanceID, ExecutionID: derivedID(inst.executionID, a.EventID)}
			child.Parent = &history.ParentInstance{Name: inst.startName(), TaskScheduleID: a.EventID, Instance: self}
			child.ParentTraceContext = childTrace(inst, &a)
			if inst.start != nil {
				child.Parent.Version = inst.start.Version // as Durable Task records it
			}
			cp.control = append(cp.control, controlSend{msg: backend.Message{Event: child, Target: child.Instance, Sender: self}})
		case history.EventSent:
			// An entity request or lock release: an EventRaised of the
			// same name and content, to the entity; a scheduled signal is
			// hidden until it is due.
			raised := history.NewEvent(history.EventRaised, a.Timestamp)
			raised.Name, raised.Input = a.Name, a.Input
			var at time.Time
			if due, ok := history.ParseEntityScheduledRequestEventName(a.Name); ok {
				at = due
			}
			target := history.OrchestrationInstance{InstanceID: a.InstanceID}
			cp.control = append(cp.control, controlSend{msg: backend.Message{Event: raised, Target: target, Sender: self}, at: at})
		case history.ExecutionCompleted:
			if p := inst.parent(); p != nil && !fireAndForget(inst.start) {
				cp.control = append(cp.control, controlSend{msg: backend.Message{Event: replay.ParentNotice(p, a, now()), Target: p.Instance, Sender: self}})
			}
		}
	}
}

// unreserve gives back the local activity slots a checkpoint reserved and did
// not start.
func (e *Engine) unreserve(cp *checkpoint) {
	for range cp.local[cp.running:] {
		e.acts.unreserve()
	}
	cp.local = cp.local[:cp.running]
}

// coalescible reports whether cp may stay uncommitted, in the instance's
// window: nothing leaves the process, the execution goes on, the window is
// within its latency budget, its inputs have no queue copies to delete
// (results of activities run here), and the next input is expected from this
// process: cp starts activities here, or activities it has not received
// the results of still run here (a fan-out's results are coalesced while
// the rest of the fan-out runs).
func (e *Engine) coalescible(inst *instance, cp *checkpoint) bool {
	if e.opts.CoalesceBudget <= 0 || len(cp.workItems) > 0 || len(cp.control) > 0 || cp.completion != nil ||
		cp.replaced != "" || e.isDraining() || time.Since(cp.opened) >= e.opts.CoalesceBudget {
		return false
	}
	for _, in := range cp.inputs {
		if in.ack != nil {
			// It has a queue copy (a raised event, a work item's result):
			// commit at once, so that the copy can go.
			return false
		}
	}
	if len(cp.local) > cp.running {
		return true
	}
	answered := map[int32]bool{}
	for _, in := range cp.inputs {
		if ev := in.msg.Event; ev.Type == history.TaskCompleted || ev.Type == history.TaskFailed {
			answered[ev.TaskScheduledID] = true
		}
	}
	for id := range inst.local {
		if !answered[id] {
			return true
		}
	}
	return false
}

// fits reports whether next can join the window w in one transaction.
func (w *checkpoint) fits(next *checkpoint) bool {
	if next.from != w.from+len(w.events) || next.executionID != w.executionID || next.replaced != "" ||
		len(w.events)+len(next.events) > maxCheckpointEvents {
		return false
	}
	return payloadBytes(w.events)+payloadBytes(next.events) <= maxCheckpointBytes
}

// merge appends next to the window w: one checkpoint for both.
func (w *checkpoint) merge(next checkpoint) checkpoint {
	m := *w
	m.events = append(append([]history.Event(nil), w.events...), next.events...)
	m.inputs = append(append([]*inbound(nil), w.inputs...), next.inputs...)
	m.local = append(append([]backend.Message(nil), w.local...), next.local...)
	m.workItems = append(append([]backend.Message(nil), w.workItems...), next.workItems...)
	m.control = append(append([]controlSend(nil), w.control...), next.control...)
	m.spans = append(append([]spanRecord(nil), w.spans...), next.spans...)
	m.completion, m.customStatus = next.completion, next.customStatus
	m.row = max(w.row, next.row)
	m.episodes += next.episodes
	return m
}

// scheduledIn returns the activity calls the checkpoint's events schedule.
func (cp *checkpoint) scheduledIn() map[int32]bool {
	ids := map[int32]bool{}
	for _, ev := range cp.events {
		if ev.Type == history.TaskScheduled {
			ids[ev.EventID] = true
		}
	}
	return ids
}

// eachReturned calls f for each input (and the start) of an abandoned
// checkpoint that must come back, leaving out the results of calls the
// checkpoint itself scheduled: history does not record those calls, so
// they run again.
func (cp *checkpoint) eachReturned(f func(in *inbound)) {
	void := cp.scheduledIn()
	for _, in := range append(cp.inputs[:len(cp.inputs):len(cp.inputs)], cp.start) {
		if in == nil || in.local && void[in.msg.Event.TaskScheduledID] {
			continue
		}
		f(in)
	}
}

// payloadBytes estimates the payload events carry.
func payloadBytes(events []history.Event) int {
	n := 0
	for i := range events {
		ev := &events[i]
		n += len(ev.Input) + len(ev.Result) + len(ev.Data) + len(ev.Reason) + 256
		if ev.Failure != nil {
			n += len(ev.Failure.ErrorMessage) + len(ev.Failure.StackTrace)
		}
	}
	return n
}

func findCompletion(actions []history.Event) *history.Event {
	for i := range actions {
		if actions[i].Type.EndsExecution() {
			return &actions[i]
		}
	}
	return nil
}
