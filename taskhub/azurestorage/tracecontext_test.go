package azurestorage

import (
	"reflect"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestTraceContextQueueShape checks a TaskScheduled work item's
// ParentTraceContext as Durable Task's MessageManager writes it: a typed
// DistributedTraceContext with its five members in order, the traceparent
// whole (flags 00 kept, so a restored context stays unsampled).
func TestTraceContextQueueShape(t *testing.T) {
	ev := history.NewEvent(history.TaskScheduled, ts(0, 1234567))
	ev.EventID, ev.Name = 0, "Hello"
	ev.ParentTraceContext = &history.TraceContext{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-53995c3f42cd8ad8-00", TraceState: "congo=t61rcWkgMzE"}
	msg := backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: "abc", ExecutionID: "x"}}
	body, err := encodeMessage(&msg, emptyGUID, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := `"ParentTraceContext":{"$type":"DurableTask.Core.Tracing.DistributedTraceContext",` +
		`"TraceParent":"00-0af7651916cd43dd8448eb211c80319c-53995c3f42cd8ad8-00","TraceState":"congo=t61rcWkgMzE",` +
		`"Id":null,"SpanId":null,"ActivityStartTime":null},"Tags":null`
	if !strings.Contains(string(body), want) {
		t.Errorf("work item lacks\n%s\nin\n%s", want, body)
	}
	got, err := decodeMessage(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Event.ParentTraceContext, ev.ParentTraceContext) {
		t.Errorf("decoded %+v, want %+v", got.Event.ParentTraceContext, ev.ParentTraceContext)
	}
}

// TestDecodeDTFxTraceContexts reads trace contexts as Durable Task writes
// them: a History row's JSON string (DateTimeOffset with its offset, an
// offset other than UTC included), a queue object without "$type", null
// members, and a trace state over Durable Task's limit, which it drops.
func TestDecodeDTFxTraceContexts(t *testing.T) {
	long := strings.Repeat("a", history.MaxTraceStateLength+1)
	tests := []struct {
		name string
		row  string
		want *history.TraceContext
	}{
		{"history row", `{"EventType":"ExecutionStarted","Name":"O","OrchestrationInstance":"{\"InstanceId\":\"i\",\"ExecutionId\":\"e\"}",` +
			`"ParentTraceContext":"{\"TraceParent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\",\"TraceState\":null,` +
			`\"Id\":\"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01\",\"SpanId\":\"00f067aa0ba902b7\",` +
			`\"ActivityStartTime\":\"2024-05-01T12:00:01.7654321+02:00\"}","EventId":-1}`,
			&history.TraceContext{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				ID: "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", SpanID: "00f067aa0ba902b7", ActivityStartTime: ptr(ts(1, 7654321))}},
		{"null column", `{"EventType":"TaskScheduled","Name":"A","ParentTraceContext":"null","EventId":0}`, nil},
		{"absent column", `{"EventType":"EventRaised","Name":"A","EventId":-1}`, nil},
		{"object, long trace state", `{"EventType":"EventRaised","Name":"A","EventId":-1,"ParentTraceContext":` +
			`{"TraceParent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","TraceState":"` + long + `"}}`,
			&history.TraceContext{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseRow([]byte(tt.row))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := eventFromRow(r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev.ParentTraceContext, tt.want) {
				t.Errorf("got %+v, want %+v", ev.ParentTraceContext, tt.want)
			}
		})
	}
}

// TestUndecodableTraceContext: a ParentTraceContext that is not an object,
// or has a bad member, is an error naming it and the event, not a silent
// loss of the trace.
func TestUndecodableTraceContext(t *testing.T) {
	for _, row := range []string{
		`{"EventType":"TaskScheduled","Name":"A","EventId":0,"ParentTraceContext":"[1,2]"}`,
		`{"EventType":"TaskScheduled","Name":"A","EventId":0,"ParentTraceContext":{"TraceParent":7}}`,
		`{"EventType":"ExecutionStarted","Name":"A","EventId":-1,"ParentTraceContext":{"TraceParent":"x","ActivityStartTime":"yesterday"}}`,
	} {
		r, err := parseRow([]byte(row))
		if err != nil {
			t.Fatal(err)
		}
		_, err = eventFromRow(r)
		if err == nil || !strings.Contains(err.Error(), "ParentTraceContext") {
			t.Errorf("%s: error %v, want one naming ParentTraceContext", row, err)
		}
	}
}
