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

// job is the input of the Job sub-orchestration: it waits Hours on a
// durable timer, then fails or returns Hours*10.
type job struct {
	Hours int  `json:"hours"`
	Fail  bool `json:"fail,omitempty"`
}

var errJob = durable.NewError("JobFailed", "job failed", nil)

var jobOrch = durable.NewOrchestrator("Job", func(ctx *durable.Context, j job) (int, error) {
	if _, err := ctx.CreateTimer(ctx.CurrentTime().Add(time.Duration(j.Hours) * time.Hour)).Await(); err != nil {
		return 0, err
	}
	if j.Fail {
		return 0, errJob.WithCause(fmt.Errorf("job of %dh", j.Hours))
	}
	return j.Hours * 10, nil
})

// fanIn starts one Job per input and joins them with All or Any; it
// returns what it saw as text, so that errors are outputs too.
func fanIn(useAny bool) *durable.Orchestrator[[]job, string] {
	name := "FanInAll"
	if useAny {
		name = "FanInAny"
	}
	return durable.NewOrchestrator(name, func(ctx *durable.Context, jobs []job) (string, error) {
		tasks := make([]*durable.Task[int], len(jobs))
		for i, j := range jobs {
			tasks[i] = jobOrch.Call(ctx, j)
		}
		at := ctx.CurrentTime().Sub(durabletest.DefaultStartTime)
		if useAny {
			i, v, err := durable.Any(ctx, tasks...)
			at = ctx.CurrentTime().Sub(durabletest.DefaultStartTime) - at
			return fmt.Sprintf("winner %d value %d err %v after %v", i, v, errText(err), at), nil
		}
		vs, err := durable.All(ctx, tasks...)
		at = ctx.CurrentTime().Sub(durabletest.DefaultStartTime) - at
		return fmt.Sprintf("%v err %v after %v", vs, errText(err), at), nil
	})
}

// errText describes an error of a fan-in: nil, or which job failed and
// whether it still matches the job's typed error.
func errText(err error) string {
	var tf *durable.TaskFailedError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &tf):
		return fmt.Sprintf("%q (task %d, JobFailed=%v)", tf.Failure.ErrorMessage, tf.TaskID, errors.Is(err, errJob))
	}
	return err.Error()
}

// TestAllAndAny: All returns the results in the order of the tasks, not of
// completion, and fails fast on the first failure in completion order; Any
// returns the first task to finish, failed or not. The Job children take
// virtual hours, so the order is set by the virtual clock.
func TestAllAndAny(t *testing.T) {
	for _, tc := range []struct {
		name   string
		any    bool
		jobs   []job
		want   string
		failed int // SubOrchestrationInstanceFailed events in the parent's history
		done   int // SubOrchestrationInstanceCompleted events in it
	}{
		{"All in task order", false, []job{{Hours: 3}, {Hours: 1}, {Hours: 2}},
			"[30 10 20] err none after 3h0m0s", 0, 3},
		{"All fails fast", false, []job{{Hours: 3}, {Hours: 1, Fail: true}, {Hours: 2}},
			`[] err "job failed: job of 1h" (task 1, JobFailed=true) after 1h0m0s`, 1, 0},
		{"All: first failure by completion", false, []job{{Hours: 2, Fail: true}, {Hours: 3}, {Hours: 1, Fail: true}},
			`[] err "job failed: job of 1h" (task 2, JobFailed=true) after 1h0m0s`, 1, 0},
		{"All of none", false, nil, "[] err none after 0s", 0, 0},
		{"Any: the quickest wins", true, []job{{Hours: 3}, {Hours: 1}, {Hours: 2}},
			"winner 1 value 10 err none after 1h0m0s", 0, 1},
		{"Any: a failure is an outcome", true, []job{{Hours: 3}, {Hours: 2, Fail: true}, {Hours: 5}},
			`winner 1 value 0 err "job failed: job of 2h" (task 1, JobFailed=true) after 2h0m0s`, 1, 0},
		{"Any of none", true, nil,
			"winner -1 value 0 err durable: no tasks to wait for: Any needs at least one task after 0s", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := durabletest.MustRun(t, durabletest.New(jobOrch), fanIn(tc.any), tc.jobs)
			if res.Output != tc.want {
				t.Fatalf("output\n got %s\nwant %s", res.Output, tc.want)
			}
			h := res.History
			if n := count(h, history.SubOrchestrationInstanceCreated); n != len(tc.jobs) {
				t.Errorf("%d sub-orchestrations created, want %d", n, len(tc.jobs))
			}
			if f, d := count(h, history.SubOrchestrationInstanceFailed), count(h, history.SubOrchestrationInstanceCompleted); f != tc.failed || d != tc.done {
				t.Errorf("the parent saw %d failed and %d completed children when it finished, want %d and %d:\n%s",
					f, d, tc.failed, tc.done, durabletest.FormatHistory(h))
			}
			// Fail fast and Any do not wait for the others: they are still
			// running (on their timers) when the parent finishes.
			running := 0
			for _, c := range res.Children {
				if c.Status == history.StatusRunning {
					running++
				}
			}
			if want := len(tc.jobs) - tc.failed - tc.done; running != want {
				t.Errorf("%d children still running, want %d", running, want)
			}
		})
	}
}

// TestMixedFanIn: WhenAll and WhenAny join tasks of different types (an
// activity's string, a sub-orchestration's int, a timer); each typed task
// is then awaited for its own result.
func TestMixedFanIn(t *testing.T) {
	lookup := durable.NewActivity("Lookup", func(_ context.Context, key string) (string, error) {
		return "", errors.New("replaced by a mock")
	})
	orch := durable.NewOrchestrator("Mixed", func(ctx *durable.Context, _ any) ([]string, error) {
		name := lookup.Call(ctx, "k")
		count := jobOrch.Call(ctx, job{Hours: 2})
		if err := durable.WhenAll(ctx, name, count); err != nil {
			return nil, err
		}
		s, _ := name.Await()
		n, _ := count.Await()
		out := []string{fmt.Sprintf("all: %s %d at %s", s, n, ctx.CurrentTime().Format("15:04"))}

		slow := jobOrch.Call(ctx, job{Hours: 5})
		deadline := ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour))
		i, err := durable.WhenAny(ctx, slow, deadline)
		if err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("any: %d at %s", i, ctx.CurrentTime().Format("15:04")))
		n, err = slow.Await() // the loser can still be awaited
		return append(out, fmt.Sprintf("then: %d %v at %s", n, err, ctx.CurrentTime().Format("15:04"))), nil
	})
	tr := durabletest.New(jobOrch)
	mock := durabletest.OnActivity(tr, lookup, func(_ context.Context, key string) (string, error) {
		return "value of " + key, nil
	}).Takes(30 * time.Minute)
	res := durabletest.MustRun(t, tr, orch, nil)
	want := "[all: value of k 20 at 02:00 any: 1 at 03:00 then: 50 <nil> at 07:00]"
	if got := fmt.Sprint(res.Output); got != want || mock.Calls() != 1 {
		t.Fatalf("output %s (lookup called %d times), want %s", got, mock.Calls(), want)
	}
	if len(res.Children) != 2 || res.Children[1].Status != history.StatusCompleted || res.Elapsed != 7*time.Hour {
		t.Fatalf("children %d, elapsed %v", len(res.Children), res.Elapsed)
	}
}
