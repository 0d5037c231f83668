package replaytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

var update = flag.Bool("update", false, "rewrite the exports in testdata from the recording scripts")

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// recorder plays the engine for one instance: it runs the production code
// episode by episode on scripted events, keeps the history the engine would
// write, and renders it the way the management API does.
type recorder struct {
	t       *testing.T
	reg     *durable.Registry
	ex      replay.Executor
	id      string
	name    string
	input   string
	created time.Time
	last    time.Time
	hist    []history.Event
	actions map[int32]history.Event
}

// record starts an instance created at created whose first episode runs at first.
func record(t *testing.T, reg *durable.Registry, name, id, input string, created, first time.Time) *recorder {
	fn, ok := replay.LookupOrchestrator(reg, name)
	if !ok {
		t.Fatalf("%s is not registered", name)
	}
	r := &recorder{t: t, reg: reg, ex: replay.NewExecutor(fn, id), id: id, name: name, input: input,
		created: created, actions: map[int32]history.Event{}}
	t.Cleanup(r.ex.Close)
	start := history.NewEvent(history.ExecutionStarted, created)
	start.Name, start.Input = name, input
	start.Instance = history.OrchestrationInstance{InstanceID: id, ExecutionID: "exec-" + id}
	r.episode(first, start)
	return r
}

// episode runs one episode at time at on the given events.
func (r *recorder) episode(at time.Time, events ...history.Event) {
	r.t.Helper()
	evs := append([]history.Event{history.NewEvent(history.OrchestratorStarted, at)}, events...)
	actions, err := r.ex.Run(evs)
	if err != nil {
		r.t.Fatalf("recording %s: %v", r.id, err)
	}
	for _, a := range actions {
		r.actions[a.EventID] = a
	}
	r.hist = append(r.hist, evs...)
	r.hist = append(r.hist, actions...)
	r.hist = append(r.hist, history.NewEvent(history.OrchestratorCompleted, at))
	r.last = at
}

// result runs the activity that action id calls and returns its response,
// stamped at.
func (r *recorder) result(id int32, at time.Time) history.Event {
	r.t.Helper()
	a, ok := r.actions[id]
	if !ok || a.Type != history.TaskScheduled {
		r.t.Fatalf("task %d is not an activity call: %+v", id, a)
	}
	fn, ok := replay.LookupActivity(r.reg, a.Name)
	if !ok {
		r.t.Fatalf("activity %s is not registered", a.Name)
	}
	out, err := fn(context.Background(), a.Input)
	var ev history.Event
	if err != nil {
		ev = history.NewEvent(history.TaskFailed, at)
		ev.Failure = replay.FailureFromError(err)
		ev.Reason = ev.Failure.ErrorMessage
	} else {
		ev = history.NewEvent(history.TaskCompleted, at)
		ev.Result = out
	}
	ev.TaskScheduledID = id
	return ev
}

// failure returns a TaskFailed for activity call id, stamped at.
func (r *recorder) failure(id int32, at time.Time, msg string) history.Event {
	ev := history.NewEvent(history.TaskFailed, at)
	ev.TaskScheduledID = id
	ev.Failure = replay.FailureFromError(errors.New(msg))
	ev.Reason = msg
	return ev
}

// childResult returns the SubOrchestrationInstanceCompleted of call id.
func (r *recorder) childResult(id int32, at time.Time, result string) history.Event {
	r.t.Helper()
	if a := r.actions[id]; a.Type != history.SubOrchestrationInstanceCreated {
		r.t.Fatalf("task %d is not a sub-orchestration: %+v", id, a)
	}
	ev := history.NewEvent(history.SubOrchestrationInstanceCompleted, at)
	ev.TaskScheduledID, ev.Result = id, result
	return ev
}

// fired returns the TimerFired of timer id, stamped as the engine does
// (with the timer's creation time).
func (r *recorder) fired(id int32) history.Event {
	r.t.Helper()
	a, ok := r.actions[id]
	if !ok || a.Type != history.TimerCreated {
		r.t.Fatalf("task %d is not a timer: %+v", id, a)
	}
	ev := history.NewEvent(history.TimerFired, a.Timestamp)
	ev.TimerID, ev.FireAt = id, a.FireAt
	return ev
}

func (r *recorder) fireAt(id int32) time.Time { return r.actions[id].FireAt }

func raised(at time.Time, name, input string) history.Event {
	ev := history.NewEvent(history.EventRaised, at)
	ev.Name, ev.Input = name, input
	return ev
}

func management(tp history.EventType, at time.Time, reason string) history.Event {
	ev := history.NewEvent(tp, at)
	if tp == history.ExecutionTerminated {
		ev.Input, _ = jsonString(reason)
	} else {
		ev.Reason = reason
	}
	return ev
}

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// export renders the instance as GET .../instances/{id}?showHistory=true&showHistoryOutput=true.
func (r *recorder) export() []byte {
	r.t.Helper()
	st := client.Status{InstanceID: r.id, Name: r.name, Input: r.input, CreatedTime: r.created,
		LastUpdatedTime: r.last, Status: history.StatusRunning}
	if r.ex.Suspended() {
		st.Status = history.StatusSuspended
	}
	if c := r.ex.Completion(); c != nil {
		st.Status = c.Status
		st.Output = c.Result
		if c.Status == history.StatusFailed {
			st.Output = c.Failure.String()
		}
	}
	payload := durableapi.NewStatusPayload(st, true)
	entries, err := durableapi.HistoryEntries(r.hist, true, true)
	if err != nil {
		r.t.Fatal(err)
	}
	payload.HistoryEvents = entries
	b, err := json.MarshalIndent(payload, "", "  ")
	if err != nil {
		r.t.Fatal(err)
	}
	return append(b, '\n')
}

// exports are the recording scripts of testdata/*.json.
var exports = []struct {
	file   string
	record func(t *testing.T) *recorder
}{
	{"hello_completed.json", func(t *testing.T) *recorder {
		r := record(t, registry(t, helloV1, hello), "HelloCities", "hello-1", "", t0, t0.Add(ms(20)))
		r.episode(t0.Add(ms(125)), r.result(0, t0.Add(ms(120))))
		r.episode(t0.Add(ms(236)), r.result(1, t0.Add(ms(230))))
		r.episode(t0.Add(ms(347)), r.result(2, t0.Add(ms(340))))
		return r
	}},
	{"hello_running.json", func(t *testing.T) *recorder {
		// Exported while London (task 2) was running.
		r := record(t, registry(t, helloV1, hello), "HelloCities", "hello-2", "", t0, t0.Add(ms(20)))
		r.episode(t0.Add(ms(125)), r.result(0, t0.Add(ms(120))))
		r.episode(t0.Add(ms(236)), r.result(1, t0.Add(ms(230))))
		return r
	}},
	{"hello_terminated.json", func(t *testing.T) *recorder {
		// Terminated while Seattle (task 1) was running.
		r := record(t, registry(t, helloV1, hello), "HelloCities", "hello-3", "", t0, t0.Add(ms(20)))
		r.episode(t0.Add(ms(125)), r.result(0, t0.Add(ms(120))))
		r.episode(t0.Add(ms(205)), management(history.ExecutionTerminated, t0.Add(ms(200)), "operator stop"))
		return r
	}},
	{"approval.json", func(t *testing.T) *recorder {
		// Hello, a 10-minute timer, then an approval event that arrives while
		// the instance is suspended; the event's timeout timer (task 2) is
		// canceled and never fires.
		r := record(t, registry(t, approvalV1, hello), "Approval", "approval-1", "", t0, t0.Add(ms(10)))
		r.episode(t0.Add(ms(105)), r.result(0, t0.Add(ms(100))))
		r.episode(r.fireAt(1).Add(ms(30)), r.fired(1))
		r.episode(t0.Add(15*time.Minute), management(history.ExecutionSuspended, t0.Add(15*time.Minute-ms(5)), "maintenance"))
		r.episode(t0.Add(16*time.Minute), raised(t0.Add(16*time.Minute-ms(5)), "Approve", "true"))
		r.episode(t0.Add(20*time.Minute), management(history.ExecutionResumed, t0.Add(20*time.Minute-ms(5)), "done"))
		r.episode(t0.Add(20*time.Minute+ms(110)), r.result(3, t0.Add(20*time.Minute+ms(100))))
		return r
	}},
	{"checkout_declined.json", func(t *testing.T) *recorder {
		// The charge fails; the code handles it by notifying the customer.
		r := record(t, registry(t, checkout(true, nil), charge, notify), "Checkout", "order-41", "4200", t0, t0.Add(ms(10)))
		r.episode(t0.Add(ms(510)), r.result(0, t0.Add(ms(500))))
		r.episode(t0.Add(ms(620)), r.result(1, t0.Add(ms(610))))
		return r
	}},
	{"checkout_failed.json", func(t *testing.T) *recorder {
		// Recorded with the version that did not handle the failure.
		r := record(t, registry(t, checkout(false, nil), charge, notify), "Checkout", "order-42", "4200", t0, t0.Add(ms(10)))
		r.episode(t0.Add(ms(510)), r.result(0, t0.Add(ms(500))))
		return r
	}},
	{"suborchestration.json", func(t *testing.T) *recorder {
		r := record(t, registry(t, trip(false), hello), "Trip", "trip-1", "", t0, t0.Add(ms(10)))
		r.episode(t0.Add(ms(900)), r.childResult(0, t0.Add(ms(880)), `["Hello Tokyo!","Hello Seattle!","Hello London!"]`))
		r.episode(t0.Add(ms(1010)), r.result(1, t0.Add(ms(1000))))
		return r
	}},
	{"retry.json", func(t *testing.T) *recorder {
		// The first attempt fails, the retry after a minute succeeds.
		r := record(t, registry(t, retrying(3)), "Retry", "retry-1", "", t0, t0.Add(ms(10)))
		r.episode(t0.Add(ms(210)), r.failure(0, t0.Add(ms(200)), "service unavailable"))
		r.episode(r.fireAt(1).Add(ms(20)), r.fired(1))
		ok := history.NewEvent(history.TaskCompleted, r.fireAt(1).Add(ms(300)))
		ok.TaskScheduledID, ok.Result = 2, `"ok"`
		r.episode(r.fireAt(1).Add(ms(310)), ok)
		return r
	}},
	{"batch.json", func(t *testing.T) *recorder {
		// Fan-out of three: two results arrive in one episode, the third
		// carries a timestamp after the start of the episode that handles
		// it (clock skew), which schedules the report.
		r := record(t, registry(t, batch, work, report), "Batch", "batch-1", "3", t0, t0.Add(ms(15)))
		r.episode(t0.Add(ms(1200)), r.result(0, t0.Add(ms(1000))), r.result(1, t0.Add(ms(1100))))
		r.episode(t0.Add(ms(2000)), r.result(2, t0.Add(ms(2050))))
		r.episode(t0.Add(ms(2300)), r.result(3, t0.Add(ms(2200))))
		r.episode(r.fireAt(4).Add(ms(40)), r.fired(4))
		return r
	}},
}

// TestExportsAreCurrent re-records every export and compares it with the
// file in testdata, so the files keep the exact shape of the management
// API. Run with -update to rewrite them.
func TestExportsAreCurrent(t *testing.T) {
	for _, x := range exports {
		t.Run(x.file, func(t *testing.T) {
			got := x.record(t).export()
			path := filepath.Join("testdata", x.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s is stale (the recording or the API's history shape changed); run go test -run TestExportsAreCurrent -update\ngot:\n%s", path, got)
			}
		})
	}
}
