package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestActivityContextEndsAtTheCallsDeadline runs an activity called
// WithTimeout that blocks until its context ends, on the in-memory
// backend: the orchestration gets the timeout, and the activity saw its
// context end with DeadlineExceeded at the deadline the orchestrator set.
func TestActivityContextEndsAtTheCallsDeadline(t *testing.T) {
	be, err := memory.New(memory.Options{HubName: "DeadlineHub"})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		err      error
		deadline time.Time
		info     time.Time
		ended    time.Time
	}
	observed := make(chan seen, 1)
	block := durable.NewActivity("Block", func(ctx context.Context, _ any) (string, error) {
		dl, _ := ctx.Deadline()
		info, _ := durable.ActivityInfoFrom(ctx)
		<-ctx.Done()
		observed <- seen{ctx.Err(), dl, info.Deadline, time.Now()}
		return "", ctx.Err()
	})
	orch := durable.NewOrchestrator("CallBlock", func(ctx *durable.Context, _ any) (string, error) {
		_, err := block.Call(ctx, nil, durable.WithTimeout(time.Second)).Await()
		var te *durable.TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, durable.ErrTimeout) {
			return "", err
		}
		return te.Error(), nil
	})
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be}, orch, block)
	id, err := c.StartNew(context.Background(), "CallBlock", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || st.Output != `"activity \"Block\" (task 0) timed out after 1s"` {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	var s seen
	select {
	case s = <-observed:
	case <-time.After(30 * time.Second):
		t.Fatal("the activity's context never ended")
	}
	events, err := c.GetHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var scheduledAt time.Time
	for _, ev := range events {
		if ev.Type == history.TaskScheduled {
			scheduledAt = ev.Timestamp
		}
	}
	want := scheduledAt.Add(time.Second)
	if !errors.Is(s.err, context.DeadlineExceeded) || !s.deadline.Equal(want) || !s.info.Equal(want) || s.ended.Before(want) {
		t.Fatalf("activity saw %+v; want DeadlineExceeded at %v (scheduled %v)", s, want, scheduledAt)
	}
	t.Logf("deadline %v; the context ended %v after it", want.Format(time.RFC3339Nano), s.ended.Sub(want).Round(time.Millisecond))
}

// TestActivityPastItsDeadlineDoesNotRun holds the only activity slot (Hold
// runs until the test releases it) until a call made WithTimeout has timed
// out: when the slot frees, that
// activity is not run, and its failure records why.
func TestActivityPastItsDeadlineDoesNotRun(t *testing.T) {
	be, err := memory.New(memory.Options{HubName: "LateHub"})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	quickRuns := 0
	holding := make(chan struct{}, 1)
	hold := durable.NewActivity("Hold", func(ctx context.Context, _ any) (string, error) {
		holding <- struct{}{}
		select {
		case <-release:
			return "held", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	quick := durable.NewActivity("Quick", func(ctx context.Context, _ any) (string, error) {
		mu.Lock()
		quickRuns++
		mu.Unlock()
		return "quick", nil
	})
	orch := durable.NewOrchestrator("Late", func(ctx *durable.Context, _ any) (string, error) {
		held := hold.Call(ctx, nil)
		// Quick is called once Hold has the only slot.
		if _, err := durable.WaitForExternalEvent[any](ctx, "Holding").Await(); err != nil {
			return "", err
		}
		_, err := quick.Call(ctx, nil, durable.WithTimeout(time.Second)).Await()
		if !errors.Is(err, durable.ErrTimeout) {
			return "", err
		}
		if err := ctx.SetCustomStatus("quick timed out"); err != nil {
			return "", err
		}
		if _, err := held.Await(); err != nil {
			return "", err
		}
		return durable.WaitForExternalEvent[string](ctx, "Finish").Await()
	})
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be, MaxConcurrentActivities: 1}, orch, hold, quick)
	ctx := context.Background()
	id, err := c.StartNew(ctx, "Late", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-holding:
	case <-time.After(30 * time.Second):
		t.Fatal("Hold never ran")
	}
	if err := c.RaiseEvent(ctx, id, "Holding", ""); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the Quick call to time out", func() bool {
		st, err := c.GetStatus(ctx, id, false)
		return err == nil && st.CustomStatus == `"quick timed out"`
	})
	close(release)
	var failure *history.FailureDetails
	poll(t, 30*time.Second, "Quick's failure in history", func() bool {
		events, err := c.GetHistory(ctx, id)
		for _, ev := range events {
			if err == nil && ev.Type == history.TaskFailed && ev.TaskScheduledID == 1 {
				failure = ev.Failure
			}
		}
		return failure != nil
	})
	if err := c.RaiseEvent(ctx, id, "Finish", `"done"`); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"done"` {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	mu.Lock()
	defer mu.Unlock()
	if quickRuns != 0 || failure.ErrorType != "TimeoutError" ||
		!strings.HasPrefix(failure.ErrorMessage, `activity "Quick" (task 1) was not started: its deadline passed before a worker took it`) {
		t.Fatalf("Quick ran %d times; its failure %+v", quickRuns, failure)
	}
}
