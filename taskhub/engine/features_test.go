package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func start(t *testing.T, c *client.Client, name string, input any, id ...string) string {
	t.Helper()
	opts := client.StartOptions{Input: input}
	if len(id) > 0 {
		opts.InstanceID = id[0]
	}
	got, err := c.StartNew(context.Background(), name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func historyTypes(t *testing.T, c *client.Client, id string) []string {
	t.Helper()
	events, err := c.GetHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range events {
		out = append(out, ev.Type.String())
	}
	return out
}

func count(types []string, name string) int {
	n := 0
	for _, s := range types {
		if s == name {
			n++
		}
	}
	return n
}

// waitStatus polls until the instance shows want (used for non-terminal states).
func waitStatus(t *testing.T, c *client.Client, id string, want history.OrchestrationStatus) client.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.GetStatus(context.Background(), id, true)
		if err == nil && st.Status == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s never became %s (last %s, err %v)", id, want, st.Status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDurableTimer(t *testing.T) {
	h := newHub(t)
	orch := durable.NewOrchestrator("Nap", func(ctx *durable.Context, _ any) (string, error) {
		began := ctx.CurrentTime()
		if err := ctx.Sleep(1500 * time.Millisecond); err != nil {
			return "", err
		}
		if ctx.CurrentTime().Sub(began) < 1500*time.Millisecond {
			return "", fmt.Errorf("woke after %v", ctx.CurrentTime().Sub(began))
		}
		return "rested", nil
	})
	_, c := h.start(engine.Options{}, orch)
	id := start(t, c, "Nap", nil)
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || st.Output != `"rested"` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
	types := historyTypes(t, c, id)
	if count(types, "TimerCreated") != 1 || count(types, "TimerFired") != 1 {
		t.Fatalf("history %v", types)
	}
}

var approve = durable.NewOrchestrator("Approval", func(ctx *durable.Context, timeout time.Duration) (string, error) {
	if err := ctx.SetCustomStatus(map[string]string{"stage": "waiting for approval"}); err != nil {
		return "", err
	}
	ok, err := durable.WaitForExternalEventTimeout[bool](ctx, "Approval", timeout).Await()
	switch {
	case errors.Is(err, durable.ErrTimeout):
		return "escalated", nil
	case err != nil:
		return "", err
	case ok:
		return "approved", nil
	}
	return "rejected", nil
})

// TestHumanInteraction races an event against a timeout, both outcomes.
func TestHumanInteraction(t *testing.T) {
	h := newHub(t)
	_, c := h.start(engine.Options{}, approve)

	approved := start(t, c, "Approval", 30*time.Second)
	st := waitStatus(t, c, approved, history.StatusRunning)
	if st.CustomStatus != `{"stage":"waiting for approval"}` {
		t.Errorf("custom status %q", st.CustomStatus)
	}
	if err := c.RaiseEvent(context.Background(), approved, "approval", "true"); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, approved); st.Status != history.StatusCompleted || st.Output != `"approved"` {
		t.Fatalf("approved: %s %s", st.Status, st.Output)
	}
	types := historyTypes(t, c, approved)
	if count(types, "EventRaised") != 1 || count(types, "TimerCreated") != 1 {
		t.Errorf("history %v", types)
	}

	timedOut := start(t, c, "Approval", time.Second)
	if st := wait(t, c, timedOut); st.Status != history.StatusCompleted || st.Output != `"escalated"` {
		t.Fatalf("timed out: %s %s", st.Status, st.Output)
	}
	// Events for a finished instance are refused, not dropped silently.
	if err := c.RaiseEvent(context.Background(), timedOut, "Approval", "true"); !errors.Is(err, client.ErrInstanceFinished) {
		t.Fatalf("raise on finished instance: %v", err)
	}
}

func TestEarlyEventsAreBufferedAndServedInOrder(t *testing.T) {
	h := newHub(t)
	gate := make(chan struct{})
	hold := durable.NewActivity("Hold", func(ctx context.Context, _ any) (string, error) {
		<-gate
		return "held", nil
	})
	orch := durable.NewOrchestrator("Collect", func(ctx *durable.Context, _ any) ([]string, error) {
		if _, err := hold.Call(ctx, nil).Await(); err != nil {
			return nil, err
		}
		a := durable.WaitForExternalEvent[string](ctx, "Item")
		b := durable.WaitForExternalEvent[string](ctx, "Item")
		x, err := a.Await()
		if err != nil {
			return nil, err
		}
		y, err := b.Await()
		return []string{x, y}, err
	})
	_, c := h.start(engine.Options{}, orch, hold)
	id := start(t, c, "Collect", nil)
	waitStatus(t, c, id, history.StatusRunning)
	// Both events arrive while the orchestrator is still in its activity.
	for _, v := range []string{`"first"`, `"second"`} {
		if err := c.RaiseEvent(context.Background(), id, "Item", v); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `["first","second"]` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
}

func TestFanOutFanIn1000(t *testing.T) {
	h := newHub(t)
	square := durable.NewActivity("Square", func(ctx context.Context, n int) (int, error) { return n * n, nil })
	fan := durable.NewOrchestrator("FanOut", func(ctx *durable.Context, n int) (int, error) {
		tasks := make([]*durable.Task[int], n)
		for i := range tasks {
			tasks[i] = square.Call(ctx, i)
		}
		squares, err := durable.All(ctx, tasks...)
		if err != nil {
			return 0, err
		}
		sum := 0
		for _, v := range squares {
			sum += v
		}
		return sum, nil
	})
	_, c := h.start(engine.Options{}, fan, square)
	id := start(t, c, "FanOut", 1000)
	st := wait(t, c, id)
	if want := fmt.Sprint(999 * 1000 * 1999 / 6); st.Status != history.StatusCompleted || st.Output != want {
		t.Fatalf("%s %s, want %s", st.Status, st.Output, want)
	}
	types := historyTypes(t, c, id)
	if count(types, "TaskScheduled") != 1000 || count(types, "TaskCompleted") != 1000 {
		t.Fatalf("scheduled %d, completed %d", count(types, "TaskScheduled"), count(types, "TaskCompleted"))
	}
}

func TestRetriesAreDurableTimers(t *testing.T) {
	h := newHub(t)
	var calls atomic.Int32
	flaky := durable.NewActivity("Flaky", func(ctx context.Context, _ any) (int32, error) {
		n := calls.Add(1)
		if n < 3 {
			return 0, fmt.Errorf("attempt %d failed", n)
		}
		return n, nil
	})
	orch := durable.NewOrchestrator("Persist", func(ctx *durable.Context, _ any) (int32, error) {
		return flaky.Call(ctx, nil, durable.WithRetry(durable.RetryPolicy{
			MaxAttempts: 5, FirstRetryInterval: 500 * time.Millisecond, BackoffCoefficient: 2,
		})).Await()
	})
	_, c := h.start(engine.Options{}, orch, flaky)
	id := start(t, c, "Persist", nil)
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != "3" {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
	types := historyTypes(t, c, id)
	if count(types, "TaskScheduled") != 3 || count(types, "TaskFailed") != 2 || count(types, "TimerCreated") != 2 {
		t.Fatalf("history %v", types)
	}
}

func TestSubOrchestrations(t *testing.T) {
	h := newHub(t)
	child := durable.NewOrchestrator("Child", func(ctx *durable.Context, n int) (int, error) {
		if n < 0 {
			return 0, fmt.Errorf("negative input %d", n)
		}
		v, err := greet.Call(ctx, fmt.Sprint(n)).Await()
		return len(v) + n, err
	})
	parent := durable.NewOrchestrator("Parent", func(ctx *durable.Context, _ any) (string, error) {
		a, err := child.Call(ctx, 1).Await()
		if err != nil {
			return "", err
		}
		b, err := child.Call(ctx, 2, durable.WithInstanceID(ctx.InstanceID()+"-named-child")).Await()
		if err != nil {
			return "", err
		}
		_, err = child.Call(ctx, -1).Await()
		var tf *durable.TaskFailedError
		if !errors.As(err, &tf) || tf.Kind != "sub-orchestration" || !strings.Contains(tf.Failure.ErrorMessage, "negative input -1") {
			return "", fmt.Errorf("child failure not propagated: %v", err)
		}
		_, err = durable.CallSubOrchestrator[int](ctx, "NoSuchOrchestrator", nil).Await()
		if !errors.As(err, &tf) || !strings.Contains(tf.Failure.ErrorMessage, `orchestrator "NoSuchOrchestrator" is not registered`) {
			return "", fmt.Errorf("unknown child: %v", err)
		}
		return fmt.Sprintf("%d %d", a, b), nil
	})
	_, c := h.start(engine.Options{}, parent, child, greet)
	id := start(t, c, "Parent", nil)
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"5 6"` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
	// The parent link, as Durable Task records it.
	events, err := c.GetHistory(context.Background(), id+"-named-child")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 || events[1].Type != history.ExecutionStarted || events[1].Parent == nil ||
		events[1].Parent.Instance.InstanceID != id || events[1].Parent.Name != "Parent" || events[1].Parent.TaskScheduleID != 1 {
		t.Fatalf("child ExecutionStarted: %+v", events[1])
	}
	parentEvents, err := c.GetHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var created []string
	for _, ev := range parentEvents {
		if ev.Type == history.SubOrchestrationInstanceCreated {
			created = append(created, ev.InstanceID)
		}
	}
	if len(created) != 4 || created[1] != id+"-named-child" {
		t.Fatalf("SubOrchestrationInstanceCreated instance IDs: %v", created)
	}
	if st, err := c.GetStatus(context.Background(), id+"-named-child", true); err != nil || st.Status != history.StatusCompleted || st.Output != "6" {
		t.Fatalf("child status: %+v %v", st, err)
	}
}

// TestMonitorWithContinueAsNew is the monitor pattern: check, sleep, and
// continue as new until the condition holds; only the last execution's
// history is kept.
func TestMonitorWithContinueAsNew(t *testing.T) {
	h := newHub(t)
	var checks atomic.Int32
	check := durable.NewActivity("Check", func(ctx context.Context, _ any) (bool, error) {
		return checks.Add(1) >= 4, nil
	})
	monitor := durable.NewOrchestrator("Monitor", func(ctx *durable.Context, round int) (string, error) {
		done, err := check.Call(ctx, nil).Await()
		if err != nil {
			return "", err
		}
		if done {
			return fmt.Sprintf("done after %d rounds", round), nil
		}
		if err := ctx.Sleep(200 * time.Millisecond); err != nil {
			return "", err
		}
		return "", ctx.ContinueAsNew(round + 1)
	})
	_, c := h.start(engine.Options{}, monitor, check)
	id := start(t, c, "Monitor", 1)
	first, err := c.GetStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || st.Output != `"done after 4 rounds"` || st.Input != "4" {
		t.Fatalf("%s %s input %s", st.Status, st.Output, st.Input)
	}
	if st.ExecutionID == first.ExecutionID {
		t.Error("ContinueAsNew kept the execution ID")
	}
	types := historyTypes(t, c, id)
	if count(types, "ExecutionStarted") != 1 || count(types, "TaskScheduled") != 1 || count(types, "ContinueAsNew") != 0 {
		t.Fatalf("history of the last execution: %v", types)
	}
}

// TestEternalOrchestrationKeepsUnprocessedEvents continues as new on every
// event, carrying over events it has not consumed yet.
func TestEternalOrchestrationKeepsUnprocessedEvents(t *testing.T) {
	h := newHub(t)
	counter := durable.NewOrchestrator("Counter", func(ctx *durable.Context, total int) (int, error) {
		n, err := durable.WaitForExternalEvent[int](ctx, "Add").Await()
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return total, nil
		}
		return 0, ctx.ContinueAsNew(total+n, durable.KeepUnprocessedEvents())
	})
	_, c := h.start(engine.Options{}, counter)
	id := start(t, c, "Counter", 0)
	waitStatus(t, c, id, history.StatusRunning)
	for _, v := range []string{"5", "7", "30", "0"} {
		if err := c.RaiseEvent(context.Background(), id, "Add", v); err != nil {
			t.Fatal(err)
		}
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != "42" {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
}

func TestSuspendResumeTerminate(t *testing.T) {
	h := newHub(t)
	waiter := durable.NewOrchestrator("Waiter", func(ctx *durable.Context, _ any) (string, error) {
		return durable.WaitForExternalEvent[string](ctx, "Go").Await()
	})
	_, c := h.start(engine.Options{}, waiter)
	ctx := context.Background()

	id := start(t, c, "Waiter", nil)
	waitStatus(t, c, id, history.StatusRunning)
	if err := c.Suspend(ctx, id, "maintenance"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, id, history.StatusSuspended)
	if err := c.RaiseEvent(ctx, id, "Go", `"went"`); err != nil {
		t.Fatal(err)
	}
	// The event is recorded but held back while suspended.
	deadline := time.Now().Add(10 * time.Second)
	for count(historyTypes(t, c, id), "EventRaised") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was never recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := c.GetStatus(ctx, id, false); st.Status != history.StatusSuspended {
		t.Fatalf("status %s while suspended with an event waiting", st.Status)
	}
	if err := c.Resume(ctx, id, "done"); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"went"` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}

	doomed := start(t, c, "Waiter", nil)
	waitStatus(t, c, doomed, history.StatusRunning)
	if err := c.Terminate(ctx, doomed, "no longer needed"); err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, doomed)
	if st.Status != history.StatusTerminated || st.Output != `"no longer needed"` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
	types := historyTypes(t, c, doomed)
	if count(types, "ExecutionTerminated") != 1 || count(types, "ExecutionCompleted") != 1 {
		t.Fatalf("history %v", types)
	}
	if err := c.Terminate(ctx, doomed, "again"); !errors.Is(err, client.ErrInstanceFinished) {
		t.Fatalf("second terminate: %v", err)
	}
	if err := c.Terminate(ctx, "never-existed", "x"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("terminate unknown: %v", err)
	}
}

func TestCustomStatusLimitAndDeterministicGUIDs(t *testing.T) {
	h := newHub(t)
	orch := durable.NewOrchestrator("Guids", func(ctx *durable.Context, _ any) ([]string, error) {
		big := strings.Repeat("x", durable.MaxCustomStatusBytes)
		if err := ctx.SetCustomStatus(big); !errors.Is(err, durable.ErrCustomStatusTooLarge) {
			return nil, fmt.Errorf("oversized custom status: %v", err)
		}
		a := ctx.NewGUID()
		if _, err := greet.Call(ctx, "x").Await(); err != nil { // forces a replay-free second episode
			return nil, err
		}
		return []string{a, ctx.NewGUID()}, nil
	})
	_, c := h.start(engine.Options{}, orch, greet)
	id := start(t, c, "Guids", nil)
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || len(st.Output) != 2+36*2+3+2 {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
}

func TestSubOrchestrationRetryWithNamedInstance(t *testing.T) {
	h := newHub(t)
	var runs atomic.Int32
	fragile := durable.NewOrchestrator("Fragile", func(ctx *durable.Context, _ any) (string, error) {
		n, err := durable.CallActivity[int32](ctx, "CountRun", nil).Await()
		if err != nil {
			return "", err
		}
		if n < 2 {
			return "", fmt.Errorf("run %d fails", n)
		}
		return fmt.Sprintf("ok on run %d", n), nil
	})
	countRun := durable.NewActivity("CountRun", func(ctx context.Context, _ any) (int32, error) { return runs.Add(1), nil })
	parent := durable.NewOrchestrator("RetryParent", func(ctx *durable.Context, _ any) (string, error) {
		return fragile.Call(ctx, nil, durable.WithInstanceID(ctx.InstanceID()+"-child"),
			durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 200 * time.Millisecond})).Await()
	})
	_, c := h.start(engine.Options{}, parent, fragile, countRun)
	id := start(t, c, "RetryParent", nil)
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"ok on run 2"` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
	types := historyTypes(t, c, id)
	if count(types, "SubOrchestrationInstanceCreated") != 2 || count(types, "SubOrchestrationInstanceFailed") != 1 {
		t.Fatalf("parent history %v", types)
	}
}
