package engine

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-durable/durablefunctions/internal/spanid"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// TestTracingCostsNothingWhenOff: an execution whose start carries no trace
// context costs the episode nothing (no allocation, no span kept), and a
// span record emitted on the no-op provider stops at IsRecording (a few
// small allocations for the contexts and options, no attributes).
func TestTracingCostsNothingWhenOff(t *testing.T) {
	e := &Engine{tracer: noop.NewTracerProvider().Tracer("x")}
	start := history.NewEvent(history.ExecutionStarted, time.Now())
	inst := &instance{id: "i", executionID: "e", start: &start}
	at := time.Now()
	events := []history.Event{history.NewEvent(history.OrchestratorStarted, at), history.NewEvent(history.TaskCompleted, at),
		{Type: history.TaskScheduled, EventID: 1, Name: "A", Timestamp: at}, history.NewEvent(history.OrchestratorCompleted, at)}
	actions := events[2:3]
	var cp checkpoint
	if n := testing.AllocsPerRun(100, func() { e.traceStep(inst, &cp, events, actions) }); n != 0 {
		t.Errorf("an untraced episode allocates %v times in traceStep", n)
	}
	if len(cp.spans) != 0 || inst.traced != nil || events[2].ParentTraceContext != nil {
		t.Errorf("an untraced episode kept %d spans, %d open calls, trace context %+v", len(cp.spans), len(inst.traced), events[2].ParentTraceContext)
	}
	r := spanRecord{name: "activity:A", kind: trace.SpanKindClient, id: spanid.Derive("e", spanActivity, 1), start: at, end: at,
		parent: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled}),
		typ:    "activity", taskName: "A", instanceID: "i", taskID: 1}
	if n := testing.AllocsPerRun(100, func() { e.emitSpan(&r) }); n > 8 {
		t.Errorf("emitting on the no-op provider allocates %v times", n)
	} else {
		t.Logf("emitting on the no-op provider: %v allocations", n)
	}
}

// TestEntityTracingCostsNothingWhenOff: a batch whose requests carry no
// trace context builds no span and allocates nothing for tracing.
func TestEntityTracingCostsNothingWhenOff(t *testing.T) {
	id := history.NewEntityID("Counter", "c")
	ops := []history.EntityRequest{{Operation: "add", Signal: true, ID: "r1"}, {Operation: "get", ID: "r2", ParentInstanceID: "o"}}
	res := replay.EntityBatchResult{Results: []replay.EntityOperationResult{{RequestID: "r1"}, {RequestID: "r2"}}}
	var spans []spanRecord
	var ctxs []trace.SpanContext
	entity := id.String()
	if n := testing.AllocsPerRun(100, func() { spans, ctxs = entityOpSpans(entity, id, ops, res) }); n != 0 {
		t.Errorf("an untraced batch allocates %v times in entityOpSpans", n)
	}
	if spans != nil || ctxs != nil {
		t.Errorf("an untraced batch has spans %v, contexts %v", spans, ctxs)
	}
}

// TestStampEntityRequest: an orchestration's operation request gets the
// context of its span; lock requests, releases and a request that carries
// a context already are left as they are.
func TestStampEntityRequest(t *testing.T) {
	self := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	sid := spanid.Derive("e", spanEntityRequest, 0)
	at := time.Now()
	sent := func(r history.EntityRequest) history.Event {
		raised, err := history.NewEntityRequestEvent(r, at)
		if err != nil {
			t.Fatal(err)
		}
		return history.Event{Type: history.EventSent, Name: raised.Name, Input: raised.Input, InstanceID: "@counter@c", Timestamp: at}
	}
	call := sent(history.EntityRequest{Operation: "get", ID: "r1", ParentInstanceID: "o", Timestamp: at})
	stampEntityRequest(&call, self, sid)
	r, ok := tracedEntityRequest(&call)
	if c, err := r.TraceContext(); !ok || err != nil || c.TraceParent != "00-01000000000000000000000000000000-"+sid.String()+"-01" {
		t.Errorf("the call carries %+v (%v, traced %v)", c, err, ok)
	}
	if r.Operation != "get" || r.ID != "r1" || r.ParentInstanceID != "o" {
		t.Errorf("stamping changed the request: %+v", r)
	}
	stamped := call.Input
	stampEntityRequest(&call, self, spanid.Derive("e", spanEntityRequest, 9))
	if call.Input != stamped {
		t.Errorf("a stamped request is stamped again: %s", call.Input)
	}
	lock := sent(history.EntityRequest{ID: "r2", ParentInstanceID: "o", LockSet: []history.EntityID{history.NewEntityID("Counter", "c")}})
	release, err := history.NewEntityReleaseEvent(history.EntityRelease{ID: "r2", ParentInstanceID: "o"}, at)
	if err != nil {
		t.Fatal(err)
	}
	release.Type = history.EventSent
	for _, ev := range []history.Event{lock, release} {
		before := ev.Input
		stampEntityRequest(&ev, self, sid)
		if ev.Input != before {
			t.Errorf("%s was stamped: %s", ev.Name, ev.Input)
		}
		if _, ok := tracedEntityRequest(&ev); ok {
			t.Errorf("%s counts as a traced request", ev.Name)
		}
	}
}
