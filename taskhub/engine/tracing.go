package engine

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-durable/durablefunctions/internal/spanid"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/dtrace"
)

// Distributed tracing in Durable Task's shape. An execution is traced when
// its ExecutionStarted carries a trace context (the client's
// create_orchestration span, or the parent's sub-orchestration client
// span). The spans of recorded steps (the execution, activity calls,
// sub-orchestration calls, timers) are built from history: their times are
// the events' timestamps and their span IDs derive from the execution ID and
// the event ID (internal/spanid), so every episode, in whichever process,
// agrees on them. decide collects them in the checkpoint; commit emits them
// once history holds it, so a replay, an abandoned checkpoint or a re-run of
// a lost episode never emits a span (twice).

// Kinds of derived span IDs.
const (
	spanOrchestration = "orchestration"
	spanActivity      = "activity"
	spanSubCall       = "suborchestration"
	spanTimer         = "timer"
	// An orchestration's entity call or signal (by its EventSent), an
	// entity operation (by its request ID), and an entity's signal or
	// orchestration start (by its request ID).
	spanEntityRequest = "entity"
	spanEntityOp      = "entityop"
	spanEntitySignal  = "entitysignal"
	spanEntityStart   = "entitystart"
)

// spanRecord is a span of a recorded step, emitted after its commit.
type spanRecord struct {
	name       string
	kind       trace.SpanKind
	parent     trace.SpanContext
	id         trace.SpanID
	start, end time.Time
	typ        string
	taskName   string
	version    string
	instanceID string
	execution  string
	taskID     int32 // -1: none
	status     string
	fireAt     time.Time
	failed     bool
	reason     string
	completed  bool                 // status Ok (Durable Task sets it on entity operations)
	extra      []attribute.KeyValue // further attributes (entity spans)
}

// execTrace is the trace of the instance's current execution: its parent
// and its own span. ok=false when the execution is not traced.
func execTrace(inst *instance) (parent trace.SpanContext, self trace.SpanContext, ok bool) {
	if inst.start == nil || inst.start.ParentTraceContext == nil {
		return parent, self, false
	}
	c := inst.start.ParentTraceContext
	parent, err := dtrace.Parse(c)
	if err != nil {
		return parent, self, false
	}
	id, valid := dtrace.SpanID(c.SpanID)
	if !valid {
		id = spanid.Derive(inst.executionID, spanOrchestration, -1)
	}
	return parent, parent.WithSpanID(id).WithRemote(false), true
}

// stampStart gives a traced ExecutionStarted its execution span (ID, span
// ID, start time), as Durable Task records it on the first episode; the
// event is changed only through a new TraceContext, so that copies of the
// start message are left alone.
func stampStart(start *history.Event, at time.Time) {
	c := start.ParentTraceContext
	if c == nil || c.SpanID != "" {
		return
	}
	parent, err := dtrace.Parse(c)
	if err != nil {
		return
	}
	id := spanid.Derive(start.Instance.ExecutionID, spanOrchestration, -1)
	nc := &history.TraceContext{TraceParent: c.TraceParent, TraceState: c.TraceState, ID: dtrace.TraceParent(parent, id), SpanID: id.String()}
	t := history.StorageTime(at)
	nc.ActivityStartTime = &t
	start.ParentTraceContext = nc
}

// continuedTrace is the trace context of the execution a ContinueAsNew
// starts: the same parent (Durable Task keeps the trace unless asked for a
// new one), without the old execution's own span.
func continuedTrace(c *history.TraceContext) *history.TraceContext {
	if c == nil {
		return nil
	}
	return &history.TraceContext{TraceParent: c.TraceParent, TraceState: c.TraceState}
}

// traceStep stamps the trace contexts of an episode's new scheduling
// events (in its history events and in its actions alike) and collects
// the spans of the steps it completes into cp.
func (e *Engine) traceStep(inst *instance, cp *checkpoint, events, actions []history.Event) {
	_, self, ok := execTrace(inst)
	if !ok {
		return
	}
	stamp := func(ev *history.Event) {
		switch ev.Type {
		case history.TaskScheduled:
			ev.ParentTraceContext = dtrace.Child(self, spanid.Derive(inst.executionID, spanActivity, ev.EventID))
		case history.SubOrchestrationInstanceCreated:
			ev.ClientSpanID = spanid.Derive(inst.executionID, spanSubCall, ev.EventID).String()
		case history.EventSent:
			stampEntityRequest(ev, self, spanid.Derive(inst.executionID, spanEntityRequest, ev.EventID))
		}
	}
	for i := range actions {
		stamp(&actions[i])
	}
	var episode time.Time
	for i := range events {
		ev := &events[i]
		stamp(ev)
		switch ev.Type {
		case history.OrchestratorStarted:
			episode = ev.Timestamp
		case history.TaskScheduled, history.SubOrchestrationInstanceCreated, history.TimerCreated:
			if inst.traced == nil {
				inst.traced = map[int32]history.Event{}
			}
			inst.traced[ev.EventID] = spanOpener(ev)
		case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
			if r, ok := e.callSpan(inst, self, ev); ok {
				cp.spans = append(cp.spans, r)
			}
		case history.TimerFired:
			if r, ok := e.timerSpan(inst, self, ev, episode); ok {
				cp.spans = append(cp.spans, r)
			}
		case history.EventSent:
			r, ok := tracedEntityRequest(ev)
			if !ok {
				continue
			}
			if r.Signal {
				cp.spans = append(cp.spans, entityRequestSpan(inst, self, entityOpener(ev, &r), ev.Timestamp, nil))
				continue
			}
			if resp, ok := inst.tracedEarly[r.ID]; ok {
				// Answered before history recorded the request: a lost
				// episode's request was answered, and the episode ran again.
				delete(inst.tracedEarly, r.ID)
				cp.spans = append(cp.spans, entityCallSpan(inst, self, entityOpener(ev, &r), &resp, episode))
				continue
			}
			if inst.traced == nil {
				inst.traced = map[int32]history.Event{}
			}
			if inst.tracedCalls == nil {
				inst.tracedCalls = map[string]int32{}
			}
			inst.traced[ev.EventID] = entityOpener(ev, &r)
			inst.tracedCalls[r.ID] = ev.EventID
		case history.EventRaised:
			id, ok := inst.tracedCalls[ev.Name]
			if !ok {
				keepEarlyResponse(inst, ev)
				continue
			}
			delete(inst.tracedCalls, ev.Name)
			if call, ok := inst.traced[id]; ok && call.Type == history.EventSent {
				delete(inst.traced, id)
				cp.spans = append(cp.spans, entityCallSpan(inst, self, call, ev, episode))
			}
		case history.ExecutionCompleted, history.ContinueAsNew:
			cp.spans = append(cp.spans, e.executionSpan(inst, ev))
		}
	}
}

// callSpan is the client span of the activity or sub-orchestration call a
// result answers.
func (e *Engine) callSpan(inst *instance, self trace.SpanContext, res *history.Event) (spanRecord, bool) {
	call, ok := inst.traced[res.TaskScheduledID]
	if !ok || (call.Type != history.TaskScheduled && call.Type != history.SubOrchestrationInstanceCreated) {
		return spanRecord{}, false
	}
	delete(inst.traced, res.TaskScheduledID)
	r := spanRecord{kind: trace.SpanKindClient, parent: self, start: call.Timestamp, end: res.Timestamp,
		taskName: call.Name, version: call.Version, instanceID: inst.id, taskID: call.EventID,
		failed: res.Type == history.TaskFailed || res.Type == history.SubOrchestrationInstanceFailed}
	if r.failed {
		r.reason = res.Reason
		if r.reason == "" && res.Failure != nil {
			r.reason = res.Failure.ErrorMessage
		}
	}
	if call.Type == history.TaskScheduled {
		r.name, r.typ = dtrace.SpanName(dtrace.TypeActivity, call.Name, call.Version), dtrace.TypeActivity
		r.id = spanid.Derive(inst.executionID, spanActivity, call.EventID)
		if sc, err := dtrace.Parse(call.ParentTraceContext); err == nil {
			r.id = sc.SpanID() // what the activity's server span names as its parent
		}
	} else {
		r.name, r.typ = dtrace.SpanName(dtrace.TypeOrchestration, call.Name, call.Version), dtrace.TypeOrchestration
		r.id = spanid.Derive(inst.executionID, spanSubCall, call.EventID)
		if id, ok := dtrace.SpanID(call.ClientSpanID); ok {
			r.id = id
		}
	}
	return r, true
}

// timerSpan is the span of a durable timer, from its creation to the
// episode that saw it fire.
func (e *Engine) timerSpan(inst *instance, self trace.SpanContext, fired *history.Event, episode time.Time) (spanRecord, bool) {
	created, ok := inst.traced[fired.TimerID]
	if !ok || created.Type != history.TimerCreated {
		return spanRecord{}, false
	}
	delete(inst.traced, fired.TimerID)
	if episode.IsZero() {
		episode = fired.Timestamp
	}
	return spanRecord{name: dtrace.TimerSpanName(inst.startName()), kind: trace.SpanKindInternal, parent: self,
		id: spanid.Derive(inst.executionID, spanTimer, created.EventID), start: created.Timestamp, end: episode,
		typ: dtrace.TypeTimer, taskName: inst.startName(), instanceID: inst.id, taskID: created.EventID, fireAt: created.FireAt}, true
}

// executionSpan is the execution's own span, ended by its completion (or
// ContinueAsNew).
func (e *Engine) executionSpan(inst *instance, end *history.Event) spanRecord {
	parent, self, _ := execTrace(inst)
	start := inst.start.Timestamp
	if t := inst.start.ParentTraceContext.ActivityStartTime; t != nil {
		start = *t
	}
	r := spanRecord{name: dtrace.SpanName(dtrace.TypeOrchestration, inst.start.Name, inst.start.Version), kind: trace.SpanKindServer,
		parent: parent, id: self.SpanID(), start: start, end: end.Timestamp, typ: dtrace.TypeOrchestration,
		taskName: inst.start.Name, version: inst.start.Version, instanceID: inst.id, execution: inst.executionID,
		taskID: -1, status: end.Status.String()}
	if end.Type == history.ContinueAsNew {
		r.status = history.StatusContinuedAsNew.String()
	}
	if end.Status == history.StatusFailed {
		r.failed = true
		if end.Failure != nil {
			r.reason = end.Failure.ErrorMessage
		}
	}
	return r
}

// traceLoaded rebuilds, after a load, the open scheduling events of a
// traced execution: those history shows unanswered.
func traceLoaded(inst *instance, events []history.Event) {
	inst.traced, inst.tracedCalls, inst.tracedEarly = nil, nil, nil
	if _, _, ok := execTrace(inst); !ok {
		return
	}
	open := map[int32]history.Event{}
	calls := map[string]int32{}
	for _, ev := range events {
		switch ev.Type {
		case history.TaskScheduled, history.SubOrchestrationInstanceCreated, history.TimerCreated:
			open[ev.EventID] = spanOpener(&ev)
		case history.EventSent:
			if r, ok := tracedEntityRequest(&ev); ok && !r.Signal {
				if _, answered := inst.tracedEarly[r.ID]; answered {
					delete(inst.tracedEarly, r.ID) // its span was emitted with the request
				} else {
					open[ev.EventID] = entityOpener(&ev, &r)
					calls[r.ID] = ev.EventID
				}
			}
		case history.EventRaised:
			if id, ok := calls[ev.Name]; ok {
				delete(open, id)
				delete(calls, ev.Name)
			} else {
				keepEarlyResponse(inst, &ev)
			}
		case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
			delete(open, ev.TaskScheduledID)
		case history.TimerFired:
			delete(open, ev.TimerID)
		}
	}
	inst.traced, inst.tracedCalls = open, calls
}

// spanOpener keeps of a scheduling event what its span needs, not its
// payload.
func spanOpener(ev *history.Event) history.Event {
	return history.Event{Type: ev.Type, EventID: ev.EventID, Timestamp: ev.Timestamp, Name: ev.Name, Version: ev.Version,
		FireAt: ev.FireAt, ParentTraceContext: ev.ParentTraceContext, ClientSpanID: ev.ClientSpanID}
}

// childTrace is the trace context of a sub-orchestration's start: its
// parent is the caller's client span.
func childTrace(inst *instance, created *history.Event) *history.TraceContext {
	_, self, ok := execTrace(inst)
	id, valid := dtrace.SpanID(created.ClientSpanID)
	if !ok || !valid {
		return nil
	}
	return dtrace.Child(self, id)
}

// emitSpans emits the spans of a committed checkpoint.
func (e *Engine) emitSpans(spans []spanRecord) {
	for i := range spans {
		e.emitSpan(&spans[i])
	}
}

func (e *Engine) emitSpan(r *spanRecord) {
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), r.parent)
	ctx = spanid.With(ctx, r.id)
	_, span := e.tracer.Start(ctx, r.name, trace.WithSpanKind(r.kind), trace.WithTimestamp(r.start))
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(dtrace.Type.String(r.typ), dtrace.InstanceID.String(r.instanceID))
	if r.taskName != "" {
		span.SetAttributes(dtrace.TaskName.String(r.taskName))
	}
	span.SetAttributes(r.extra...)
	if r.version != "" {
		span.SetAttributes(dtrace.TaskVersion.String(r.version))
	}
	if r.execution != "" {
		span.SetAttributes(dtrace.ExecutionID.String(r.execution))
	}
	if r.taskID >= 0 {
		span.SetAttributes(dtrace.TaskID.Int(int(r.taskID)))
	}
	if r.status != "" {
		span.SetAttributes(dtrace.Status.String(r.status))
	}
	if !r.fireAt.IsZero() {
		span.SetAttributes(dtrace.FireAt.String(dtrace.FormatFireAt(r.fireAt)))
	}
	switch {
	case r.failed:
		span.SetStatus(codes.Error, r.reason)
	case r.completed:
		span.SetStatus(codes.Ok, "")
	}
	end := r.end
	if end.Before(r.start) {
		end = r.start
	}
	span.End(trace.WithTimestamp(end))
}

// startActivitySpan starts the server span of an activity execution, a
// child of the call's client span that the work item names; the returned
// context carries it to the activity's code.
func (e *Engine) startActivitySpan(ctx context.Context, msg *backend.Message) (context.Context, trace.Span) {
	ev := &msg.Event
	parent, err := dtrace.Parse(ev.ParentTraceContext)
	if err != nil {
		return ctx, nil
	}
	ctx, span := e.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, parent), dtrace.SpanName(dtrace.TypeActivity, ev.Name, ev.Version),
		trace.WithSpanKind(trace.SpanKindServer))
	if !span.IsRecording() {
		return ctx, nil
	}
	span.SetAttributes(dtrace.Type.String(dtrace.TypeActivity), dtrace.TaskName.String(ev.Name),
		dtrace.InstanceID.String(msg.Target.InstanceID), dtrace.TaskID.Int(int(ev.EventID)))
	if ev.Version != "" {
		span.SetAttributes(dtrace.TaskVersion.String(ev.Version))
	}
	return ctx, span
}
