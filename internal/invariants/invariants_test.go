package invariants

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestMain(m *testing.M) { azuritetest.Main(m) }

// t0 is the start time of the hand-made instances, at the 100 ns precision
// that survives storage.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 1234500, time.UTC)

const (
	goodOutput = `"out"`
	goodInput  = `"in"`
)

// goodHistory is a finished one-activity orchestration.
func goodHistory(id, exec string) []history.Event {
	ev := func(t history.EventType, sec int) history.Event {
		return history.NewEvent(t, t0.Add(time.Duration(sec)*time.Second))
	}
	start := ev(history.ExecutionStarted, 0)
	start.Instance = history.OrchestrationInstance{InstanceID: id, ExecutionID: exec}
	start.Name, start.Input = "Orch", goodInput
	sched := ev(history.TaskScheduled, 0)
	sched.EventID, sched.Name = 0, "Act"
	done := ev(history.TaskCompleted, 1)
	done.TaskScheduledID, done.Result = 0, `"r"`
	end := ev(history.ExecutionCompleted, 1)
	end.EventID, end.Status, end.Result = 1, history.StatusCompleted, goodOutput
	return []history.Event{
		ev(history.OrchestratorStarted, 0), start, sched, ev(history.OrchestratorCompleted, 0),
		ev(history.OrchestratorStarted, 1), done, end, ev(history.OrchestratorCompleted, 1),
	}
}

// goodRow is the Instances row that goodHistory implies.
func goodRow(id, exec string) backend.InstanceState {
	return backend.InstanceState{
		InstanceID: id, Name: "Orch", ExecutionID: exec, Input: goodInput, Output: goodOutput,
		CreatedTime: t0, LastUpdatedTime: t0.Add(time.Second), CompletedTime: t0.Add(time.Second),
		Status: history.StatusCompleted,
	}
}

// insertAt returns evs with e inserted at position i.
func insertAt(evs []history.Event, i int, e history.Event) []history.Event {
	return append(evs[:i:i], append([]history.Event{e}, evs[i:]...)...)
}

// TestCheckerOnHandMadeHub writes instances that break one invariant each
// (and one that breaks none) straight to storage, and checks that the
// Checker reports exactly the broken invariants: first on a clean hub, then
// after corrupting it.
func TestCheckerOnHandMadeHub(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := azuritetest.ConnectionString(t)
	hub := azuritetest.HubName(t)
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: cs, HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.DeleteTaskHub(context.Background()) })
	checker, err := New(Options{ConnectionString: cs, HubName: hub, DrainTimeout: time.Second, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	type instanceCase struct {
		id      string
		history func(id, exec string) []history.Event
		row     func(id, exec string) *backend.InstanceState // nil: no row
		want    map[Rule]int
	}
	good := func(id, exec string) *backend.InstanceState { r := goodRow(id, exec); return &r }
	cases := []instanceCase{
		{id: "good", history: goodHistory, row: good, want: map[Rule]int{}},
		{id: "dup-response", history: func(id, exec string) []history.Event {
			evs := goodHistory(id, exec)
			again := evs[5]
			return insertAt(evs, 6, again)
		}, row: good, want: map[Rule]int{RuleDuplicate: 1}},
		{id: "dup-scheduled", history: func(id, exec string) []history.Event {
			evs := goodHistory(id, exec)
			return insertAt(evs, 3, evs[2])
		}, row: good, want: map[Rule]int{RuleDuplicate: 1}},
		{id: "dup-raised", history: func(id, exec string) []history.Event {
			evs := goodHistory(id, exec)
			raised := history.NewEvent(history.EventRaised, t0.Add(500*time.Millisecond))
			raised.Name, raised.Input = "Go", `1`
			evs = insertAt(evs, 5, raised)
			return insertAt(evs, 5, raised)
		}, row: good, want: map[Rule]int{RuleDuplicate: 1}},
		{id: "orphan", history: func(id, exec string) []history.Event {
			evs := goodHistory(id, exec)
			stray := evs[5]
			stray.TaskScheduledID = 7
			return insertAt(evs, 6, stray)
		}, row: good, want: map[Rule]int{RuleOrphan: 1}},
		{id: "two-starts-two-ends", history: func(id, exec string) []history.Event {
			evs := goodHistory(id, exec)
			evs = insertAt(evs, 2, evs[1])
			return insertAt(evs, 8, evs[7])
		}, row: good, want: map[Rule]int{RuleExecution: 2}},
		{id: "after-completion", history: func(id, exec string) []history.Event {
			evs := goodHistory(id, exec)
			late := evs[2]
			late.EventID = 2
			return insertAt(evs, 7, late)
		}, row: good, want: map[Rule]int{RuleShape: 1}},
		{id: "row-mismatch", history: goodHistory, row: func(id, exec string) *backend.InstanceState {
			r := goodRow(id, exec)
			r.Status, r.Output, r.CompletedTime = history.StatusRunning, "", time.Time{}
			r.Name, r.CreatedTime = "Other", t0.Add(time.Second)
			return &r
		}, want: map[Rule]int{RuleOutcome: 1, RuleRow: 5}},
		{id: "no-row", history: goodHistory, want: map[Rule]int{RuleOutcome: 1}},
		{id: "no-history", row: func(id, exec string) *backend.InstanceState {
			r := goodRow(id, exec)
			r.Status, r.Output, r.CompletedTime = history.StatusPending, "", time.Time{}
			return &r
		}, want: map[Rule]int{RuleOutcome: 1, RuleExecution: 1}},
	}
	var ids []string
	for _, c := range cases {
		exec := history.NewID()
		if c.history != nil {
			if _, err := store.AppendHistory(ctx, c.id, exec, 0, c.history(c.id, exec), ""); err != nil {
				t.Fatalf("%s: %v", c.id, err)
			}
		}
		if c.row != nil {
			if _, err := store.CreateInstance(ctx, *c.row(c.id, exec)); err != nil {
				t.Fatalf("%s: %v", c.id, err)
			}
		}
		ids = append(ids, c.id)
	}
	want := func(string) Want { return Want{Status: history.StatusCompleted, Output: goodOutput} }
	done, statuses, err := checker.Observe(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if wantDone := len(cases) - 3; done != wantDone { // row-mismatch, no-row, no-history are unfinished
		t.Errorf("Observe: %d finished, want %d (%v)", done, wantDone, statuses)
	}

	check := func(phase string, cases []instanceCase, hubWant map[Rule]int) {
		t.Helper()
		vs, err := checker.Check(ctx, ids, want)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[Rule]int{}
		for _, v := range vs {
			if got[v.Instance] == nil {
				got[v.Instance] = map[Rule]int{}
			}
			got[v.Instance][v.Rule]++
			if v.Detail == "" || !strings.Contains(v.String(), string(v.Rule)) {
				t.Errorf("%s: violation without detail: %#v", phase, v)
			}
		}
		for _, c := range cases {
			if g := got[c.id]; !maps.Equal(g, c.want) && !(len(g) == 0 && len(c.want) == 0) {
				t.Errorf("%s: instance %s: violations %v, want %v", phase, c.id, g, c.want)
			}
		}
		if g := got[""]; !maps.Equal(g, hubWant) && !(len(g) == 0 && len(hubWant) == 0) {
			t.Errorf("%s: hub violations %v, want %v", phase, g, hubWant)
		}
		if t.Failed() {
			t.Logf("%s: violations:\n%s", phase, Format(vs))
		}
	}
	check("hand-made hub", cases, nil)

	// Corrupt the hub further: write the finished good row again, leave a
	// visible message in a control queue and a hidden one in the work-item
	// queue, and add a history row past a gap.
	row, err := store.GetInstance(ctx, "good", true)
	if err != nil {
		t.Fatal(err)
	}
	row.LastUpdatedTime = row.LastUpdatedTime.Add(time.Minute)
	if _, err := store.UpdateInstance(ctx, row); err != nil {
		t.Fatal(err)
	}
	msg := backend.Message{Event: history.NewEvent(history.EventRaised, t0), Target: history.OrchestrationInstance{InstanceID: "good"}}
	msg.Event.Name = "Late"
	if _, err := store.SendControl(ctx, msg, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SendWorkItem(ctx, msg, time.Hour); err != nil {
		t.Fatal(err)
	}
	h, err := store.LoadHistory(ctx, "dup-response")
	if err != nil {
		t.Fatal(err)
	}
	stray := history.NewEvent(history.GenericEvent, t0)
	if _, err := store.AppendHistory(ctx, "dup-response", h.ExecutionID, len(h.Events)+1, []history.Event{stray}, h.ETag); err != nil {
		t.Fatal(err)
	}
	corrupted := slices.Clone(cases)
	corrupted[0].want = map[Rule]int{RuleRewritten: 1}
	corrupted[1].want = map[Rule]int{RuleDuplicate: 1, RuleShape: 2} // not contiguous; more rows than load
	check("corrupted hub", corrupted, map[Rule]int{RuleQueue: 2})
}
