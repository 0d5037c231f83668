package dtrace

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestSpanNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{SpanName(CreateOrchestration, "Orchestrator", ""), "create_orchestration:Orchestrator"},
		{SpanName(TypeActivity, "Hello", "1.2"), "activity:Hello@(1.2)"},
		{TimerSpanName("Orchestrator"), "orchestration:Orchestrator:timer"},
		{EntitySpanName("counter", "add"), "entity:counter:add"},
		{EntityStartSpanName("counter"), "counter:create_orchestration"},
		{FormatFireAt(time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)), "2026-12-02T07:00:00.0000000Z"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestRoundTrip: a span context survives the trace context events carry,
// flags (sampled or not) and trace state included.
func TestRoundTrip(t *testing.T) {
	ts, _ := trace.ParseTraceState("congo=t61rcWkgMzE")
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{0x0a, 0xf7, 1}, SpanID: trace.SpanID{0xb7, 2}, TraceFlags: flags, TraceState: ts})
		c := Context(sc)
		if want := "00-0af70100000000000000000000000000-b702000000000000-0" + string("01"[flags]); c.TraceParent != want {
			t.Errorf("traceparent %s, want %s", c.TraceParent, want)
		}
		got, err := Parse(c)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(sc.WithRemote(true)) || got.IsSampled() != (flags == trace.FlagsSampled) {
			t.Errorf("parsed %+v, want %+v", got, sc)
		}
	}
	if Context(trace.SpanContext{}) != nil {
		t.Error("an invalid span context gives a trace context")
	}
}

func TestParseRejects(t *testing.T) {
	for _, tp := range []string{"", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x", "00-00000000000000000000000000000000-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"} {
		if _, err := Parse(&history.TraceContext{TraceParent: tp}); err == nil || !strings.Contains(err.Error(), "traceparent") {
			t.Errorf("%q: %v", tp, err)
		}
	}
	if _, err := Parse(nil); err == nil {
		t.Error("nil parses")
	}
}
