package engine

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-durable/durablefunctions/internal/spanid"
	"github.com/go-durable/durablefunctions/taskhub/history"
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
