package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// traceCounter is the entity of the entity trace tests: add, get, fail
// (always fails), and forward (signals add to @tracecounter@other and
// starts the orchestration TraceLeaf as leaf-1).
var traceCounter = durable.NewEntity("TraceCounter", durable.Operations[int]{
	"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
	"get": func(ctx *durable.EntityContext[int]) error {
		ctx.Return(ctx.State())
		return nil
	},
	"fail": func(ctx *durable.EntityContext[int]) error {
		return errors.New("the counter refuses")
	},
	"forward": func(ctx *durable.EntityContext[int]) error {
		ctx.SignalEntity(durable.NewEntityID("TraceCounter", "other"), "add", 1)
		ctx.StartOrchestration("TraceLeaf", nil, durable.WithInstanceID("leaf-1"))
		return nil
	},
})

var traceLeaf = durable.NewOrchestrator("TraceLeaf", func(ctx *durable.Context, _ any) (string, error) {
	return "leaf", nil
})

// traceEntities signals add 2, calls get (2), calls fail, and signals
// forward, all to @tracecounter@a.
var traceEntities = durable.NewOrchestrator("TraceEntities", func(ctx *durable.Context, _ any) (int, error) {
	id := durable.NewEntityID("TraceCounter", "a")
	if err := ctx.SignalEntity(id, "add", 2); err != nil {
		return 0, err
	}
	n, err := durable.CallEntity[int](ctx, id, "get", nil).Await()
	if err != nil {
		return 0, err
	}
	if _, err := durable.CallEntity[int](ctx, id, "fail", nil).Await(); err == nil {
		return 0, errors.New("the fail operation did not fail")
	}
	return n, ctx.SignalEntity(id, "forward", nil)
})

// child returns the one span named name of kind whose parent is parent.
func child(t *testing.T, spans []tracetest.SpanStub, name string, kind trace.SpanKind, parent trace.SpanID) tracetest.SpanStub {
	t.Helper()
	var got []tracetest.SpanStub
	for _, s := range named(spans, name, kind) {
		if s.Parent.SpanID() == parent {
			got = append(got, s)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d %s spans %s with parent %s, want 1:\n%s", len(got), kind, name, parent, describe(spans))
	}
	return got[0]
}

// wantAttrs checks string attributes of span s.
func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if v, _ := attr(s, k); v.AsString() != w {
			t.Errorf("%s %s: %s = %q, want %q", s.SpanKind, s.Name, k, v.AsString(), w)
		}
	}
}

// checkEntityTrace checks the 14 spans of a TraceEntities run: Durable
// Task's entity spans below the orchestration's, one trace, each span once;
// with inTime, a called operation's span is within its call's. (Not under
// faults: an entity batch whose commit failed after its responses were sent
// runs again, later, and the span is its committed run's.)
func checkEntityTrace(t *testing.T, spans []tracetest.SpanStub, id string, req trace.SpanContext, inTime bool) {
	t.Helper()
	const a, other = "@tracecounter@a", "@tracecounter@other"
	checkTrace(t, spans, req.TraceID(), id, a, other, "leaf-1")
	create := child(t, spans, "create_orchestration:TraceEntities", trace.SpanKindProducer, req.SpanID())
	orch := child(t, spans, "orchestration:TraceEntities", trace.SpanKindServer, create.SpanContext.SpanID())
	self := orch.SpanContext.SpanID()

	// The orchestration's requests and the operations they ran.
	for _, c := range []struct {
		op     string
		kind   trace.SpanKind // the orchestration's span; the entity's is Consumer or Server
		failed bool
	}{{"add", trace.SpanKindProducer, false}, {"get", trace.SpanKindClient, false}, {"fail", trace.SpanKindClient, true}, {"forward", trace.SpanKindProducer, false}} {
		name := "entity:tracecounter:" + c.op
		req := child(t, spans, name, c.kind, self)
		kind, op := trace.SpanKindServer, "call_entity"
		if c.kind == trace.SpanKindProducer {
			kind, op = trace.SpanKindConsumer, "signal_entity"
		}
		wantAttrs(t, req, map[string]string{"durabletask.type": "entity", "durabletask.task.operation": op,
			"durabletask.event.target_instance_id": a, "durabletask.task.instance_id": id})
		run := child(t, spans, name, kind, req.SpanContext.SpanID())
		wantAttrs(t, run, map[string]string{"durabletask.type": "entity", "durabletask.task.operation": op, "durabletask.task.instance_id": a})
		if c.failed {
			for _, s := range []tracetest.SpanStub{req, run} {
				if s.Status.Code != codes.Error || !strings.Contains(s.Status.Description, "the counter refuses") {
					t.Errorf("%s %s: status %v, want the operation's error", s.SpanKind, s.Name, s.Status)
				}
			}
			wantAttrs(t, run, map[string]string{"durabletask.entity.error_message": run.Status.Description})
		} else if run.Status.Code != codes.Ok {
			t.Errorf("%s %s: status %v, want Ok", run.SpanKind, run.Name, run.Status)
		}
		if inTime && c.kind == trace.SpanKindClient && (run.StartTime.Before(req.StartTime) || run.EndTime.After(req.EndTime)) {
			t.Errorf("%s: the operation %v..%v is outside the call %v..%v", name, run.StartTime, run.EndTime, req.StartTime, req.EndTime)
		}
		if c.op != "forward" {
			continue
		}
		// What forward sent: a signal to other, and the start of leaf-1.
		sig := child(t, spans, "entity:tracecounter:add", trace.SpanKindProducer, run.SpanContext.SpanID())
		wantAttrs(t, sig, map[string]string{"durabletask.task.operation": "signal_entity", "durabletask.event.target_instance_id": other,
			"durabletask.task.instance_id": a})
		got := child(t, spans, "entity:tracecounter:add", trace.SpanKindConsumer, sig.SpanContext.SpanID())
		wantAttrs(t, got, map[string]string{"durabletask.task.instance_id": other})
		start := child(t, spans, "tracecounter:create_orchestration", trace.SpanKindProducer, run.SpanContext.SpanID())
		wantAttrs(t, start, map[string]string{"durabletask.type": "entity", "durabletask.event.target_instance_id": "leaf-1",
			"durabletask.task.instance_id": a})
		child(t, spans, "orchestration:TraceLeaf", trace.SpanKindServer, start.SpanContext.SpanID())
	}
}

// runEntities runs TraceEntities on h and waits for leaf-1 and for the
// signal forward sent.
func runEntities(t *testing.T, h *tracedHub) (string, trace.SpanContext) {
	t.Helper()
	id, req := h.run("TraceEntities", nil)
	if st := wait(t, h.c, "leaf-1"); st.Status != history.StatusCompleted {
		t.Fatalf("leaf-1: %s", st.Status)
	}
	waitEntity(t, h.c, durable.NewEntityID("TraceCounter", "other"), "1")
	return id, req
}

// TestTraceOfEntities: an orchestration that signals and calls an entity,
// whose operation signals another entity and starts an orchestration,
// gives Durable Task's entity spans in the request's trace: per request an
// entity:{name}:{op} span of the orchestration (Producer for a signal,
// Client for a call) with the operation's span (Consumer, Server) as its
// child; the operation's signal (Producer) and orchestration start
// ({entity}:create_orchestration, Producer, the parent of the started
// orchestration's span). The orchestration's requests carry their span
// in parentTraceContext, as Durable Task's RequestMessage does.
func TestTraceOfEntities(t *testing.T) {
	h := newTracedHub(t, separate, nil, traceEntities, traceLeaf, traceCounter)
	id, req := runEntities(t, h)
	spans := h.spans(14)
	checkEntityTrace(t, spans, id, req, true)

	hist, err := h.be.LoadHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hist.Events {
		if ev.Type != history.EventSent {
			continue
		}
		var r history.EntityRequest
		if err := json.Unmarshal([]byte(ev.Input), &r); err != nil {
			t.Fatal(err)
		}
		c, err := r.TraceContext()
		if err != nil || c == nil || !strings.HasPrefix(c.TraceParent, "00-"+req.TraceID().String()+"-") {
			t.Errorf("request %s (%s) carries trace context %+v (%v), want one in the request's trace", r.ID, r.Operation, c, err)
		}
	}
}

// TestTraceOfEntitiesSurvivesFailedAndLostCommits: with history appends
// (orchestration episodes and entity batches alike) failing, or
// committing with their answer lost, the entity spans are there once each.
func TestTraceOfEntitiesSurvivesFailedAndLostCommits(t *testing.T) {
	for name, wrap := range commitFaults {
		t.Run(name, func(t *testing.T) {
			h := newTracedHub(t, separate, wrap, traceEntities, traceLeaf, traceCounter)
			id, req := runEntities(t, h)
			checkEntityTrace(t, h.spans(14), id, req, false)
			checkCommitFaultsHit(t, h.be)
		})
	}
}

// TestTraceOfClientSignal: a client's signal (as the HTTP entity route
// sends it) is an entity:{name}:{op} Producer span, a child of the
// caller's span, with the entity's Consumer span below it; a scheduled
// signal has its due time.
func TestTraceOfClientSignal(t *testing.T) {
	h := newTracedHub(t, engine.Options{}, nil, traceCounter)
	ctx, req := h.tp.Tracer("test").Start(context.Background(), "POST /api/entities/TraceCounter/c", trace.WithSpanKind(trace.SpanKindServer))
	err := h.c.SignalEntity(ctx, durable.NewEntityID("TraceCounter", "c"), "add", 5)
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	waitEntity(t, h.c, durable.NewEntityID("TraceCounter", "c"), "5")
	spans := h.spans(2)
	checkTrace(t, spans, req.SpanContext().TraceID(), "@tracecounter@c")
	sig := child(t, spans, "entity:tracecounter:add", trace.SpanKindProducer, req.SpanContext().SpanID())
	wantAttrs(t, sig, map[string]string{"durabletask.type": "entity", "durabletask.task.operation": "signal_entity",
		"durabletask.event.target_instance_id": "@tracecounter@c"})
	run := child(t, spans, "entity:tracecounter:add", trace.SpanKindConsumer, sig.SpanContext.SpanID())
	wantAttrs(t, run, map[string]string{"durabletask.task.operation": "signal_entity", "durabletask.task.instance_id": "@tracecounter@c"})
}

// TestNoEntitySpansWhenTracingIsOff: with the engine and the client on the
// no-op provider, an entity run records no span and its requests carry no
// trace context.
func TestNoEntitySpansWhenTracingIsOff(t *testing.T) {
	h := newTracedHub(t, engine.Options{TracerProvider: noop.NewTracerProvider()}, nil, traceEntities, traceLeaf, traceCounter)
	h.c.SetTracerProvider(noop.NewTracerProvider())
	id, _ := runEntities(t, h)
	if err := h.c.SignalEntity(context.Background(), durable.NewEntityID("TraceCounter", "c"), "add", 5); err != nil {
		t.Fatal(err)
	}
	waitEntity(t, h.c, durable.NewEntityID("TraceCounter", "c"), "5")
	h.spans(0)
	for _, inst := range []string{id, "leaf-1"} {
		hist, err := h.be.LoadHistory(context.Background(), inst)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range hist.Events {
			if ev.ParentTraceContext != nil || strings.Contains(ev.Input, "parentTraceContext") {
				t.Errorf("%s: %s carries a trace context: %s", inst, ev.Type, fmt.Sprint(ev.ParentTraceContext, ev.Input))
			}
		}
	}
}

// TestEntityStartsOrchestration: an orchestration an entity operation
// starts runs (no client wrote an Instances row for it: its start names the
// entity as its parent, as Durable Task's does) and, tagged FireAndForget,
// sends no completion back to the entity: nothing is dropped and the
// queues drain.
func TestEntityStartsOrchestration(t *testing.T) {
	mem := memoryBackend(t)
	h := &hub{t: t, name: mem.HubName()}
	eng, c := h.start(engine.Options{Backend: mem}, traceLeaf, traceCounter)
	if err := c.SignalEntity(context.Background(), durable.NewEntityID("TraceCounter", "s"), "forward", nil); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, "leaf-1"); st.Status != history.StatusCompleted || st.Output != `"leaf"` {
		t.Fatalf("leaf-1: %s %s", st.Status, st.Output)
	}
	hist, err := mem.LoadHistory(context.Background(), "leaf-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hist.Events {
		if ev.Type != history.ExecutionStarted {
			continue
		}
		if _, ok := ev.Tags[history.TagFireAndForget]; !ok || ev.Parent == nil || ev.Parent.Instance.InstanceID != "@tracecounter@s" {
			t.Errorf("the start's tags %v, parent %+v: want FireAndForget and the entity", ev.Tags, ev.Parent)
		}
	}
	waitEntity(t, c, durable.NewEntityID("TraceCounter", "other"), "1")
	until(t, "the queues drain", func() bool { return queued(mem) == 0 })
	if n := eng.Stats().DroppedMessages; n != 0 {
		t.Errorf("%d messages dropped (a completion sent to the entity?)", n)
	}
}
