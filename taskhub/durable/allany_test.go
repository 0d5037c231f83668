package durable

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// allCities greets the cities of its input in parallel and fans in with All.
var allCities = NewOrchestrator("AllCities", func(ctx *Context, cities []string) ([]string, error) {
	tasks := make([]*Task[string], len(cities))
	for i, c := range cities {
		tasks[i] = hello.Call(ctx, c)
	}
	return All(ctx, tasks...)
})

// anyResult is what anyCities reports about the winner of Any.
type anyResult struct {
	Index int
	Value string
	Err   string
}

// anyCities greets the cities of its input in parallel and reports the
// first to finish.
var anyCities = NewOrchestrator("AnyCities", func(ctx *Context, cities []string) (anyResult, error) {
	tasks := make([]*Task[string], len(cities))
	for i, c := range cities {
		tasks[i] = hello.Call(ctx, c)
	}
	i, v, err := Any(ctx, tasks...)
	r := anyResult{Index: i, Value: v}
	if err != nil {
		r.Err = err.Error()
	}
	return r, nil
})

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAll(t *testing.T) {
	in := `["a","b","c"]`
	startActs := []act{scheduled(0, "Hello", `"a"`), scheduled(1, "Hello", `"b"`), scheduled(2, "Hello", `"c"`)}

	t.Run("results in input order, completions in another", func(t *testing.T) {
		d := newDriver(t, allCities)
		expectActions(t, "start", d.run(start(t0, "AllCities", in)), startActs...)
		expectActions(t, "c", d.run(ep(t0.Add(1*time.Second), evCompleted(2, `"C"`))))
		expectActions(t, "a", d.run(ep(t0.Add(2*time.Second), evCompleted(0, `"A"`))))
		expectActions(t, "b", d.run(ep(t0.Add(3*time.Second), evCompleted(1, `"B"`))), completedWith(3, `["A","B","C"]`))
	})

	t.Run("mixed success and failure fails fast with the first failure", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			episodes [][]history.Event // after the start
			wantTask int32
			wantMsg  string
		}{
			{"one failure among successes", [][]history.Event{
				{evCompleted(0, `"A"`)}, {evFailed(2, fd("c broke"))},
			}, 2, "c broke"},
			{"second failure in the same episode loses", [][]history.Event{
				{evCompleted(1, `"B"`)}, {evFailed(2, fd("c broke")), evFailed(0, fd("a broke"))},
			}, 2, "c broke"},
			{"first argument fails last", [][]history.Event{
				{evFailed(1, fd("b broke")), evFailed(0, fd("a broke"))},
			}, 1, "b broke"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var gotErr error
				var gotOut []string
				orch := NewOrchestrator("AllMixed", func(ctx *Context, cities []string) (string, error) {
					tasks := make([]*Task[string], len(cities))
					for i, c := range cities {
						tasks[i] = hello.Call(ctx, c)
					}
					gotOut, gotErr = All(ctx, tasks...)
					return "", gotErr
				})
				d := newDriver(t, orch)
				expectActions(t, "start", d.run(start(t0, "AllMixed", in)), startActs...)
				var last []history.Event
				for i, evs := range tc.episodes {
					last = d.run(ep(t0.Add(time.Duration(i+1)*time.Second), evs...))
				}
				var tf *TaskFailedError
				if !errors.As(gotErr, &tf) || tf.TaskID != tc.wantTask || tf.Failure.ErrorMessage != tc.wantMsg {
					t.Fatalf("All err = %v, want task %d's failure %q", gotErr, tc.wantTask, tc.wantMsg)
				}
				if gotOut != nil {
					t.Errorf("All returned results %v with its error", gotOut)
				}
				if len(last) != 1 || last[0].Status != history.StatusFailed || last[0].Failure.InnerFailure == nil ||
					last[0].Failure.InnerFailure.ErrorMessage != tc.wantMsg {
					t.Fatalf("final actions = %v", describeActions(last))
				}
			})
		}
	})

	t.Run("a result that does not fit the type", func(t *testing.T) {
		var gotErr error
		orch := NewOrchestrator("AllInts", func(ctx *Context, _ any) ([]int, error) {
			a, b := CallActivity[int](ctx, "N", 1), CallActivity[int](ctx, "N", 2)
			var out []int
			out, gotErr = All(ctx, a, b)
			return out, gotErr
		})
		d := newDriver(t, orch)
		d.run(start(t0, "AllInts", ""))
		d.run(ep(t0.Add(time.Second), evCompleted(0, `1`), evCompleted(1, `"two"`)))
		var re *ResultError
		if !errors.As(gotErr, &re) || re.Type != "int" || !strings.Contains(re.Of, `"N"`) {
			t.Fatalf("All err = %v, want a ResultError for int naming activity N", gotErr)
		}
	})

	t.Run("no tasks", func(t *testing.T) {
		orch := NewOrchestrator("AllNone", func(ctx *Context, _ any) ([]string, error) {
			return All[string](ctx)
		})
		d := newDriver(t, orch)
		expectActions(t, "start", d.run(start(t0, "AllNone", "")), completedWith(0, `[]`))
	})

	t.Run("large fan-out", func(t *testing.T) {
		const n = 50
		cities := make([]string, n)
		var results []history.Event
		want := make([]string, n)
		for i := range cities {
			cities[i] = fmt.Sprint(i)
			want[i] = "Hello " + cities[i] + "!"
			// completions arrive in reverse order
			results = append(results, evCompleted(int32(n-1-i), jsonOf(t, "Hello "+fmt.Sprint(n-1-i)+"!")))
		}
		d := newDriver(t, allCities)
		if acts := d.run(start(t0, "AllCities", jsonOf(t, cities))); len(acts) != n {
			t.Fatalf("%d actions, want %d", len(acts), n)
		}
		expectActions(t, "all", d.run(ep(t0.Add(time.Second), results...)), completedWith(n, jsonOf(t, want)))
	})
}

func TestAny(t *testing.T) {
	in := `["a","b","c"]`
	for _, tc := range []struct {
		name string
		evs  []history.Event
		want anyResult
	}{
		{"second completes", []history.Event{evCompleted(1, `"B"`)}, anyResult{Index: 1, Value: "B"}},
		{"third fails", []history.Event{evFailed(2, fd("c broke"))},
			anyResult{Index: 2, Err: `activity "Hello" (task 2) failed: ActivityError: c broke`}},
		{"two in one episode: the first to complete wins", []history.Event{evCompleted(2, `"C"`), evCompleted(0, `"A"`)},
			anyResult{Index: 2, Value: "C"}},
		{"a failure before a success wins", []history.Event{evFailed(0, fd("a broke")), evCompleted(1, `"B"`)},
			anyResult{Index: 0, Err: `activity "Hello" (task 0) failed: ActivityError: a broke`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, anyCities)
			d.run(start(t0, "AnyCities", in))
			expectActions(t, "done", d.run(ep(t0.Add(time.Second), tc.evs...)), completedWith(3, jsonOf(t, tc.want)))
		})
	}

	t.Run("the failed winner's error is a TaskFailedError", func(t *testing.T) {
		var gotErr error
		orch := NewOrchestrator("AnyErr", func(ctx *Context, _ any) (string, error) {
			_, _, gotErr = Any(ctx, hello.Call(ctx, "a"), hello.Call(ctx, "b"))
			return "", nil
		})
		d := newDriver(t, orch)
		d.run(start(t0, "AnyErr", ""))
		d.run(ep(t0.Add(time.Second), evFailed(1, fd("b broke"))))
		var tf *TaskFailedError
		if !errors.As(gotErr, &tf) || tf.TaskID != 1 || tf.TaskName != "Hello" {
			t.Fatalf("Any err = %v, want task 1's TaskFailedError", gotErr)
		}
	})

	t.Run("both done before the call", func(t *testing.T) {
		orch := NewOrchestrator("AnyLate", func(ctx *Context, _ any) (string, error) {
			a, b := hello.Call(ctx, "a"), hello.Call(ctx, "b")
			if err := ctx.Sleep(time.Minute); err != nil {
				return "", err
			}
			i, v, err := Any(ctx, a, b)
			return fmt.Sprint(i, v), err
		})
		d := newDriver(t, orch)
		d.run(start(t0, "AnyLate", ""))
		d.run(ep(t0.Add(time.Second), evCompleted(1, `"B"`)))
		d.run(ep(t0.Add(2*time.Second), evCompleted(0, `"A"`)))
		expectActions(t, "woke", d.run(ep(t0.Add(time.Minute), evFired(2, t0.Add(time.Minute)))), completedWith(3, `"1B"`))
	})

	t.Run("no tasks", func(t *testing.T) {
		var gotErr error
		orch := NewOrchestrator("AnyNone", func(ctx *Context, _ any) (int, error) {
			i, _, err := Any[string](ctx)
			gotErr = err
			return i, nil
		})
		d := newDriver(t, orch)
		expectActions(t, "start", d.run(start(t0, "AnyNone", "")), completedWith(0, "-1"))
		if !errors.Is(gotErr, ErrNoTasks) || !strings.Contains(gotErr.Error(), "Any needs at least one task") {
			t.Fatalf("err = %v, want ErrNoTasks", gotErr)
		}
	})

	t.Run("the losers can still be awaited", func(t *testing.T) {
		orch := NewOrchestrator("AnyThenAll", func(ctx *Context, _ any) ([]string, error) {
			a, b := hello.Call(ctx, "a"), hello.Call(ctx, "b")
			i, first, err := Any(ctx, a, b)
			if err != nil {
				return nil, err
			}
			rest, err := []*Task[string]{b, a}[i].Await()
			return []string{first, rest}, err
		})
		d := newDriver(t, orch)
		d.run(start(t0, "AnyThenAll", ""))
		expectActions(t, "first", d.run(ep(t0.Add(time.Second), evCompleted(0, `"A"`))))
		expectActions(t, "second", d.run(ep(t0.Add(2*time.Second), evCompleted(1, `"B"`))), completedWith(2, `["A","B"]`))
	})
}

// TestAllAnyReplayDeterminism records fan-outs with All and Any, mixed
// successes and failures arriving over several episodes, and checks that
// every prefix replays to the same actions and state.
func TestAllAnyReplayDeterminism(t *testing.T) {
	// Two rounds: All over a fan-out whose failures are retried once
	// (with a timer), then Any between a new fan-out and a timeout.
	orch := NewOrchestrator("AllAny", func(ctx *Context, cities []string) (string, error) {
		tasks := make([]*Task[string], len(cities))
		for i, c := range cities {
			tasks[i] = hello.Call(ctx, c, WithRetry(RetryPolicy{MaxAttempts: 2, FirstRetryInterval: time.Minute}))
		}
		greetings, err := All(ctx, tasks...)
		if err != nil {
			return "", err
		}
		timeout := ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour))
		race := []*Task[string]{hello.Call(ctx, "x"), hello.Call(ctx, "y")}
		i, v, err := Any(ctx, race...)
		timeout.Cancel()
		if err != nil {
			v = "failed: " + err.Error()
		}
		return fmt.Sprintf("%s | %d %s", strings.Join(greetings, ","), i, v), nil
	})
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	episodes := [][]history.Event{
		start(t0, "AllAny", `["a","b","c"]`),
		// ids 0,1,2: the calls. b fails: retry timer 3 at +1s+1m.
		ep(at(1), evCompleted(0, `"A"`), evFailed(1, fd("b flaky"))),
		ep(at(2), evCompleted(2, `"C"`)),
		ep(at(61), evFired(3, at(61))),
		// id 4: b's second attempt; then timer 5, calls 6 and 7.
		ep(at(62), evCompleted(4, `"B"`)),
		ep(at(63), evFailed(7, fd("y broke")), evCompleted(6, `"X"`)),
	}
	c := assertReplayDeterministic(t, orch, episodes...)
	if c == nil || c.Status != history.StatusCompleted ||
		c.Result != `"A,B,C | 1 failed: activity \"Hello\" (task 7) failed: ActivityError: y broke"` {
		t.Fatalf("completion = %+v", c)
	}
}
