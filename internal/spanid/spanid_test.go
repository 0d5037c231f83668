package spanid_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-durable/durablefunctions/internal/spanid"
)

// TestGeneratorHonoursTheContext starts spans in an SDK provider using
// Generator: one whose context asks for an ID gets it (as root and as
// child), others, its children included, get distinct random IDs.
func TestGeneratorHonoursTheContext(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spanid.Generator{}), sdktrace.WithSyncer(exp))
	tr := tp.Tracer("test")
	want := spanid.Derive("exec", "activity", 3)
	ctx, root := tr.Start(spanid.With(context.Background(), want), "root")
	root.End()
	_, child := tr.Start(spanid.With(ctx, want), "child")
	child.End()
	// A span started in the context of the span that got the ID (its
	// child) draws its own.
	ctx, other := tr.Start(ctx, "other")
	other.End()
	_, another := tr.Start(ctx, "another")
	another.End()
	if root.SpanContext().SpanID() != want || child.SpanContext().SpanID() != want {
		t.Errorf("asked for %s: root %s, child %s", want, root.SpanContext().SpanID(), child.SpanContext().SpanID())
	}
	if a, b := other.SpanContext().SpanID(), another.SpanContext().SpanID(); a == want || b == want || a == b || !a.IsValid() {
		t.Errorf("random span IDs %s and %s (wanted one %s)", a, b, want)
	}
	if !root.SpanContext().TraceID().IsValid() || child.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Errorf("trace IDs %s, %s", root.SpanContext().TraceID(), child.SpanContext().TraceID())
	}
	if n := len(exp.GetSpans()); n != 4 {
		t.Errorf("%d spans exported, want 4", n)
	}
}

// TestDerive: the derived ID depends on each part and is stable.
func TestDerive(t *testing.T) {
	base := spanid.Derive("e1", "activity", 1)
	if base != spanid.Derive("e1", "activity", 1) {
		t.Error("Derive is not stable")
	}
	seen := map[trace.SpanID]string{base: "base"}
	for name, id := range map[string]trace.SpanID{
		"execution": spanid.Derive("e2", "activity", 1),
		"kind":      spanid.Derive("e1", "timer", 1),
		"event":     spanid.Derive("e1", "activity", 2),
		"negative":  spanid.Derive("e1", "activity", -1),
	} {
		if !id.IsValid() {
			t.Errorf("%s: invalid ID", name)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("%s gives the same ID as %s", name, prev)
		}
		seen[id] = name
	}
	if _, ok := spanid.From(context.Background()); ok {
		t.Error("From on a bare context reports an ID")
	}
}
