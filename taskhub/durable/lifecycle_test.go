package durable

import (
	"reflect"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

var counter = NewOrchestrator("Counter", func(ctx *Context, n int) (int, error) {
	if n < 3 {
		return 0, ctx.ContinueAsNew(n + 1)
	}
	return n, nil
})

func TestContinueAsNew(t *testing.T) {
	tests := []struct {
		input string
		want  act
	}{
		{"1", act{Type: history.ContinueAsNew, ID: 0, Result: "2", Status: history.StatusContinuedAsNew}},
		{"2", act{Type: history.ContinueAsNew, ID: 0, Result: "3", Status: history.StatusContinuedAsNew}},
		{"3", completedWith(0, "3")},
	}
	for _, tc := range tests {
		t.Run(tc.input, func(t *testing.T) {
			d := newDriver(t, counter)
			actions := d.run(start(t0, "Counter", tc.input))
			expectActions(t, "start", actions, tc.want)
			if !d.ex.Done() || !reflect.DeepEqual(*d.ex.Completion(), actions[0]) {
				t.Fatalf("Completion() = %+v", d.ex.Completion())
			}
			if len(d.ex.CarryOver()) != 0 {
				t.Fatalf("carry-over without KeepUnprocessedEvents: %v", d.ex.CarryOver())
			}
		})
	}
	t.Run("struct input", func(t *testing.T) {
		type state struct {
			Seen []string `json:"seen"`
		}
		orch := NewOrchestrator("Eternal", func(ctx *Context, s state) (any, error) {
			v, err := hello.Call(ctx, "x").Await()
			if err != nil {
				return nil, err
			}
			return nil, ctx.ContinueAsNew(state{Seen: append(s.Seen, v)})
		})
		d := newDriver(t, orch)
		d.run(start(t0, "Eternal", `{"seen":["a"]}`))
		expectActions(t, "done", d.run(ep(t0, evCompleted(0, `"b"`))),
			act{Type: history.ContinueAsNew, ID: 1, Result: `{"seen":["a","b"]}`, Status: history.StatusContinuedAsNew})
	})
	t.Run("unencodable input", func(t *testing.T) {
		orch := NewOrchestrator("Bad", func(ctx *Context, _ any) (any, error) {
			return nil, ctx.ContinueAsNew(func() {})
		})
		d := newDriver(t, orch)
		actions := d.run(start(t0, "Bad", ""))
		if len(actions) != 1 || actions[0].Type != history.ExecutionCompleted || actions[0].Status != history.StatusFailed {
			t.Fatalf("actions = %v", describeActions(actions))
		}
	})
}

func TestContinueAsNewDropsPendingActions(t *testing.T) {
	orch := NewOrchestrator("Drop", func(ctx *Context, _ any) (any, error) {
		if _, err := hello.Call(ctx, "awaited").Await(); err != nil {
			return nil, err
		}
		hello.Call(ctx, "not awaited")
		ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour))
		childSum.Call(ctx, []int{1})
		return nil, ctx.ContinueAsNew("next")
	})
	d := newDriver(t, orch)
	expectActions(t, "start", d.run(start(t0, "Drop", "")), scheduled(0, "Hello", `"awaited"`))
	actions := d.run(ep(t0, evCompleted(0, `""`)))
	if len(actions) != 1 || actions[0].Type != history.ContinueAsNew || actions[0].Result != `"next"` ||
		actions[0].Status != history.StatusContinuedAsNew {
		t.Fatalf("actions = %v, want only the ContinueAsNew", describeActions(actions))
	}
}

func TestContinueAsNewCarryOver(t *testing.T) {
	// Events x:1, Y:2, x:3 arrive while the code waits on an activity; it
	// then consumes one "x" (1) and continues as new.
	orch := NewOrchestrator("Carry", func(ctx *Context, keep bool) (any, error) {
		if _, err := hello.Call(ctx, "x").Await(); err != nil {
			return nil, err
		}
		v, err := WaitForExternalEvent[int](ctx, "X").Await()
		if err != nil {
			return nil, err
		}
		var opts []ContinueAsNewOption
		if keep {
			opts = append(opts, KeepUnprocessedEvents())
		}
		return nil, ctx.ContinueAsNew(v, opts...)
	})
	type ev struct{ Name, Input string }
	tests := []struct {
		keep string
		want []ev
	}{
		{"true", []ev{{"Y", "2"}, {"x", "3"}}},
		{"false", nil},
	}
	for _, tc := range tests {
		t.Run("keep="+tc.keep, func(t *testing.T) {
			d := newDriver(t, orch)
			d.run(start(t0, "Carry", tc.keep))
			d.run(ep(t0.Add(1*time.Second), evRaised("x", "1"), evRaised("Y", "2")))
			d.run(ep(t0.Add(2*time.Second), evRaised("x", "3")))
			actions := d.run(ep(t0.Add(3*time.Second), evCompleted(0, `""`)))
			expectActions(t, "done", actions, act{Type: history.ContinueAsNew, ID: 1, Result: "1", Status: history.StatusContinuedAsNew})
			var got []ev
			for _, e := range d.ex.CarryOver() {
				if e.Type != history.EventRaised {
					t.Fatalf("carried %v", e.Type)
				}
				got = append(got, ev{e.Name, e.Input})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("CarryOver = %v, want %v", got, tc.want)
			}
		})
	}
}

// suspendOrch waits for two "A" events, then calls Hello with both.
var suspendOrch = NewOrchestrator("Suspend", func(ctx *Context, _ any) (string, error) {
	a, err := WaitForExternalEvent[string](ctx, "A").Await()
	if err != nil {
		return "", err
	}
	b, err := WaitForExternalEvent[string](ctx, "A").Await()
	if err != nil {
		return "", err
	}
	r, err := hello.Call(ctx, a+"+"+b).Await()
	return r, err
})

func TestSuspendResume(t *testing.T) {
	d := newDriver(t, suspendOrch)
	steps := []struct {
		name      string
		episode   []history.Event
		suspended bool
		want      []act
	}{
		{"start", start(t0, "Suspend", ""), false, nil},
		{"suspend", ep(t0.Add(1*time.Second), evSuspended()), true, nil},
		{"events held", ep(t0.Add(2*time.Second), evRaised("A", `"one"`)), true, nil},
		{"more events held", ep(t0.Add(3*time.Second), evRaised("a", `"two"`)), true, nil},
		{"resume delivers in order", ep(t0.Add(4*time.Second), evResumed()), false,
			[]act{scheduled(0, "Hello", `"one+two"`)}},
		{"suspend, response held", ep(t0.Add(5*time.Second), evSuspended(), evCompleted(0, `"done"`)), true, nil},
		{"suspend again is harmless", ep(t0.Add(6*time.Second), evSuspended()), true, nil},
		{"resume", ep(t0.Add(7*time.Second), evResumed()), false, []act{completedWith(1, `"done"`)}},
	}
	for _, s := range steps {
		expectActions(t, s.name, d.run(s.episode), s.want...)
		if d.ex.Suspended() != s.suspended {
			t.Fatalf("%s: Suspended() = %v", s.name, d.ex.Suspended())
		}
	}
}

func TestSuspendHoldsTimersAndResponses(t *testing.T) {
	// While suspended, a timer firing and an activity completing are held;
	// on resume they are delivered in the order they arrived.
	orch := NewOrchestrator("Held", func(ctx *Context, _ any) (int, error) {
		a := hello.Call(ctx, "a")
		tm := ctx.CreateTimer(ctx.CurrentTime().Add(time.Minute))
		return WhenAny(ctx, a, tm)
	})
	for _, tc := range []struct {
		name   string
		events []history.Event
		want   string
	}{
		{"timer first", []history.Event{evFired(1, t0.Add(time.Minute)), evCompleted(0, `""`)}, "1"},
		{"activity first", []history.Event{evCompleted(0, `""`), evFired(1, t0.Add(time.Minute))}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, orch)
			d.run(start(t0, "Held", ""))
			expectActions(t, "suspended", d.run(ep(t0.Add(time.Minute), append([]history.Event{evSuspended()}, tc.events...)...)))
			expectActions(t, "resumed", d.run(ep(t0.Add(time.Hour), evResumed())), completedWith(2, tc.want))
		})
	}
}

func TestTerminate(t *testing.T) {
	var reached, deferred bool
	orch := NewOrchestrator("Term", func(ctx *Context, _ any) (string, error) {
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
	terminatedWith := func(reason string) act {
		return act{Type: history.ExecutionCompleted, Result: reason, Status: history.StatusTerminated}
	}
	tests := []struct {
		name     string
		episodes [][]history.Event // after the start
		want     act
	}{
		{"while running", [][]history.Event{ep(t0.Add(time.Second), evTerminated(`"stop"`))}, terminatedWith(`"stop"`)},
		{"while suspended", [][]history.Event{
			ep(t0.Add(time.Second), evSuspended()),
			ep(t0.Add(2*time.Second), evCompleted(0, `"A"`), evTerminated(`"stop while suspended"`)),
		}, terminatedWith(`"stop while suspended"`)},
		{"discards pending actions", [][]history.Event{
			// Task 0's completion makes the code schedule task 1 in this
			// episode; the termination voids it.
			ep(t0.Add(time.Second), evCompleted(0, `"A"`), evTerminated(`"stop"`)),
		}, terminatedWith(`"stop"`)},
		{"no reason", [][]history.Event{ep(t0.Add(time.Second), evTerminated(""))}, terminatedWith("")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reached, deferred = false, false
			d := newDriver(t, orch)
			expectActions(t, "start", d.run(start(t0, "Term", "")), scheduled(0, "Hello", `"a"`))
			var actions []history.Event
			for _, e := range tc.episodes {
				actions = d.run(e)
			}
			if len(actions) != 1 {
				t.Fatalf("actions = %v", describeActions(actions))
			}
			tc.want.ID = actions[0].EventID
			expectActions(t, "terminated", actions, tc.want)
			if !d.ex.Done() || d.ex.Completion().Status != history.StatusTerminated {
				t.Fatalf("Completion() = %+v", d.ex.Completion())
			}
			if reached || !deferred {
				t.Fatalf("code ran on (%v) or was not unwound (deferred=%v)", reached, deferred)
			}
			// Later messages change nothing.
			expectActions(t, "after", d.run(ep(t0.Add(time.Hour), evCompleted(1, `"B"`), evTerminated(`"again"`), evResumed())))
		})
	}
	t.Run("before ExecutionStarted", func(t *testing.T) {
		// A termination applied before the start: the code never runs.
		reached, deferred = false, false
		d := newDriver(t, orch)
		expectActions(t, "terminate", d.run(ep(t0, evTerminated(`"early"`))),
			act{Type: history.ExecutionCompleted, ID: 0, Result: `"early"`, Status: history.StatusTerminated})
		expectActions(t, "start", d.run(start(t0, "Term", "")))
		if deferred {
			t.Fatal("orchestrator code ran after the instance was terminated")
		}
	})
	t.Run("after completion", func(t *testing.T) {
		d := newDriver(t, counter)
		expectActions(t, "start", d.run(start(t0, "Counter", "5")), completedWith(0, "5"))
		expectActions(t, "terminate", d.run(ep(t0, evTerminated(`"late"`))))
		if d.ex.Completion().Status != history.StatusCompleted {
			t.Fatalf("status = %v", d.ex.Completion().Status)
		}
	})
	t.Run("in the start episode", func(t *testing.T) {
		// A termination that arrives together with the start message.
		reached, deferred = false, false
		d := newDriver(t, orch)
		actions := d.run(append(start(t0, "Term", ""), evTerminated(`"early"`)))
		expectActions(t, "terminated", actions, act{Type: history.ExecutionCompleted, ID: 1, Result: `"early"`, Status: history.StatusTerminated})
		if reached || !deferred {
			t.Fatalf("reached=%v deferred=%v", reached, deferred)
		}
	})
}
