package backendtest

import (
	"fmt"
	"strings"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// allEvents returns one event of every history event type, each with every
// field its Durable Task event class carries set to a non-trivial value
// (and only those: a backend may drop the others).
func allEvents() []history.Event {
	failure := &history.FailureDetails{
		ErrorType:      "System.InvalidOperationException",
		ErrorMessage:   "it broke: \"quoted\"\nsecond line",
		StackTrace:     "at A()\n at B()",
		InnerFailure:   &history.FailureDetails{ErrorType: "Inner", ErrorMessage: "the cause", IsNonRetriable: true},
		IsNonRetriable: false,
		Properties:     map[string]any{"code": "E7", "attempt": 2.0, "nested": map[string]any{"ok": true}},
	}
	n := 0
	ev := func(t history.EventType, id int32) history.Event {
		n++
		e := history.NewEvent(t, ts(n, 1234567))
		e.EventID = id
		e.IsPlayed = n%2 == 0
		return e
	}
	var out []history.Event

	e := ev(history.ExecutionStarted, -1)
	e.Instance = history.OrchestrationInstance{InstanceID: "order/42", ExecutionID: "1f0c9a3e5b7d4c2a9e8f7a6b5c4d3e2f"}
	e.Parent = &history.ParentInstance{Name: "Parent", Version: "2", TaskScheduleID: 7,
		Instance: history.OrchestrationInstance{InstanceID: "parent-1", ExecutionID: "e-parent"}}
	e.Name, e.Version, e.Input = "MyOrch", "1.0", `{"city":"Zürich","n":[1,2]}`
	e.Tags = map[string]string{"owner": "team-a", "ünï": "cödé"}
	e.ScheduledStartTime = ptr(ts(40, 1))
	e.Generation = ptr(int32(3))
	out = append(out, e)

	e = ev(history.ExecutionCompleted, 5)
	e.Status, e.Result, e.Failure = history.StatusFailed, `"done"`, failure
	out = append(out, e)

	out = append(out, ev(history.ExecutionFailed, -1))

	e = ev(history.ExecutionTerminated, -1)
	e.Input = `"stopped by an operator"`
	out = append(out, e)

	e = ev(history.TaskScheduled, 0)
	e.Name, e.Version, e.Input, e.Tags = "SayHello", "v2", `"Tokyo"`, map[string]string{"k": "v"}
	out = append(out, e)

	e = ev(history.TaskCompleted, -1)
	e.TaskScheduledID, e.Result = 4, `"Hello Tokyo!"`
	out = append(out, e)

	e = ev(history.TaskFailed, -1)
	e.TaskScheduledID, e.Reason, e.Details, e.Failure = 1, "activity failed", "some details", failure
	out = append(out, e)

	e = ev(history.SubOrchestrationInstanceCreated, 2)
	e.Name, e.Version, e.InstanceID, e.Input, e.Tags = "Child", "v1", "child-1", `{"x":1}`, map[string]string{"a": "b"}
	out = append(out, e)

	e = ev(history.SubOrchestrationInstanceCompleted, -1)
	e.TaskScheduledID, e.Result = 2, `42`
	out = append(out, e)

	e = ev(history.SubOrchestrationInstanceFailed, -1)
	e.TaskScheduledID, e.Reason, e.Details, e.Failure = 2, "child failed", "", &history.FailureDetails{ErrorType: "T", ErrorMessage: "M"}
	out = append(out, e)

	e = ev(history.TimerCreated, 3)
	e.FireAt = ts(50, 9999999)
	out = append(out, e)

	e = ev(history.TimerFired, -1)
	e.TimerID, e.FireAt = 3, ts(50, 9999999)
	out = append(out, e)

	out = append(out, ev(history.OrchestratorStarted, -1), ev(history.OrchestratorCompleted, -1))

	e = ev(history.EventSent, 4)
	e.InstanceID, e.Name, e.Input = "other-instance", "Approval", `true`
	out = append(out, e)

	e = ev(history.EventRaised, -1)
	e.Name, e.Input = "Approval", `{"approved":true,"by":"O'Brien"}`
	out = append(out, e)

	e = ev(history.ContinueAsNew, 6)
	e.Status, e.Result = history.StatusContinuedAsNew, `{"next":2}`
	out = append(out, e)

	e = ev(history.GenericEvent, -1)
	e.Data = `"rewound"`
	out = append(out, e)

	out = append(out, ev(history.HistoryState, -1))

	e = ev(history.ExecutionSuspended, -1)
	e.Reason = "maintenance"
	out = append(out, e)

	e = ev(history.ExecutionResumed, -1)
	e.Reason = "maintenance over"
	out = append(out, e)

	e = ev(history.ExecutionRewound, -1)
	e.Reason, e.InstanceID = "retry", "order/42"
	out = append(out, e)
	return out
}

// largeJSON returns a JSON string value of about n bytes, larger than a
// queue message or a table column holds (so Azure Storage moves it to a
// blob).
func largeJSON(n int) string { return `"` + strings.Repeat("0123456789", n/10) + `"` }

// completions returns n TaskCompleted events with distinct payloads.
func completions(n int) []history.Event {
	out := make([]history.Event, n)
	for i := range out {
		ev := history.NewEvent(history.TaskCompleted, ts(i%60, i))
		ev.TaskScheduledID, ev.Result = int32(i), fmt.Sprintf(`{"i":%d}`, i)
		out[i] = ev
	}
	return out
}
