package replay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

var greet = durable.NewActivity("Greet", func(_ context.Context, city string) (string, error) {
	if city == "" {
		return "", errors.New("no city")
	}
	return "Hello " + city + "!", nil
})

var once = durable.NewOrchestrator("Once", func(ctx *durable.Context, city string) (string, error) {
	return greet.Call(ctx, city).Await()
})

func registry(t *testing.T) *durable.Registry {
	t.Helper()
	reg := durable.NewRegistry()
	if err := reg.Add(once, greet); err != nil {
		t.Fatal(err)
	}
	return reg
}

func started(name, input string) history.Event {
	es := history.NewEvent(history.ExecutionStarted, t0)
	es.Name = name
	es.Input = input
	es.Instance = history.OrchestrationInstance{InstanceID: "inst1", ExecutionID: "exec1"}
	return es
}

func clock() time.Time { return t0 }

// An orchestrator looked up by name runs through the Executor interface
// over two episodes, and its activity runs from its registered name.
func TestLookupAndRun(t *testing.T) {
	reg := registry(t)
	o, ok := replay.LookupOrchestrator(reg, "Once")
	if !ok {
		t.Fatal("Once is not found")
	}
	ex := replay.NewExecutor(o, "inst1")
	defer ex.Close()
	episode, actions, err := ex.Step(clock, []history.Event{started("Once", `"Tokyo"`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(actions) != 1 || actions[0].Type != history.TaskScheduled || actions[0].Name != "Greet" || actions[0].Input != `"Tokyo"` {
		t.Fatalf("actions = %+v", actions)
	}
	if n := len(episode); n != 4 || episode[0].Type != history.OrchestratorStarted || episode[n-1].Type != history.OrchestratorCompleted {
		t.Fatalf("episode = %+v", episode)
	}
	if got := ex.TaskState(0); got != replay.TaskAwaiting {
		t.Fatalf("TaskState(0) = %d, want TaskAwaiting", got)
	}

	act, ok := replay.LookupActivity(reg, actions[0].Name)
	if !ok {
		t.Fatal("Greet is not found")
	}
	out, err := act(context.Background(), actions[0].Input)
	if err != nil || out != `"Hello Tokyo!"` {
		t.Fatalf("Greet = %q, %v", out, err)
	}
	done := history.NewEvent(history.TaskCompleted, t0)
	done.TaskScheduledID = 0
	done.Result = out
	if _, _, err := ex.Step(clock, []history.Event{done}); err != nil {
		t.Fatal(err)
	}
	if c := ex.Completion(); !ex.Done() || c == nil || c.Status != history.StatusCompleted || c.Result != `"Hello Tokyo!"` {
		t.Fatalf("completion = %+v", c)
	}
	if got := ex.TaskState(0); got != replay.TaskResolved {
		t.Fatalf("TaskState(0) after completion = %d, want TaskResolved", got)
	}

	for _, name := range []string{"Greet", "once", ""} {
		if _, ok := replay.LookupOrchestrator(reg, name); ok {
			t.Errorf("orchestrator %q found", name)
		}
	}
	if _, ok := replay.LookupActivity(reg, "Once"); ok {
		t.Error("activity Once found")
	}
}

type typedError struct{}

func (typedError) Error() string     { return "Nope is not registered" }
func (typedError) ErrorType() string { return "NotRegisteredError" }

// Failing fails the instance with the given error as soon as it starts.
func TestFailing(t *testing.T) {
	ex := replay.NewExecutor(replay.Failing(typedError{}), "inst1")
	defer ex.Close()
	_, actions, err := ex.Step(clock, []history.Event{started("Nope", "")})
	if err != nil {
		t.Fatal(err)
	}
	c := ex.Completion()
	if len(actions) != 1 || c == nil || c.Status != history.StatusFailed || c.Failure == nil ||
		c.Failure.ErrorType != "NotRegisteredError" || c.Failure.ErrorMessage != "Nope is not registered" {
		t.Fatalf("actions %+v, completion %+v", actions, c)
	}
}

func TestFailureFromError(t *testing.T) {
	inner := &durable.TaskFailedError{Kind: "activity", TaskName: "Greet", TaskID: 3,
		Failure: durable.FailureDetails{ErrorType: "Timeout", ErrorMessage: "slow"}}
	tests := []struct {
		name      string
		err       error
		wantType  string
		wantInner string
	}{
		{"plain", errors.New("boom"), "Error", ""},
		{"wrapped plain", fmt.Errorf("step: %w", errors.New("boom")), "Error", ""},
		{"typed", typedError{}, "NotRegisteredError", ""},
		{"a task failure re-raised", fmt.Errorf("step: %w", inner), "TaskFailedError", "Timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fd := replay.FailureFromError(tc.err)
			if fd.ErrorType != tc.wantType || fd.ErrorMessage != tc.err.Error() {
				t.Errorf("failure = %+v, want type %q and message %q", fd, tc.wantType, tc.err.Error())
			}
			var gotInner string
			if fd.InnerFailure != nil {
				gotInner = fd.InnerFailure.ErrorType
			}
			if gotInner != tc.wantInner {
				t.Errorf("inner failure type = %q, want %q", gotInner, tc.wantInner)
			}
		})
	}
}

// What the engine puts in an activity's context is what the activity reads
// with durable.ActivityInfoFrom.
func TestActivityInfo(t *testing.T) {
	want := replay.ActivityInfo{Name: "Greet", InstanceID: "inst1", ExecutionID: "exec1", TaskID: 7}
	got, ok := durable.ActivityInfoFrom(replay.WithActivityInfo(context.Background(), want))
	if !ok || got != durable.ActivityInfo(want) {
		t.Fatalf("ActivityInfoFrom = %+v, %v; want %+v", got, ok, want)
	}
	if _, ok := durable.ActivityInfoFrom(context.Background()); ok {
		t.Fatal("ActivityInfoFrom found info in a bare context")
	}
}

// A lookup in something other than a *durable.Registry is a programming
// error inside the module, and says so.
func TestLookupNeedsRegistry(t *testing.T) {
	for _, reg := range []any{"not a registry", (*durable.Registry)(nil)} {
		func() {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, "needs a non-nil *durable.Registry") {
					t.Errorf("LookupOrchestrator(%T) panicked with %v", reg, r)
				}
			}()
			replay.LookupOrchestrator(reg, "Once")
		}()
	}
}

// EventsAwaited names the events a parked orchestrator waits for, as the
// code named them, and nothing once they have arrived.
func TestEventsAwaited(t *testing.T) {
	waits := durable.NewOrchestrator("Waits", func(ctx *durable.Context, _ any) (string, error) {
		a := durable.WaitForExternalEvent[string](ctx, "Approval")
		b := durable.WaitForExternalEvent[string](ctx, "Badge")
		if _, err := a.Await(); err != nil {
			return "", err
		}
		return b.Await()
	})
	reg := durable.NewRegistry()
	if err := reg.Add(waits); err != nil {
		t.Fatal(err)
	}
	o, _ := replay.LookupOrchestrator(reg, "Waits")
	ex := replay.NewExecutor(o, "inst1")
	defer ex.Close()
	if _, _, err := ex.Step(clock, []history.Event{started("Waits", "")}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(replay.EventsAwaited(ex)); got != "[Approval Badge]" {
		t.Fatalf("waiting for %s, want [Approval Badge]", got)
	}
	raised := history.NewEvent(history.EventRaised, t0)
	raised.Name, raised.Input = "approval", `"yes"`
	if _, _, err := ex.Step(clock, []history.Event{raised}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(replay.EventsAwaited(ex)); got != "[Badge]" {
		t.Fatalf("after Approval: waiting for %s, want [Badge]", got)
	}
}
