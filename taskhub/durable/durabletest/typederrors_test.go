package durabletest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// codeError is a user error type without an ErrorType method: it is
// recorded under its Go type name.
type codeError struct{ Code int }

func (e *codeError) Error() string { return fmt.Sprintf("code %d", e.Code) }

var charge = durable.NewActivity("ChargeCard", func(context.Context, int) (string, error) {
	return "", errors.New("replaced by a mock")
})

// readmeRetry is the README's policy: retry anything but a Permanent error.
var readmeRetry = durable.WithRetry(durable.RetryPolicy{
	MaxAttempts: 3, FirstRetryInterval: time.Minute,
	Handle: func(err error) bool { return !errors.Is(err, errPermanent) },
})

// describe is what an orchestrator can tell about a failed call on its
// side: the recorded type, errors.Is against the README's sentinel, and
// the *durable.Error that errors.As rebuilds, details included.
func describe(err error) string {
	if err == nil {
		return "no error"
	}
	var tf *durable.TaskFailedError
	var appErr *durable.Error
	if !errors.As(err, &tf) || !errors.As(err, &appErr) {
		return fmt.Sprintf("not a task failure: %T %v", err, err)
	}
	var d decline
	if derr := appErr.Details(&d); derr != nil {
		return derr.Error()
	}
	return fmt.Sprintf("type=%s msg=%q code=%d nonRetriable=%v permanent=%v",
		appErr.Type, appErr.Message, d.Code, appErr.NonRetriable, errors.Is(err, errPermanent))
}

// TestTypedErrorsAcrossTheActivityBoundary: errors a (mocked) activity
// returns keep their type, message, details and non-retriable marker on
// the orchestrator's side, and the README's retry policy stops exactly on
// Permanent and non-retriable failures.
func TestTypedErrorsAcrossTheActivityBoundary(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		want     string
		attempts int
	}{
		{"Permanent stops the retries", durable.NewError("Permanent", "declined", decline{Code: 51}),
			`type=Permanent msg="declined" code=51 nonRetriable=false permanent=true`, 1},
		{"a wrapped Permanent still matches", fmt.Errorf("charging: %w", durable.NewError("Permanent", "declined", nil)),
			`type=Permanent msg="charging: declined" code=0 nonRetriable=false permanent=true`, 1},
		{"Transient is retried to the end", durable.NewError("Transient", "busy", decline{Code: 9}),
			`type=Transient msg="busy" code=9 nonRetriable=false permanent=false`, 3},
		{"NonRetriable stops what Handle would retry", durable.NonRetriable(durable.NewError("Transient", "busy", nil)),
			`type=Transient msg="busy" code=0 nonRetriable=true permanent=false`, 1},
		{"an Error marked NonRetriable", &durable.Error{Type: "Fraud", Message: "blocked", NonRetriable: true},
			`type=Fraud msg="blocked" code=0 nonRetriable=true permanent=false`, 1},
		{"a plain error is recorded as Error", errors.New("boom"),
			`type=Error msg="boom" code=0 nonRetriable=false permanent=false`, 3},
		{"a user type by its Go name", fmt.Errorf("call: %w", &codeError{Code: 7}),
			`type=durabletest_test.codeError msg="call: code 7" code=0 nonRetriable=false permanent=false`, 3},
		{"a plain error made non-retriable", durable.NonRetriable(errors.New("bad input")),
			`type=Error msg="bad input" code=0 nonRetriable=true permanent=false`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orch := durable.NewOrchestrator("Charge", func(ctx *durable.Context, cents int) (string, error) {
				_, err := charge.Call(ctx, cents, readmeRetry).Await()
				return describe(err), nil
			})
			tr := durabletest.New(charge)
			mock := durabletest.OnActivity(tr, charge, func(context.Context, int) (string, error) { return "", tc.err })
			res := durabletest.MustRun(t, tr, orch, 100)
			if res.Output != tc.want || mock.Calls() != tc.attempts {
				t.Fatalf("after %d attempts (want %d):\n got %s\nwant %s", mock.Calls(), tc.attempts, res.Output, tc.want)
			}
			// The history holds one TaskFailed per attempt, each with the
			// type and marker recorded, and a retry timer of a minute between.
			var failed []history.Event
			for _, ev := range res.History {
				if ev.Type == history.TaskFailed {
					failed = append(failed, ev)
				}
			}
			if len(failed) != tc.attempts || res.Elapsed != time.Duration(tc.attempts-1)*time.Minute {
				t.Fatalf("%d TaskFailed events after %v:\n%s", len(failed), res.Elapsed, durabletest.FormatHistory(res.History))
			}
			f := failed[0].Failure
			if want := durable.ErrorTypeName(tc.err); f.ErrorType != want || f.ErrorMessage != tc.err.Error() {
				t.Errorf("recorded %s: %q, want %s: %q", f.ErrorType, f.ErrorMessage, want, tc.err.Error())
			}
		})
	}
}

// payment is a child orchestration that charges through the activity; its
// failures are the parent's sub-orchestration failures.
var payment = durable.NewOrchestrator("Payment", func(ctx *durable.Context, cents int) (string, error) {
	return charge.Call(ctx, cents).Await() // no retries here: the parent retries the child
})

// TestTypedErrorsThroughASubOrchestration: an activity's typed error,
// re-raised by a child orchestration, still matches errors.Is and
// errors.As in the parent, whose retry policy (the README's) retries the
// whole child on Transient and stops on Permanent; a child that returns a
// typed error of its own is matched by that type.
func TestTypedErrorsThroughASubOrchestration(t *testing.T) {
	for _, tc := range []struct {
		name     string
		errs     []error // what the activity returns on each call
		want     string
		children int
	}{
		{"Transient, then Permanent", []error{durable.NewError("Transient", "busy", nil), durable.NewError("Permanent", "declined", decline{Code: 51})},
			`type=Permanent msg="declined" code=51 nonRetriable=false permanent=true`, 2},
		{"a non-retriable failure stops the parent's retries too", []error{durable.NonRetriable(errors.New("card expired"))},
			`type=Error msg="card expired" code=0 nonRetriable=true permanent=false`, 1},
		{"Transient three times", []error{durable.NewError("Transient", "busy", nil), durable.NewError("Transient", "busy", nil), durable.NewError("Transient", "still busy", nil)},
			`type=Transient msg="still busy" code=0 nonRetriable=false permanent=false`, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orch := durable.NewOrchestrator("Checkout", func(ctx *durable.Context, cents int) (string, error) {
				_, err := payment.Call(ctx, cents, readmeRetry).Await()
				return describe(err), nil
			})
			tr := durabletest.New(charge, payment)
			calls := 0
			durabletest.OnActivity(tr, charge, func(context.Context, int) (string, error) {
				calls++
				return "", tc.errs[calls-1]
			})
			res := durabletest.MustRun(t, tr, orch, 100)
			if res.Output != tc.want || len(res.Children) != tc.children {
				t.Fatalf("%d children:\n got %s\nwant %s", len(res.Children), res.Output, tc.want)
			}
			last := res.Children[len(res.Children)-1]
			if last.Status != history.StatusFailed || last.Failure.ErrorType != "TaskFailedError" || last.Failure.InnerFailure == nil {
				t.Fatalf("the last child: %s %v", last.Status, last.Failure)
			}
			if got, want := last.Failure.InnerFailure.ErrorType, durable.ErrorTypeName(tc.errs[len(tc.errs)-1]); got != want {
				t.Errorf("the child's inner failure is of type %s, want %s", got, want)
			}
		})
	}

	t.Run("a child's own typed error", func(t *testing.T) {
		refuse := durable.NewOrchestrator("Refuse", func(*durable.Context, int) (string, error) {
			return "", durable.NewError("Permanent", "over the limit", decline{Code: 61})
		})
		orch := durable.NewOrchestrator("Checkout", func(ctx *durable.Context, cents int) (string, error) {
			_, err := refuse.Call(ctx, cents, readmeRetry).Await()
			return describe(err), nil
		})
		res := durabletest.MustRun(t, durabletest.New(refuse), orch, 100)
		if want := `type=Permanent msg="over the limit" code=61 nonRetriable=false permanent=true`; res.Output != want || len(res.Children) != 1 {
			t.Fatalf("%d children:\n got %s\nwant %s", len(res.Children), res.Output, want)
		}
	})
}
