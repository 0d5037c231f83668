package durable

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestReplayDeterminismAllFeatures records a history for each feature by
// running episodes on one cached executor, then replays every prefix of
// that history with a fresh executor and checks that the next episode
// produces exactly the same actions (types, ids, names, inputs, instance
// IDs, FireAt, results) and the same executor state.
func TestReplayDeterminismAllFeatures(t *testing.T) {
	retry3 := RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 5 * time.Second, BackoffCoefficient: 2}
	handleOnce := RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Second,
		Handle: func(err error) bool { return !strings.Contains(err.Error(), "fatal") }}

	cancelOrch := NewOrchestrator("Cancel", func(ctx *Context, _ any) (string, error) {
		tm := ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour))
		if _, err := hello.Call(ctx, "a").Await(); err != nil {
			return "", err
		}
		tm.Cancel()
		if _, err := tm.Await(); !errors.Is(err, ErrCanceled) {
			return "", errors.New("not canceled")
		}
		return hello.Call(ctx, "b").Await()
	})
	cancelLong := NewOrchestrator("CancelLong", func(ctx *Context, _ any) (string, error) {
		tm := ctx.CreateTimer(ctx.CurrentTime().Add(10 * day))
		ev := WaitForExternalEvent[string](ctx, "stop")
		if i, _ := WhenAny(ctx, tm, ev); i == 0 {
			return "timer", nil
		}
		tm.Cancel()
		return hello.Call(ctx, "after").Await()
	})
	early := NewOrchestrator("Early", func(ctx *Context, _ any) (string, error) {
		ctx.CreateTimer(ctx.CurrentTime().Add(10 * day))
		return "early", nil
	})
	fifo := NewOrchestrator("FIFO", func(ctx *Context, _ any) ([]string, error) {
		if _, err := hello.Call(ctx, "x").Await(); err != nil {
			return nil, err
		}
		a := WaitForExternalEvent[string](ctx, "Item")
		b := WaitForExternalEvent[string](ctx, "item")
		x, _ := b.Await()
		y, _ := a.Await()
		return []string{y, x}, nil
	})
	longWait := NewOrchestrator("LongWait", func(ctx *Context, _ any) (string, error) {
		v, err := WaitForExternalEventTimeout[string](ctx, "Approval", 5*day).Await()
		if errors.Is(err, ErrTimeout) {
			return "timeout", nil
		}
		return v, err
	})
	subRetry := NewOrchestrator("Parent", func(ctx *Context, _ any) (int, error) {
		a := childSum.Call(ctx, []int{1}, WithRetry(RetryPolicy{MaxAttempts: 2, FirstRetryInterval: time.Minute}))
		b := CallSubOrchestrator[sumOut](ctx, "ChildSum", []int{2}, WithInstanceID("fixed"))
		if err := WhenAll(ctx, a, b); err != nil {
			return 0, err
		}
		x, _ := a.Await()
		y, _ := b.Await()
		return x.Sum + y.Sum, nil
	})
	carry := NewOrchestrator("Carry", func(ctx *Context, _ any) (any, error) {
		if _, err := hello.Call(ctx, "x").Await(); err != nil {
			return nil, err
		}
		v, _ := WaitForExternalEvent[int](ctx, "X").Await()
		hello.Call(ctx, "dropped")
		return nil, ctx.ContinueAsNew(v, KeepUnprocessedEvents())
	})
	status := NewOrchestrator("Status", func(ctx *Context, _ any) (int, error) {
		for i := 1; i <= 3; i++ {
			if err := ctx.SetCustomStatus(map[string]int{"step": i}); err != nil {
				return 0, err
			}
			if _, err := hello.Call(ctx, "x").Await(); err != nil {
				return 0, err
			}
		}
		return 3, ctx.SetCustomStatus(nil)
	})
	terminateMe := NewOrchestrator("Term", func(ctx *Context, _ any) (string, error) {
		for {
			if _, err := hello.Call(ctx, "x").Await(); err != nil {
				return "", err
			}
		}
	})

	hour := t0.Add(time.Hour)
	tests := []struct {
		name     string
		def      Definition
		episodes [][]history.Event
		status   history.OrchestrationStatus
		result   string // checked when not ""
	}{
		{"long timer", timerOrch, [][]history.Event{
			start(t0, "Timer", durInput(10*day)),
			ep(t0.Add(3*day), evFired(0, t0.Add(3*day))),
			ep(t0.Add(6*day), evFired(1, t0.Add(6*day))),
			ep(t0.Add(9*day), evFired(2, t0.Add(9*day))),
			ep(t0.Add(10*day), evFired(3, t0.Add(10*day))),
		}, history.StatusCompleted, jsonTime(t0.Add(10 * day))},
		{"long timer, legs fire late", timerOrch, [][]history.Event{
			start(t0, "Timer", durInput(10*day)),
			ep(t0.Add(3*day+time.Hour), evFired(0, t0.Add(3*day))),
			ep(t0.Add(6*day+2*time.Hour), evFired(1, t0.Add(6*day+time.Hour))),
			ep(t0.Add(9*day+3*time.Hour), evFired(2, t0.Add(9*day+2*time.Hour))),
			ep(t0.Add(10*day), evFired(3, t0.Add(10*day))),
		}, history.StatusCompleted, jsonTime(t0.Add(10 * day))},
		{"timer canceled, stale fire", cancelOrch, [][]history.Event{
			start(t0, "Cancel", ""),
			ep(t0.Add(time.Minute), evCompleted(1, `"A"`)),
			ep(hour, evFired(0, hour)),
			ep(hour, evCompleted(2, `"B"`)),
		}, history.StatusCompleted, `"B"`},
		{"long timer canceled midway", cancelLong, [][]history.Event{
			start(t0, "CancelLong", ""),
			ep(t0.Add(3*day), evFired(0, t0.Add(3*day))),
			ep(t0.Add(4*day), evRaised("stop", `""`)),
			ep(t0.Add(6*day), evFired(1, t0.Add(6*day))),
			ep(t0.Add(6*day), evCompleted(2, `"x"`)),
		}, history.StatusCompleted, `"x"`},
		{"return with pending timer", early, [][]history.Event{
			start(t0, "Early", ""),
			ep(t0.Add(3*day), evFired(0, t0.Add(3*day))),
		}, history.StatusCompleted, `"early"`},
		{"events buffered, FIFO, case-insensitive", fifo, [][]history.Event{
			start(t0, "FIFO", ""),
			ep(t0.Add(time.Second), evRaised("ITEM", `"one"`)),
			ep(t0.Add(2*time.Second), evCompleted(0, `""`)),
			ep(t0.Add(3*time.Second), evRaised("Item", `"two"`)),
		}, history.StatusCompleted, `["one","two"]`},
		{"event timeout wins, late event buffered", timeoutOrch, [][]history.Event{
			start(t0, "Timeout", ""),
			ep(hour, evFired(0, hour)),
			ep(hour.Add(time.Minute), evRaised("approval", `"late"`)),
			ep(hour.Add(2*time.Minute), evCompleted(1, `""`)),
		}, history.StatusCompleted, `"timed out, then late"`},
		{"event wins, timeout canceled", timeoutOrch, [][]history.Event{
			start(t0, "Timeout", ""),
			ep(t0.Add(time.Minute), evRaised("Approval", `"yes"`)),
			ep(hour, evFired(0, hour)),
			ep(hour, evCompleted(1, `""`)),
		}, history.StatusCompleted, `"got yes"`},
		{"long event timeout", longWait, [][]history.Event{
			start(t0, "LongWait", ""),
			ep(t0.Add(3*day), evFired(0, t0.Add(3*day))),
			ep(t0.Add(5*day), evFired(1, t0.Add(5*day))),
		}, history.StatusCompleted, `"timeout"`},
		{"WhenAll all succeed", fanOut, [][]history.Event{
			start(t0, "FanOut", ""),
			ep(t0.Add(time.Second), evCompleted(2, `"C"`)),
			ep(t0.Add(2*time.Second), evCompleted(0, `"A"`), evCompleted(1, `"B"`)),
		}, history.StatusCompleted, `["A","B","C"]`},
		{"WhenAll fails fast", fanOut, [][]history.Event{
			start(t0, "FanOut", ""),
			ep(t0.Add(time.Second), evCompleted(0, `"A"`)),
			ep(t0.Add(2*time.Second), evFailed(2, fd("c broke"))),
			ep(t0.Add(3*time.Second), evFailed(1, fd("b broke"))),
		}, history.StatusFailed, ""},
		{"WhenAny approved", humanInteraction, [][]history.Event{
			start(t0, "Approval", ""),
			ep(t0.Add(time.Second), evCompleted(0, `""`)),
			ep(hour, evRaised("ApprovalEvent", `{"approved":true,"by":"ann"}`)),
			ep(t0.Add(25*time.Hour), evFired(1, t0.Add(24*time.Hour+time.Second))),
		}, history.StatusCompleted, `"approved by ann"`},
		{"WhenAny escalated", humanInteraction, [][]history.Event{
			start(t0, "Approval", ""),
			ep(t0.Add(time.Second), evCompleted(0, `""`)),
			ep(t0.Add(25*time.Hour), evFired(1, t0.Add(24*time.Hour+time.Second))),
			ep(t0.Add(26*time.Hour), evRaised("ApprovalEvent", `{"by":"ann"}`)),
			ep(t0.Add(27*time.Hour), evCompleted(2, `"escalated"`)),
		}, history.StatusCompleted, `"escalated"`},
		{"retry succeeds on third attempt", retryOrch(retry3, nil), [][]history.Event{
			start(t0, "Retry", ""),
			ep(t0.Add(1*time.Second), evFailed(0, fd("f1"))),
			ep(t0.Add(6*time.Second), evFired(1, t0.Add(6*time.Second))),
			ep(t0.Add(8*time.Second), evFailed(2, fd("f2"))),
			ep(t0.Add(18*time.Second), evFired(3, t0.Add(18*time.Second))),
			ep(t0.Add(19*time.Second), evCompleted(4, `"ok"`)),
		}, history.StatusCompleted, `"ok"`},
		{"retry exhausted", retryOrch(retry3, nil), [][]history.Event{
			start(t0, "Retry", ""),
			ep(t0.Add(1*time.Second), evFailed(0, fd("f1"))),
			ep(t0.Add(6*time.Second), evFired(1, t0.Add(6*time.Second))),
			ep(t0.Add(8*time.Second), evFailed(2, fd("f2"))),
			ep(t0.Add(18*time.Second), evFired(3, t0.Add(18*time.Second))),
			ep(t0.Add(19*time.Second), evFailed(4, fd("f3"))),
		}, history.StatusFailed, ""},
		{"retry Handle stops", retryOrch(handleOnce, nil), [][]history.Event{
			start(t0, "Retry", ""),
			ep(t0.Add(1*time.Second), evFailed(0, fd("transient"))),
			ep(t0.Add(2*time.Second), evFired(1, t0.Add(2*time.Second))),
			ep(t0.Add(3*time.Second), evFailed(2, fd("fatal"))),
		}, history.StatusFailed, ""},
		{"retry with a long interval", retryOrch(RetryPolicy{MaxAttempts: 2, FirstRetryInterval: 4 * day}, nil), [][]history.Event{
			start(t0, "Retry", ""),
			ep(t0, evFailed(0, fd("f1"))),
			ep(t0.Add(3*day), evFired(1, t0.Add(3*day))),
			ep(t0.Add(4*day), evFired(2, t0.Add(4*day))),
			ep(t0.Add(4*day), evCompleted(3, `"ok"`)),
		}, history.StatusCompleted, `"ok"`},
		{"sub-orchestrations with retry", subRetry, [][]history.Event{
			start(t0, "Parent", ""),
			ep(t0.Add(time.Second), evSubFailed(0, fd("child broke"))),
			ep(t0.Add(time.Second+time.Minute), evFired(2, t0.Add(time.Second+time.Minute))),
			ep(t0.Add(2*time.Minute), evSubCompleted(1, `{"sum":2}`)),
			ep(t0.Add(3*time.Minute), evSubCompleted(3, `{"sum":1}`)),
		}, history.StatusCompleted, "3"},
		{"sub-orchestration failed", subRetry, [][]history.Event{
			start(t0, "Parent", ""),
			ep(t0.Add(time.Second), evSubFailed(1, fd("fixed broke"))),
		}, history.StatusFailed, ""},
		{"continue as new with carry-over", carry, [][]history.Event{
			start(t0, "Carry", ""),
			ep(t0.Add(time.Second), evRaised("x", "1"), evRaised("Y", "2")),
			ep(t0.Add(2*time.Second), evRaised("x", "3")),
			ep(t0.Add(3*time.Second), evCompleted(0, `""`)),
		}, history.StatusContinuedAsNew, "1"},
		{"continue as new", counter, [][]history.Event{start(t0, "Counter", "2")}, history.StatusContinuedAsNew, "3"},
		{"suspend and resume", suspendOrch, [][]history.Event{
			start(t0, "Suspend", ""),
			ep(t0.Add(1*time.Second), evSuspended()),
			ep(t0.Add(2*time.Second), evRaised("A", `"one"`)),
			ep(t0.Add(3*time.Second), evRaised("a", `"two"`)),
			ep(t0.Add(4*time.Second), evResumed()),
			ep(t0.Add(5*time.Second), evSuspended(), evCompleted(0, `"done"`)),
			ep(t0.Add(7*time.Second), evResumed()),
		}, history.StatusCompleted, `"done"`},
		{"terminate while suspended", terminateMe, [][]history.Event{
			start(t0, "Term", ""),
			ep(t0.Add(1*time.Second), evCompleted(0, `""`)),
			ep(t0.Add(2*time.Second), evSuspended()),
			ep(t0.Add(3*time.Second), evCompleted(1, `""`)),
			ep(t0.Add(4*time.Second), evTerminated(`"bye"`)),
			ep(t0.Add(5*time.Second), evResumed()),
		}, history.StatusTerminated, `"bye"`},
		{"terminate discards pending actions", terminateMe, [][]history.Event{
			start(t0, "Term", ""),
			ep(t0.Add(1*time.Second), evCompleted(0, `""`), evTerminated(`"bye"`)),
		}, history.StatusTerminated, `"bye"`},
		{"custom status", status, [][]history.Event{
			start(t0, "Status", ""),
			ep(t0.Add(1*time.Second), evCompleted(0, `""`)),
			ep(t0.Add(2*time.Second), evCompleted(1, `""`)),
			ep(t0.Add(3*time.Second), evCompleted(2, `""`)),
		}, history.StatusCompleted, "3"},
		{"GUIDs", guidOrch, [][]history.Event{
			start(guidT0, "Guids", ""),
			ep(guidT0.Add(time.Minute), evCompleted(0, `""`)),
		}, history.StatusCompleted, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := assertReplayDeterministic(t, tc.def, tc.episodes...)
			if c == nil {
				t.Fatal("the orchestration did not complete")
			}
			if c.Status != tc.status || (tc.result != "" && c.Result != tc.result) {
				t.Fatalf("completion: status %v result %s failure %v; want %v %s", c.Status, c.Result, c.Failure, tc.status, tc.result)
			}
		})
	}
}

// TestNonDeterminismTimersAndSubOrchestrations replays a recorded history
// against changed code and checks the NonDeterminismError names the
// position and both sides.
func TestNonDeterminismTimersAndSubOrchestrations(t *testing.T) {
	record := func(t *testing.T, d Definition, episodes ...[]history.Event) []history.Event {
		dr := newDriver(t, d)
		for _, e := range episodes {
			dr.run(e)
		}
		return dr.hist
	}
	parent := NewOrchestrator("Parent", func(ctx *Context, _ any) (sumOut, error) {
		return childSum.Call(ctx, []int{1}).Await()
	})
	code := func(fn func(ctx *Context) error) Definition {
		return NewOrchestrator("Code", func(ctx *Context, _ any) (string, error) { return "", fn(ctx) })
	}
	tests := []struct {
		name     string
		history  func(t *testing.T) []history.Event
		code     Definition
		wantPos  int
		wantText []string
	}{
		{
			name:    "activity call became a timer",
			history: func(t *testing.T) []history.Event { return record(t, helloSequence, start(t0, "HelloSequence", "")) },
			code: code(func(ctx *Context) error {
				return ctx.Sleep(time.Hour)
			}),
			wantPos:  2,
			wantText: []string{`records TaskScheduled "Hello" (task 0)`, "produced TimerCreated (task 0)"},
		},
		{
			name: "timer became an activity call",
			history: func(t *testing.T) []history.Event {
				return record(t, timerOrch, start(t0, "Timer", durInput(time.Hour)))
			},
			code: code(func(ctx *Context) error {
				_, err := hello.Call(ctx, "x").Await()
				return err
			}),
			wantPos:  2,
			wantText: []string{"records TimerCreated (task 0)", `produced TaskScheduled "Hello" (task 0)`},
		},
		{
			name: "shorter timer, then an activity",
			history: func(t *testing.T) []history.Event {
				return record(t, timerOrch, start(t0, "Timer", durInput(10*day)), ep(t0.Add(3*day), evFired(0, t0.Add(3*day))))
			},
			code: code(func(ctx *Context) error {
				if err := ctx.Sleep(3 * day); err != nil {
					return err
				}
				_, err := hello.Call(ctx, "x").Await()
				return err
			}),
			wantPos:  6,
			wantText: []string{"history position 6", "records TimerCreated (task 1)", `produced TaskScheduled "Hello" (task 1)`},
		},
		{
			name:    "sub-orchestration became an activity",
			history: func(t *testing.T) []history.Event { return record(t, parent, start(t0, "Parent", "")) },
			code: code(func(ctx *Context) error {
				_, err := CallActivity[sumOut](ctx, "ChildSum", []int{1}).Await()
				return err
			}),
			wantPos:  2,
			wantText: []string{`records SubOrchestrationInstanceCreated "ChildSum" (task 0)`, `produced TaskScheduled "ChildSum" (task 0)`},
		},
		{
			name:    "sub-orchestration renamed",
			history: func(t *testing.T) []history.Event { return record(t, parent, start(t0, "Parent", "")) },
			code: code(func(ctx *Context) error {
				_, err := CallSubOrchestrator[sumOut](ctx, "OtherChild", []int{1}).Await()
				return err
			}),
			wantPos:  2,
			wantText: []string{`produced SubOrchestrationInstanceCreated "OtherChild" (task 0)`},
		},
		{
			name:    "activity became a sub-orchestration",
			history: func(t *testing.T) []history.Event { return record(t, helloSequence, start(t0, "HelloSequence", "")) },
			code: code(func(ctx *Context) error {
				_, err := CallSubOrchestrator[string](ctx, "Hello", "Tokyo").Await()
				return err
			}),
			wantPos:  2,
			wantText: []string{`records TaskScheduled "Hello" (task 0)`, `produced SubOrchestrationInstanceCreated "Hello" (task 0)`},
		},
		{
			name: "timer removed, the code waits for an event instead",
			history: func(t *testing.T) []history.Event {
				return record(t, timerOrch, start(t0, "Timer", durInput(time.Hour)))
			},
			code: code(func(ctx *Context) error {
				_, err := WaitForExternalEvent[string](ctx, "go").Await()
				return err
			}),
			wantPos:  2,
			wantText: []string{"records TimerCreated (task 0), but the orchestrator code produced nothing"},
		},
		{
			name:    "recorded completion, the code still waits",
			history: func(t *testing.T) []history.Event { return record(t, counter, start(t0, "Counter", "5")) },
			code: code(func(ctx *Context) error {
				_, err := WaitForExternalEvent[string](ctx, "go").Await()
				return err
			}),
			wantPos:  2,
			wantText: []string{"records ExecutionCompleted (Completed)", "produced no completion (the orchestrator is still waiting)"},
		},
		{
			name:    "timer added after the recorded completion",
			history: func(t *testing.T) []history.Event { return record(t, counter, start(t0, "Counter", "5")) },
			code: code(func(ctx *Context) error {
				return ctx.Sleep(time.Hour)
			}),
			wantPos:  2,
			wantText: []string{"records ExecutionCompleted (Completed)", "produced no completion"},
		},
		{
			name: "retry policy removed",
			history: func(t *testing.T) []history.Event {
				return record(t, retryOrch(RetryPolicy{MaxAttempts: 2, FirstRetryInterval: time.Second}, nil),
					start(t0, "Retry", ""), ep(t0, evFailed(0, fd("f1"))))
			},
			code: code(func(ctx *Context) error {
				_, err := CallActivity[string](ctx, "Flaky", "in").Await()
				return err
			}),
			wantPos:  6,
			wantText: []string{"records TimerCreated (task 1)", "produced ExecutionCompleted (Failed)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.history(t)
			ex := newExecutor(fnOf(t, tc.code), "inst1")
			defer ex.Close()
			err := ex.Replay(h)
			var nd *NonDeterminismError
			if !errors.As(err, &nd) {
				t.Fatalf("err = %v, want *NonDeterminismError", err)
			}
			if nd.Position != tc.wantPos {
				t.Errorf("position = %d, want %d (%v)", nd.Position, tc.wantPos, err)
			}
			for _, s := range tc.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err.Error(), s)
				}
			}
			if !ex.Done() || ex.Completion().Status != history.StatusFailed || ex.Completion().Failure.ErrorType != "NonDeterminismError" {
				t.Fatalf("completion = %+v", ex.Completion())
			}
			actions, _ := ex.Run(nil)
			if len(actions) != 1 || actions[0].Status != history.StatusFailed {
				t.Fatalf("actions = %v", describeActions(actions))
			}
		})
	}
}
