// Package spanid lets the engine choose the span IDs of the spans it builds
// from history. Episodes of one execution run in different processes and
// after restarts, so a span that stands for a recorded step (an execution,
// an activity call, a timer) must have the ID its history implies, not one
// drawn by whichever process emits it; the OTel API cannot set a span ID, so
// the wanted ID travels in the context to the SDK's ID generator.
//
// The package depends on the OTel trace API only: the engine imports it to
// ask for an ID, and internal/telemetry installs Generator in its
// TracerProvider (a test's provider needs it too).
package spanid

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

type wantKey struct{}

// want is a wanted span ID, for a span started under parent.
type want struct {
	id, parent trace.SpanID
}

// With returns ctx asking the span started in it (with a TracerProvider
// whose ID generator is a Generator) to have span ID id. Only a span whose
// parent is ctx's current span gets it: spans started in that span's
// context (its children) get IDs of their own.
func With(ctx context.Context, id trace.SpanID) context.Context {
	return context.WithValue(ctx, wantKey{}, want{id: id, parent: trace.SpanContextFromContext(ctx).SpanID()})
}

// From returns the span ID ctx asks for, if any.
func From(ctx context.Context) (trace.SpanID, bool) {
	w, ok := ctx.Value(wantKey{}).(want)
	if !ok || !w.id.IsValid() || trace.SpanContextFromContext(ctx).SpanID() != w.parent {
		return trace.SpanID{}, false
	}
	return w.id, true
}

// Derive returns the span ID that stands for one recorded step: a hash of
// the execution ID, what the span is (kind) and the event ID, never zero.
func Derive(executionID, kind string, eventID int32) trace.SpanID {
	h := sha256.New()
	h.Write([]byte(executionID))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(eventID))
	h.Write(n[:])
	var id trace.SpanID
	copy(id[:], h.Sum(nil))
	if !id.IsValid() {
		id[7] = 1
	}
	return id
}

// Generator is an ID generator for the OTel SDK (sdktrace.WithIDGenerator):
// a span gets the span ID its context asks for (With), else a random one,
// as does a new trace's trace ID. It is safe for concurrent use.
type Generator struct{}

// NewIDs returns the IDs of a span that starts a trace.
func (Generator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, Generator{}.NewSpanID(ctx, tid)
}

// NewSpanID returns the span ID of a span in trace traceID.
func (Generator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if id, ok := From(ctx); ok {
		return id
	}
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
