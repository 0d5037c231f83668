package durable

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

type approval struct {
	Approved bool   `json:"approved"`
	By       string `json:"by"`
}

func TestWaitForExternalEvent(t *testing.T) {
	// The orchestrator first waits on an activity, then on the event: the
	// event may arrive before the wait (buffered) or after it.
	orch := NewOrchestrator("Approve", func(ctx *Context, _ any) (approval, error) {
		if _, err := hello.Call(ctx, "x").Await(); err != nil {
			return approval{}, err
		}
		return WaitForExternalEvent[approval](ctx, "Approval").Await()
	})
	const payload = `{"approved":true,"by":"ann"}`
	tests := []struct {
		name     string
		episodes [][]history.Event // after the start
	}{
		{"raised after the wait", [][]history.Event{
			ep(t0.Add(1*time.Second), evCompleted(0, `"x"`)),
			ep(t0.Add(2*time.Second), evRaised("Approval", payload)),
		}},
		{"raised before the wait, earlier episode", [][]history.Event{
			ep(t0.Add(1*time.Second), evRaised("Approval", payload)),
			ep(t0.Add(2*time.Second), evCompleted(0, `"x"`)),
		}},
		{"raised before the wait, same episode", [][]history.Event{
			ep(t0.Add(1*time.Second), evRaised("Approval", payload), evCompleted(0, `"x"`)),
		}},
		{"name differs in case", [][]history.Event{
			ep(t0.Add(1*time.Second), evCompleted(0, `"x"`)),
			ep(t0.Add(2*time.Second), evRaised("APPROVAL", payload)),
		}},
		{"buffered name differs in case", [][]history.Event{
			ep(t0.Add(1*time.Second), evRaised("approval", payload)),
			ep(t0.Add(2*time.Second), evCompleted(0, `"x"`)),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, orch)
			expectActions(t, "start", d.run(start(t0, "Approve", "")), scheduled(0, "Hello", `"x"`))
			for i, e := range tc.episodes {
				actions := d.run(e)
				if i < len(tc.episodes)-1 {
					expectActions(t, "before last", actions)
				} else {
					expectActions(t, "last", actions, completedWith(1, payload))
				}
			}
		})
	}
}

func TestExternalEventsFIFO(t *testing.T) {
	// Two waits on one name are served in the order the waits were made,
	// whatever order the code awaits them in.
	orch := NewOrchestrator("FIFO", func(ctx *Context, awaitSecondFirst bool) ([]string, error) {
		a := WaitForExternalEvent[string](ctx, "Item")
		b := WaitForExternalEvent[string](ctx, "item")
		var first, second string
		var err error
		if awaitSecondFirst {
			second, err = b.Await()
			if err == nil {
				first, err = a.Await()
			}
		} else {
			first, err = a.Await()
			if err == nil {
				second, err = b.Await()
			}
		}
		return []string{first, second}, err
	})
	for _, order := range []string{"false", "true"} {
		for _, batch := range []bool{false, true} {
			name := "awaitSecondFirst=" + order
			if batch {
				name += "/one episode"
			}
			t.Run(name, func(t *testing.T) {
				d := newDriver(t, orch)
				expectActions(t, "start", d.run(start(t0, "FIFO", order)))
				var actions []history.Event
				if batch {
					actions = d.run(ep(t0.Add(time.Second), evRaised("ITEM", `"one"`), evRaised("item", `"two"`)))
				} else {
					expectActions(t, "first event", d.run(ep(t0.Add(time.Second), evRaised("ITEM", `"one"`))))
					actions = d.run(ep(t0.Add(2*time.Second), evRaised("item", `"two"`)))
				}
				expectActions(t, "second event", actions, completedWith(0, `["one","two"]`))
			})
		}
	}
	t.Run("buffered before both waits", func(t *testing.T) {
		orch := NewOrchestrator("FIFO2", func(ctx *Context, _ any) ([]string, error) {
			if err := ctx.Sleep(time.Minute); err != nil {
				return nil, err
			}
			a, _ := WaitForExternalEvent[string](ctx, "Item").Await()
			b, _ := WaitForExternalEvent[string](ctx, "Item").Await()
			return []string{a, b}, nil
		})
		d := newDriver(t, orch)
		d.run(start(t0, "FIFO2", ""))
		d.run(ep(t0.Add(time.Second), evRaised("Item", `"one"`)))
		d.run(ep(t0.Add(2*time.Second), evRaised("Item", `"two"`)))
		expectActions(t, "fired", d.run(ep(t0.Add(time.Minute), evFired(0, t0.Add(time.Minute)))),
			completedWith(1, `["one","two"]`))
	})
}

func TestExternalEventPayloadMismatch(t *testing.T) {
	var resErr *ResultError
	orch := NewOrchestrator("Mismatch", func(ctx *Context, _ any) (int, error) {
		n, err := WaitForExternalEvent[int](ctx, "Count").Await()
		errors.As(err, &resErr)
		return n, err
	})
	d := newDriver(t, orch)
	d.run(start(t0, "Mismatch", ""))
	actions := d.run(ep(t0, evRaised("Count", `"seven"`)))
	if resErr == nil || resErr.Type != "int" || resErr.Of != `event "Count"` {
		t.Fatalf("ResultError = %#v", resErr)
	}
	if len(actions) != 1 || actions[0].Status != history.StatusFailed || actions[0].Failure.ErrorType != "ResultError" {
		t.Fatalf("actions = %v", describeActions(actions))
	}
}

// timeoutOrch waits for "Approval" with a one-hour timeout. On timeout it
// calls an activity, then waits for "Approval" again without a timeout.
// When the event wins it calls an activity too (so that the timeout timer's
// late TimerFired arrives while the orchestration still runs).
var timeoutOrch = NewOrchestrator("Timeout", func(ctx *Context, _ any) (string, error) {
	v, err := WaitForExternalEventTimeout[string](ctx, "Approval", time.Hour).Await()
	if err != nil {
		if !errors.Is(err, ErrTimeout) {
			return "", errors.New("not ErrTimeout: " + err.Error())
		}
		if _, err := hello.Call(ctx, "timeout").Await(); err != nil {
			return "", err
		}
		late, err := WaitForExternalEvent[string](ctx, "Approval").Await()
		return "timed out, then " + late, err
	}
	if _, err := hello.Call(ctx, v).Await(); err != nil {
		return "", err
	}
	return "got " + v, nil
})

func TestExternalEventTimeout(t *testing.T) {
	deadline := t0.Add(time.Hour)
	t.Run("timeout wins", func(t *testing.T) {
		var timeoutErr error
		orch := NewOrchestrator("T", func(ctx *Context, _ any) (string, error) {
			_, timeoutErr = WaitForExternalEventTimeout[string](ctx, "Approval", time.Hour).Await()
			return "", timeoutErr
		})
		d := newDriver(t, orch)
		expectActions(t, "start", d.run(start(t0, "T", "")), timerAt(0, deadline))
		actions := d.run(ep(deadline, evFired(0, deadline)))
		if !errors.Is(timeoutErr, ErrTimeout) || !strings.Contains(timeoutErr.Error(), `"Approval"`) {
			t.Fatalf("err = %v, want ErrTimeout naming the event", timeoutErr)
		}
		if len(actions) != 1 || actions[0].Status != history.StatusFailed {
			t.Fatalf("actions = %v", describeActions(actions))
		}
	})
	t.Run("timeout wins, later event buffered for the next wait", func(t *testing.T) {
		d := newDriver(t, timeoutOrch)
		expectActions(t, "start", d.run(start(t0, "Timeout", "")), timerAt(0, deadline))
		expectActions(t, "timeout", d.run(ep(deadline, evFired(0, deadline))), scheduled(1, "Hello", `"timeout"`))
		expectActions(t, "late event", d.run(ep(deadline.Add(time.Minute), evRaised("approval", `"late"`))))
		expectActions(t, "activity done", d.run(ep(deadline.Add(2*time.Minute), evCompleted(1, `""`))),
			completedWith(2, `"timed out, then late"`))
	})
	t.Run("event wins, timer canceled", func(t *testing.T) {
		d := newDriver(t, timeoutOrch)
		expectActions(t, "start", d.run(start(t0, "Timeout", "")), timerAt(0, deadline))
		expectActions(t, "event", d.run(ep(t0.Add(time.Minute), evRaised("Approval", `"yes"`))), scheduled(1, "Hello", `"yes"`))
		if got := d.ex.TaskState(0); got != replay.TaskResolved {
			t.Errorf("timeout timer state = %v, want TaskResolved (canceled)", got)
		}
		expectActions(t, "stale timeout", d.run(ep(deadline, evFired(0, deadline))))
		expectActions(t, "activity done", d.run(ep(deadline, evCompleted(1, `""`))), completedWith(2, `"got yes"`))
	})
	t.Run("event already buffered", func(t *testing.T) {
		orch := NewOrchestrator("B", func(ctx *Context, _ any) (string, error) {
			if err := ctx.Sleep(time.Minute); err != nil {
				return "", err
			}
			return WaitForExternalEventTimeout[string](ctx, "Approval", time.Hour).Await()
		})
		d := newDriver(t, orch)
		d.run(start(t0, "B", ""))
		d.run(ep(t0.Add(time.Second), evRaised("Approval", `"early"`)))
		expectActions(t, "woke", d.run(ep(t0.Add(time.Minute), evFired(0, t0.Add(time.Minute)))),
			completedWith(1, `"early"`))
	})
	t.Run("long timeout is chained", func(t *testing.T) {
		var waitErr error
		orch := NewOrchestrator("L", func(ctx *Context, _ any) (string, error) {
			var v string
			v, waitErr = WaitForExternalEventTimeout[string](ctx, "Approval", 5*day).Await()
			return v, waitErr
		})
		d := newDriver(t, orch)
		expectActions(t, "start", d.run(start(t0, "L", "")), timerAt(0, t0.Add(3*day)))
		expectActions(t, "leg 0", d.run(ep(t0.Add(3*day), evFired(0, t0.Add(3*day)))), timerAt(1, t0.Add(5*day)))
		if waitErr != nil || d.ex.Done() {
			t.Fatalf("timed out after the first leg: %v", waitErr)
		}
		actions := d.run(ep(t0.Add(5*day), evFired(1, t0.Add(5*day))))
		if !errors.Is(waitErr, ErrTimeout) || len(actions) != 1 || actions[0].Status != history.StatusFailed {
			t.Fatalf("after last leg: err %v, actions %v", waitErr, describeActions(actions))
		}
	})
}
