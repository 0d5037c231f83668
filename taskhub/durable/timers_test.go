package durable

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

const day = 24 * time.Hour

func jsonTime(tm time.Time) string { return strconv.Quote(tm.UTC().Format(time.RFC3339Nano)) }

func durInput(d time.Duration) string { return strconv.FormatInt(int64(d), 10) }

// timerOrch waits on one durable timer `d` from now and returns the time it
// woke up.
var timerOrch = NewOrchestrator("Timer", func(ctx *Context, d time.Duration) (time.Time, error) {
	if _, err := ctx.CreateTimer(ctx.CurrentTime().Add(d)).Await(); err != nil {
		return time.Time{}, err
	}
	return ctx.CurrentTime(), nil
})

func TestCreateTimerFires(t *testing.T) {
	d := newDriver(t, timerOrch)
	actions := d.run(start(t0, "Timer", durInput(time.Hour)))
	expectActions(t, "start", actions, timerAt(0, t0.Add(time.Hour)))
	if !actions[0].Timestamp.Equal(t0) {
		t.Errorf("TimerCreated timestamp = %v, want %v", actions[0].Timestamp, t0)
	}
	if got := d.ex.TaskState(0); got != replay.TaskAwaiting {
		t.Errorf("TaskState(0) = %v, want TaskAwaiting", got)
	}
	fire := t0.Add(time.Hour)
	actions = d.run(ep(fire, evFired(0, fire)))
	expectActions(t, "fired", actions, completedWith(1, jsonTime(fire)))
	if got := d.ex.TaskState(0); got != replay.TaskResolved {
		t.Errorf("TaskState(0) after fire = %v, want TaskResolved", got)
	}
}

func TestSleep(t *testing.T) {
	orch := NewOrchestrator("Sleeper", func(ctx *Context, _ any) (time.Time, error) {
		if err := ctx.Sleep(90 * time.Minute); err != nil {
			return time.Time{}, err
		}
		return ctx.CurrentTime(), nil
	})
	d := newDriver(t, orch)
	expectActions(t, "start", d.run(start(t0, "Sleeper", "")), timerAt(0, t0.Add(90*time.Minute)))
	// Something unrelated wakes the orchestrator: it keeps sleeping.
	expectActions(t, "unrelated event", d.run(ep(t0.Add(time.Minute), evRaised("x", `1`))))
	fire := t0.Add(90 * time.Minute)
	expectActions(t, "fired", d.run(ep(fire, evFired(0, fire))), completedWith(1, jsonTime(fire)))
}

// TestLongTimerLegs checks that timers longer than MaxTimerLeg are chained:
// the TimerCreated FireAt of each leg, and that the user's timer completes
// only when the last leg fires.
func TestLongTimerLegs(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		late time.Duration // each leg fires this late
		legs []time.Duration
	}{
		{name: "one hour", d: time.Hour, legs: []time.Duration{time.Hour}},
		{name: "exactly one leg", d: MaxTimerLeg, legs: []time.Duration{MaxTimerLeg}},
		{name: "one leg and a second", d: MaxTimerLeg + time.Second, legs: []time.Duration{MaxTimerLeg, MaxTimerLeg + time.Second}},
		{name: "ten days", d: 10 * day, legs: []time.Duration{3 * day, 6 * day, 9 * day, 10 * day}},
		{
			// Each next leg starts from the time the previous one actually fired.
			name: "ten days, legs fire late", d: 10 * day, late: time.Hour,
			legs: []time.Duration{3 * day, 6*day + time.Hour, 9*day + 2*time.Hour, 10 * day},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if MaxTimerLeg != 3*day {
				t.Fatalf("MaxTimerLeg = %v; the table assumes 3 days", MaxTimerLeg)
			}
			d := newDriver(t, timerOrch)
			actions := d.run(start(t0, "Timer", durInput(tc.d)))
			expectActions(t, "start", actions, timerAt(0, t0.Add(tc.legs[0])))
			for i, leg := range tc.legs {
				fireAt := t0.Add(leg)
				now := fireAt.Add(tc.late)
				actions = d.run(ep(now, evFired(int32(i), fireAt)))
				if i < len(tc.legs)-1 {
					expectActions(t, "leg "+strconv.Itoa(i)+" fired", actions, timerAt(int32(i+1), t0.Add(tc.legs[i+1])))
					if d.ex.Done() {
						t.Fatalf("done after leg %d of %d", i, len(tc.legs))
					}
					continue
				}
				expectActions(t, "last leg fired", actions, completedWith(int32(i+1), jsonTime(now)))
			}
		})
	}
}

func TestTimerCancel(t *testing.T) {
	var awaitErr, errBefore error
	var doneAfter bool
	orch := NewOrchestrator("Cancel", func(ctx *Context, _ any) (string, error) {
		tm := ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour))
		if _, err := hello.Call(ctx, "a").Await(); err != nil {
			return "", err
		}
		errBefore = tm.Err()
		tm.Cancel()
		tm.Cancel() // idempotent
		doneAfter = tm.Done()
		_, awaitErr = tm.Await()
		return hello.Call(ctx, "b").Await()
	})
	d := newDriver(t, orch)
	expectActions(t, "start", d.run(start(t0, "Cancel", "")),
		timerAt(0, t0.Add(time.Hour)), scheduled(1, "Hello", `"a"`))
	expectActions(t, "a done", d.run(ep(t0.Add(time.Minute), evCompleted(1, `"A"`))),
		scheduled(2, "Hello", `"b"`))
	if errBefore != nil || !doneAfter || !errors.Is(awaitErr, ErrCanceled) {
		t.Fatalf("before cancel err=%v; after cancel done=%v, Await err=%v (want ErrCanceled)", errBefore, doneAfter, awaitErr)
	}
	if got := d.ex.TaskState(0); got != replay.TaskResolved {
		t.Errorf("TaskState of canceled timer = %v, want TaskResolved", got)
	}
	// The canceled timer's message still arrives: it is ignored.
	expectActions(t, "stale fire", d.run(ep(t0.Add(time.Hour), evFired(0, t0.Add(time.Hour)))))
	expectActions(t, "b done", d.run(ep(t0.Add(time.Hour+time.Second), evCompleted(2, `"B"`))),
		completedWith(3, `"B"`))
}

// A canceled long timer cancels its current leg; no further legs follow.
func TestLongTimerCancelMidway(t *testing.T) {
	orch := NewOrchestrator("CancelLong", func(ctx *Context, _ any) (string, error) {
		tm := ctx.CreateTimer(ctx.CurrentTime().Add(10 * day))
		ev := WaitForExternalEvent[string](ctx, "stop")
		if i, _ := WhenAny(ctx, tm, ev); i == 0 {
			return "timer", nil
		}
		tm.Cancel()
		if _, err := tm.Await(); !errors.Is(err, ErrCanceled) {
			return "", errors.New("timer not canceled")
		}
		return hello.Call(ctx, "after").Await()
	})
	d := newDriver(t, orch)
	expectActions(t, "start", d.run(start(t0, "CancelLong", "")), timerAt(0, t0.Add(3*day)))
	expectActions(t, "leg 0", d.run(ep(t0.Add(3*day), evFired(0, t0.Add(3*day)))), timerAt(1, t0.Add(6*day)))
	expectActions(t, "stop", d.run(ep(t0.Add(4*day), evRaised("stop", `""`))), scheduled(2, "Hello", `"after"`))
	expectActions(t, "stale leg 1", d.run(ep(t0.Add(6*day), evFired(1, t0.Add(6*day)))))
	expectActions(t, "done", d.run(ep(t0.Add(6*day), evCompleted(2, `"x"`))), completedWith(3, `"x"`))
}

// An orchestrator that returns while a timer is pending completes at once.
func TestReturnWithPendingTimer(t *testing.T) {
	for _, dur := range []time.Duration{time.Hour, 10 * day} {
		t.Run(dur.String(), func(t *testing.T) {
			orch := NewOrchestrator("Early", func(ctx *Context, _ any) (string, error) {
				ctx.CreateTimer(ctx.CurrentTime().Add(dur))
				return "early", nil
			})
			d := newDriver(t, orch)
			actions := d.run(start(t0, "Early", ""))
			leg := min(dur, MaxTimerLeg)
			expectActions(t, "start", actions, timerAt(0, t0.Add(leg)), completedWith(1, `"early"`))
			if !d.ex.Done() || d.ex.Completion().Status != history.StatusCompleted {
				t.Fatalf("not completed: %+v", d.ex.Completion())
			}
			// The timer's message arrives later: nothing happens (no next leg).
			expectActions(t, "late fire", d.run(ep(t0.Add(leg), evFired(0, t0.Add(leg)))))
		})
	}
}
