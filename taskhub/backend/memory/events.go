package memory

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// storedEvent returns ev as Azure Storage keeps it (in a queue message or a
// History row) and gives it back: a deep copy holding only the members of
// its Durable Task event class (see the table in azurestorage's event.go),
// times at storage precision, empty maps as nil and failure properties as
// JSON values. It fails on an unknown event type or properties that are not
// JSON, as azurestorage does.
func storedEvent(ev *history.Event) (history.Event, error) {
	if !ev.Type.Valid() {
		return history.Event{}, fmt.Errorf("cannot store event of unknown type %d", int(ev.Type))
	}
	out := history.Event{Type: ev.Type, EventID: ev.EventID, IsPlayed: ev.IsPlayed, Timestamp: storageTime(ev.Timestamp)}
	var err error
	failure := func() {
		out.Failure, err = storedFailure(ev.Failure)
	}
	switch ev.Type {
	case history.ExecutionStarted:
		out.Instance = ev.Instance
		if ev.Parent != nil {
			p := *ev.Parent
			out.Parent = &p
		}
		out.Name, out.Version, out.Input, out.Tags = ev.Name, ev.Version, ev.Input, stringMap(ev.Tags)
		if ev.ScheduledStartTime != nil {
			t := storageTime(*ev.ScheduledStartTime)
			out.ScheduledStartTime = &t
		}
		if ev.Generation != nil {
			g := *ev.Generation
			out.Generation = &g
		}
		out.GenerateNewTrace, out.ParentTraceContext = ev.GenerateNewTrace, storedTrace(ev.ParentTraceContext)
	case history.ExecutionCompleted, history.ContinueAsNew:
		out.Status, out.Result = ev.Status, ev.Result
		failure()
	case history.ExecutionTerminated:
		out.Input = ev.Input
	case history.TaskScheduled:
		out.Name, out.Version, out.Input, out.Tags = ev.Name, ev.Version, ev.Input, stringMap(ev.Tags)
		out.ParentTraceContext = storedTrace(ev.ParentTraceContext)
	case history.TaskCompleted, history.SubOrchestrationInstanceCompleted:
		out.TaskScheduledID, out.Result = ev.TaskScheduledID, ev.Result
	case history.TaskFailed, history.SubOrchestrationInstanceFailed:
		out.TaskScheduledID, out.Reason, out.Details = ev.TaskScheduledID, ev.Reason, ev.Details
		failure()
	case history.SubOrchestrationInstanceCreated:
		out.Name, out.Version, out.InstanceID, out.Input, out.Tags = ev.Name, ev.Version, ev.InstanceID, ev.Input, stringMap(ev.Tags)
		out.ClientSpanID = ev.ClientSpanID
	case history.TimerCreated:
		out.FireAt = storageTime(ev.FireAt)
	case history.TimerFired:
		out.TimerID, out.FireAt = ev.TimerID, storageTime(ev.FireAt)
	case history.EventSent:
		out.InstanceID, out.Name, out.Input = ev.InstanceID, ev.Name, ev.Input
	case history.EventRaised:
		out.Name, out.Input = ev.Name, ev.Input
		out.ParentTraceContext = storedTrace(ev.ParentTraceContext)
	case history.GenericEvent:
		out.Data = ev.Data
	case history.ExecutionSuspended, history.ExecutionResumed:
		out.Reason = ev.Reason
	case history.ExecutionRewound:
		out.Reason, out.InstanceID = ev.Reason, ev.InstanceID
		out.ParentTraceContext = storedTrace(ev.ParentTraceContext)
	}
	// ExecutionFailed, OrchestratorStarted, OrchestratorCompleted and
	// HistoryState carry the base members only.
	return out, err
}

// storedTrace copies a trace context as storage keeps it: times at storage
// precision, a trace state beyond Durable Task's limit dropped.
func storedTrace(c *history.TraceContext) *history.TraceContext {
	out := c.Clone()
	if out == nil {
		return nil
	}
	if out.ActivityStartTime != nil {
		*out.ActivityStartTime = storageTime(*out.ActivityStartTime)
	}
	if len(out.TraceState) > history.MaxTraceStateLength {
		out.TraceState = ""
	}
	return out
}

// storedFailure copies failure details; Properties go through JSON, as
// they do in storage (numbers come back as float64).
func storedFailure(f *history.FailureDetails) (*history.FailureDetails, error) {
	if f == nil {
		return nil, nil
	}
	out := *f
	out.Properties = nil
	if len(f.Properties) > 0 {
		data, err := json.Marshal(f.Properties)
		if err != nil {
			return nil, fmt.Errorf("FailureDetails.Properties: %w", err)
		}
		if err := json.Unmarshal(data, &out.Properties); err != nil {
			return nil, fmt.Errorf("FailureDetails.Properties: %w", err)
		}
	}
	if f.InnerFailure != nil {
		inner, err := storedFailure(f.InnerFailure)
		if err != nil {
			return nil, err
		}
		out.InnerFailure = inner
	}
	return &out, nil
}

// cloneEvent deep-copies an event already in stored form.
func cloneEvent(ev history.Event) history.Event {
	if ev.Parent != nil {
		p := *ev.Parent
		ev.Parent = &p
	}
	ev.Tags = stringMap(ev.Tags)
	if ev.ScheduledStartTime != nil {
		t := *ev.ScheduledStartTime
		ev.ScheduledStartTime = &t
	}
	if ev.Generation != nil {
		g := *ev.Generation
		ev.Generation = &g
	}
	ev.Failure = cloneFailure(ev.Failure)
	ev.ParentTraceContext = ev.ParentTraceContext.Clone()
	return ev
}

func cloneFailure(f *history.FailureDetails) *history.FailureDetails {
	if f == nil {
		return nil
	}
	out := *f
	out.InnerFailure = cloneFailure(f.InnerFailure)
	if f.Properties != nil {
		out.Properties = make(map[string]any, len(f.Properties))
		for k, v := range f.Properties {
			out.Properties[k] = cloneJSON(v)
		}
	}
	return &out
}

// cloneJSON deep-copies a value decoded from JSON.
func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = cloneJSON(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cloneJSON(x)
		}
		return out
	}
	return v
}

// stringMap copies m; an empty map is nil, as storage gives it back.
func stringMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// storageTime is history.StorageTime: UTC, whole 100 ns ticks; zero stays
// zero.
func storageTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return history.StorageTime(t)
}
