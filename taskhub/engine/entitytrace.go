package engine

import (
	"encoding/json"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-durable/durablefunctions/internal/spanid"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/dtrace"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// Durable entities in the trace, with Durable Task's names, kinds and
// attributes (TraceHelper's entity spans):
//
//   - an orchestration's call is an entity:{name}:{operation} Client span
//     of its execution, from the EventSent to the episode that takes in the
//     response; a signal is a Producer span of the same name at its
//     EventSent. Both are built from history, like activity calls: span IDs
//     derived from the execution and the EventSent's event ID, emitted after
//     the commit that records their end.
//   - the request message carries that span's context in its
//     "parentTraceContext" (RequestMessage.ParentTraceContext), so the
//     entity's operation is its child wherever it runs.
//   - an entity operation is an entity:{name}:{operation} span, Server for a
//     call and Consumer for a signal, its times the operation's, emitted
//     after the batch's commit; its span ID derives from the request ID, so
//     a batch run again after a failed commit has the same spans.
//   - what an operation sends: a signal is a Producer entity:{target}:{op}
//     span, a started orchestration a Producer {entity}:create_orchestration
//     span whose context the orchestration's ExecutionStarted carries (its
//     execution span is then a child of it).
//
// Lock requests (critical sections) have no spans, as in Durable Task.

// tracedEntityRequest returns the operation request an EventSent carries
// when it carries a trace context (lock requests and releases have none).
func tracedEntityRequest(ev *history.Event) (history.EntityRequest, bool) {
	if history.ClassifyEntityEvent(ev.Name) != history.EntityMessageRequest {
		return history.EntityRequest{}, false
	}
	var r history.EntityRequest
	if err := json.Unmarshal([]byte(ev.Input), &r); err != nil || r.IsLockRequest() || r.Operation == "" || len(r.ParentTraceContext) == 0 {
		return history.EntityRequest{}, false
	}
	return r, true
}

// stampEntityRequest makes an orchestration's entity operation request
// (an EventSent) carry the context of its span id, a child of the
// execution's span self. Lock requests, releases, and requests that carry
// a context already are left alone.
func stampEntityRequest(ev *history.Event, self trace.SpanContext, id trace.SpanID) {
	if history.ClassifyEntityEvent(ev.Name) != history.EntityMessageRequest {
		return
	}
	var r history.EntityRequest
	if err := json.Unmarshal([]byte(ev.Input), &r); err != nil || r.IsLockRequest() || r.Operation == "" || len(r.ParentTraceContext) != 0 {
		return
	}
	if r.SetTraceContext(dtrace.Child(self, id)) != nil {
		return
	}
	// The same encoding the executor used, with the trace context added:
	// the event's name (it depends on the due time only) stays.
	raised, err := history.NewEntityRequestEvent(r, ev.Timestamp)
	if err != nil {
		return
	}
	ev.Input = raised.Input
}

// entityOpener keeps of an entity request's EventSent what its span needs:
// the operation (as Name), the target, the request ID (as Data), the due
// time (as FireAt) and the trace context it carries.
func entityOpener(ev *history.Event, r *history.EntityRequest) history.Event {
	o := history.Event{Type: history.EventSent, EventID: ev.EventID, Timestamp: ev.Timestamp, Name: r.Operation,
		InstanceID: ev.InstanceID, Data: r.ID, FireAt: r.Due}
	o.ParentTraceContext, _ = r.TraceContext()
	return o
}

// entityRequestSpan is the span of an orchestration's call or signal
// (opener, from entityOpener), ended at end; resp is the call's response.
func entityRequestSpan(inst *instance, self trace.SpanContext, opener history.Event, end time.Time, resp *history.EntityResponse) spanRecord {
	signal := resp == nil
	id := spanid.Derive(inst.executionID, spanEntityRequest, opener.EventID)
	if sc, err := dtrace.Parse(opener.ParentTraceContext); err == nil {
		id = sc.SpanID() // what the operation's span names as its parent
	}
	entity, _ := history.ParseEntityID(opener.InstanceID)
	r := spanRecord{name: dtrace.EntitySpanName(entity.Name, opener.Name), kind: trace.SpanKindClient, parent: self, id: id,
		start: opener.Timestamp, end: end, typ: dtrace.TypeEntity, instanceID: inst.id, taskID: opener.EventID}
	op := dtrace.CallEntity
	if signal {
		r.kind, op = trace.SpanKindProducer, dtrace.SignalEntity
	}
	r.extra = []attribute.KeyValue{dtrace.Operation.String(op), dtrace.EventTargetInstanceID.String(opener.InstanceID)}
	if !opener.FireAt.IsZero() {
		r.extra = append(r.extra, dtrace.ScheduledTime.String(dtrace.FormatFireAt(opener.FireAt)))
	}
	if resp != nil && (resp.ErrorMessage != "" || resp.Failure != nil) {
		r.failed, r.reason = true, resp.ErrorMessage
		if r.reason == "" {
			r.reason = resp.Failure.ErrorMessage
		}
	}
	return r
}

// entityCallSpan is the client span of an entity call (opener, from
// entityOpener) that the raised event ev answers: it ends with the episode
// that takes the response in (the response's own timestamp is the start of
// the entity's batch, before the operation ran), and starts at the
// response's timestamp when history recorded the request after it.
func entityCallSpan(inst *instance, self trace.SpanContext, call history.Event, ev *history.Event, episode time.Time) spanRecord {
	resp, err := history.DecodeEntityResponse(*ev)
	if err != nil {
		resp = history.EntityResponse{ErrorMessage: "the entity's response could not be read: " + err.Error()}
	}
	if ev.Timestamp.Before(call.Timestamp) {
		call.Timestamp = ev.Timestamp // answered before history recorded the request
	}
	return entityRequestSpan(inst, self, call, maxTime(episode, ev.Timestamp), &resp)
}

// keepEarlyResponse remembers a raised event that no open entity call
// awaits but may be the response to one whose request history records
// later (a lost episode's request was answered before the episode ran
// again). Only names shaped as request IDs (GUIDs) are kept, and of them
// what the span needs.
func keepEarlyResponse(inst *instance, ev *history.Event) {
	if n := ev.Name; len(n) != 36 || n[8] != '-' || n[13] != '-' || n[18] != '-' || n[23] != '-' {
		return
	}
	if inst.tracedEarly == nil {
		inst.tracedEarly = map[string]history.Event{}
	}
	inst.tracedEarly[ev.Name] = history.Event{Type: ev.Type, Name: ev.Name, Timestamp: ev.Timestamp, Input: ev.Input}
}

// entityOpSpans returns the spans of a batch's operations (those whose
// request carries a trace context) and the span context of each operation
// (invalid when it is not traced): the parent of what it sends.
func entityOpSpans(entityID string, id history.EntityID, ops []history.EntityRequest, res replay.EntityBatchResult) ([]spanRecord, []trace.SpanContext) {
	var spans []spanRecord
	var ctxs []trace.SpanContext
	for i := range ops {
		r := &ops[i]
		if len(r.ParentTraceContext) == 0 || i >= len(res.Results) {
			continue
		}
		c, err := r.TraceContext()
		if err != nil || c == nil {
			continue
		}
		parent, err := dtrace.Parse(c)
		if err != nil {
			continue
		}
		if ctxs == nil {
			ctxs = make([]trace.SpanContext, len(ops))
		}
		sid := spanid.Derive(r.ID, spanEntityOp, 0)
		ctxs[i] = parent.WithSpanID(sid).WithRemote(false)
		result := res.Results[i]
		s := spanRecord{name: dtrace.EntitySpanName(id.Name, r.Operation), kind: trace.SpanKindServer, parent: parent, id: sid,
			start: result.StartTime, end: result.EndTime, typ: dtrace.TypeEntity, instanceID: entityID, taskID: -1}
		op := dtrace.CallEntity
		if r.Signal {
			s.kind, op = trace.SpanKindConsumer, dtrace.SignalEntity
		}
		s.extra = []attribute.KeyValue{dtrace.Operation.String(op)}
		if f := result.Failure; f != nil {
			s.failed, s.reason = true, f.ErrorMessage
			if s.reason == "" {
				s.reason = f.ErrorType
			}
			s.extra = append(s.extra, dtrace.EntityErrorMessage.String(s.reason))
		} else {
			s.completed = true
		}
		spans = append(spans, s)
	}
	return spans, ctxs
}

// entityActionSpan returns the Producer span of what a traced operation
// sends (a signal, an orchestration start) and the trace context its
// message carries; ok=false when the operation is not traced.
func entityActionSpan(entityID string, id history.EntityID, ops []history.EntityRequest, ctxs []trace.SpanContext, res replay.EntityBatchResult, a replay.EntityAction) (spanRecord, *history.TraceContext, bool) {
	if a.Request < 0 || a.Request >= len(ctxs) || !ctxs[a.Request].IsValid() {
		return spanRecord{}, nil, false
	}
	parent := ctxs[a.Request]
	at := res.Results[a.Request].EndTime
	s := spanRecord{kind: trace.SpanKindProducer, parent: parent, start: at, end: at, typ: dtrace.TypeEntity, instanceID: entityID, taskID: -1}
	switch a.Kind {
	case replay.EntitySignal:
		s.name = dtrace.EntitySpanName(a.Target.Name, a.Operation)
		s.id = spanid.Derive(a.RequestID, spanEntitySignal, 0)
		s.extra = []attribute.KeyValue{dtrace.Operation.String(dtrace.SignalEntity), dtrace.EventTargetInstanceID.String(a.Target.String())}
		if !a.ScheduledTime.IsZero() {
			s.extra = append(s.extra, dtrace.ScheduledTime.String(dtrace.FormatFireAt(a.ScheduledTime)))
		}
	case replay.EntityStartOrchestration:
		s.name = dtrace.EntityStartSpanName(id.Name)
		s.id = spanid.Derive(ops[a.Request].ID+"/"+a.InstanceID, spanEntityStart, 0)
		s.extra = []attribute.KeyValue{dtrace.EventTargetInstanceID.String(a.InstanceID)}
	default:
		return spanRecord{}, nil, false
	}
	return s, dtrace.Child(parent, s.id), true
}
