package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-durable/durablefunctions/internal/spanid"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// tracedHub is a memory hub whose engine and client trace into an
// in-memory exporter, as the app's SDK provider would (spanid.Generator).
type tracedHub struct {
	t   *testing.T
	exp *tracetest.InMemoryExporter
	tp  *sdktrace.TracerProvider
	be  backend.Backend
	c   *client.Client
}

func newTracedHub(t *testing.T, opts engine.Options, wrap func(backend.Backend) backend.Backend, defs ...durable.Definition) *tracedHub {
	t.Helper()
	mem, err := memory.New(memory.Options{HubName: "TraceHub"})
	if err != nil {
		t.Fatal(err)
	}
	var be backend.Backend = mem
	if wrap != nil {
		be = wrap(mem)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spanid.Generator{}), sdktrace.WithSyncer(exp))
	if opts.TracerProvider == nil {
		opts.TracerProvider = tp
	}
	opts.Backend = be
	h := &hub{t: t, name: mem.HubName()}
	_, c := h.start(opts, defs...)
	c.SetTracerProvider(tp)
	return &tracedHub{t: t, exp: exp, tp: tp, be: be, c: c}
}

// separate commits every episode on its own, so that spans are built
// across checkpoints.
var separate = engine.Options{CoalesceBudget: -1}

// run starts orchestration name under a request span and waits for it; it
// returns the instance ID and the request span's context.
func (h *tracedHub) run(name string, input any) (string, trace.SpanContext) {
	h.t.Helper()
	ctx, req := h.tp.Tracer("test").Start(context.Background(), "POST /api/orchestrators/"+name, trace.WithSpanKind(trace.SpanKindServer))
	id, err := h.c.StartNew(ctx, name, client.StartOptions{Input: input})
	req.End()
	if err != nil {
		h.t.Fatal(err)
	}
	if st := wait(h.t, h.c, id); st.Status != history.StatusCompleted {
		h.t.Fatalf("%s: %s %s", id, st.Status, st.Output)
	}
	return id, req.SpanContext()
}

// spans waits until the exporter holds n spans (besides the request's) and
// returns them.
func (h *tracedHub) spans(n int) []tracetest.SpanStub {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out []tracetest.SpanStub
		for _, s := range h.exp.GetSpans() {
			if s.InstrumentationScope.Name != "test" {
				out = append(out, s)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			if len(out) != n {
				h.t.Errorf("%d spans exported, want %d:\n%s", len(out), n, describe(out))
			}
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func describe(spans []tracetest.SpanStub) string {
	s := ""
	for _, sp := range spans {
		s += fmt.Sprintf("  %s %s id=%s parent=%s %v\n", sp.SpanKind, sp.Name, sp.SpanContext.SpanID(), sp.Parent.SpanID(), sp.Attributes)
	}
	return s
}

func attr(s tracetest.SpanStub, k string) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func named(spans []tracetest.SpanStub, name string, kind trace.SpanKind) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name && s.SpanKind == kind {
			out = append(out, s)
		}
	}
	return out
}

func one(t *testing.T, spans []tracetest.SpanStub, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	got := named(spans, name, kind)
	if len(got) != 1 {
		t.Fatalf("%d %s spans named %s, want 1:\n%s", len(got), kind, name, describe(spans))
	}
	return got[0]
}

// checkTrace: every span is in trace tid, no span ID twice, each carries
// the instance ID attribute.
func checkTrace(t *testing.T, spans []tracetest.SpanStub, tid trace.TraceID, ids ...string) {
	t.Helper()
	seen := map[trace.SpanID]string{}
	for _, s := range spans {
		if s.SpanContext.TraceID() != tid {
			t.Errorf("%s is in trace %s, want %s", s.Name, s.SpanContext.TraceID(), tid)
		}
		if prev, dup := seen[s.SpanContext.SpanID()]; dup {
			t.Errorf("span ID %s twice: %s and %s", s.SpanContext.SpanID(), prev, s.Name)
		}
		seen[s.SpanContext.SpanID()] = s.Name
		v, ok := attr(s, "durabletask.task.instance_id")
		if !ok {
			v, ok = attr(s, "durabletask.event.target_instance_id")
		}
		found := false
		for _, id := range ids {
			found = found || (ok && v.AsString() == id)
		}
		if !found {
			t.Errorf("%s has instance ID %q, want one of %v", s.Name, v.AsString(), ids)
		}
	}
}

// checkActivities: n client spans of activity name, children of parent,
// each with exactly one server span as its child, ordered in time.
func checkActivities(t *testing.T, spans []tracetest.SpanStub, name string, parent trace.SpanID, n int) {
	t.Helper()
	clients := named(spans, "activity:"+name, trace.SpanKindClient)
	servers := named(spans, "activity:"+name, trace.SpanKindServer)
	if len(clients) != n || len(servers) != n {
		t.Fatalf("%d client and %d server spans of activity %s, want %d each:\n%s", len(clients), len(servers), name, n, describe(spans))
	}
	for _, c := range clients {
		if c.Parent.SpanID() != parent {
			t.Errorf("activity client span %s has parent %s, want %s", c.SpanContext.SpanID(), c.Parent.SpanID(), parent)
		}
		if v, _ := attr(c, "durabletask.type"); v.AsString() != "activity" {
			t.Errorf("activity client span type %q", v.AsString())
		}
		var kids []tracetest.SpanStub
		for _, s := range servers {
			if s.Parent.SpanID() == c.SpanContext.SpanID() {
				kids = append(kids, s)
			}
		}
		if len(kids) != 1 {
			t.Errorf("activity client span %s has %d server children, want 1", c.SpanContext.SpanID(), len(kids))
			continue
		}
		srv := kids[0]
		cid, _ := attr(c, "durabletask.task.task_id")
		sid, _ := attr(srv, "durabletask.task.task_id")
		if cid.AsInt64() != sid.AsInt64() {
			t.Errorf("task IDs: client %d, server %d", cid.AsInt64(), sid.AsInt64())
		}
		if srv.StartTime.Before(c.StartTime) || srv.EndTime.After(c.EndTime.Add(time.Microsecond)) {
			t.Errorf("server span %v..%v outside its client span %v..%v", srv.StartTime, srv.EndTime, c.StartTime, c.EndTime)
		}
	}
}

// TestTraceOfThreeActivities: one orchestration with three activity calls
// started under a request span gives Durable Task's 8 spans, all in the
// request's trace: create_orchestration (Producer, child of the request),
// orchestration (Server, child of create), and per activity a Client span
// (child of the orchestration) with a Server span as its child.
func TestTraceOfThreeActivities(t *testing.T) {
	h := newTracedHub(t, engine.Options{}, nil, seq3, greet) // one coalesced checkpoint
	id, req := h.run("Seq3", nil)
	spans := h.spans(8)
	checkTrace(t, spans, req.TraceID(), id)
	create := one(t, spans, "create_orchestration:Seq3", trace.SpanKindProducer)
	orch := one(t, spans, "orchestration:Seq3", trace.SpanKindServer)
	if create.Parent.SpanID() != req.SpanID() || orch.Parent.SpanID() != create.SpanContext.SpanID() {
		t.Errorf("create's parent %s (request %s); orchestration's parent %s (create %s)",
			create.Parent.SpanID(), req.SpanID(), orch.Parent.SpanID(), create.SpanContext.SpanID())
	}
	for k, want := range map[string]string{"durabletask.type": "orchestration", "durabletask.task.name": "Seq3", "durabletask.task.status": "Completed"} {
		if v, _ := attr(orch, k); v.AsString() != want {
			t.Errorf("orchestration span %s = %q, want %q", k, v.AsString(), want)
		}
	}
	if v, _ := attr(orch, "durabletask.task.execution_id"); v.AsString() == "" {
		t.Error("orchestration span has no execution ID")
	}
	if orch.Status.Code == codes.Error || orch.EndTime.Before(orch.StartTime) {
		t.Errorf("orchestration span status %v, %v..%v", orch.Status, orch.StartTime, orch.EndTime)
	}
	checkActivities(t, spans, "Greet", orch.SpanContext.SpanID(), 3)
}

var traceParent = durable.NewOrchestrator("TraceParent", func(ctx *durable.Context, _ any) ([]string, error) {
	if err := ctx.Sleep(time.Second); err != nil {
		return nil, err
	}
	return durable.CallSubOrchestrator[[]string](ctx, "Seq3", nil).Await()
})

// TestTraceOfTimerAndSubOrchestration: a timer is an Internal span with
// its due time; a sub-orchestration call is a Client span of the parent
// whose child is the sub-orchestration's own Server span, with its
// activities below it; all in one trace.
func TestTraceOfTimerAndSubOrchestration(t *testing.T) {
	h := newTracedHub(t, separate, nil, traceParent, seq3, greet)
	id, req := h.run("TraceParent", nil)
	spans := h.spans(11) // create, 2 orchestrations, timer, sub-orchestration call, 3 × 2 activities
	orch := one(t, spans, "orchestration:TraceParent", trace.SpanKindServer)
	timer := one(t, spans, "orchestration:TraceParent:timer", trace.SpanKindInternal)
	call := one(t, spans, "orchestration:Seq3", trace.SpanKindClient)
	child := one(t, spans, "orchestration:Seq3", trace.SpanKindServer)
	childID, _ := attr(child, "durabletask.task.instance_id")
	checkTrace(t, spans, req.TraceID(), id, childID.AsString())
	if timer.Parent.SpanID() != orch.SpanContext.SpanID() || call.Parent.SpanID() != orch.SpanContext.SpanID() ||
		child.Parent.SpanID() != call.SpanContext.SpanID() {
		t.Errorf("parents: timer %s, call %s (orchestration %s); child %s (call %s)", timer.Parent.SpanID(), call.Parent.SpanID(),
			orch.SpanContext.SpanID(), child.Parent.SpanID(), call.SpanContext.SpanID())
	}
	fireAt, _ := attr(timer, "durabletask.fire_at")
	due, err := time.Parse(time.RFC3339Nano, fireAt.AsString())
	if err != nil || due.Sub(timer.StartTime) != time.Second || timer.EndTime.Before(due) {
		t.Errorf("timer span %v..%v, fire_at %q (%v)", timer.StartTime, timer.EndTime, fireAt.AsString(), err)
	}
	if childID.AsString() == id || childID.AsString() == "" {
		t.Errorf("the sub-orchestration's instance ID is %q", childID.AsString())
	}
	checkActivities(t, spans, "Greet", child.SpanContext.SpanID(), 3)
}

var traceLoop = durable.NewOrchestrator("TraceLoop", func(ctx *durable.Context, n int) (int, error) {
	if _, err := greet.Call(ctx, fmt.Sprint(n)).Await(); err != nil {
		return 0, err
	}
	if n < 2 {
		return 0, ctx.ContinueAsNew(n + 1)
	}
	return n, nil
})

// TestTraceContinueAsNew: each execution of a ContinueAsNew chain has its
// own orchestration span, all children of the one create_orchestration
// span (Durable Task keeps the trace).
func TestTraceContinueAsNew(t *testing.T) {
	h := newTracedHub(t, separate, nil, traceLoop, greet)
	id, req := h.run("TraceLoop", 0)
	spans := h.spans(1 + 3 + 3*2)
	checkTrace(t, spans, req.TraceID(), id)
	create := one(t, spans, "create_orchestration:TraceLoop", trace.SpanKindProducer)
	execs := named(spans, "orchestration:TraceLoop", trace.SpanKindServer)
	statuses := map[string]int{}
	for _, x := range execs {
		if x.Parent.SpanID() != create.SpanContext.SpanID() {
			t.Errorf("execution span %s has parent %s, want create %s", x.SpanContext.SpanID(), x.Parent.SpanID(), create.SpanContext.SpanID())
		}
		v, _ := attr(x, "durabletask.task.status")
		statuses[v.AsString()]++
	}
	if len(execs) != 3 || statuses["ContinuedAsNew"] != 2 || statuses["Completed"] != 1 {
		t.Errorf("%d execution spans with statuses %v, want 2 ContinuedAsNew and 1 Completed", len(execs), statuses)
	}
	for _, c := range named(spans, "activity:Greet", trace.SpanKindClient) {
		parented := false
		for _, x := range execs {
			parented = parented || c.Parent.SpanID() == x.SpanContext.SpanID()
		}
		if !parented {
			t.Errorf("activity span %s is not a child of an execution span", c.SpanContext.SpanID())
		}
	}
}

var traceFail = durable.NewOrchestrator("TraceFail", func(ctx *durable.Context, _ any) (string, error) {
	return greet.Call(ctx, "").Await() // greet fails on an empty name
})

// TestTraceFailure: a failed activity and the failed orchestration carry
// error status on their spans (client and server).
func TestTraceFailure(t *testing.T) {
	h := newTracedHub(t, separate, nil, traceFail, greet)
	ctx := context.Background()
	id, err := h.c.StartNew(ctx, "TraceFail", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h.c, id); st.Status != history.StatusFailed {
		t.Fatalf("status %s", st.Status)
	}
	spans := h.spans(4)
	for _, s := range spans {
		if s.Name == "create_orchestration:TraceFail" {
			continue
		}
		if s.Status.Code != codes.Error || s.Status.Description == "" {
			t.Errorf("%s %s: status %v, want an error with its reason", s.SpanKind, s.Name, s.Status)
		}
	}
	orch := one(t, spans, "orchestration:TraceFail", trace.SpanKindServer)
	if v, _ := attr(orch, "durabletask.task.status"); v.AsString() != "Failed" {
		t.Errorf("status attribute %q", v.AsString())
	}
}

// failingAppends fails every n-th history append before it reaches
// storage; lost, with lostAnswers, loses the answer of committed ones.
type failingAppends struct {
	backend.Backend
	mu    sync.Mutex
	n     int
	calls int
}

func (f *failingAppends) AppendHistory(ctx context.Context, id, exec string, from int, evs []history.Event, etag string) (string, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls%f.n == 0
	f.mu.Unlock()
	if fail {
		return "", errors.New("append failed: connection refused")
	}
	return f.Backend.AppendHistory(ctx, id, exec, from, evs, etag)
}

// commitFaults wrap a backend so that every second history append fails
// (the episode or batch is re-run), or commits with its answer lost (the
// engine finds it committed).
var commitFaults = map[string]func(backend.Backend) backend.Backend{
	"failed appends": func(b backend.Backend) backend.Backend { return &failingAppends{Backend: b, n: 2} },
	"lost answers": func(b backend.Backend) backend.Backend {
		return &lostAnswers{Backend: b, calls: map[string]int{}, every: map[string]int{"append": 2}, lost: map[string]int{}}
	},
}

// checkCommitFaultsHit fails the test when the fault of a commitFaults
// backend never struck: no append was re-run, or no answer was lost.
func checkCommitFaultsHit(t *testing.T, be backend.Backend) {
	t.Helper()
	switch b := be.(type) {
	case *failingAppends:
		if b.calls < 4 {
			t.Errorf("only %d appends: nothing was re-run", b.calls)
		}
	case *lostAnswers:
		if b.lost["append"] == 0 {
			t.Error("no append answer was lost")
		}
	}
}

// TestTraceSurvivesFailedAndLostCommits: with history appends failing
// (the episode is re-run) or committing with their answer lost (the
// engine finds them committed), the trace still has each span once.
func TestTraceSurvivesFailedAndLostCommits(t *testing.T) {
	for name, wrap := range commitFaults {
		t.Run(name, func(t *testing.T) {
			h := newTracedHub(t, separate, wrap, seq3, greet)
			id, req := h.run("Seq3", nil)
			spans := h.spans(8)
			checkTrace(t, spans, req.TraceID(), id)
			orch := one(t, spans, "orchestration:Seq3", trace.SpanKindServer)
			checkActivities(t, spans, "Greet", orch.SpanContext.SpanID(), 3)
			checkCommitFaultsHit(t, h.be)
		})
	}
}

// TestNoSpansWithNoopProvider: an engine on the no-op provider records
// nothing, even for executions whose start carries a trace context.
func TestNoSpansWithNoopProvider(t *testing.T) {
	h := newTracedHub(t, engine.Options{TracerProvider: noop.NewTracerProvider()}, nil, seq3, greet)
	id, _ := h.run("Seq3", nil)
	spans := h.spans(1)
	if len(spans) == 1 && spans[0].Name != "create_orchestration:Seq3" {
		t.Errorf("the span is %s", spans[0].Name)
	}
	hist, err := h.be.LoadHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hist.Events {
		if c := ev.ParentTraceContext; ev.Type == history.ExecutionStarted && (c == nil || c.SpanID == "") {
			t.Errorf("the start does not carry the trace: %+v", ev)
		}
	}
}

var traceTwoPhase = durable.NewOrchestrator("TraceTwoPhase", func(ctx *durable.Context, _ any) (string, error) {
	if _, err := greet.Call(ctx, "a").Await(); err != nil {
		return "", err
	}
	if _, err := durable.WaitForExternalEvent[string](ctx, "go").Await(); err != nil {
		return "", err
	}
	return greet.Call(ctx, "b").Await()
})

// TestTraceAcrossEngines: an execution begun by one engine and finished by
// another (a restart) is one trace: the second engine rebuilds the open
// spans from history, and the execution span it emits starts when the
// first engine began the execution. A raised event is its own Producer
// span (orchestration_event) in the raiser's trace.
func TestTraceAcrossEngines(t *testing.T) {
	mem, err := memory.New(memory.Options{HubName: "TraceHub2"})
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spanid.Generator{}), sdktrace.WithSyncer(exp))
	h := &hub{t: t, name: mem.HubName()}
	engA, cA := h.start(engine.Options{Backend: mem, TracerProvider: tp, WorkerID: "A", CoalesceBudget: -1}, traceTwoPhase, greet)
	cA.SetTracerProvider(tp)
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	id, err := cA.StartNew(ctx, "TraceTwoPhase", client.StartOptions{})
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	th := &tracedHub{t: t, exp: exp, tp: tp, be: mem, c: cA}
	th.spans(3) // create, and the first call's client and server spans
	stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := engA.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	began := time.Now()

	_, cB := h.start(engine.Options{Backend: mem, TracerProvider: tp, WorkerID: "B", CoalesceBudget: -1}, traceTwoPhase, greet)
	cB.SetTracerProvider(tp)
	if err := cB.RaiseEvent(context.Background(), id, "go", `"now"`); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, cB, id); st.Status != history.StatusCompleted {
		t.Fatalf("status %s", st.Status)
	}
	spans := th.spans(7) // + orchestration, second call's two spans, the event
	event := one(t, spans, "orchestration_event:go", trace.SpanKindProducer)
	var traced []tracetest.SpanStub
	for _, s := range spans {
		if s.Name != event.Name {
			traced = append(traced, s)
		}
	}
	checkTrace(t, traced, req.SpanContext().TraceID(), id)
	checkTrace(t, []tracetest.SpanStub{event}, event.SpanContext.TraceID(), id)
	create := one(t, spans, "create_orchestration:TraceTwoPhase", trace.SpanKindProducer)
	orch := one(t, spans, "orchestration:TraceTwoPhase", trace.SpanKindServer)
	if orch.Parent.SpanID() != create.SpanContext.SpanID() || !orch.StartTime.Before(began) {
		t.Errorf("orchestration span: parent %s (create %s), start %v (engine B began %v)", orch.Parent.SpanID(), create.SpanContext.SpanID(), orch.StartTime, began)
	}
	checkActivities(t, spans, "Greet", orch.SpanContext.SpanID(), 2)
}

// TestTraceRewind: a rewound execution is a new orchestration span in the
// start's trace; the failed call keeps its error spans, its re-run gets
// its own pair.
func TestTraceRewind(t *testing.T) {
	var mu sync.Mutex
	healed := false
	flaky := durable.NewActivity("TraceFlaky", func(ctx context.Context, _ any) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if !healed {
			return "", errors.New("not healed yet")
		}
		return "healed", nil
	})
	orch := durable.NewOrchestrator("TraceRewind", func(ctx *durable.Context, _ any) (string, error) {
		if _, err := greet.Call(ctx, "a").Await(); err != nil {
			return "", err
		}
		return durable.CallActivity[string](ctx, "TraceFlaky", nil).Await()
	})
	h := newTracedHub(t, separate, nil, orch, flaky, greet)
	ctx, req := h.tp.Tracer("test").Start(context.Background(), "request")
	id, err := h.c.StartNew(ctx, "TraceRewind", client.StartOptions{})
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h.c, id); st.Status != history.StatusFailed {
		t.Fatalf("status %s", st.Status)
	}
	h.spans(6) // create, orchestration, greet ×2, flaky ×2
	mu.Lock()
	healed = true
	mu.Unlock()
	if err := h.c.Rewind(context.Background(), id, "healed"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := h.c.GetStatus(context.Background(), id, false)
		if err == nil && st.Status == history.StatusCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not completed after the rewind: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	spans := h.spans(9) // + the rewound orchestration, flaky's re-run ×2
	checkTrace(t, spans, req.SpanContext().TraceID(), id)
	create := one(t, spans, "create_orchestration:TraceRewind", trace.SpanKindProducer)
	execs := named(spans, "orchestration:TraceRewind", trace.SpanKindServer)
	if len(execs) != 2 {
		t.Fatalf("%d orchestration spans, want 2:\n%s", len(execs), describe(spans))
	}
	statuses := map[string]bool{}
	for _, x := range execs {
		v, _ := attr(x, "durabletask.task.status")
		statuses[v.AsString()] = true
		if x.Parent.SpanID() != create.SpanContext.SpanID() {
			t.Errorf("orchestration span %s has parent %s, want create %s", x.SpanContext.SpanID(), x.Parent.SpanID(), create.SpanContext.SpanID())
		}
	}
	if !statuses["Failed"] || !statuses["Completed"] {
		t.Errorf("orchestration statuses %v, want Failed and Completed", statuses)
	}
	var rewound tracetest.SpanStub
	for _, x := range execs {
		if v, _ := attr(x, "durabletask.task.status"); v.AsString() == "Completed" {
			rewound = x
		}
	}
	clients := named(spans, "activity:TraceFlaky", trace.SpanKindClient)
	servers := named(spans, "activity:TraceFlaky", trace.SpanKindServer)
	if len(clients) != 2 || len(servers) != 2 {
		t.Fatalf("%d client and %d server spans of TraceFlaky, want 2 each:\n%s", len(clients), len(servers), describe(spans))
	}
	for _, c := range clients {
		// The failed run belongs to the failed execution, the re-run to the
		// rewound one; each has its server span below it, failed or not alike.
		if (c.Status.Code == codes.Error) == (c.Parent.SpanID() == rewound.SpanContext.SpanID()) {
			t.Errorf("flaky client span %s (status %v) has parent %s; the rewound execution is %s", c.SpanContext.SpanID(), c.Status, c.Parent.SpanID(), rewound.SpanContext.SpanID())
		}
		n := 0
		for _, s := range servers {
			if s.Parent.SpanID() == c.SpanContext.SpanID() && (s.Status.Code == codes.Error) == (c.Status.Code == codes.Error) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("flaky client span %s has %d matching server children, want 1", c.SpanContext.SpanID(), n)
		}
	}
}
