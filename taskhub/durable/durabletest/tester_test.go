package durabletest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

var ctx = context.Background()

var greet = durable.NewActivity("Greet", func(ctx context.Context, city string) (string, error) {
	if city == "" {
		return "", errors.New("no city")
	}
	return "Hello " + city + "!", nil
})

var double = durable.NewActivity("Double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })

var sequence = durable.NewOrchestrator("Sequence", func(ctx *durable.Context, cities []string) ([]string, error) {
	var out []string
	for _, c := range cities {
		s, err := greet.Call(ctx, c).Await()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

// shape is an event's type with the number that ties it to its task: the
// EventID of a scheduling event or completion, the TaskScheduledID or
// TimerID of a response; -1 for the rest.
type shape struct {
	Type history.EventType
	ID   int32
}

func (s shape) String() string { return fmt.Sprintf("%s/%d", s.Type, s.ID) }

func shapes(evs []history.Event) []shape {
	out := make([]shape, 0, len(evs))
	for _, e := range evs {
		id := e.EventID
		switch e.Type {
		case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
			id = e.TaskScheduledID
		case history.TimerFired:
			id = e.TimerID
		}
		out = append(out, shape{e.Type, id})
	}
	return out
}

func count(evs []history.Event, t history.EventType) int {
	n := 0
	for _, e := range evs {
		if e.Type == t {
			n++
		}
	}
	return n
}

// A sequence of real activities: the typed output, and a history of the
// engine's shape with its sequence numbers, taking no virtual time.
func TestSequenceHistory(t *testing.T) {
	tr := durabletest.New(greet)
	res, err := durabletest.Run(ctx, tr, sequence, []string{"Tokyo", "Seattle"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Output, ","); got != "Hello Tokyo!,Hello Seattle!" {
		t.Errorf("output %q", got)
	}
	h := history.OrchestratorStarted
	c := history.OrchestratorCompleted
	want := []shape{
		{h, -1}, {history.ExecutionStarted, -1}, {history.TaskScheduled, 0}, {c, -1},
		{h, -1}, {history.TaskCompleted, 0}, {history.TaskScheduled, 1}, {c, -1},
		{h, -1}, {history.TaskCompleted, 1}, {history.ExecutionCompleted, 2}, {c, -1},
	}
	if got := shapes(res.History); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history\n got  %v\n want %v", got, want)
	}
	start := res.History[1]
	if start.Name != "Sequence" || start.Input != `["Tokyo","Seattle"]` || start.Instance.InstanceID != durabletest.DefaultInstanceID ||
		len(start.Instance.ExecutionID) != 32 {
		t.Errorf("ExecutionStarted %+v", start)
	}
	if r := res.History[5].Result; r != `"Hello Tokyo!"` {
		t.Errorf("first result %s", r)
	}
	if res.Status != history.StatusCompleted || res.Elapsed != 0 || !res.Started.Equal(durabletest.DefaultStartTime) {
		t.Errorf("status %s, elapsed %v, started %v", res.Status, res.Elapsed, res.Started)
	}
	if len(res.Executions) != 1 || res.Executions[0].ExecutionID != start.Instance.ExecutionID {
		t.Errorf("executions %+v", res.Executions)
	}
}

// A fan-out schedules every call in one episode; WhenAll gathers them.
func TestFanOut(t *testing.T) {
	fan := durable.NewOrchestrator("Fan", func(ctx *durable.Context, n int) (int, error) {
		var tasks []*durable.Task[int]
		var all []durable.Awaitable
		for i := 1; i <= n; i++ {
			tk := double.Call(ctx, i)
			tasks, all = append(tasks, tk), append(all, tk)
		}
		if err := durable.WhenAll(ctx, all...); err != nil {
			return 0, err
		}
		sum := 0
		for _, tk := range tasks {
			v, _ := tk.Await()
			sum += v
		}
		return sum, nil
	})
	for _, tc := range []struct {
		name   string
		mocked bool
		want   int
	}{
		{"real activity", false, 2 * 55},
		{"mocked activity", true, 10 * 55},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := durabletest.New(double)
			var m *durabletest.ActivityMock
			if tc.mocked {
				m = durabletest.OnActivity(tr, double, func(_ context.Context, n int) (int, error) { return 10 * n, nil })
			}
			res := durabletest.MustRun(t, tr, fan, 10)
			if res.Output != tc.want {
				t.Errorf("sum %d, want %d", res.Output, tc.want)
			}
			first := res.History[:13] // OrchestratorStarted, ExecutionStarted, 10 calls, OrchestratorCompleted
			for i := 0; i < 10; i++ {
				if e := first[2+i]; e.Type != history.TaskScheduled || e.EventID != int32(i) || e.Input != fmt.Sprint(i+1) {
					t.Errorf("first episode event %d: %s #%d input %s", 2+i, e.Type, e.EventID, e.Input)
				}
			}
			if n := count(res.History, history.TaskCompleted); n != 10 {
				t.Errorf("%d TaskCompleted, want 10", n)
			}
			if m != nil && (m.Calls() != 10 || m.Inputs()[9] != "10") {
				t.Errorf("mock calls %d, inputs %v", m.Calls(), m.Inputs())
			}
		})
	}
}

// Retries wait on durable timers of days; on the virtual clock they end at
// once, and the elapsed virtual time is the sum of the waits.
func TestRetriesOverDays(t *testing.T) {
	flaky := durable.NewActivity("Flaky", func(context.Context, string) (string, error) { return "", errors.New("real code not used") })
	policy := durable.RetryPolicy{MaxAttempts: 4, FirstRetryInterval: 2 * 24 * time.Hour, BackoffCoefficient: 2}
	orch := durable.NewOrchestrator("Retrying", func(ctx *durable.Context, _ any) (string, error) {
		return flaky.Call(ctx, "x", durable.WithRetry(policy)).Await()
	})
	for _, tc := range []struct {
		name      string
		failures  int
		calls     int
		elapsed   time.Duration
		timers    int
		wantError bool
	}{
		// 2 failures: waits of 2 and 4 days; 4 days is two timer legs (3 d + 1 d).
		{"succeeds on the third attempt", 2, 3, 6 * 24 * time.Hour, 3, false},
		// 4 failures: waits of 2, 4 and 6 days (8 capped at the default
		// MaxRetryInterval), then the policy gives up.
		{"gives up after four attempts", 4, 4, 12 * 24 * time.Hour, 1 + 2 + 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := durabletest.New(flaky)
			var n atomic.Int32
			m := durabletest.OnActivity(tr, flaky, func(context.Context, string) (string, error) {
				if int(n.Add(1)) <= tc.failures {
					return "", fmt.Errorf("attempt %d: %w", n.Load(), errors.New("busy"))
				}
				return "done", nil
			})
			res, err := durabletest.Run(ctx, tr, orch, nil)
			if m.Calls() != tc.calls || res.Elapsed != tc.elapsed {
				t.Errorf("calls %d, elapsed %v; want %d, %v", m.Calls(), res.Elapsed, tc.calls, tc.elapsed)
			}
			if got := count(res.History, history.TimerCreated); got != tc.timers {
				t.Errorf("%d timers, want %d", got, tc.timers)
			}
			if !tc.wantError {
				if err != nil || res.Output != "done" {
					t.Fatalf("output %q, err %v", res.Output, err)
				}
				return
			}
			var fe *durabletest.FailedError
			if !errors.As(err, &fe) || fe.Failure.ErrorType != "TaskFailedError" || fe.Failure.InnerFailure == nil ||
				fe.Failure.InnerFailure.ErrorMessage != "attempt 4: busy" {
				t.Fatalf("err %v (%#v)", err, fe)
			}
		})
	}
}

// Events raised at virtual times, and an event wait with a timeout: the
// clock jumps to whichever comes first.
func TestEventWaitWithTimeout(t *testing.T) {
	approve := durable.NewOrchestrator("Approve", func(ctx *durable.Context, _ any) (string, error) {
		ok, err := durable.WaitForExternalEventTimeout[bool](ctx, "Approval", 72*time.Hour).Await()
		switch {
		case errors.Is(err, durable.ErrTimeout):
			return "timed out at " + ctx.CurrentTime().Format(time.RFC3339), nil
		case err != nil:
			return "", err
		}
		return fmt.Sprintf("approved=%v at %s", ok, ctx.CurrentTime().Format(time.RFC3339)), nil
	})
	t0 := time.Date(2030, 5, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		setup   func(tr *durabletest.Tester)
		want    string
		elapsed time.Duration
	}{
		{"event after 5 hours", func(tr *durabletest.Tester) { tr.RaiseEventAfter(5*time.Hour, "approval", true) },
			"approved=true at 2030-05-01T14:00:00Z", 5 * time.Hour},
		{"event raised at the start", func(tr *durabletest.Tester) { tr.RaiseEvent("Approval", false) },
			"approved=false at 2030-05-01T09:00:00Z", 0},
		{"raised from a callback", func(tr *durabletest.Tester) {
			tr.After(time.Hour, func() { tr.RaiseEventAfter(30*time.Minute, "Approval", true) })
		}, "approved=true at 2030-05-01T10:30:00Z", 90 * time.Minute},
		{"no event: timeout after 72 hours", func(*durabletest.Tester) {}, "timed out at 2030-05-04T09:00:00Z", 72 * time.Hour},
		{"event too late", func(tr *durabletest.Tester) { tr.RaiseEventAfter(80*time.Hour, "Approval", true) },
			"timed out at 2030-05-04T09:00:00Z", 72 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := durabletest.New()
			tc.setup(tr)
			res := durabletest.MustRun(t, tr, approve, nil, durabletest.StartAt(t0))
			if res.Output != tc.want || res.Elapsed != tc.elapsed {
				t.Errorf("output %q after %v, want %q after %v", res.Output, res.Elapsed, tc.want, tc.elapsed)
			}
		})
	}
}

// Custom status can be watched from callbacks during the run, and is
// reported raw and typed at the end.
func TestCustomStatus(t *testing.T) {
	type progress struct {
		Step int    `json:"step"`
		Note string `json:"note"`
	}
	orch := durable.NewOrchestrator("Progress", func(ctx *durable.Context, _ any) (int, error) {
		for i := 1; i <= 3; i++ {
			if err := ctx.SetCustomStatus(progress{Step: i, Note: "working"}); err != nil {
				return 0, err
			}
			if err := ctx.Sleep(time.Hour); err != nil {
				return 0, err
			}
		}
		return 3, ctx.SetCustomStatus(progress{Step: 4, Note: "done"})
	})
	tr := durabletest.New()
	var seen []string
	for _, d := range []time.Duration{30 * time.Minute, 90 * time.Minute, 150 * time.Minute} {
		tr.After(d, func() { seen = append(seen, tr.Now().Format("15:04")+" "+tr.CustomStatus()) })
	}
	res := durabletest.MustRun(t, tr, orch, nil)
	want := []string{`00:30 {"step":1,"note":"working"}`, `01:30 {"step":2,"note":"working"}`, `02:30 {"step":3,"note":"working"}`}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("seen %q, want %q", seen, want)
	}
	if res.RawCustomStatus != `{"step":4,"note":"done"}` {
		t.Errorf("raw custom status %s", res.RawCustomStatus)
	}
	st, err := durabletest.CustomStatus[progress](res.Instance)
	if err != nil || st != (progress{4, "done"}) {
		t.Errorf("typed custom status %+v, %v", st, err)
	}
	if res.Elapsed != 3*time.Hour {
		t.Errorf("elapsed %v", res.Elapsed)
	}
}

var child = durable.NewOrchestrator("Child", func(ctx *durable.Context, city string) (string, error) {
	s, err := greet.Call(ctx, city).Await()
	return s + " (from " + ctx.ParentInstanceID() + ")", err
})

var parent = durable.NewOrchestrator("Parent", func(ctx *durable.Context, _ any) ([]string, error) {
	a := child.Call(ctx, "Oslo")
	b := child.Call(ctx, "Rome", durable.WithInstanceID("rome"))
	x, err := a.Await()
	if err != nil {
		return nil, err
	}
	y, err := b.Await()
	if err != nil {
		return nil, err
	}
	return []string{x, y}, nil
})

// Sub-orchestrations run as child instances with their own histories, with
// real code or mocks; a failing child fails its task.
func TestSubOrchestrations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mock    func(ctx *durable.Context, city string) (string, error)
		want    string
		failure string
	}{
		{"real child", nil, "[Hello Oslo! (from test-instance) Hello Rome! (from test-instance)]", ""},
		{"mocked child", func(ctx *durable.Context, city string) (string, error) {
			return "mock " + city + " " + ctx.InstanceID(), nil
		},
			"[mock Oslo <exec>:0 mock Rome rome]", ""},
		{"failing child", func(ctx *durable.Context, city string) (string, error) { return "", errors.New("child broke") },
			"", "Error: child broke"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := durabletest.New(child, greet)
			var m *durabletest.Mock
			if tc.mock != nil {
				m = durabletest.OnOrchestrator(tr, child, tc.mock)
			}
			res, err := durabletest.Run(ctx, tr, parent, nil)
			exec := res.Executions[0].ExecutionID
			if len(res.Children) != 2 || res.Children[0].ID != exec+":0" || res.Children[1].ID != "rome" || res.Child("rome") != res.Children[1] {
				t.Fatalf("children %+v", res.Children)
			}
			for _, c := range res.Children {
				start := c.History[1]
				if start.Type != history.ExecutionStarted || start.Parent == nil || start.Parent.Instance.InstanceID != res.ID ||
					start.Parent.Instance.ExecutionID != exec || start.Parent.Name != "Parent" {
					t.Errorf("child %s starts with %+v", c.ID, start)
				}
				if c.Status == history.StatusRunning || len(c.History) == 0 {
					t.Errorf("child %s: %s", c.ID, c.Status)
				}
			}
			if m != nil && (m.Calls() != 2 || m.Inputs()[1] != `"Rome"`) {
				t.Errorf("mock: %d calls, inputs %v", m.Calls(), m.Inputs())
			}
			if tc.failure == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.ReplaceAll(fmt.Sprint(res.Output), exec, "<exec>"); got != tc.want {
					t.Errorf("output %s, want %s", got, tc.want)
				}
				if got := count(res.History, history.SubOrchestrationInstanceCompleted); got != 2 {
					t.Errorf("%d SubOrchestrationInstanceCompleted", got)
				}
				return
			}
			var fe *durabletest.FailedError
			if !errors.As(err, &fe) || fe.Failure.InnerFailure == nil || fe.Failure.InnerFailure.String() != tc.failure {
				t.Fatalf("err %v", err)
			}
			if c := res.Children[0]; c.Status != history.StatusFailed || c.Failure.ErrorMessage != "child broke" {
				t.Errorf("child: %s %v", c.Status, c.Failure)
			}
		})
	}
}

// ContinueAsNew restarts the instance with the new input; events kept with
// KeepUnprocessedEvents reach the next execution. Each execution is listed.
func TestContinueAsNew(t *testing.T) {
	counter := durable.NewOrchestrator("Counter", func(ctx *durable.Context, n int) (string, error) {
		if n < 2 {
			if err := ctx.Sleep(time.Hour); err != nil {
				return "", err
			}
			return "", ctx.ContinueAsNew(n+1, durable.KeepUnprocessedEvents())
		}
		note, err := durable.WaitForExternalEvent[string](ctx, "Note").Await()
		return fmt.Sprintf("n=%d note=%s", n, note), err
	})
	tr := durabletest.New()
	tr.RaiseEventAfter(30*time.Minute, "Note", "kept") // raised during the first execution, never awaited there
	res := durabletest.MustRun(t, tr, counter, 0)
	if res.Output != "n=2 note=kept" || res.Elapsed != 2*time.Hour {
		t.Fatalf("output %q after %v", res.Output, res.Elapsed)
	}
	if len(res.Executions) != 3 {
		t.Fatalf("%d executions", len(res.Executions))
	}
	ids := map[string]bool{}
	for i, x := range res.Executions {
		wantStatus := history.StatusContinuedAsNew
		if i == 2 {
			wantStatus = history.StatusCompleted
		}
		if x.Status != wantStatus || x.Input != fmt.Sprint(i) || x.History[1].Instance.ExecutionID != x.ExecutionID {
			t.Errorf("execution %d: %s input %s", i, x.Status, x.Input)
		}
		ids[x.ExecutionID] = true
	}
	if len(ids) != 3 {
		t.Errorf("execution IDs not distinct: %v", ids)
	}
	// The carried event is applied in the last execution's first episode.
	last := res.Executions[2].History
	if last[1].Type != history.ExecutionStarted || last[2].Type != history.EventRaised || last[2].Input != `"kept"` {
		t.Errorf("last execution starts with\n%s", durabletest.FormatHistory(last))
	}
	if x := res.Executions[0]; x.RawOutput != "1" || x.History[len(x.History)-2].Type != history.ContinueAsNew {
		t.Errorf("first execution ends with %s, output %s", x.History[len(x.History)-2].Type, x.RawOutput)
	}
}

// Failures are reported as the engine records them, with errors usable
// with errors.As; panics fail the orchestration or the call, never the test.
func TestFailures(t *testing.T) {
	boom := durable.NewActivity("Boom", func(context.Context, string) (string, error) { panic("kaboom") })
	for _, tc := range []struct {
		name  string
		code  func(ctx *durable.Context, _ any) (string, error)
		setup func(*durabletest.Tester)
		check func(t *testing.T, fe *durabletest.FailedError)
	}{
		{"activity error re-raised", func(ctx *durable.Context, _ any) (string, error) {
			return greet.Call(ctx, "").Await()
		}, nil, func(t *testing.T, fe *durabletest.FailedError) {
			in := fe.Failure.InnerFailure
			if fe.Failure.ErrorType != "TaskFailedError" || in == nil || in.String() != "Error: no city" {
				t.Errorf("failure %+v", fe.Failure)
			}
		}},
		{"activity error handled with errors.As", func(ctx *durable.Context, _ any) (string, error) {
			_, err := greet.Call(ctx, "").Await()
			var tf *durable.TaskFailedError
			if errors.As(err, &tf) {
				return "", fmt.Errorf("handled %s task %d: %s", tf.TaskName, tf.TaskID, tf.Failure.ErrorMessage)
			}
			return "", errors.New("not a TaskFailedError")
		}, nil, func(t *testing.T, fe *durabletest.FailedError) {
			if fe.Failure.ErrorMessage != "handled Greet task 0: no city" {
				t.Errorf("failure %+v", fe.Failure)
			}
		}},
		{"mock returns an error", func(ctx *durable.Context, _ any) (string, error) {
			return greet.Call(ctx, "Paris").Await()
		}, func(tr *durabletest.Tester) {
			durabletest.OnActivity(tr, greet, func(context.Context, string) (string, error) { return "", errors.New("mock says no") })
		}, func(t *testing.T, fe *durabletest.FailedError) {
			if in := fe.Failure.InnerFailure; in == nil || in.ErrorMessage != "mock says no" {
				t.Errorf("failure %+v", fe.Failure)
			}
		}},
		{"activity panics", func(ctx *durable.Context, _ any) (string, error) {
			return boom.Call(ctx, "x").Await()
		}, nil, func(t *testing.T, fe *durabletest.FailedError) {
			if in := fe.Failure.InnerFailure; in == nil || in.ErrorType != "panic" || in.ErrorMessage != `activity "Boom" panicked: kaboom` || in.StackTrace == "" {
				t.Errorf("failure %+v", fe.Failure)
			}
		}},
		{"orchestrator panics", func(ctx *durable.Context, _ any) (string, error) {
			panic("orchestrator bug")
		}, nil, func(t *testing.T, fe *durabletest.FailedError) {
			if fe.Failure.ErrorType != "panic" || fe.Failure.ErrorMessage != "orchestrator panicked: orchestrator bug" {
				t.Errorf("failure %+v", fe.Failure)
			}
		}},
		{"unknown activity", func(ctx *durable.Context, _ any) (string, error) {
			return durable.CallActivity[string](ctx, "Nope", 1, durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, FirstRetryInterval: time.Second})).Await()
		}, nil, func(t *testing.T, fe *durabletest.FailedError) {
			in := fe.Failure.InnerFailure
			if in == nil || in.ErrorType != "NotRegisteredError" || in.ErrorMessage != `activity "Nope" is not registered in this app` || !in.IsNonRetriable {
				t.Errorf("failure %+v", fe.Failure)
			}
		}},
		{"unknown sub-orchestrator", func(ctx *durable.Context, _ any) (string, error) {
			return durable.CallSubOrchestrator[string](ctx, "Missing", nil).Await()
		}, nil, func(t *testing.T, fe *durabletest.FailedError) {
			if in := fe.Failure.InnerFailure; in == nil || in.String() != `NotRegisteredError: orchestrator "Missing" is not registered in this app` {
				t.Errorf("failure %+v", fe.Failure)
			}
		}},
		{"terminated", func(ctx *durable.Context, _ any) (string, error) {
			return "", ctx.Sleep(24 * time.Hour)
		}, func(tr *durabletest.Tester) {
			tr.After(time.Hour, func() { tr.Terminate("operator said stop") })
		}, func(t *testing.T, fe *durabletest.FailedError) {
			if fe.Status != history.StatusTerminated || fe.Output != `"operator said stop"` || fe.Failure != nil {
				t.Errorf("%+v", fe)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := durabletest.New(greet, boom)
			if tc.setup != nil {
				tc.setup(tr)
			}
			orch := durable.NewOrchestrator("Failing", tc.code)
			res, err := durabletest.Run(ctx, tr, orch, nil)
			var fe *durabletest.FailedError
			if !errors.As(err, &fe) {
				t.Fatalf("err %v, want a *FailedError", err)
			}
			if fe.Status != res.Status || res.Err() == nil {
				t.Errorf("status %s, error's %s", res.Status, fe.Status)
			}
			if c := res.History[len(res.History)-2]; c.Type != history.ExecutionCompleted || c.Status != res.Status {
				t.Errorf("history ends with %s %s", c.Type, c.Status)
			}
			tc.check(t, fe)
		})
	}
}

// The determinism check catches code that does not reproduce its own
// history, on a re-run and on a replay from scratch; it can be turned off.
func TestDeterminismCheck(t *testing.T) {
	var runs atomic.Int32
	drifting := durable.NewOrchestrator("Drifting", func(ctx *durable.Context, _ any) (string, error) {
		name := "Greet"
		if runs.Add(1) > 1 { //durable:nondeterministic-ok like time.Now or rand, another answer the second time, on purpose
			name = "Other"
		}
		return durable.CallActivity[string](ctx, name, "Oslo").Await()
	})
	replaySensitive := durable.NewOrchestrator("ReplaySensitive", func(ctx *durable.Context, _ any) (string, error) {
		s, err := greet.Call(ctx, "Oslo").Await()
		if err != nil || ctx.IsReplaying() {
			return s, err
		}
		return greet.Call(ctx, "Rome").Await()
	})
	other := durable.NewActivity("Other", func(context.Context, string) (string, error) { return "other", nil })
	for _, tc := range []struct {
		name        string
		orch        *durable.Orchestrator[any, string]
		opts        []durabletest.RunOption
		fromScratch bool
		position    int
		off         bool
	}{
		{"different call on a re-run", drifting, nil, false, 2, false},
		{"branch on IsReplaying", replaySensitive, nil, true, 6, false},
		{"check turned off", replaySensitive, []durabletest.RunOption{durabletest.SkipDeterminismCheck()}, false, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs.Store(0)
			tr := durabletest.New(greet, other)
			res, err := durabletest.Run(ctx, tr, tc.orch, nil, tc.opts...)
			if res == nil || res.Status != history.StatusCompleted {
				t.Fatalf("the run itself did not complete: %v", err)
			}
			if tc.off {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var de *durabletest.DeterminismError
			if !errors.As(err, &de) {
				t.Fatalf("err %v, want a *DeterminismError", err)
			}
			if de.FromScratch != tc.fromScratch || de.Position != tc.position || de.Orchestrator != tc.orch.Name() {
				t.Errorf("%+v", de)
			}
			var nd *durable.NonDeterminismError
			if tc.fromScratch != errors.As(err, &nd) {
				t.Errorf("wraps a NonDeterminismError: %v, want %v", !tc.fromScratch, tc.fromScratch)
			}
			t.Log(err)
		})
	}
}

// Check tests new code against a history that older code produced.
func TestCheckNewCodeAgainstOldHistory(t *testing.T) {
	res := durabletest.MustRun(t, durabletest.New(greet), sequence, []string{"Tokyo", "Seattle"})
	for _, tc := range []struct {
		name string
		code func(ctx *durable.Context, cities []string) ([]string, error)
		want string // "" = compatible
	}{
		{"same calls, other output formatting", func(ctx *durable.Context, cities []string) ([]string, error) {
			var out []string
			for _, c := range cities {
				s, err := greet.Call(ctx, c).Await()
				if err != nil {
					return nil, err
				}
				out = append(out, strings.ToUpper(s))
			}
			return out, nil
		}, `history[10]: history records ExecutionCompleted (Completed) with output ["Hello Tokyo!","Hello Seattle!"], but re-run on the same events the code produced ExecutionCompleted (Completed) with output ["HELLO TOKYO!","HELLO SEATTLE!"]`},
		{"reordered calls", func(ctx *durable.Context, cities []string) ([]string, error) {
			b, _ := greet.Call(ctx, cities[1]).Await()
			a, _ := greet.Call(ctx, cities[0]).Await()
			return []string{a, b}, nil
		}, `history[2]: history records TaskScheduled "Greet" (task 0) with input "Tokyo", but re-run on the same events the code produced TaskScheduled "Greet" (task 0) with input "Seattle"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := durable.NewRegistry()
			if err := reg.Add(durable.NewOrchestrator("Sequence", tc.code), greet); err != nil {
				t.Fatal(err)
			}
			err := durabletest.Check(reg, res.History)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v\nwant it to contain %s", err, tc.want)
			}
		})
	}
	reg := durable.NewRegistry()
	if err := reg.Add(sequence, greet); err != nil {
		t.Fatal(err)
	}
	if err := durabletest.Check(reg, res.History); err != nil {
		t.Errorf("the same code: %v", err)
	}
}

// An orchestration that can never finish ends the run with an error that
// names what it waits for; limits of the run end it the same way.
func TestNotFinished(t *testing.T) {
	waitsForEvent := durable.NewOrchestrator("WaitsForEvent", func(ctx *durable.Context, _ any) (string, error) {
		return durable.WaitForExternalEvent[string](ctx, "Approval").Await()
	})
	waitsForChild := durable.NewOrchestrator("WaitsForChild", func(ctx *durable.Context, _ any) (string, error) {
		return waitsForEvent.Call(ctx, nil, durable.WithInstanceID("kid")).Await()
	})
	eternal := durable.NewOrchestrator("Eternal", func(ctx *durable.Context, n int) (int, error) {
		if err := ctx.Sleep(24 * time.Hour); err != nil {
			return 0, err
		}
		return 0, ctx.ContinueAsNew(n + 1)
	})
	spinning := durable.NewOrchestrator("Spinning", func(ctx *durable.Context, n int) (int, error) {
		return 0, ctx.ContinueAsNew(n + 1)
	})
	for _, tc := range []struct {
		name    string
		orch    *durable.Orchestrator[any, string]
		intOrch *durable.Orchestrator[int, int]
		setup   func(*durabletest.Tester)
		opts    []durabletest.RunOption
		reason  string
		waiting string
		status  history.OrchestrationStatus
		elapsed time.Duration
		execs   int
	}{
		{name: "event nobody raises", orch: waitsForEvent, reason: "nothing is due and nothing can run, so it waits forever",
			waiting: `[external event "Approval"]`, status: history.StatusRunning, execs: 1},
		{name: "event raised under another name", orch: waitsForEvent, setup: func(tr *durabletest.Tester) { tr.RaiseEventAfter(time.Hour, "Approved", 1) },
			reason: "waits forever", waiting: `[external event "Approval"]`, status: history.StatusRunning, elapsed: time.Hour, execs: 1},
		{name: "child waits forever", orch: waitsForChild, reason: "waits forever",
			waiting: `[sub-orchestration "WaitsForEvent" (task 0, instance "kid"), which waits for [external event "Approval"]]`,
			status:  history.StatusRunning, execs: 1},
		{name: "suspended, never resumed", orch: waitsForEvent, setup: func(tr *durabletest.Tester) {
			tr.Suspend("maintenance")
			tr.RaiseEventAfter(time.Hour, "Approval", "yes")
		}, reason: "waits forever", waiting: `[a Resume (it is suspended) external event "Approval"]`, status: history.StatusSuspended, elapsed: time.Hour, execs: 1},
		{name: "time limit", intOrch: eternal, opts: []durabletest.RunOption{durabletest.StopAfter(10 * 24 * time.Hour)},
			reason: "the run's time limit (StopAfter 240h0m0s) was reached", waiting: "[timer (task 0) due at 2025-01-12T00:00:00Z]",
			status: history.StatusRunning, elapsed: 10 * 24 * time.Hour, execs: 11},
		{name: "episode limit", intOrch: spinning, opts: []durabletest.RunOption{durabletest.MaxEpisodes(50)},
			reason: "the run's episode limit (MaxEpisodes 50) was reached", status: history.StatusRunning, execs: 51},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := durabletest.New(waitsForEvent)
			if tc.setup != nil {
				tc.setup(tr)
			}
			var inst *durabletest.Instance
			var err error
			if tc.orch != nil {
				var res *durabletest.Result[string]
				res, err = durabletest.Run(ctx, tr, tc.orch, nil, tc.opts...)
				inst = res.Instance
			} else {
				var res *durabletest.Result[int]
				res, err = durabletest.Run(ctx, tr, tc.intOrch, 0, tc.opts...)
				inst = res.Instance
			}
			var nf *durabletest.NotFinishedError
			if !errors.As(err, &nf) {
				t.Fatalf("err %v, want a *NotFinishedError", err)
			}
			t.Log(err)
			if !strings.Contains(nf.Reason, tc.reason) || (tc.waiting != "" && fmt.Sprint(nf.Waiting) != tc.waiting) {
				t.Errorf("reason %q, waiting %v", nf.Reason, nf.Waiting)
			}
			if nf.Status != tc.status || inst.Status != tc.status || nf.Elapsed != tc.elapsed || inst.Elapsed != tc.elapsed {
				t.Errorf("status %s / %s, elapsed %v / %v", nf.Status, inst.Status, nf.Elapsed, inst.Elapsed)
			}
			if len(inst.Executions) != tc.execs {
				t.Errorf("%d executions, want %d", len(inst.Executions), tc.execs)
			}
		})
	}
}

// Suspended, the orchestration holds what arrives until it is resumed.
func TestSuspendResume(t *testing.T) {
	orch := durable.NewOrchestrator("Pausable", func(ctx *durable.Context, _ any) (string, error) {
		v, err := durable.WaitForExternalEvent[string](ctx, "Go").Await()
		return v + " at " + ctx.CurrentTime().Format("15:04"), err
	})
	tr := durabletest.New()
	tr.After(time.Hour, func() { tr.Suspend("pause") })
	tr.RaiseEventAfter(2*time.Hour, "Go", "went")
	tr.After(3*time.Hour, func() { tr.Resume("unpause") })
	res := durabletest.MustRun(t, tr, orch, nil)
	if res.Output != "went at 03:00" || res.Elapsed != 3*time.Hour {
		t.Errorf("output %q after %v", res.Output, res.Elapsed)
	}
	for _, typ := range []history.EventType{history.ExecutionSuspended, history.ExecutionResumed, history.EventRaised} {
		if count(res.History, typ) != 1 {
			t.Errorf("history has %d %s", count(res.History, typ), typ)
		}
	}
}

// A mock that takes virtual time races a timer; the version of the run
// goes into ExecutionStarted and on to sub-orchestrations; by-name mocks
// serve names only known at run time; activities see their call details.
func TestMockTimingVersionAndNames(t *testing.T) {
	slow := durable.NewActivity("Slow", func(context.Context, string) (string, error) { return "real", nil })
	info := durable.NewActivity("Info", func(ctx context.Context, _ any) (string, error) {
		ai, ok := durable.ActivityInfoFrom(ctx)
		return fmt.Sprintf("%v %s %s task %d", ok, ai.Name, ai.InstanceID, ai.TaskID), nil
	})
	kid := durable.NewOrchestrator("Kid", func(ctx *durable.Context, _ any) (string, error) { return "kid", nil })
	orch := durable.NewOrchestrator("Racing", func(ctx *durable.Context, _ any) ([]string, error) {
		work := slow.Call(ctx, "job")
		timeout := ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour))
		winner, _ := durable.WhenAny(ctx, work, timeout)
		out := []string{fmt.Sprintf("winner %d at %s", winner, ctx.CurrentTime().Format("15:04"))}
		if winner == 0 {
			timeout.Cancel()
		}
		dyn, err := durable.CallActivity[int](ctx, "BuiltIn::Dynamic", map[string]int{"n": 20}).Await()
		if err != nil {
			return nil, err
		}
		i, err := info.Call(ctx, nil).Await()
		if err != nil {
			return nil, err
		}
		k, err := kid.Call(ctx, nil).Await()
		if err != nil {
			return nil, err
		}
		return append(out, fmt.Sprint(dyn), i, k), nil
	})
	for _, tc := range []struct {
		name  string
		takes time.Duration
		want  string
		end   time.Duration
	}{
		{"mock faster than the timer", 20 * time.Minute, "[winner 0 at 00:20 21 true Info test-instance task 3 kid]", 20 * time.Minute},
		{"timer first", 2 * time.Hour, "[winner 1 at 01:00 21 true Info test-instance task 3 kid]", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := durabletest.New(slow, info, kid)
			durabletest.OnActivity(tr, slow, func(context.Context, string) (string, error) { return "mock", nil }).Takes(tc.takes)
			dyn := durabletest.OnActivityName(tr, "BuiltIn::Dynamic", func(_ context.Context, in json.RawMessage) (any, error) {
				var v struct{ N int }
				err := json.Unmarshal(in, &v)
				return v.N + 1, err
			})
			res := durabletest.MustRun(t, tr, orch, nil, durabletest.Version("2.1"))
			if got := fmt.Sprint(res.Output); got != tc.want || res.Elapsed != tc.end {
				t.Errorf("output %s after %v, want %s after %v", got, res.Elapsed, tc.want, tc.end)
			}
			if dyn.Calls() != 1 || dyn.Inputs()[0] != `{"n":20}` {
				t.Errorf("dynamic mock: %d calls %v", dyn.Calls(), dyn.Inputs())
			}
			if v := res.History[1].Version; v != "2.1" || res.Version != "2.1" {
				t.Errorf("version %q / %q", v, res.Version)
			}
			if c := res.Children[0]; c.Version != "2.1" || c.History[1].Version != "2.1" {
				t.Errorf("child version %q", c.Version)
			}
		})
	}
}

// Errors of the setup and of callbacks are returned, never panicked; a
// Tester runs once; orchestrator code that blocks outside the durable API
// ends the run instead of hanging it.
func TestRunErrors(t *testing.T) {
	quick := durable.NewOrchestrator("Quick", func(ctx *durable.Context, _ any) (string, error) {
		return "", ctx.Sleep(time.Hour)
	})
	block := make(chan struct{})
	defer close(block)
	blocking := durable.NewOrchestrator("Blocking", func(ctx *durable.Context, _ any) (string, error) {
		<-block //durable:nondeterministic-ok blocks outside the durable API on purpose, to test BlockTimeout
		return "", nil
	})
	for _, tc := range []struct {
		name  string
		orch  *durable.Orchestrator[any, string]
		setup func(*durabletest.Tester)
		opts  []durabletest.RunOption
		check func(t *testing.T, res *durabletest.Result[string], err error)
	}{
		{"duplicate definitions", quick, func(tr *durabletest.Tester) {}, nil, nil},
		{"callback panics", quick, func(tr *durabletest.Tester) { tr.After(time.Minute, func() { panic("bad callback") }) }, nil,
			func(t *testing.T, res *durabletest.Result[string], err error) {
				var pe *durabletest.PanicError
				if !errors.As(err, &pe) || pe.Value != "bad callback" || res == nil || res.Elapsed != time.Minute {
					t.Errorf("err %v", err)
				}
			}},
		{"bad event payload", quick, func(tr *durabletest.Tester) { tr.RaiseEvent("E", func() {}) }, nil,
			func(t *testing.T, res *durabletest.Result[string], err error) {
				if err == nil || res != nil || !strings.Contains(err.Error(), `RaiseEvent("E"): the payload`) {
					t.Errorf("res %v, err %v", res, err)
				}
			}},
		{"event for an instance that does not exist", quick, func(tr *durabletest.Tester) { tr.RaiseEventTo("ghost", "E", 1) }, nil,
			func(t *testing.T, res *durabletest.Result[string], err error) {
				if err == nil || !strings.Contains(err.Error(), `RaiseEvent("E") for instance "ghost"`) {
					t.Errorf("err %v", err)
				}
			}},
		{"blocking orchestrator", blocking, nil, []durabletest.RunOption{durabletest.BlockTimeout(50 * time.Millisecond)},
			func(t *testing.T, res *durabletest.Result[string], err error) {
				var be *durabletest.BlockedError
				if !errors.As(err, &be) || be.What != `orchestrator "Blocking" (instance "test-instance")` {
					t.Errorf("err %v", err)
				}
			}},
		{"canceled context", quick, nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := durabletest.New()
			runCtx := ctx
			switch tc.name {
			case "duplicate definitions":
				tr = durabletest.New(greet, greet)
				_, err := durabletest.Run(ctx, tr, tc.orch, nil)
				if err == nil || !strings.Contains(err.Error(), `activity "Greet" registered twice`) {
					t.Errorf("err %v", err)
				}
				return
			case "canceled context":
				c, cancel := context.WithCancel(ctx)
				cancel()
				runCtx = c
			}
			if tc.setup != nil {
				tc.setup(tr)
			}
			res, err := durabletest.Run(runCtx, tr, tc.orch, nil, tc.opts...)
			if tc.check != nil {
				tc.check(t, res, err)
				return
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err %v", err)
			}
			if _, err := durabletest.Run(ctx, tr, tc.orch, nil); !errors.Is(err, durabletest.ErrAlreadyRun) {
				t.Errorf("second run: %v", err)
			}
		})
	}
}

// The untyped forms: an orchestrator run by name with raw JSON input, a
// sub-orchestrator mocked by name, an event raised to a child instance,
// and the output decoded afterwards.
func TestByName(t *testing.T) {
	waiter := durable.NewOrchestrator("Waiter", func(ctx *durable.Context, _ any) (string, error) {
		return durable.WaitForExternalEvent[string](ctx, "Poke").Await()
	})
	top := durable.NewOrchestrator("Top", func(ctx *durable.Context, cities []string) (map[string]string, error) {
		dyn, err := durable.CallSubOrchestrator[string](ctx, "Dyn", cities[0]).Await()
		if err != nil {
			return nil, err
		}
		poked, err := waiter.Call(ctx, nil, durable.WithInstanceID("waiter")).Await()
		return map[string]string{"dyn": dyn, "poked": poked}, err
	})
	tr := durabletest.New(top, waiter)
	m := durabletest.OnOrchestratorName(tr, "Dyn", func(ctx *durable.Context, in json.RawMessage) (any, error) {
		return "dyn got " + string(in), nil
	})
	tr.After(time.Minute, func() { tr.RaiseEventTo("waiter", "Poke", "ouch") })
	inst, err := tr.RunByName(ctx, "Top", json.RawMessage(`["Oslo","Rome"]`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := durabletest.Output[map[string]string](inst)
	if err != nil || out["dyn"] != `dyn got "Oslo"` || out["poked"] != "ouch" {
		t.Errorf("output %v, %v", out, err)
	}
	if m.Calls() != 1 || inst.Child("waiter") == nil || inst.Child("waiter").Elapsed != time.Minute {
		t.Errorf("mock calls %d, children %+v", m.Calls(), inst.Children)
	}
	if _, err := durabletest.Output[int](inst); err == nil {
		t.Error("decoding a map output into an int succeeded")
	}
	if _, err := tr.RunByName(ctx, "Top", nil); !errors.Is(err, durabletest.ErrAlreadyRun) {
		t.Errorf("second run: %v", err)
	}
	if _, err := durabletest.New().RunByName(ctx, "Nobody", nil); err == nil || !strings.Contains(err.Error(), `orchestrator "Nobody" is neither given to New nor mocked`) {
		t.Errorf("unknown orchestrator: %v", err)
	}
}
