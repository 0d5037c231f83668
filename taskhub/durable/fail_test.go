package durable

import (
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestFailEndsTheExecutionOnTheNextRun(t *testing.T) {
	var reached, deferred bool
	orch := NewOrchestrator("Failing", func(ctx *Context, _ any) (string, error) {
		defer func() { deferred = true }()
		if _, err := hello.Call(ctx, "a").Await(); err != nil {
			return "", err
		}
		if _, err := hello.Call(ctx, "b").Await(); err != nil {
			return "", err
		}
		reached = true
		return "finished", nil
	})
	fd := FailureDetails{ErrorType: "PoisonMessage", ErrorMessage: "message m1 could not be processed"}
	d := newDriver(t, orch)
	expectActions(t, "start", d.run(start(t0, "Failing", "")), scheduled(0, "Hello", `"a"`))
	d.ex.Fail(fd)
	// Task 0's completion makes the code schedule task 1 in this episode;
	// the failure voids it.
	at := t0.Add(time.Minute)
	actions := d.run(ep(at, evCompleted(0, `"A"`)))
	if len(actions) != 1 {
		t.Fatalf("actions = %v", describeActions(actions))
	}
	c := actions[0]
	if c.Type != history.ExecutionCompleted || c.Status != history.StatusFailed || c.Failure == nil || c.Failure.ErrorType != fd.ErrorType || c.Failure.ErrorMessage != fd.ErrorMessage || !c.Timestamp.Equal(at) {
		t.Fatalf("completion = %+v (failure %+v), want Failed with %+v at %v", c, c.Failure, fd, at)
	}
	if !d.ex.Done() || d.ex.Completion().Status != history.StatusFailed {
		t.Fatalf("Completion() = %+v", d.ex.Completion())
	}
	if reached || !deferred {
		t.Fatalf("code ran on (%v) or was not unwound (deferred=%v)", reached, deferred)
	}
	// Later runs, and a second Fail, change nothing.
	d.ex.Fail(FailureDetails{ErrorType: "Other"})
	expectActions(t, "after", d.run(ep(at.Add(time.Hour), evCompleted(1, `"B"`))))
	if d.ex.Completion().Failure.ErrorType != "PoisonMessage" {
		t.Fatalf("completion changed to %+v", d.ex.Completion().Failure)
	}
}

func TestFailAfterCompletionHasNoEffect(t *testing.T) {
	d := newDriver(t, counter)
	expectActions(t, "start", d.run(start(t0, "Counter", "5")), completedWith(0, "5"))
	d.ex.Fail(FailureDetails{ErrorType: "PoisonMessage", ErrorMessage: "late"})
	expectActions(t, "fail", d.run(ep(t0.Add(time.Second))))
	if d.ex.Completion().Status != history.StatusCompleted {
		t.Fatalf("status = %v", d.ex.Completion().Status)
	}
}
