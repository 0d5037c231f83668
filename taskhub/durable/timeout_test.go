package durable

import (
	"errors"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// callTimeoutOrch calls activity "Slow" WithTimeout(10s) (and the options
// given) and returns its result, or "timeout: <error>" if it timed out.
func callTimeoutOrch(got *error, opts ...CallOption) Definition {
	return NewOrchestrator("Timeout", func(ctx *Context, _ any) (string, error) {
		out, err := CallActivity[string](ctx, "Slow", "in", append([]CallOption{WithTimeout(10 * time.Second)}, opts...)...).Await()
		*got = err
		if errors.Is(err, ErrTimeout) {
			return "timeout: " + err.Error(), nil
		}
		return out, err
	})
}

func TestWithTimeoutSchedulesTheCallAndATimer(t *testing.T) {
	var got error
	d := newDriver(t, callTimeoutOrch(&got))
	actions := d.run(start(t0, "Timeout", ""))
	expectActions(t, "start", actions, scheduled(0, "Slow", `"in"`), timerAt(1, t0.Add(10*time.Second)))
	deadline, ok, err := replay.Deadline(actions[0].Tags)
	if err != nil || !ok || !deadline.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("TaskScheduled tags %v: deadline %v %v %v, want %v", actions[0].Tags, deadline, ok, err, t0.Add(10*time.Second))
	}
}

func TestWithTimeout(t *testing.T) {
	slow := history.NewEvent(history.TaskScheduled, t0)
	slow.Name, slow.EventID = "Slow", 0
	deadlineFailure := *replay.CancelledAtDeadline(slow, t0.Add(10*time.Second), nil)
	tests := []struct {
		name     string
		episodes [][]history.Event
		output   string
		timedOut bool
	}{
		{
			name: "the call wins, the timer is cancelled",
			episodes: [][]history.Event{
				start(t0, "Timeout", ""),
				ep(t0.Add(time.Second), evCompleted(0, `"fast"`)),
			},
			output: `"fast"`,
		},
		{
			name: "the timer wins, the late result is ignored",
			episodes: [][]history.Event{
				start(t0, "Timeout", ""),
				ep(t0.Add(10*time.Second), evFired(1, t0.Add(10*time.Second))),
			},
			output:   `"timeout: activity \"Slow\" (task 0) timed out after 10s"`,
			timedOut: true,
		},
		{
			name: "the worker's deadline failure arrives before the timer",
			episodes: [][]history.Event{
				start(t0, "Timeout", ""),
				ep(t0.Add(10*time.Second), evFailed(0, deadlineFailure)),
			},
			output:   `"timeout: activity \"Slow\" (task 0) timed out after 10s"`,
			timedOut: true,
		},
		{
			name: "a failure before the deadline is the call's",
			episodes: [][]history.Event{
				start(t0, "Timeout", ""),
				ep(t0.Add(time.Second), evFailed(0, fd("broken"))),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got error
			c := assertReplayDeterministic(t, callTimeoutOrch(&got), tc.episodes...)
			if tc.output == "" {
				var tf *TaskFailedError
				if c.Status != history.StatusFailed || !errors.As(got, &tf) || errors.Is(got, ErrTimeout) {
					t.Fatalf("completion %v, Await error %v", describeActions([]history.Event{*c}), got)
				}
				return
			}
			if c.Status != history.StatusCompleted || c.Result != tc.output {
				t.Fatalf("completion %v, want output %s", describeActions([]history.Event{*c}), tc.output)
			}
			var te *TimeoutError
			if tc.timedOut != errors.As(got, &te) {
				t.Fatalf("Await error %v: timed out %v, want %v", got, te != nil, tc.timedOut)
			}
			if te != nil && (te.Kind != "activity" || te.TaskName != "Slow" || te.TaskID != 0 || te.Timeout != 10*time.Second) {
				t.Fatalf("TimeoutError %+v", te)
			}
		})
	}
}

// After a timeout the orchestration goes on; the attempt's late result and
// the cancelled timer's firing are recorded events that change nothing.
func TestWithTimeoutLateEventsChangeNothing(t *testing.T) {
	orch := NewOrchestrator("TimeoutThenWait", func(ctx *Context, _ any) (string, error) {
		_, err := CallActivity[string](ctx, "Slow", nil, WithTimeout(5*time.Second)).Await()
		if !errors.Is(err, ErrTimeout) {
			return "", errors.New("no timeout")
		}
		return WaitForExternalEvent[string](ctx, "Go").Await()
	})
	c := assertReplayDeterministic(t, orch,
		start(t0, "TimeoutThenWait", ""),
		ep(t0.Add(5*time.Second), evFired(1, t0.Add(5*time.Second))),
		ep(t0.Add(6*time.Second), evCompleted(0, `"late"`)),
		ep(t0.Add(7*time.Second), evRaised("Go", `"went"`)),
	)
	if c.Status != history.StatusCompleted || c.Result != `"went"` {
		t.Fatalf("completion %v", describeActions([]history.Event{*c}))
	}

	// The call wins, then the timer's (cancelled) firing arrives.
	orch2 := NewOrchestrator("FastThenWait", func(ctx *Context, _ any) (string, error) {
		out, err := CallActivity[string](ctx, "Slow", nil, WithTimeout(5*time.Second)).Await()
		if err != nil {
			return "", err
		}
		ev, err := WaitForExternalEvent[string](ctx, "Go").Await()
		return out + ev, err
	})
	d := newDriver(t, orch2)
	d.run(start(t0, "FastThenWait", ""))
	if a := d.run(ep(t0.Add(time.Second), evCompleted(0, `"fast "`))); len(a) != 0 {
		t.Fatalf("after the result: %v", describeActions(a))
	}
	if a := d.run(ep(t0.Add(5*time.Second), evFired(1, t0.Add(5*time.Second)))); len(a) != 0 {
		t.Fatalf("after the cancelled timer fired: %v", describeActions(a))
	}
	expectActions(t, "event", d.run(ep(t0.Add(6*time.Second), evRaised("Go", `"went"`))), completedWith(2, `"fast went"`))
}

// With WithRetry the timeout is per attempt, and a timed-out attempt is
// retried; Handle sees the *TimeoutError.
func TestWithTimeoutAndRetry(t *testing.T) {
	var got error
	var handled []error
	p := RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 2 * time.Second, Handle: func(err error) bool {
		handled = append(handled, err)
		return true
	}}
	d := newDriver(t, callTimeoutOrch(&got, WithRetry(p)))
	expectActions(t, "start", d.run(start(t0, "Timeout", "")), scheduled(0, "Slow", `"in"`), timerAt(1, t0.Add(10*time.Second)))
	at := t0.Add(10 * time.Second)
	expectActions(t, "attempt 1 times out", d.run(ep(at, evFired(1, at))), timerAt(2, at.Add(2*time.Second)))
	at = at.Add(2 * time.Second)
	actions := d.run(ep(at, evFired(2, at)))
	expectActions(t, "attempt 2", actions, scheduled(3, "Slow", `"in"`), timerAt(4, at.Add(10*time.Second)))
	if dl, _, _ := replay.Deadline(actions[0].Tags); !dl.Equal(at.Add(10 * time.Second)) {
		t.Fatalf("attempt 2's deadline %v, want %v", dl, at.Add(10*time.Second))
	}
	// Attempt 1's late result is ignored; attempt 2's counts.
	if a := d.run(ep(at.Add(time.Second), evCompleted(0, `"late"`))); len(a) != 0 {
		t.Fatalf("attempt 1's late result: %v", describeActions(a))
	}
	expectActions(t, "attempt 2 succeeds", d.run(ep(at.Add(2*time.Second), evCompleted(3, `"second"`))), completedWith(5, `"second"`))
	if got != nil || len(handled) != 1 || !errors.Is(handled[0], ErrTimeout) {
		t.Fatalf("Await error %v; Handle saw %v", got, handled)
	}
}

func TestSubOrchestrationTimeout(t *testing.T) {
	var got error
	orch := NewOrchestrator("Parent", func(ctx *Context, _ any) (int, error) {
		n, err := CallSubOrchestrator[int](ctx, "Child", nil, WithTimeout(time.Minute), WithInstanceID("kid")).Await()
		got = err
		return n, err
	})
	d := newDriver(t, orch)
	actions := d.run(start(t0, "Parent", ""))
	expectActions(t, "start", actions, subCreated(0, "Child", "null", "kid"), timerAt(1, t0.Add(time.Minute)))
	if len(actions[0].Tags) != 0 {
		t.Errorf("a sub-orchestration call carries tags %v", actions[0].Tags)
	}
	actions = d.run(ep(t0.Add(time.Minute), evFired(1, t0.Add(time.Minute))))
	var te *TimeoutError
	if !errors.As(got, &te) || te.Kind != "sub-orchestration" || te.TaskName != "Child" || !errors.Is(got, ErrTimeout) {
		t.Fatalf("Await error %v", got)
	}
	if len(actions) != 1 || actions[0].Failure == nil || actions[0].Failure.ErrorType != "TimeoutError" {
		t.Fatalf("completion %v", describeActions(actions))
	}
	// The child's late completion does not reach the finished parent's code.
	if a := d.run(ep(t0.Add(2*time.Minute), evSubCompleted(0, `7`))); len(a) != 0 {
		t.Fatalf("late child result: %v", describeActions(a))
	}
}

func TestWithTimeoutRejectsANegativeDuration(t *testing.T) {
	var got error
	orch := NewOrchestrator("Bad", func(ctx *Context, _ any) (string, error) {
		_, got = CallActivity[string](ctx, "Slow", nil, WithTimeout(-time.Second)).Await()
		return "", got
	})
	d := newDriver(t, orch)
	actions := d.run(start(t0, "Bad", ""))
	if got == nil || got.Error() != "durable: WithTimeout needs a positive duration, got -1s" || len(actions) != 1 || actions[0].Status != history.StatusFailed {
		t.Fatalf("Await error %v, actions %v", got, describeActions(actions))
	}
}

// TestWithTimeoutIgnoresTheActivitysOwnTimeoutErrors: a failure of the
// activity's own code that happens to have the type TimeoutError (it timed
// out calling something else) is the call's failure, a *TaskFailedError
// carrying it, not the call's *TimeoutError; only the worker's deadline
// failure, marked with the deadline, counts as the call's timeout.
// (errors.Is(err, ErrTimeout) holds for both: it matches by type.)
func TestWithTimeoutIgnoresTheActivitysOwnTimeoutErrors(t *testing.T) {
	var got error
	own := history.FailureDetails{ErrorType: "TimeoutError", ErrorMessage: "the upstream service did not answer in 5s"}
	c := assertReplayDeterministic(t, callTimeoutOrch(&got),
		start(t0, "Timeout", ""),
		ep(t0.Add(5*time.Second), evFailed(0, own)))
	var tf *TaskFailedError
	var te *TimeoutError
	if !errors.As(got, &tf) || errors.As(got, &te) || tf.Failure.ErrorMessage != own.ErrorMessage {
		t.Fatalf("completion %v, Await error %v: want the activity's own failure", describeActions([]history.Event{*c}), got)
	}
}
