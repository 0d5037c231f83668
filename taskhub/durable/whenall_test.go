package durable

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// fanOut calls Hello for three cities and waits for all of them.
var fanOut = NewOrchestrator("FanOut", func(ctx *Context, _ any) ([]string, error) {
	var tasks []*Task[string]
	var all []Awaitable
	for _, c := range []string{"a", "b", "c"} {
		tk := hello.Call(ctx, c)
		tasks = append(tasks, tk)
		all = append(all, tk)
	}
	if err := WhenAll(ctx, all...); err != nil {
		return nil, err
	}
	var out []string
	for _, tk := range tasks {
		s, err := tk.Await()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

func fd(msg string) history.FailureDetails {
	return history.FailureDetails{ErrorType: "ActivityError", ErrorMessage: msg}
}

func TestWhenAll(t *testing.T) {
	startActs := []act{scheduled(0, "Hello", `"a"`), scheduled(1, "Hello", `"b"`), scheduled(2, "Hello", `"c"`)}
	t.Run("all succeed", func(t *testing.T) {
		d := newDriver(t, fanOut)
		expectActions(t, "start", d.run(start(t0, "FanOut", "")), startActs...)
		expectActions(t, "c", d.run(ep(t0.Add(1*time.Second), evCompleted(2, `"C"`))))
		expectActions(t, "a", d.run(ep(t0.Add(2*time.Second), evCompleted(0, `"A"`))))
		expectActions(t, "b", d.run(ep(t0.Add(3*time.Second), evCompleted(1, `"B"`))), completedWith(3, `["A","B","C"]`))
	})
	t.Run("all succeed in one episode", func(t *testing.T) {
		d := newDriver(t, fanOut)
		d.run(start(t0, "FanOut", ""))
		expectActions(t, "all", d.run(ep(t0.Add(time.Second), evCompleted(1, `"B"`), evCompleted(0, `"A"`), evCompleted(2, `"C"`))),
			completedWith(3, `["A","B","C"]`))
	})
	t.Run("fails fast", func(t *testing.T) {
		d := newDriver(t, fanOut)
		d.run(start(t0, "FanOut", ""))
		expectActions(t, "a ok", d.run(ep(t0.Add(1*time.Second), evCompleted(0, `"A"`))))
		actions := d.run(ep(t0.Add(2*time.Second), evFailed(2, fd("c broke"))))
		// Task 1 is still running: WhenAll returned at the first failure.
		if len(actions) != 1 || actions[0].Status != history.StatusFailed ||
			actions[0].Failure.InnerFailure == nil || actions[0].Failure.InnerFailure.ErrorMessage != "c broke" {
			t.Fatalf("actions = %v", describeActions(actions))
		}
	})

	// Both failures are known before WhenAll is called: the one that
	// completed first wins, not the first in the argument list.
	var gotErr error
	orch := NewOrchestrator("FirstFailure", func(ctx *Context, _ any) (string, error) {
		a := hello.Call(ctx, "a")
		b := hello.Call(ctx, "b")
		if err := ctx.Sleep(time.Minute); err != nil {
			return "", err
		}
		gotErr = WhenAll(ctx, a, b)
		return "", gotErr
	})
	for _, tc := range []struct {
		name     string
		failures []history.Event
		wantTask int32
	}{
		{"b failed first", []history.Event{evFailed(1, fd("b broke")), evFailed(0, fd("a broke"))}, 1},
		{"a failed first", []history.Event{evFailed(0, fd("a broke")), evFailed(1, fd("b broke"))}, 0},
	} {
		t.Run("completion order/"+tc.name, func(t *testing.T) {
			gotErr = nil
			d := newDriver(t, orch)
			expectActions(t, "start", d.run(start(t0, "FirstFailure", "")),
				scheduled(0, "Hello", `"a"`), scheduled(1, "Hello", `"b"`), timerAt(2, t0.Add(time.Minute)))
			for i, f := range tc.failures {
				expectActions(t, "failure", d.run(ep(t0.Add(time.Duration(i+1)*time.Second), f)))
			}
			d.run(ep(t0.Add(time.Minute), evFired(2, t0.Add(time.Minute))))
			var tf *TaskFailedError
			if !errors.As(gotErr, &tf) || tf.TaskID != tc.wantTask {
				t.Fatalf("WhenAll err = %v, want task %d's failure", gotErr, tc.wantTask)
			}
		})
	}

	t.Run("no tasks", func(t *testing.T) {
		orch := NewOrchestrator("Empty", func(ctx *Context, _ any) (string, error) {
			return "ok", WhenAll(ctx)
		})
		d := newDriver(t, orch)
		expectActions(t, "start", d.run(start(t0, "Empty", "")), completedWith(0, `"ok"`))
	})
}

func TestWhenAny(t *testing.T) {
	orch := NewOrchestrator("Race", func(ctx *Context, _ any) (int, error) {
		a, b, c := hello.Call(ctx, "a"), hello.Call(ctx, "b"), hello.Call(ctx, "c")
		return WhenAny(ctx, a, b, c)
	})
	for _, tc := range []struct {
		name string
		ev   []history.Event
		want int
	}{
		{"second completes", []history.Event{evCompleted(1, `"B"`)}, 1},
		{"third fails", []history.Event{evFailed(2, fd("x"))}, 2},
		{"two in one episode", []history.Event{evCompleted(2, `"C"`), evCompleted(0, `"A"`)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, orch)
			d.run(start(t0, "Race", ""))
			expectActions(t, "done", d.run(ep(t0.Add(time.Second), tc.ev...)), completedWith(3, strconv.Itoa(tc.want)))
		})
	}
	t.Run("both done before the call", func(t *testing.T) {
		orch := NewOrchestrator("Race2", func(ctx *Context, _ any) (int, error) {
			a, b := hello.Call(ctx, "a"), hello.Call(ctx, "b")
			if err := ctx.Sleep(time.Minute); err != nil {
				return 0, err
			}
			return WhenAny(ctx, a, b)
		})
		d := newDriver(t, orch)
		d.run(start(t0, "Race2", ""))
		d.run(ep(t0.Add(time.Second), evCompleted(1, `"B"`)))
		d.run(ep(t0.Add(2*time.Second), evCompleted(0, `"A"`)))
		expectActions(t, "woke", d.run(ep(t0.Add(time.Minute), evFired(2, t0.Add(time.Minute)))), completedWith(3, "1"))
	})
	t.Run("empty list", func(t *testing.T) {
		var err error
		orch := NewOrchestrator("Race3", func(ctx *Context, _ any) (int, error) {
			var i int
			i, err = WhenAny(ctx)
			return i, nil
		})
		d := newDriver(t, orch)
		expectActions(t, "start", d.run(start(t0, "Race3", "")), completedWith(0, "-1"))
		if err == nil || !strings.Contains(err.Error(), "at least one task") {
			t.Fatalf("err = %v", err)
		}
	})
}

// humanInteraction waits for an approval or escalates after 24 hours.
var humanInteraction = NewOrchestrator("Approval", func(ctx *Context, _ any) (string, error) {
	if _, err := hello.Call(ctx, "request approval").Await(); err != nil {
		return "", err
	}
	timeout := ctx.CreateTimer(ctx.CurrentTime().Add(24 * time.Hour))
	ev := WaitForExternalEvent[approval](ctx, "ApprovalEvent")
	winner, err := WhenAny(ctx, ev, timeout)
	if err != nil {
		return "", err
	}
	if winner == 0 {
		timeout.Cancel()
		a, err := ev.Await()
		if err != nil {
			return "", err
		}
		return "approved by " + a.By, nil
	}
	return CallActivity[string](ctx, "Escalate", "boss").Await()
})

func TestWhenAnyHumanInteraction(t *testing.T) {
	deadline := t0.Add(time.Second + 24*time.Hour)
	t.Run("approved", func(t *testing.T) {
		d := newDriver(t, humanInteraction)
		expectActions(t, "start", d.run(start(t0, "Approval", "")), scheduled(0, "Hello", `"request approval"`))
		expectActions(t, "requested", d.run(ep(t0.Add(time.Second), evCompleted(0, `""`))), timerAt(1, deadline))
		expectActions(t, "approved", d.run(ep(t0.Add(time.Hour), evRaised("ApprovalEvent", `{"approved":true,"by":"ann"}`))),
			completedWith(2, `"approved by ann"`))
		if got := d.ex.TaskState(1); got != replay.TaskResolved {
			t.Errorf("timeout timer state = %v, want TaskResolved", got)
		}
	})
	t.Run("escalated", func(t *testing.T) {
		d := newDriver(t, humanInteraction)
		d.run(start(t0, "Approval", ""))
		d.run(ep(t0.Add(time.Second), evCompleted(0, `""`)))
		expectActions(t, "timeout", d.run(ep(deadline, evFired(1, deadline))), scheduled(2, "Escalate", `"boss"`))
		// A late approval does not matter any more.
		expectActions(t, "late approval", d.run(ep(deadline.Add(time.Minute), evRaised("ApprovalEvent", `{"by":"ann"}`))))
		expectActions(t, "escalated", d.run(ep(deadline.Add(time.Hour), evCompleted(2, `"escalated"`))), completedWith(3, `"escalated"`))
	})
}
