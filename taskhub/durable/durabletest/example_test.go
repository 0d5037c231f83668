package durabletest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

var hello = durable.NewActivity("Hello", func(_ context.Context, city string) (string, error) {
	return "Hello " + city + "!", nil
})

var helloCities = durable.NewOrchestrator("HelloCities", func(ctx *durable.Context, _ any) ([]string, error) {
	var out []string
	for _, city := range []string{"Tokyo", "Seattle", "London"} {
		s, err := hello.Call(ctx, city).Await()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

// Run an orchestrator with its real activity, and read its typed output
// and the history the engine would have written.
func Example() {
	tr := durabletest.New(hello)
	res, err := durabletest.Run(context.Background(), tr, helloCities, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Output)
	for _, ev := range res.History {
		if ev.Type == history.TaskScheduled {
			fmt.Println(ev.Type, ev.EventID, ev.Name, ev.Input)
		}
	}
	// Output:
	// [Hello Tokyo! Hello Seattle! Hello London!]
	// TaskScheduled 0 Hello "Tokyo"
	// TaskScheduled 1 Hello "Seattle"
	// TaskScheduled 2 Hello "London"
}

// Mock an activity that fails twice; the retry policy waits a day, then
// two, on durable timers, which the virtual clock fires at once.
func ExampleOnActivity() {
	charge := durable.NewActivity("Charge", func(_ context.Context, cents int) (string, error) {
		return "", errors.New("the real payment service is not called in this test")
	})
	checkout := durable.NewOrchestrator("Checkout", func(ctx *durable.Context, cents int) (string, error) {
		return charge.Call(ctx, cents, durable.WithRetry(durable.RetryPolicy{
			MaxAttempts: 5, FirstRetryInterval: 24 * time.Hour, BackoffCoefficient: 2,
		})).Await()
	})

	tr := durabletest.New(charge)
	attempts := 0
	mock := durabletest.OnActivity(tr, charge, func(_ context.Context, cents int) (string, error) {
		if attempts++; attempts < 3 {
			return "", errors.New("card network unavailable")
		}
		return fmt.Sprintf("charged %d", cents), nil
	})
	res, err := durabletest.Run(context.Background(), tr, checkout, 1250)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s after %d calls and %v of virtual time\n", res.Output, mock.Calls(), res.Elapsed)
	// Output: charged 1250 after 3 calls and 72h0m0s of virtual time
}

// Raise an event at a virtual time; the orchestration waits for it with a
// timeout.
func ExampleTester_RaiseEventAfter() {
	approve := durable.NewOrchestrator("Approve", func(ctx *durable.Context, _ any) (string, error) {
		ok, err := durable.WaitForExternalEventTimeout[bool](ctx, "Approval", 72*time.Hour).Await()
		if errors.Is(err, durable.ErrTimeout) {
			return "escalated", nil
		}
		return fmt.Sprintf("approved=%v at %s", ok, ctx.CurrentTime().Format(time.Kitchen)), err
	})
	for _, after := range []time.Duration{5 * time.Hour, 100 * time.Hour} {
		tr := durabletest.New()
		tr.RaiseEventAfter(after, "Approval", true)
		res, err := durabletest.Run(context.Background(), tr, approve, nil,
			durabletest.StartAt(time.Date(2030, 1, 7, 9, 0, 0, 0, time.UTC)))
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("event after %v: %s (%v)\n", after, res.Output, res.Elapsed)
	}
	// Output:
	// event after 5h0m0s: approved=true at 2:00PM (5h0m0s)
	// event after 100h0m0s: escalated (72h0m0s)
}

// An orchestration that waits for something nobody provides ends the run
// with an error naming what it waits for.
func ExampleNotFinishedError() {
	approve := durable.NewOrchestrator("Approve", func(ctx *durable.Context, _ any) (bool, error) {
		return durable.WaitForExternalEvent[bool](ctx, "Approval").Await()
	})
	_, err := durabletest.Run(context.Background(), durabletest.New(), approve, nil)
	var nf *durabletest.NotFinishedError
	if errors.As(err, &nf) {
		fmt.Println(nf.Reason)
		fmt.Println(nf.Waiting)
	}
	// Output:
	// nothing is due and nothing can run, so it waits forever
	// [external event "Approval"]
}

// Check new code against a history that the current code produced: here
// the new code greets the cities in another order.
func ExampleCheck() {
	res, err := durabletest.Run(context.Background(), durabletest.New(hello), helloCities, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	reordered := durable.NewOrchestrator("HelloCities", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Seattle", "Tokyo", "London"} {
			s, err := hello.Call(ctx, city).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})
	reg := durable.NewRegistry()
	if err := reg.Add(reordered, hello); err != nil {
		fmt.Println(err)
		return
	}
	err = durabletest.Check(reg, res.History)
	var de *durabletest.DeterminismError
	if errors.As(err, &de) {
		fmt.Printf("history[%d]\nrecorded: %s\nproduced: %s\n", de.Position, de.Recorded, de.Produced)
	}
	// Output:
	// history[2]
	// recorded: TaskScheduled "Hello" (task 0) with input "Tokyo"
	// produced: TaskScheduled "Hello" (task 0) with input "Seattle"
}
