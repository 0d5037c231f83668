package azurestorage

import (
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// ts returns a UTC time with 100 ns precision, the precision that survives
// storage.
func ts(sec int, hundredNanos int) time.Time {
	return time.Date(2024, 5, 1, 10, 0, sec, hundredNanos*100, time.UTC)
}

func ptr[T any](v T) *T { return &v }

// sampleEvents returns one event of every type with every member of that
// type set to a non-trivial value.
func sampleEvents() []history.Event {
	failure := &history.FailureDetails{
		ErrorType:    "System.InvalidOperationException",
		ErrorMessage: "boom \"quoted\"\nline 2",
		StackTrace:   "at Foo()\n at Bar()",
		InnerFailure: &history.FailureDetails{ErrorType: "Inner", ErrorMessage: "inner cause", IsNonRetriable: true},
		Properties:   map[string]any{"code": "E42", "attempt": 3.0},
	}
	ev := func(t history.EventType, id int32, sec int) history.Event {
		e := history.NewEvent(t, ts(sec, 1234567))
		e.EventID = id
		e.IsPlayed = sec%2 == 0
		return e
	}
	var out []history.Event

	e := ev(history.ExecutionStarted, -1, 1)
	e.Instance = history.OrchestrationInstance{InstanceID: "order/42", ExecutionID: "aae3f9da0b1c4d5e8f9a0b1c2d3e4f50"}
	e.Parent = &history.ParentInstance{Name: "Parent", Version: "1.0", TaskScheduleID: 7,
		Instance: history.OrchestrationInstance{InstanceID: "parent-1", ExecutionID: "e-parent"}}
	e.Name, e.Version, e.Input = "MyOrch", "2.1", `{"city":"Zürich","n":[1,2]}`
	e.Tags = map[string]string{"owner": "team-a", "ünï": "cödé"}
	e.ScheduledStartTime = ptr(ts(30, 1))
	e.Generation = ptr(int32(3))
	e.ParentTraceContext = &history.TraceContext{
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "congo=t61rcWkgMzE",
		ID: "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", SpanID: "00f067aa0ba902b7",
		ActivityStartTime: ptr(ts(1, 7654321)),
	}
	out = append(out, e)

	e = ev(history.ExecutionCompleted, 5, 2)
	e.Status, e.Result, e.Failure = history.StatusFailed, `"done"`, failure
	out = append(out, e)

	out = append(out, ev(history.ExecutionFailed, -1, 3))

	e = ev(history.ExecutionTerminated, -1, 4)
	e.Input = `"stopped by operator"`
	out = append(out, e)

	e = ev(history.TaskScheduled, 0, 5)
	e.Name, e.Version, e.Input = "SayHello", "", `"Tokyo"`
	e.Tags = map[string]string{"k": "v"}
	e.ParentTraceContext = &history.TraceContext{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-53995c3f42cd8ad8-00"}
	out = append(out, e)

	e = ev(history.TaskCompleted, -1, 6)
	e.TaskScheduledID, e.Result = 0, `"Hello Tokyo!"`
	out = append(out, e)

	e = ev(history.TaskFailed, -1, 7)
	e.TaskScheduledID, e.Reason, e.Details, e.Failure = 1, "activity failed", "details text", failure
	out = append(out, e)

	e = ev(history.SubOrchestrationInstanceCreated, 2, 8)
	e.Name, e.Version, e.InstanceID, e.Input = "Child", "v1", "child-1", `{"x":1}`
	e.Tags = map[string]string{"a": "b"}
	e.ClientSpanID = "6e0c63257de34c92"
	out = append(out, e)

	e = ev(history.SubOrchestrationInstanceCompleted, -1, 9)
	e.TaskScheduledID, e.Result = 2, `42`
	out = append(out, e)

	e = ev(history.SubOrchestrationInstanceFailed, -1, 10)
	e.TaskScheduledID, e.Reason, e.Details, e.Failure = 2, "child failed", "", &history.FailureDetails{ErrorType: "T", ErrorMessage: "M"}
	out = append(out, e)

	e = ev(history.TimerCreated, 3, 11)
	e.FireAt = ts(50, 9999999)
	out = append(out, e)

	e = ev(history.TimerFired, -1, 12)
	e.TimerID, e.FireAt = 3, ts(50, 9999999)
	out = append(out, e)

	out = append(out, ev(history.OrchestratorStarted, -1, 13))
	out = append(out, ev(history.OrchestratorCompleted, -1, 14))

	e = ev(history.EventSent, 4, 15)
	e.InstanceID, e.Name, e.Input = "other-instance", "Approval", `true`
	out = append(out, e)

	e = ev(history.EventRaised, -1, 16)
	e.Name, e.Input = "Approval", `{"approved":true,"by":"O'Brien"}`
	e.ParentTraceContext = &history.TraceContext{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	out = append(out, e)

	e = ev(history.ContinueAsNew, 6, 17)
	e.Status, e.Result = history.StatusContinuedAsNew, `{"next":2}`
	out = append(out, e)

	e = ev(history.GenericEvent, -1, 18)
	e.Data = `"rewind"`
	out = append(out, e)

	out = append(out, ev(history.HistoryState, -1, 19))

	e = ev(history.ExecutionSuspended, -1, 20)
	e.Reason = "maintenance"
	out = append(out, e)

	e = ev(history.ExecutionResumed, -1, 21)
	e.Reason = "maintenance over"
	out = append(out, e)

	e = ev(history.ExecutionRewound, -1, 22)
	e.Reason, e.InstanceID = "retry", "order/42"
	out = append(out, e)
	return out
}
