package durable

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// retryOrch calls activity "Flaky" with the policy and returns its result;
// it stores the Await error in *errOut.
func retryOrch(p RetryPolicy, errOut *error) Definition {
	return NewOrchestrator("Retry", func(ctx *Context, _ any) (string, error) {
		s, err := CallActivity[string](ctx, "Flaky", "in", WithRetry(p)).Await()
		if errOut != nil {
			*errOut = err
		}
		return s, err
	})
}

func TestRetrySucceedsOnThirdAttempt(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 5 * time.Second, BackoffCoefficient: 2}
	d := newDriver(t, retryOrch(p, nil))
	expectActions(t, "start", d.run(start(t0, "Retry", "")), scheduled(0, "Flaky", `"in"`))
	expectActions(t, "failure 1", d.run(ep(t0.Add(1*time.Second), evFailed(0, fd("f1")))), timerAt(1, t0.Add(6*time.Second)))
	expectActions(t, "timer 1", d.run(ep(t0.Add(6*time.Second), evFired(1, t0.Add(6*time.Second)))), scheduled(2, "Flaky", `"in"`))
	expectActions(t, "failure 2", d.run(ep(t0.Add(8*time.Second), evFailed(2, fd("f2")))), timerAt(3, t0.Add(18*time.Second)))
	expectActions(t, "timer 2", d.run(ep(t0.Add(18*time.Second), evFired(3, t0.Add(18*time.Second)))), scheduled(4, "Flaky", `"in"`))
	expectActions(t, "success", d.run(ep(t0.Add(19*time.Second), evCompleted(4, `"ok"`))), completedWith(5, `"ok"`))
}

// TestRetryStops drives attempts that all fail and checks when retrying
// stops: each attempt fails 1 s after it was scheduled; each retry timer
// fires on time.
func TestRetryStops(t *testing.T) {
	var handled []string
	tests := []struct {
		name     string
		policy   RetryPolicy
		failures []history.FailureDetails // failure of attempt i
		delays   []time.Duration          // expected retry waits
	}{
		{
			name:     "max attempts exhausted",
			policy:   RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 5 * time.Second, BackoffCoefficient: 2},
			failures: []history.FailureDetails{fd("f1"), fd("f2"), fd("f3")},
			delays:   []time.Duration{5 * time.Second, 10 * time.Second},
		},
		{
			name:     "single attempt",
			policy:   RetryPolicy{MaxAttempts: 1, FirstRetryInterval: time.Second},
			failures: []history.FailureDetails{fd("only")},
		},
		{
			name:     "backoff capped by MaxRetryInterval",
			policy:   RetryPolicy{MaxAttempts: 4, FirstRetryInterval: 5 * time.Second, BackoffCoefficient: 10, MaxRetryInterval: 20 * time.Second},
			failures: []history.FailureDetails{fd("f1"), fd("f2"), fd("f3"), fd("f4")},
			delays:   []time.Duration{5 * time.Second, 20 * time.Second, 20 * time.Second},
		},
		{
			name:     "default coefficient is 1",
			policy:   RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 7 * time.Second},
			failures: []history.FailureDetails{fd("f1"), fd("f2"), fd("f3")},
			delays:   []time.Duration{7 * time.Second, 7 * time.Second},
		},
		{
			name: "Handle returns false",
			policy: RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Second, Handle: func(err error) bool {
				var tf *TaskFailedError
				if errors.As(err, &tf) {
					handled = append(handled, tf.Failure.ErrorMessage)
				}
				return !strings.Contains(err.Error(), "fatal")
			}},
			failures: []history.FailureDetails{fd("transient"), fd("fatal")},
			delays:   []time.Duration{time.Second},
		},
		{
			// Failures at t0+1s (retry), t0+7s (retry), t0+18s (≥ 10 s: stop).
			name:     "RetryTimeout",
			policy:   RetryPolicy{MaxAttempts: 10, FirstRetryInterval: 5 * time.Second, BackoffCoefficient: 2, RetryTimeout: 10 * time.Second},
			failures: []history.FailureDetails{fd("f1"), fd("f2"), fd("f3")},
			delays:   []time.Duration{5 * time.Second, 10 * time.Second},
		},
		{
			// The first failure comes exactly RetryTimeout after the first attempt.
			name:     "RetryTimeout reached exactly",
			policy:   RetryPolicy{MaxAttempts: 10, FirstRetryInterval: 5 * time.Second, RetryTimeout: time.Second},
			failures: []history.FailureDetails{fd("f1")},
		},
		{
			name:   "non-retriable failure",
			policy: RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Second},
			failures: []history.FailureDetails{fd("f1"),
				{ErrorType: "Fatal", ErrorMessage: "do not retry", IsNonRetriable: true}},
			delays: []time.Duration{time.Second},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.delays) != len(tc.failures)-1 {
				t.Fatal("bad table: one delay per retry")
			}
			handled = nil
			var awaitErr error
			d := newDriver(t, retryOrch(tc.policy, &awaitErr))
			expectActions(t, "start", d.run(start(t0, "Retry", "")), scheduled(0, "Flaky", `"in"`))
			now := t0
			id := int32(0)
			for i, f := range tc.failures {
				now = now.Add(time.Second)
				actions := d.run(ep(now, evFailed(id, f)))
				if i == len(tc.failures)-1 {
					if len(actions) != 1 || actions[0].Type != history.ExecutionCompleted || actions[0].Status != history.StatusFailed {
						t.Fatalf("after last failure: %v", describeActions(actions))
					}
					break
				}
				fireAt := now.Add(tc.delays[i])
				expectActions(t, "failure", actions, timerAt(id+1, fireAt))
				now = fireAt
				expectActions(t, "timer", d.run(ep(now, evFired(id+1, fireAt))), scheduled(id+2, "Flaky", `"in"`))
				id += 2
			}
			var tf *TaskFailedError
			last := tc.failures[len(tc.failures)-1]
			if !errors.As(awaitErr, &tf) || tf.TaskID != id || tf.Kind != "activity" || tf.TaskName != "Flaky" ||
				tf.Failure.ErrorMessage != last.ErrorMessage {
				t.Fatalf("Await err = %v, want the last attempt's (task %d) failure %q", awaitErr, id, last.ErrorMessage)
			}
			if tc.policy.Handle != nil && strings.Join(handled, ",") != "transient,fatal" {
				t.Errorf("Handle saw %v", handled)
			}
		})
	}
}

func TestRetryInvalidPolicy(t *testing.T) {
	tests := []struct {
		policy RetryPolicy
		want   string
	}{
		{RetryPolicy{MaxAttempts: 0, FirstRetryInterval: time.Second}, "MaxAttempts must be at least 1, got 0"},
		{RetryPolicy{MaxAttempts: 3}, "FirstRetryInterval must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			var awaitErr error
			d := newDriver(t, retryOrch(tc.policy, &awaitErr))
			actions := d.run(start(t0, "Retry", ""))
			// No attempt is scheduled: the task fails at once.
			if len(actions) != 1 || actions[0].Type != history.ExecutionCompleted || actions[0].Status != history.StatusFailed {
				t.Fatalf("actions = %v", describeActions(actions))
			}
			if awaitErr == nil || !strings.Contains(awaitErr.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", awaitErr, tc.want)
			}
		})
	}
}

// A retry wait longer than MaxTimerLeg is a chained durable timer like any
// other: no single timer may exceed MaxTimerLeg.
func TestRetryLongIntervalIsChained(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 2, FirstRetryInterval: 4 * day}
	d := newDriver(t, retryOrch(p, nil))
	d.run(start(t0, "Retry", ""))
	expectActions(t, "failure", d.run(ep(t0, evFailed(0, fd("f1")))), timerAt(1, t0.Add(3*day)))
	expectActions(t, "leg 1", d.run(ep(t0.Add(3*day), evFired(1, t0.Add(3*day)))), timerAt(2, t0.Add(4*day)))
	expectActions(t, "leg 2", d.run(ep(t0.Add(4*day), evFired(2, t0.Add(4*day)))), scheduled(3, "Flaky", `"in"`))
	expectActions(t, "success", d.run(ep(t0.Add(4*day), evCompleted(3, `"ok"`))), completedWith(4, `"ok"`))
}

// A panic in the policy's Handle is a failure of the call (like any error
// in the orchestrator's own code path), not a crash of the executor's caller.
func TestRetryHandlePanics(t *testing.T) {
	var awaitErr error
	p := RetryPolicy{MaxAttempts: 3, FirstRetryInterval: time.Second, Handle: func(error) bool { panic("handle broke") }}
	d := newDriver(t, retryOrch(p, &awaitErr))
	d.run(start(t0, "Retry", ""))
	var actions []history.Event
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Run panicked: %v", r)
			}
		}()
		actions = d.run(ep(t0, evFailed(0, fd("f1"))))
	}()
	var pe *PanicError
	if !errors.As(awaitErr, &pe) || !strings.Contains(pe.Value, "handle broke") {
		t.Fatalf("Await err = %v, want a PanicError", awaitErr)
	}
	if len(actions) != 1 || actions[0].Status != history.StatusFailed || actions[0].Failure.ErrorType != "panic" {
		t.Fatalf("actions = %v", describeActions(actions))
	}
}

// A call whose input cannot be encoded fails at once, with or without a
// retry policy, and schedules nothing.
func TestCallInputNotJSON(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, FirstRetryInterval: time.Second}
	tests := []struct {
		name string
		call func(ctx *Context) error
	}{
		{"activity", func(ctx *Context) error { _, err := CallActivity[string](ctx, "A", func() {}).Await(); return err }},
		{"activity with retry", func(ctx *Context) error {
			_, err := CallActivity[string](ctx, "A", func() {}, WithRetry(p)).Await()
			return err
		}},
		{"sub-orchestration", func(ctx *Context) error {
			_, err := CallSubOrchestrator[string](ctx, "C", make(chan int)).Await()
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var callErr error
			orch := NewOrchestrator("Enc", func(ctx *Context, _ any) (string, error) {
				callErr = tc.call(ctx)
				return "", callErr
			})
			d := newDriver(t, orch)
			actions := d.run(start(t0, "Enc", ""))
			if len(actions) != 1 || actions[0].Type != history.ExecutionCompleted || actions[0].Status != history.StatusFailed {
				t.Fatalf("actions = %v", describeActions(actions))
			}
			if callErr == nil || !strings.Contains(callErr.Error(), "cannot encode") {
				t.Fatalf("err = %v", callErr)
			}
		})
	}
}
