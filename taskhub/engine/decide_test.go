package engine

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// noIO is a backend whose every call fails the test: decide and plan must
// not touch storage. (Only the hashing helpers may be used.)
type noIO struct {
	backend.Backend
	t *testing.T
}

func (n noIO) PartitionOf(string) int { return 0 }
func (n noIO) PartitionCount() int    { return 1 }
func (n noIO) HubName() string        { return "decide" }

var (
	dGreet = durable.NewActivity("Greet", func(_ context.Context, s string) (string, error) { return "Hi " + s, nil })
	dSeq   = durable.NewOrchestrator("Seq", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, c := range []string{"a", "b"} {
			s, err := dGreet.Call(ctx, c).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})
	dNap = durable.NewOrchestrator("Nap", func(ctx *durable.Context, _ any) (string, error) {
		if err := ctx.Sleep(time.Hour); err != nil {
			return "", err
		}
		return "rested", nil
	})
	dWait = durable.NewOrchestrator("Wait", func(ctx *durable.Context, _ any) (string, error) {
		return durable.WaitForExternalEvent[string](ctx, "Go").Await()
	})
	dLoop = durable.NewOrchestrator("Loop", func(ctx *durable.Context, n int) (int, error) {
		if n < 1 {
			return 0, ctx.ContinueAsNew(n + 1)
		}
		return n, nil
	})
)

// summary is the part of a checkpoint that does not depend on the clock
// or on generated IDs: what a test compares exactly.
type summary struct {
	From       int
	Events     []string // type(id)[name] input/result
	Local      []string // activity calls run here
	WorkItems  []string // activity calls for any worker
	Control    []string // control messages
	Completion string
	Row        rowChange
	Replaced   bool
	NewAnchor  bool
	Start      bool
	Inputs     int
}

func describe(ev history.Event) string {
	s := ev.Type.String()
	switch ev.Type {
	case history.TaskScheduled, history.TimerCreated, history.EventRaised:
		s += fmt.Sprintf("(%d)%s %s", ev.EventID, ev.Name, ev.Input)
	case history.TaskCompleted:
		s += fmt.Sprintf("(%d) %s", ev.TaskScheduledID, ev.Result)
	case history.TimerFired:
		s += fmt.Sprintf("(%d)", ev.TimerID)
	case history.ExecutionStarted:
		s += " " + ev.Name + " " + ev.Input
	case history.ExecutionCompleted:
		s += " " + ev.Status.String() + " " + ev.Result
	case history.ContinueAsNew:
		s += " " + ev.Result
	}
	return s
}

func summarize(cp checkpoint) summary {
	s := summary{From: cp.from, Row: cp.row, Replaced: cp.replaced != "", NewAnchor: cp.newAnchor,
		Start: cp.start != nil, Inputs: len(cp.inputs)}
	for _, ev := range cp.events {
		s.Events = append(s.Events, describe(ev))
	}
	for _, m := range cp.local {
		s.Local = append(s.Local, describe(m.Event))
	}
	for _, m := range cp.workItems {
		s.WorkItems = append(s.WorkItems, describe(m.Event))
	}
	for _, c := range cp.control {
		s.Control = append(s.Control, describe(c.msg.Event)+" to "+c.msg.Target.InstanceID)
	}
	if cp.completion != nil {
		s.Completion = describe(*cp.completion)
	}
	return s
}

// decider builds an engine that is never started, on a backend that
// refuses I/O.
func decider(t *testing.T, draining bool) *Engine {
	reg := durable.NewRegistry()
	if err := reg.Add(dGreet, dSeq, dNap, dWait, dLoop); err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Backend: noIO{t: t}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	e.draining = draining
	return e
}

func startIn(name, input string) *inbound {
	ev := history.NewEvent(history.ExecutionStarted, now())
	ev.Name, ev.Input = name, input
	ev.Instance = history.OrchestrationInstance{InstanceID: "i", ExecutionID: "x1"}
	return &inbound{msg: backend.Message{Event: ev, Target: ev.Instance},
		row: &backend.InstanceState{InstanceID: "i", ExecutionID: "x1", Status: history.StatusPending}}
}

func completedIn(id int32, result string) *inbound {
	ev := history.NewEvent(history.TaskCompleted, now())
	ev.TaskScheduledID, ev.Result = id, result
	return &inbound{msg: backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: "i", ExecutionID: "x1"}}, local: true}
}

func raisedIn(name, data string) *inbound {
	ev := history.NewEvent(history.EventRaised, now())
	ev.Name, ev.Input = name, data
	return &inbound{msg: backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: "i"}}}
}

// TestDecide runs batches through plan and decide on an in-memory instance
// (each checkpoint counted as committed before the next batch) and checks
// the exact checkpoint the last batch calls for.
func TestDecide(t *testing.T) {
	cases := []struct {
		name     string
		draining bool
		batches  [][]*inbound
		want     summary
	}{{
		name:    "a start runs to its first activity, which runs here",
		batches: [][]*inbound{{startIn("Seq", "null")}},
		want: summary{From: 0, Start: true, Row: rowDeferred,
			Events: []string{"OrchestratorStarted", "ExecutionStarted Seq null", `TaskScheduled(0)Greet "a"`, "OrchestratorCompleted"},
			Local:  []string{`TaskScheduled(0)Greet "a"`}},
	}, {
		name:     "while draining, activities go to the shared queue",
		draining: true,
		batches:  [][]*inbound{{startIn("Seq", "null")}},
		want: summary{From: 0, Start: true, Row: rowDeferred,
			Events:    []string{"OrchestratorStarted", "ExecutionStarted Seq null", `TaskScheduled(0)Greet "a"`, "OrchestratorCompleted"},
			WorkItems: []string{`TaskScheduled(0)Greet "a"`}},
	}, {
		name:    "a result feeds the next call",
		batches: [][]*inbound{{startIn("Seq", "null")}, {completedIn(0, `"Hi a"`)}},
		want: summary{From: 4, Inputs: 1, Row: rowDeferred,
			Events: []string{"OrchestratorStarted", `TaskCompleted(0) "Hi a"`, `TaskScheduled(1)Greet "b"`, "OrchestratorCompleted"},
			Local:  []string{`TaskScheduled(1)Greet "b"`}},
	}, {
		name:    "the last result completes the execution and its row at once",
		batches: [][]*inbound{{startIn("Seq", "null")}, {completedIn(0, `"Hi a"`)}, {completedIn(1, `"Hi b"`)}},
		want: summary{From: 8, Inputs: 1, Row: rowNow,
			Events: []string{"OrchestratorStarted", `TaskCompleted(1) "Hi b"`,
				`ExecutionCompleted Completed ["Hi a","Hi b"]`, "OrchestratorCompleted"},
			Completion: `ExecutionCompleted Completed ["Hi a","Hi b"]`},
	}, {
		name:    "a timer is a hidden message to the instance itself",
		batches: [][]*inbound{{startIn("Nap", "null")}},
		want: summary{From: 0, Start: true, Row: rowDeferred,
			Events:  []string{"OrchestratorStarted", "ExecutionStarted Nap null", "TimerCreated(0) ", "OrchestratorCompleted"},
			Control: []string{"TimerFired(0) to i"}},
	}, {
		name:    "an event wait sends nothing; the event completes it",
		batches: [][]*inbound{{startIn("Wait", "null")}, {raisedIn("Go", `"now"`)}},
		want: summary{From: 3, Inputs: 1, Row: rowNow,
			Events: []string{"OrchestratorStarted", `EventRaised(-1)Go "now"`,
				`ExecutionCompleted Completed "now"`, "OrchestratorCompleted"},
			Completion: `ExecutionCompleted Completed "now"`},
	}, {
		name:    "ContinueAsNew replaces history from row 0 in the same checkpoint",
		batches: [][]*inbound{{startIn("Loop", "0")}},
		want: summary{From: 0, Start: true, Row: rowNow, Replaced: true, NewAnchor: true,
			Events: []string{"OrchestratorStarted", "ExecutionStarted Loop 1",
				"ExecutionCompleted Completed 1", "OrchestratorCompleted"},
			Completion: "ExecutionCompleted Completed 1"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := decider(t, tc.draining)
			inst := &instance{id: "i", loaded: true}
			var got summary
			for i, batch := range tc.batches {
				plan := e.plan(inst, batch, nil)
				if len(plan.later)+len(plan.drop) > 0 {
					t.Fatalf("batch %d: %d events put back, %d dropped", i, len(plan.later), len(plan.drop))
				}
				cp := e.decide(inst, plan)
				got = summarize(cp)
				e.unreserve(&cp)
				// Count it as committed.
				inst.historyLen = cp.from + len(cp.events)
				if cp.start != nil {
					inst.row = cp.start.row
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("checkpoint\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestCoalescingRules checks which checkpoints may stay in a window and
// which windows a checkpoint may join.
func TestCoalescingRules(t *testing.T) {
	e := decider(t, false)
	e.opts.CoalesceBudget = time.Hour
	local := backend.Message{Event: history.NewEvent(history.TaskScheduled, now())}
	base := func() checkpoint {
		return checkpoint{executionID: "x", from: 4, events: make([]history.Event, 4), local: []backend.Message{local}, opened: time.Now()}
	}
	done := history.NewEvent(history.ExecutionCompleted, now())
	cases := []struct {
		name string
		edit func(cp *checkpoint)
		want bool
	}{
		{"only local activities", func(*checkpoint) {}, true},
		{"nothing scheduled: it waits on something else", func(cp *checkpoint) { cp.local = nil }, false},
		{"a work item leaves the process", func(cp *checkpoint) { cp.workItems = []backend.Message{local} }, false},
		{"a timer or child start is sent", func(cp *checkpoint) { cp.control = []controlSend{{}} }, false},
		{"the execution completes", func(cp *checkpoint) { cp.completion = &done }, false},
		{"ContinueAsNew", func(cp *checkpoint) { cp.replaced = "old" }, false},
		{"the budget is spent", func(cp *checkpoint) { cp.opened = time.Now().Add(-2 * time.Hour) }, false},
		{"its activities already run, nothing else runs here", func(cp *checkpoint) { cp.running = 1 }, false},
	}
	inst := &instance{id: "i"}
	for _, tc := range cases {
		cp := base()
		tc.edit(&cp)
		if got := e.coalescible(inst, &cp); got != tc.want {
			t.Errorf("%s: coalescible = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A fan-out's result: nothing new, but the rest of the fan-out runs here.
	answer := completedIn(7, `"x"`)
	inst.local = map[int32]bool{7: true, 8: true}
	cp := base()
	cp.local, cp.inputs = nil, []*inbound{answer}
	if !e.coalescible(inst, &cp) {
		t.Error("a result while other activities of the instance run here should stay in the window")
	}
	inst.local = map[int32]bool{7: true}
	if e.coalescible(inst, &cp) {
		t.Error("the last running activity's result leaves nothing local to wait for: commit")
	}
	e.opts.CoalesceBudget = -1
	if cp := base(); e.coalescible(inst, &cp) {
		t.Error("a negative budget must commit every episode")
	}

	w := checkpoint{executionID: "x", from: 0, events: make([]history.Event, 90)}
	fits := []struct {
		name string
		next checkpoint
		want bool
	}{
		{"next position, same execution", checkpoint{executionID: "x", from: 90, events: make([]history.Event, 9)}, true},
		{"one row too many for a transaction", checkpoint{executionID: "x", from: 90, events: make([]history.Event, 10)}, false},
		{"a gap in positions", checkpoint{executionID: "x", from: 91, events: make([]history.Event, 4)}, false},
		{"another execution", checkpoint{executionID: "y", from: 90, events: make([]history.Event, 4)}, false},
		{"too much payload", checkpoint{executionID: "x", from: 90, events: []history.Event{{Input: strings.Repeat("x", maxCheckpointBytes)}}}, false},
	}
	for _, tc := range fits {
		if got := w.fits(&tc.next); got != tc.want {
			t.Errorf("%s: fits = %v, want %v", tc.name, got, tc.want)
		}
	}
	m := w.merge(checkpoint{executionID: "x", from: 90, events: make([]history.Event, 4), row: rowNow, customStatus: `"s"`, episodes: 1, local: []backend.Message{local}})
	if len(m.events) != 94 || m.row != rowNow || m.customStatus != `"s"` || len(m.local) != 1 || m.from != 0 || len(w.events) != 90 {
		t.Errorf("merge: %d events, row %v, status %q, %d local, from %d (window left with %d events)", len(m.events), m.row, m.customStatus, len(m.local), m.from, len(w.events))
	}
}

// dUpgrade waits for "Upgrade" at version 1 and then continues as new at
// version 2, carrying over the events it did not consume; at version 2 it
// waits for "Other" and returns it.
var dUpgrade = durable.NewOrchestrator("Upgrade", func(ctx *durable.Context, in string) (string, error) {
	if ctx.Version() == "1" {
		if _, err := durable.WaitForExternalEvent[string](ctx, "Upgrade").Await(); err != nil {
			return "", err
		}
		return "", ctx.ContinueAsNew(in+"+", durable.WithNewVersion("2"), durable.KeepUnprocessedEvents())
	}
	return durable.WaitForExternalEvent[string](ctx, "Other").Await()
})

// TestDecideDefersARejectedContinuation: a ContinueAsNew to a version the
// engine rejects ends the old execution in a checkpoint whose history is
// the new execution's ExecutionStarted alone, sending that start (hidden
// for the rejection backoff) and the carried event to the instance, and
// running none of the new code; a worker of the new version then runs the
// first episode from the recorded start, rewriting history from row 0.
func TestDecideDefersARejectedContinuation(t *testing.T) {
	reg := durable.NewRegistry()
	if err := reg.Add(dUpgrade); err != nil {
		t.Fatal(err)
	}
	worker := func(version string) *Engine {
		e, err := New(Options{Backend: noIO{t: t}, Registry: reg, Version: version, VersionMatch: MatchStrict, VersionFailure: FailureReject})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	v1 := worker("1")
	inst := &instance{id: "i", loaded: true}
	start := startIn("Upgrade", `"s"`)
	start.msg.Event.Version = "1"
	cp := v1.decide(inst, v1.plan(inst, []*inbound{start}, nil))
	inst.historyLen, inst.row = len(cp.events), start.row
	before := now()
	cp = v1.decide(inst, v1.plan(inst, []*inbound{raisedIn("Other", `"x"`), raisedIn("Upgrade", `"now"`)}, nil))
	want := summary{From: 0, Row: rowNow, Replaced: true, NewAnchor: true, Inputs: 2,
		Events:  []string{`ExecutionStarted Upgrade "s+"`},
		Control: []string{`ExecutionStarted Upgrade "s+" to i`, `EventRaised(-1)Other "x" to i`}}
	if got := summarize(cp); !reflect.DeepEqual(got, want) {
		t.Fatalf("checkpoint\n got %+v\nwant %+v", got, want)
	}
	recorded := cp.events[0]
	if recorded.Version != "2" || recorded.Instance.ExecutionID == "x1" || cp.executionID != recorded.Instance.ExecutionID ||
		cp.control[0].msg.Event.Instance != recorded.Instance || cp.control[1].msg.Target != recorded.Instance {
		t.Errorf("the new execution: %+v; messages to %+v and %+v", recorded, cp.control[0].msg.Event.Instance, cp.control[1].msg.Target)
	}
	if !cp.control[0].at.After(before.Add(900*time.Millisecond)) || !cp.control[1].at.IsZero() {
		t.Errorf("the start is due at %s (decided at %s), the carried event at %s; want the start hidden for the backoff, the event at once",
			cp.control[0].at, before, cp.control[1].at)
	}
	if !inst.unrun || inst.ex != nil || v1.liveStatus(inst) != history.StatusPending {
		t.Errorf("after the deferral: unrun %v, executor %v, status %s", inst.unrun, inst.ex, v1.liveStatus(inst))
	}

	// A version-2 worker that loaded the unrun execution runs its first
	// episode when anything for it arrives.
	v2 := worker("2")
	next := &instance{id: "i", loaded: true, start: &recorded, executionID: recorded.Instance.ExecutionID, historyLen: 1, unrun: true}
	cp = v2.decide(next, v2.plan(next, []*inbound{raisedIn("Other", `"x"`)}, nil))
	want = summary{From: 0, Row: rowNow, Inputs: 1,
		Events: []string{"OrchestratorStarted", `ExecutionStarted Upgrade "s+"`, `EventRaised(-1)Other "x"`,
			`ExecutionCompleted Completed "x"`, "OrchestratorCompleted"},
		Completion: `ExecutionCompleted Completed "x"`}
	if got := summarize(cp); !reflect.DeepEqual(got, want) {
		t.Fatalf("first episode on the version-2 worker\n got %+v\nwant %+v", got, want)
	}
	if cp.events[1].Instance != recorded.Instance || cp.events[1].Version != "2" || next.unrun {
		t.Errorf("first episode: start %+v, unrun %v", cp.events[1], next.unrun)
	}
}
