package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"time"
)

type userError struct{ code int }

func (e userError) Error() string { return fmt.Sprintf("user error %d", e.code) }

type typedUserError struct{}

func (typedUserError) Error() string     { return "typed" }
func (typedUserError) ErrorType() string { return "Billing.Typed" }

func TestErrorTypeName(t *testing.T) {
	pathErr := &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"errors.New", errors.New("boom"), "Error"},
		{"fmt.Errorf without %w", fmt.Errorf("boom %d", 1), "Error"},
		{"fmt.Errorf wrapping errors.New", fmt.Errorf("step: %w", errors.New("boom")), "Error"},
		{"fmt.Errorf with two %w", fmt.Errorf("%w and %w", errors.New("a"), errors.New("b")), "Error"},
		{"errors.Join", errors.Join(errors.New("a"), errors.New("b")), "Error"},
		{"an exported standard library type", fmt.Errorf("reading: %w", pathErr), "fs.PathError"},
		{"a user type through a wrapper", fmt.Errorf("x: %w", userError{7}), "durable.userError"},
		{"the ErrorType convention", fmt.Errorf("x: %w", typedUserError{}), "Billing.Typed"},
		{"an application error", NewError("Permanent", "no", nil), "Permanent"},
		{"an application error without a type", &Error{Message: "m"}, "Error"},
		{"NonRetriable is transparent", NonRetriable(errors.New("boom")), "Error"},
		{"NonRetriable of a typed error", NonRetriable(fmt.Errorf("w: %w", NewError("Quota", "q", nil))), "Quota"},
		{"a re-raised task failure", fmt.Errorf("step: %w", &TaskFailedError{TaskName: "A"}), "TaskFailedError"},
		{"a timeout", &TimeoutError{Kind: "activity", TaskName: "A"}, "TimeoutError"},
		{"engine errors keep their names", &NonDeterminismError{}, "NonDeterminismError"},
		{"panics keep their name", &PanicError{Value: "x"}, "panic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorTypeName(tc.err); got != tc.want {
				t.Errorf("ErrorTypeName(%#v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

type declined struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func TestFailureFromApplicationError(t *testing.T) {
	cause := NewError("Gateway", "gateway said no", declined{Code: 51})
	err := fmt.Errorf("charging order 7: %w", NonRetriable(NewError("CardDeclined", "card declined", declined{Code: 51, Reason: "funds"}).WithCause(cause)))
	got := failureFromError(err)
	want := &FailureDetails{
		ErrorType:      "CardDeclined",
		ErrorMessage:   "charging order 7: card declined: gateway said no",
		IsNonRetriable: true,
		Properties:     map[string]any{"details": map[string]any{"code": 51.0, "reason": "funds"}},
		InnerFailure: &FailureDetails{ErrorType: "Gateway", ErrorMessage: "gateway said no",
			Properties: map[string]any{"details": map[string]any{"code": 51.0, "reason": ""}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("failure\n  got  %+v\n  want %+v", got, want)
	}

	// Details that are not JSON are reported, and the rest is kept.
	bad := failureFromError(NewError("Bad", "m", func() {}))
	if bad.ErrorType != "Bad" || bad.ErrorMessage != "m" || bad.Properties["detailsError"] == nil {
		t.Fatalf("failure with undecodable details: %+v", bad)
	}
	t.Logf("undecodable details: %v", bad.Properties["detailsError"])
}

// The README's retry example, with sentinels matched by type.
var (
	errPermanent = NewError("Permanent", "permanent failure", nil)
	errTransient = NewError("Transient", "try again", nil)
)

// typedErrorsOrch calls "Charge" with the README's retry policy and reports
// what errors.Is and errors.As see.
func typedErrorsOrch(seen *[]string) Definition {
	return NewOrchestrator("TypedErrors", func(ctx *Context, _ any) (string, error) {
		_, err := CallActivity[string](ctx, "Charge", "in", WithRetry(RetryPolicy{
			MaxAttempts: 5, FirstRetryInterval: time.Second,
			Handle: func(err error) bool { return !errors.Is(err, errPermanent) },
		})).Await()
		var ae *Error
		var d declined
		if errors.As(err, &ae) {
			if derr := ae.Details(&d); derr != nil {
				return "", derr
			}
		}
		*seen = append(*seen, fmt.Sprintf("permanent=%v transient=%v type=%s msg=%q nonretriable=%v details=%+v",
			errors.Is(err, errPermanent), errors.Is(err, errTransient), ae.Type, ae.Message, ae.NonRetriable, d))
		return "handled", nil
	})
}

func TestTypedErrorsAcrossTheActivityBoundary(t *testing.T) {
	transient := *failureFromError(NewError("Transient", "busy", nil))
	permanent := *failureFromError(NewError("Permanent", "card declined", declined{Code: 51, Reason: "funds"}))
	var seen []string
	d := newDriver(t, typedErrorsOrch(&seen))
	expectActions(t, "start", d.run(start(t0, "TypedErrors", "")), scheduled(0, "Charge", `"in"`))
	// A transient failure is retried, a permanent one stops the retries.
	expectActions(t, "transient", d.run(ep(t0.Add(time.Second), evFailed(0, transient))), timerAt(1, t0.Add(2*time.Second)))
	expectActions(t, "retry", d.run(ep(t0.Add(2*time.Second), evFired(1, t0.Add(2*time.Second)))), scheduled(2, "Charge", `"in"`))
	expectActions(t, "permanent", d.run(ep(t0.Add(3*time.Second), evFailed(2, permanent))), completedWith(3, `"handled"`))
	want := []string{`permanent=true transient=false type=Permanent msg="card declined" nonretriable=false details={Code:51 Reason:funds}`}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("the orchestrator saw\n  %q\nwant\n  %q", seen, want)
	}
}

func TestNonRetriableStopsRetries(t *testing.T) {
	var seen []string
	d := newDriver(t, typedErrorsOrch(&seen))
	expectActions(t, "start", d.run(start(t0, "TypedErrors", "")), scheduled(0, "Charge", `"in"`))
	// A plain error marked NonRetriable: the policy's Handle would retry it.
	f := *failureFromError(NonRetriable(fmt.Errorf("account %d closed", 9)))
	if f.ErrorType != "Error" || !f.IsNonRetriable {
		t.Fatalf("recorded failure %+v", f)
	}
	expectActions(t, "non-retriable", d.run(ep(t0.Add(time.Second), evFailed(0, f))), completedWith(1, `"handled"`))
	want := []string{`permanent=false transient=false type=Error msg="account 9 closed" nonretriable=true details={Code:0 Reason:}`}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("the orchestrator saw\n  %q\nwant\n  %q", seen, want)
	}
}

// A sub-orchestration that re-raises its activity's typed failure: the
// parent matches the activity's type through the InnerFailure chain.
func TestTypedErrorsAcrossASubOrchestration(t *testing.T) {
	activity := *failureFromError(NewError("Permanent", "card declined", declined{Code: 51}))
	child := *failureFromError(fmt.Errorf("child gave up: %w",
		&TaskFailedError{Kind: "activity", TaskName: "Charge", TaskID: 0, Failure: activity}))
	if child.ErrorType != "TaskFailedError" || child.InnerFailure == nil || child.InnerFailure.ErrorType != "Permanent" {
		t.Fatalf("child's failure %+v", child)
	}
	var got error
	orch := NewOrchestrator("Parent", func(ctx *Context, _ any) (string, error) {
		_, got = CallSubOrchestrator[string](ctx, "Child", nil).Await()
		return "", got
	})
	d := newDriver(t, orch)
	d.run(start(t0, "Parent", ""))
	actions := d.run(ep(t0.Add(time.Second), evSubFailed(0, child)))
	if !errors.Is(got, errPermanent) || errors.Is(got, errTransient) || errors.Is(got, ErrTimeout) {
		t.Fatalf("errors.Is on %v: permanent %v transient %v timeout %v", got,
			errors.Is(got, errPermanent), errors.Is(got, errTransient), errors.Is(got, ErrTimeout))
	}
	var ae *Error
	var det declined
	if !errors.As(got, &ae) || ae.Type != "Permanent" || ae.Message != "card declined" || ae.Details(&det) != nil || det.Code != 51 {
		t.Fatalf("errors.As gave %+v (details %+v)", ae, det)
	}
	var tf *TaskFailedError
	if !errors.As(got, &tf) || tf.Kind != "sub-orchestration" || tf.TaskName != "Child" {
		t.Fatalf("errors.As *TaskFailedError gave %+v", tf)
	}
	// The parent re-raises in turn: the chain grows by one level and keeps the type.
	if len(actions) != 1 || actions[0].Failure == nil || actions[0].Failure.ErrorType != "TaskFailedError" ||
		actions[0].Failure.InnerFailure.InnerFailure.ErrorType != "Permanent" {
		t.Fatalf("parent's completion %v", describeActions(actions))
	}
}

func TestRebuiltErrorKeepsItsCause(t *testing.T) {
	f := *failureFromError(NewError("Outer", "outer", nil).WithCause(NewError("Inner", "inner", 42)))
	tf := &TaskFailedError{Kind: "activity", TaskName: "A", Failure: f}
	var ae *Error
	if !errors.As(tf, &ae) || ae.Type != "Outer" || ae.Message != "outer" || ae.Error() != "outer: inner" {
		t.Fatalf("rebuilt %+v (%q)", ae, ae.Error())
	}
	var inner *Error
	var n int
	if !errors.As(ae.Cause, &inner) || inner.Type != "Inner" || inner.Details(&n) != nil || n != 42 {
		t.Fatalf("cause %+v", ae.Cause)
	}
	if !errors.Is(tf, NewError("Inner", "", nil)) || !errors.Is(ae, NewError("Inner", "", nil)) {
		t.Fatal("the cause's type does not match")
	}
	if errors.Is(tf, &Error{}) {
		t.Fatal("an untyped sentinel matched")
	}
	var s string
	if err := ae.Cause.(*Error).Details(&s); err == nil {
		t.Fatal("details 42 decoded into a string")
	} else {
		t.Logf("mismatched details: %v", err)
	}
}

// TestSentinelsMatchFailuresFromAcrossTheBoundary: the package's own
// sentinels match a rebuilt TaskFailedError by the failure type they stand
// for, in the failure or behind it, and nothing else.
func TestSentinelsMatchFailuresFromAcrossTheBoundary(t *testing.T) {
	failed := func(types ...string) error {
		var f *FailureDetails
		for i := len(types) - 1; i >= 0; i-- {
			f = &FailureDetails{ErrorType: types[i], ErrorMessage: "m", InnerFailure: f}
		}
		return &TaskFailedError{Kind: "activity", TaskName: "A", Failure: *f}
	}
	for _, tc := range []struct {
		err      error
		sentinel error
		want     bool
	}{
		{failed("TimeoutError"), ErrTimeout, true},
		{failed("TaskFailedError", "TimeoutError"), ErrTimeout, true},
		{failed("HTTPRequestError"), ErrInvalidHTTPRequest, true},
		{failed("TaskFailedError", "HTTPRequestError"), ErrInvalidHTTPRequest, true},
		{failed("HTTPRequestError"), ErrTimeout, false},
		{failed("Error"), ErrInvalidHTTPRequest, false},
		{failed("Error"), ErrCanceled, false},
	} {
		if got := errors.Is(tc.err, tc.sentinel); got != tc.want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", tc.err, tc.sentinel, got, tc.want)
		}
	}
}
