package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/dtrace"
)

// TestStartAndRaiseSpans: StartNew makes Durable Task's
// create_orchestration span (Producer, child of the caller's span, with the
// instance's attributes) and the start message carries it as the
// execution's parent, flags included; RaiseEvent makes an
// orchestration_event span that the event carries. A failed start is an
// error span; on the no-op provider nothing is stamped.
func TestStartAndRaiseSpans(t *testing.T) {
	ctx := context.Background()
	be, c, exp, tp := tracedClient(t, "TraceClient")
	c.SetDefaultVersion("2.0")

	rctx, req := tp.Tracer("test").Start(ctx, "request")
	id, err := c.StartNew(rctx, "Flow", StartOptions{InstanceID: "flow-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(rctx, id, "Approval", `true`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartNew(rctx, "Flow", StartOptions{RawInput: "{not json"}); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("bad input: %v", err)
	}
	req.End()

	spans := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if s.Status.Code == codes.Error {
			spans["failed "+s.Name] = s
		} else {
			spans[s.Name] = s
		}
	}
	create, ok := spans["create_orchestration:Flow@(2.0)"]
	if !ok || create.SpanKind != trace.SpanKindProducer || create.Parent.SpanID() != req.SpanContext().SpanID() {
		t.Fatalf("create span %+v, spans %v", create, exp.GetSpans())
	}
	want := map[string]string{"durabletask.type": "orchestration", "durabletask.task.name": "Flow",
		"durabletask.task.instance_id": "flow-1", "durabletask.task.version": "2.0"}
	for _, kv := range create.Attributes {
		if w, ok := want[string(kv.Key)]; ok && kv.Value.AsString() == w {
			delete(want, string(kv.Key))
		}
	}
	if len(want) != 0 {
		t.Errorf("create span lacks %v: %v", want, create.Attributes)
	}
	if _, ok := spans["failed create_orchestration:Flow@(2.0)"]; !ok {
		t.Errorf("the failed start has no error span: %v", spans)
	}
	event, ok := spans["orchestration_event:Approval"]
	if !ok || event.SpanKind != trace.SpanKindProducer {
		t.Errorf("event span %+v", event)
	}

	rs, _, err := be.ReceiveControl(ctx, be.PartitionOf(id), 32, time.Minute)
	if err != nil || len(rs) != 2 {
		t.Fatalf("control queue: %d messages, %v", len(rs), err)
	}
	for _, r := range rs {
		ev := r.Message.Event
		sc, err := dtrace.Parse(ev.ParentTraceContext)
		if err != nil {
			t.Fatalf("%s: %v", ev.Type, err)
		}
		wantSC := create.SpanContext
		if ev.Type == history.EventRaised {
			wantSC = event.SpanContext
		}
		if sc.TraceID() != wantSC.TraceID() || sc.SpanID() != wantSC.SpanID() || !sc.IsSampled() {
			t.Errorf("%s carries %s, want the span %s", ev.Type, ev.ParentTraceContext.TraceParent, wantSC.SpanID())
		}
	}

	quiet := New(be, nil, nil)
	quiet.SetTracerProvider(noop.NewTracerProvider())
	id2, err := quiet.StartNew(rctx, "Flow", StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, _, _ = be.ReceiveControl(ctx, be.PartitionOf(id2), 32, time.Minute)
	for _, r := range rs {
		if r.Message.Target.InstanceID == id2 && r.Message.Event.ParentTraceContext != nil {
			t.Errorf("a start on the no-op provider carries %+v", r.Message.Event.ParentTraceContext)
		}
	}
}

// TestSignalEntitySpan: SignalEntity makes Durable Task's signal span
// (entity:{name}:{op}, Producer, child of the caller's span, with the
// operation and target; a scheduled signal its due time) and the request
// message carries it in parentTraceContext; on the no-op provider the
// request carries none.
func TestSignalEntitySpan(t *testing.T) {
	ctx := context.Background()
	be, c, exp, tp := tracedClient(t, "TraceSignal")
	id := history.NewEntityID("Counter", "c")
	received := func() history.EntityRequest {
		t.Helper()
		got, _, err := be.ReceiveControl(ctx, be.PartitionOf(id.String()), 10, time.Minute)
		if err != nil || len(got) != 1 {
			t.Fatalf("received %d messages (%v), want 1", len(got), err)
		}
		r, err := history.DecodeEntityRequest(got[0].Message.Event)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	rctx, req := tp.Tracer("test").Start(ctx, "request")
	if err := c.SignalEntity(rctx, id, "add", 1); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(time.Hour)
	if err := c.SignalEntity(rctx, id, "reset", nil, SignalOptions{At: due}); err != nil {
		t.Fatal(err)
	}
	req.End()
	spans := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		spans[s.Name] = s
	}
	for name, want := range map[string]map[string]string{
		"entity:counter:add":   {"durabletask.type": "entity", "durabletask.task.operation": "signal_entity", "durabletask.event.target_instance_id": "@counter@c"},
		"entity:counter:reset": {"durabletask.task.operation": "signal_entity", "durabletask.task.scheduled_time": dtrace.FormatFireAt(due)},
	} {
		s, ok := spans[name]
		if !ok || s.SpanKind != trace.SpanKindProducer || s.Parent.SpanID() != req.SpanContext().SpanID() {
			t.Fatalf("%s: span %+v, spans %v", name, s, exp.GetSpans())
		}
		got := map[string]string{}
		for _, kv := range s.Attributes {
			got[string(kv.Key)] = kv.Value.Emit()
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s = %q, want %q", name, k, got[k], w)
			}
		}
	}
	r := received() // the add; the reset is hidden until due
	tc, err := r.TraceContext()
	if err != nil || tc == nil || tc.TraceParent != dtrace.TraceParent(req.SpanContext(), spans["entity:counter:add"].SpanContext.SpanID()) {
		t.Errorf("the request carries %+v (%v), want the signal span", tc, err)
	}

	c.SetTracerProvider(noop.NewTracerProvider())
	if err := c.SignalEntity(rctx, id, "add", 1); err != nil {
		t.Fatal(err)
	}
	if r := received(); len(r.ParentTraceContext) != 0 {
		t.Errorf("on the no-op provider the request carries %s", r.ParentTraceContext)
	}
}

// tracedClient is a client over a new memory hub that traces into exp
// through tp.
func tracedClient(t *testing.T, hub string) (*memory.Backend, *Client, *tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	t.Helper()
	be, err := memory.New(memory.Options{HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	if err := be.CreateTaskHub(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	c := New(be, nil, nil)
	c.SetTracerProvider(tp)
	return be, c, exp, tp
}
