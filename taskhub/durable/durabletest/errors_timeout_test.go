package durabletest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
)

// errPermanent is the README's sentinel.
var errPermanent = durable.NewError("Permanent", "permanent failure", nil)

type decline struct {
	Code int `json:"code"`
}

var pay = durable.NewActivity("Pay", func(_ context.Context, cents int) (string, error) {
	return "", errors.New("replaced by a mock")
})

// payWithRetries is the README's retry example: Handle stops at a
// Permanent failure; the orchestrator reads the failure's details.
var payWithRetries = durable.NewOrchestrator("PayWithRetries", func(ctx *durable.Context, cents int) (string, error) {
	_, err := pay.Call(ctx, cents, durable.WithRetry(durable.RetryPolicy{
		MaxAttempts: 5, FirstRetryInterval: time.Minute,
		Handle: func(err error) bool { return !errors.Is(err, errPermanent) },
	})).Await()
	var appErr *durable.Error
	if !errors.Is(err, errPermanent) || !errors.As(err, &appErr) {
		return "", fmt.Errorf("want a Permanent failure, got %w", err)
	}
	var d decline
	if err := appErr.Details(&d); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %s (code %d)", appErr.Type, appErr.Message, d.Code), nil
})

// TestREADMERetryExampleThroughTheHarness runs the README's retry policy
// against a mock that fails with a Transient error, then a Permanent one.
func TestREADMERetryExampleThroughTheHarness(t *testing.T) {
	tr := durabletest.New(pay)
	attempt := 0
	mock := durabletest.OnActivity(tr, pay, func(_ context.Context, cents int) (string, error) {
		attempt++
		if attempt == 1 {
			return "", durable.NewError("Transient", "try later", nil)
		}
		return "", durable.NewError("Permanent", fmt.Sprintf("%d cents declined", cents), decline{Code: 51})
	})
	res, err := durabletest.Run(context.Background(), tr, payWithRetries, 250)
	if err != nil {
		t.Fatal(err)
	}
	if res.Output != "Permanent: 250 cents declined (code 51)" || mock.Calls() != 2 || res.Elapsed != time.Minute {
		t.Fatalf("output %q after %d calls and %v", res.Output, mock.Calls(), res.Elapsed)
	}
}

// TestWithTimeoutThroughTheHarness: a mock that takes longer than the
// call's timeout times out on every attempt; one that is quick enough wins.
func TestWithTimeoutThroughTheHarness(t *testing.T) {
	for _, tc := range []struct {
		takes time.Duration
		want  string
	}{
		{takes: 10 * time.Second, want: "paid"},
		{takes: 2 * time.Minute, want: `timeout: activity "Pay" (task 3) timed out after 1m0s`},
	} {
		t.Run(tc.takes.String(), func(t *testing.T) {
			orch := durable.NewOrchestrator("PayInTime", func(ctx *durable.Context, _ any) (string, error) {
				out, err := pay.Call(ctx, 1, durable.WithTimeout(time.Minute), durable.WithRetry(durable.RetryPolicy{
					MaxAttempts: 2, FirstRetryInterval: time.Second,
				})).Await()
				if errors.Is(err, durable.ErrTimeout) {
					return "timeout: " + err.Error(), nil
				}
				return out, err
			})
			tr := durabletest.New(pay)
			mock := durabletest.OnActivity(tr, pay, func(context.Context, int) (string, error) { return "paid", nil }).Takes(tc.takes)
			res, err := durabletest.Run(context.Background(), tr, orch, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Output != tc.want {
				t.Fatalf("output %q (mock called %d times, %v elapsed)", res.Output, mock.Calls(), res.Elapsed)
			}
			t.Logf("%q after %d calls, %v of virtual time", res.Output, mock.Calls(), res.Elapsed)
		})
	}
}
