package durabletest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

var fetchReport = durable.NewActivity("FetchReport", func(context.Context, string) (string, error) {
	return "", errors.New("replaced by a mock")
})

// timeoutText tells what a call's error is on the orchestrator's side.
func timeoutText(err error) string {
	var te *durable.TimeoutError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &te) && errors.Is(err, durable.ErrTimeout):
		return fmt.Sprintf("timeout of %s %q task %d after %v", te.Kind, te.TaskName, te.TaskID, te.Timeout)
	}
	return "other error: " + err.Error()
}

// TestActivityTimeout: a call made WithTimeout races a durable timer on the
// virtual clock; a mock that Takes longer loses (a *durable.TimeoutError;
// its late result is still recorded, once, and ignored), a quicker one wins
// and its timer is cancelled, so nothing stays pending. With WithRetry the
// timeout bounds each attempt.
func TestActivityTimeout(t *testing.T) {
	retry := func(handle func(error) bool) durable.CallOption {
		return durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 10 * time.Second, Handle: handle})
	}
	for _, tc := range []struct {
		name     string
		takes    time.Duration
		retry    durable.CallOption
		want     string // the call's outcome and the virtual time it returned at
		attempts int
		end      time.Duration // virtual time of the last result (late ones included)
		fired    int           // TimerFired events
	}{
		{"slower than the timeout", 2 * time.Minute, nil,
			`timeout of activity "FetchReport" task 0 after 1m0s at 1m0s`, 1, 2 * time.Minute, 1},
		{"quicker than the timeout", 20 * time.Second, nil, "ok at 20s", 1, 20 * time.Second, 0},
		{"every attempt times out", 2 * time.Minute, retry(nil),
			// attempts at 0, 1m10s and 2m20s: tasks 0, 3 and 6 (each with its timer, and a retry timer between)
			`timeout of activity "FetchReport" task 6 after 1m0s at 3m20s`, 3, 4*time.Minute + 20*time.Second, 5},
		{"Handle declines to retry timeouts", 2 * time.Minute, retry(func(err error) bool { return !errors.Is(err, durable.ErrTimeout) }),
			`timeout of activity "FetchReport" task 0 after 1m0s at 1m0s`, 1, 2 * time.Minute, 1},
		{"retried calls that are quick enough", 20 * time.Second, retry(nil), "ok at 20s", 1, 20 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orch := durable.NewOrchestrator("Report", func(ctx *durable.Context, _ any) (string, error) {
				opts := []durable.CallOption{durable.WithTimeout(time.Minute)}
				if tc.retry != nil {
					opts = append(opts, tc.retry)
				}
				_, err := fetchReport.Call(ctx, "q3", opts...).Await()
				if err := ctx.SetCustomStatus(fmt.Sprintf("%s at %v", timeoutText(err), ctx.CurrentTime().Sub(durabletest.DefaultStartTime))); err != nil {
					return "", err
				}
				// Then wait for an event nobody raises: the run ends
				// listing everything still pending.
				return durable.WaitForExternalEvent[string](ctx, "Done").Await()
			})
			tr := durabletest.New(fetchReport)
			mock := durabletest.OnActivity(tr, fetchReport, func(context.Context, string) (string, error) {
				return "report", nil
			}).Takes(tc.takes)
			res, err := durabletest.Run(ctx, tr, orch, nil)
			var nf *durabletest.NotFinishedError
			if !errors.As(err, &nf) {
				t.Fatalf("want a NotFinishedError, got %v", err)
			}
			status, err := durabletest.CustomStatus[string](res.Instance)
			if err != nil || status != tc.want || mock.Calls() != tc.attempts {
				t.Fatalf("after %d attempts (want %d):\n got %s (%v)\nwant %s", mock.Calls(), tc.attempts, status, err, tc.want)
			}
			// Only the event is pending: no timer of the call is left.
			if fmt.Sprint(nf.Waiting) != `[external event "Done"]` || nf.Elapsed != tc.end {
				t.Fatalf("waits for %v after %v, want only the event after %v:\n%s",
					nf.Waiting, nf.Elapsed, tc.end, durabletest.FormatHistory(res.History))
			}
			h := res.History
			if n := count(h, history.TimerFired); n != tc.fired {
				t.Errorf("%d timers fired, want %d:\n%s", n, tc.fired, durabletest.FormatHistory(h))
			}
			if s, c := count(h, history.TaskScheduled), count(h, history.TaskCompleted); s != tc.attempts || c != tc.attempts {
				t.Errorf("%d TaskScheduled and %d TaskCompleted, want %d of each", s, c, tc.attempts)
			}
			// Each attempt carries its deadline for the worker, a minute after it was scheduled.
			for _, ev := range h {
				if ev.Type == history.TaskScheduled {
					if want := ev.Timestamp.Add(time.Minute).Format(time.RFC3339Nano); ev.Tags["durable.deadline"] != want {
						t.Errorf("task %d: deadline tag %q, want %s", ev.EventID, ev.Tags["durable.deadline"], want)
					}
				}
			}
		})
	}
}

// TestTimeoutOutput checks the output itself when the orchestration
// returns right after the call.
func TestTimeoutOutput(t *testing.T) {
	orch := durable.NewOrchestrator("ReportNow", func(ctx *durable.Context, _ any) (string, error) {
		_, err := fetchReport.Call(ctx, "q3", durable.WithTimeout(time.Minute)).Await()
		return timeoutText(err), nil
	})
	tr := durabletest.New(fetchReport)
	durabletest.OnActivity(tr, fetchReport, func(context.Context, string) (string, error) { return "late", nil }).Takes(time.Hour)
	res := durabletest.MustRun(t, tr, orch, nil)
	if want := `timeout of activity "FetchReport" task 0 after 1m0s`; res.Output != want || res.Elapsed != time.Minute {
		t.Fatalf("%q after %v", res.Output, res.Elapsed)
	}
}

// TestSubOrchestrationTimeout: the parent stops waiting for a child that
// takes too long (a *durable.TimeoutError); the child runs on. A child
// that is quick enough returns its output.
func TestSubOrchestrationTimeout(t *testing.T) {
	for _, tc := range []struct {
		hours   int
		want    string
		elapsed time.Duration
		child   history.OrchestrationStatus
	}{
		{1, "ok 10", time.Hour, history.StatusCompleted},
		{5, `timeout of sub-orchestration "Job" task 0 after 2h0m0s 0`, 2 * time.Hour, history.StatusRunning},
	} {
		t.Run(fmt.Sprint(tc.hours, "h"), func(t *testing.T) {
			orch := durable.NewOrchestrator("Parent2", func(ctx *durable.Context, hours int) (string, error) {
				v, err := jobOrch.Call(ctx, job{Hours: hours}, durable.WithTimeout(2*time.Hour)).Await()
				return fmt.Sprint(timeoutText(err), " ", v), nil
			})
			res := durabletest.MustRun(t, durabletest.New(jobOrch), orch, tc.hours)
			if res.Output != tc.want || res.Elapsed != tc.elapsed || len(res.Children) != 1 || res.Children[0].Status != tc.child {
				t.Fatalf("%q after %v, child %v", res.Output, res.Elapsed, res.Children[0].Status)
			}
		})
	}
}

// TestActivityDeadline: a real activity called WithTimeout sees, as under
// the engine, the call's deadline in ActivityInfo (the virtual time the
// timer fires) and a context with a deadline the timeout away in real
// time; one that works past it is cancelled, and the failure is recorded
// as the engine records it, a TimeoutError wrapping the activity's error.
// Without a timeout there is no deadline.
func TestActivityDeadline(t *testing.T) {
	type seen struct {
		Info, Ctx bool
		Deadline  time.Time
		Left      time.Duration // the context's time left, rounded up to a minute
	}
	look := durable.NewActivity("Look", func(ctx context.Context, _ any) (seen, error) {
		info, _ := durable.ActivityInfoFrom(ctx)
		dl, ok := ctx.Deadline()
		s := seen{Info: !info.Deadline.IsZero(), Ctx: ok, Deadline: info.Deadline}
		if ok {
			s.Left = time.Until(dl).Truncate(time.Minute) + time.Minute
		}
		return s, nil
	})
	hang := durable.NewActivity("Hang", func(ctx context.Context, _ any) (string, error) {
		<-ctx.Done() // a well-behaved activity gives up when its context ends
		return "", fmt.Errorf("gave up: %w", ctx.Err())
	})
	orch := durable.NewOrchestrator("Deadlines", func(ctx *durable.Context, _ any) ([]string, error) {
		with, err := look.Call(ctx, nil, durable.WithTimeout(time.Minute)).Await()
		if err != nil {
			return nil, err
		}
		without, err := look.Call(ctx, nil).Await()
		if err != nil {
			return nil, err
		}
		_, err = hang.Call(ctx, nil, durable.WithTimeout(50*time.Millisecond)).Await()
		return []string{fmt.Sprintf("%+v", with), fmt.Sprintf("%+v", without), timeoutText(err)}, nil
	})
	res := durabletest.MustRun(t, durabletest.New(look, hang), orch, nil, durabletest.StartAt(time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)))
	want := []string{
		"{Info:true Ctx:true Deadline:2030-05-01 12:01:00 +0000 UTC Left:1m0s}",
		"{Info:false Ctx:false Deadline:0001-01-01 00:00:00 +0000 UTC Left:0s}",
		`timeout of activity "Hang" task 3 after 50ms`,
	}
	if fmt.Sprint(res.Output) != fmt.Sprint(want) {
		t.Fatalf("output\n got %q\nwant %q", res.Output, want)
	}
	// The hanging activity's failure is in history, before its timer fired.
	var failed *history.Event
	for i, ev := range res.History {
		if ev.Type == history.TaskFailed && ev.TaskScheduledID == 3 {
			failed = &res.History[i]
		}
	}
	if failed == nil || failed.Failure.ErrorType != "TimeoutError" || failed.Failure.InnerFailure == nil ||
		failed.Failure.InnerFailure.ErrorMessage != "gave up: context deadline exceeded" || count(res.History, history.TimerFired) != 0 {
		t.Fatalf("the cancelled activity's failure:\n%s", durabletest.FormatHistory(res.History))
	}
	if want := `activity "Hang" (task 3) was cancelled at its deadline (2030-05-01T12:00:00.05Z)`; failed.Failure.ErrorMessage != want {
		t.Errorf("failure message %q, want %q", failed.Failure.ErrorMessage, want)
	}
}

// TestActivityDeadlineAlreadyPassed: a timeout below history's 100 ns
// precision gives a deadline that has passed when the activity would
// start, and, as the engine's worker, the harness does not run it.
func TestActivityDeadlineAlreadyPassed(t *testing.T) {
	ran := 0
	act := durable.NewActivity("Never", func(context.Context, any) (string, error) { ran++; return "ran", nil })
	orch := durable.NewOrchestrator("Tiny", func(ctx *durable.Context, _ any) (string, error) {
		_, err := act.Call(ctx, nil, durable.WithTimeout(50*time.Nanosecond)).Await()
		return timeoutText(err), nil
	})
	res := durabletest.MustRun(t, durabletest.New(act), orch, nil)
	if want := `timeout of activity "Never" task 0 after 50ns`; res.Output != want || ran != 0 {
		t.Fatalf("%q, activity ran %d times", res.Output, ran)
	}
	for _, ev := range res.History {
		if ev.Type == history.TaskFailed && !strings.Contains(ev.Failure.ErrorMessage, "was not started: its deadline passed") {
			t.Fatalf("failure %q", ev.Failure.ErrorMessage)
		}
	}
	if count(res.History, history.TaskFailed) != 1 {
		t.Fatalf("no TaskFailed:\n%s", durabletest.FormatHistory(res.History))
	}
}
