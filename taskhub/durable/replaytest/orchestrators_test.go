package replaytest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// The "production" code the exports in testdata were recorded with, and
// the changed versions the tests replay against them.

var hello = durable.NewActivity("Hello", func(_ context.Context, city string) (string, error) {
	return "Hello " + city + "!", nil
})

// step is one part of a hello-cities style orchestrator; a non-empty
// result is collected into the output.
type step func(ctx *durable.Context) (string, error)

func greet(activity, city string) step {
	return func(ctx *durable.Context) (string, error) {
		return durable.CallActivity[string](ctx, activity, city).Await()
	}
}

func sleep(d time.Duration) step {
	return func(ctx *durable.Context) (string, error) { return "", ctx.Sleep(d) }
}

// cities defines a HelloCities orchestrator running the steps in order.
func cities(steps ...step) durable.Definition {
	return durable.NewOrchestrator("HelloCities", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, s := range steps {
			r, err := s(ctx)
			if err != nil {
				return nil, err
			}
			if r != "" {
				out = append(out, r)
			}
		}
		return out, nil
	})
}

// helloV1 is the production version: three sequential activities.
var helloV1 = cities(greet("Hello", "Tokyo"), greet("Hello", "Seattle"), greet("Hello", "London"))

// approval waits 10 minutes, then up to an hour for an "Approve" event.
func approval(event string, pause bool) durable.Definition {
	return durable.NewOrchestrator("Approval", func(ctx *durable.Context, _ any) (string, error) {
		greeting, err := hello.Call(ctx, "Tokyo").Await()
		if err != nil {
			return "", err
		}
		if pause {
			if err := ctx.Sleep(10 * time.Minute); err != nil {
				return "", err
			}
		}
		approved, err := durable.WaitForExternalEventTimeout[bool](ctx, event, time.Hour).Await()
		switch {
		case errors.Is(err, durable.ErrTimeout):
			return greeting + " (approval timed out)", nil
		case err != nil:
			return "", err
		case !approved:
			return greeting + " (rejected)", nil
		}
		approver, err := hello.Call(ctx, "approver").Await()
		return greeting + " / " + approver, err
	})
}

var approvalV1 = approval("Approve", true)

var charge = durable.NewActivity("Charge", func(_ context.Context, cents int) (string, error) {
	return "", errors.New("card declined")
})

var notify = durable.NewActivity("Notify", func(_ context.Context, msg string) (string, error) {
	return "notified: " + msg, nil
})

// checkout handles a failed charge by notifying the customer when
// handleFailure is set, and fails otherwise. seen receives the failure the
// code was handed.
func checkout(handleFailure bool, seen *durable.FailureDetails) durable.Definition {
	return durable.NewOrchestrator("Checkout", func(ctx *durable.Context, cents int) (string, error) {
		receipt, err := charge.Call(ctx, cents).Await()
		var tf *durable.TaskFailedError
		if !errors.As(err, &tf) || !handleFailure {
			return receipt, err
		}
		if seen != nil {
			*seen = tf.Failure
		}
		n, err := notify.Call(ctx, "payment failed: "+tf.Failure.ErrorMessage).Await()
		return "declined; " + n, err
	})
}

type workItem struct {
	ID string `json:"id"`
	N  int    `json:"n"`
}

type batchOutput struct {
	Results    []string  `json:"results"`
	Report     string    `json:"report"`
	FinishedAt time.Time `json:"finishedAt"`
}

var work = durable.NewActivity("Work", func(_ context.Context, w workItem) (string, error) {
	return fmt.Sprintf("item %d done", w.N), nil
})

var report = durable.NewActivity("Report", func(_ context.Context, id string) (string, error) {
	return "report " + id[:8], nil
})

// batch fans out and then reports, with deterministic GUIDs in the inputs,
// sleeps, and puts CurrentTime in its output: it replays only if episode
// times are exact.
var batch = durable.NewOrchestrator("Batch", func(ctx *durable.Context, n int) (batchOutput, error) {
	var tasks []*durable.Task[string]
	var all []durable.Awaitable
	for i := 0; i < n; i++ {
		t := work.Call(ctx, workItem{ID: ctx.NewGUID(), N: i})
		tasks = append(tasks, t)
		all = append(all, t)
	}
	var out batchOutput
	if err := durable.WhenAll(ctx, all...); err != nil {
		return out, err
	}
	for _, t := range tasks {
		r, _ := t.Await()
		out.Results = append(out.Results, r)
	}
	r, err := report.Call(ctx, ctx.NewGUID()).Await()
	if err != nil {
		return out, err
	}
	out.Report = r
	if err := ctx.Sleep(time.Hour); err != nil {
		return out, err
	}
	out.FinishedAt = ctx.CurrentTime()
	return out, nil
})

// trip calls HelloCities as a sub-orchestration (or, when asActivity is
// set, by mistake as an activity), then one activity.
func trip(asActivity bool) durable.Definition {
	return durable.NewOrchestrator("Trip", func(ctx *durable.Context, _ any) (string, error) {
		call := durable.CallSubOrchestrator[[]string]
		if asActivity {
			call = durable.CallActivity[[]string]
		}
		greetings, err := call(ctx, "HelloCities", nil).Await()
		if err != nil {
			return "", err
		}
		home, err := hello.Call(ctx, "home").Await()
		return strings.Join(greetings, " ") + " " + home, err
	})
}

// retrying calls Flaky with up to attempts attempts, a minute apart.
func retrying(attempts int) durable.Definition {
	return durable.NewOrchestrator("Retry", func(ctx *durable.Context, _ any) (string, error) {
		policy := durable.RetryPolicy{MaxAttempts: attempts, FirstRetryInterval: time.Minute}
		return durable.CallActivity[string](ctx, "Flaky", "x", durable.WithRetry(policy)).Await()
	})
}

// registry returns a registry holding defs.
func registry(t testing.TB, defs ...durable.Definition) *durable.Registry {
	t.Helper()
	r := durable.NewRegistry()
	if err := r.Add(defs...); err != nil {
		t.Fatal(err)
	}
	return r
}
