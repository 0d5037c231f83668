// Package dtrace holds what the client and the engine share to trace in
// the Durable Task Framework's shape (DurableTask.Core's TraceHelper): span
// names, attribute keys, and the conversion between an OTel span context
// and the history.TraceContext that events carry.
package dtrace

import (
	"encoding/hex"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/go-durable/durablefunctions"

// Attribute keys, as Durable Task names them.
const (
	Type                  = attribute.Key("durabletask.type")
	TaskName              = attribute.Key("durabletask.task.name")
	TaskVersion           = attribute.Key("durabletask.task.version")
	InstanceID            = attribute.Key("durabletask.task.instance_id")
	ExecutionID           = attribute.Key("durabletask.task.execution_id")
	TaskID                = attribute.Key("durabletask.task.task_id")
	Status                = attribute.Key("durabletask.task.status")
	EventTargetInstanceID = attribute.Key("durabletask.event.target_instance_id")
	FireAt                = attribute.Key("durabletask.fire_at")
	Operation             = attribute.Key("durabletask.task.operation")
	ScheduledTime         = attribute.Key("durabletask.task.scheduled_time")
	EntityErrorMessage    = attribute.Key("durabletask.entity.error_message")
)

// Values of durabletask.type, and span name prefixes.
const (
	TypeOrchestration   = "orchestration"
	TypeActivity        = "activity"
	TypeTimer           = "timer"
	TypeEvent           = "event"
	CreateOrchestration = "create_orchestration"
	OrchestrationEvent  = "orchestration_event"
	TypeEntity          = "entity"
	// Values of durabletask.task.operation on entity spans.
	CallEntity   = "call_entity"
	SignalEntity = "signal_entity"
)

// EntitySpanName is the name of the spans of an entity operation, the
// caller's and the entity's: "entity:{entity name}:{operation}".
func EntitySpanName(entity, operation string) string {
	return TypeEntity + ":" + entity + ":" + operation
}

// EntityStartSpanName is the name of the span of an entity starting an
// orchestration. Durable Task names it "{entity name}:create_orchestration"
// (TraceHelper.StartActivityForEntityStartingAnOrchestration), not
// "create_orchestration:{orchestration}".
func EntityStartSpanName(entity string) string {
	return entity + ":" + CreateOrchestration
}

// SpanName is Durable Task's span name: "{what}:{name}", and
// "{what}:{name}@({version})" when there is a version.
func SpanName(what, name, version string) string {
	if version == "" {
		return what + ":" + name
	}
	return what + ":" + name + "@(" + version + ")"
}

// TimerSpanName is the name of a durable timer's span.
func TimerSpanName(orchestration string) string {
	return TypeOrchestration + ":" + orchestration + ":" + TypeTimer
}

// FormatFireAt renders a timer's due time as .NET's "o" format of a UTC
// DateTime, as Durable Task writes durabletask.fire_at.
func FormatFireAt(t time.Time) string {
	return history.StorageTime(t).Format("2006-01-02T15:04:05.0000000Z")
}

// TraceParent renders a W3C traceparent for span spanID in sc's trace,
// with sc's flags.
func TraceParent(sc trace.SpanContext, spanID trace.SpanID) string {
	var b [55]byte
	copy(b[:], "00-")
	tid, sid := sc.TraceID(), spanID
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// Context returns the trace context an event carries for sc (nil when sc
// is not valid).
func Context(sc trace.SpanContext) *history.TraceContext {
	if !sc.IsValid() {
		return nil
	}
	return &history.TraceContext{TraceParent: TraceParent(sc, sc.SpanID()), TraceState: sc.TraceState().String()}
}

// Child returns the trace context naming span spanID in sc's trace.
func Child(sc trace.SpanContext, spanID trace.SpanID) *history.TraceContext {
	return &history.TraceContext{TraceParent: TraceParent(sc, spanID), TraceState: sc.TraceState().String()}
}

// Parse returns the remote span context a trace context names. A
// traceparent that is not W3C version 00 with valid IDs is an error.
func Parse(c *history.TraceContext) (trace.SpanContext, error) {
	if c == nil {
		return trace.SpanContext{}, fmt.Errorf("dtrace: no trace context")
	}
	tp := c.TraceParent
	if len(tp) != 55 || tp[0:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return trace.SpanContext{}, fmt.Errorf("dtrace: traceparent %q is not 00-{32 hex}-{16 hex}-{2 hex}", tp)
	}
	tid, err := trace.TraceIDFromHex(tp[3:35])
	if err != nil {
		return trace.SpanContext{}, fmt.Errorf("dtrace: traceparent %q: trace ID: %w", tp, err)
	}
	sid, err := trace.SpanIDFromHex(tp[36:52])
	if err != nil {
		return trace.SpanContext{}, fmt.Errorf("dtrace: traceparent %q: span ID: %w", tp, err)
	}
	var flags [1]byte
	if _, err := hex.Decode(flags[:], []byte(tp[53:55])); err != nil {
		return trace.SpanContext{}, fmt.Errorf("dtrace: traceparent %q: flags: %w", tp, err)
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]), Remote: true}
	if c.TraceState != "" {
		// A trace state that does not parse is dropped, not the trace.
		if ts, err := trace.ParseTraceState(c.TraceState); err == nil {
			cfg.TraceState = ts
		}
	}
	return trace.NewSpanContext(cfg), nil
}

// SpanID parses 16 hex digits; ok=false when s is not a valid span ID.
func SpanID(s string) (trace.SpanID, bool) {
	id, err := trace.SpanIDFromHex(s)
	return id, err == nil && id.IsValid()
}
