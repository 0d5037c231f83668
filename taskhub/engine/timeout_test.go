package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
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

// TestDeadlineTravelsWithWorkItems fans out three calls WithTimeout on
// Azurite with a local backlog of one, so that two of them go through the
// work-item queue: every activity runs under the deadline its call set,
// and ends with its context's DeadlineExceeded.
func TestDeadlineTravelsWithWorkItems(t *testing.T) {
	h := newHub(t)
	type seen struct {
		task     int32
		deadline time.Time
		err      error
	}
	observed := make(chan seen, 3)
	block := durable.NewActivity("BlockN", func(ctx context.Context, _ int) (string, error) {
		info, _ := durable.ActivityInfoFrom(ctx)
		dl, _ := ctx.Deadline()
		<-ctx.Done()
		if !dl.Equal(info.Deadline) {
			return "", errors.New("ctx.Deadline differs from ActivityInfo.Deadline")
		}
		observed <- seen{info.TaskID, dl, ctx.Err()}
		return "", ctx.Err()
	})
	fan := durable.NewOrchestrator("FanTimeouts", func(ctx *durable.Context, _ any) (int, error) {
		var tasks []*durable.Task[string]
		for i := range 3 {
			tasks = append(tasks, block.Call(ctx, i, durable.WithTimeout(2*time.Second)))
		}
		n := 0
		for _, tk := range tasks {
			if _, err := tk.Await(); errors.Is(err, durable.ErrTimeout) {
				n++
			}
		}
		return n, nil
	})
	counted := &workItemCounter{Backend: h.store}
	eng, c := h.start(engine.Options{Backend: counted, MaxConcurrentActivities: 3, MaxLocalActivityBacklog: 1}, fan, block)
	id, err := c.StartNew(context.Background(), "FanTimeouts", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != "3" {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	events, err := c.GetHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]time.Time{}
	for _, ev := range events {
		if ev.Type == history.TaskScheduled {
			want[ev.EventID] = ev.Timestamp.Add(2 * time.Second)
		}
	}
	for range 3 {
		select {
		case s := <-observed:
			if !errors.Is(s.err, context.DeadlineExceeded) || !s.deadline.Equal(want[s.task]) {
				t.Errorf("task %d: context ended with %v at deadline %v, want DeadlineExceeded at %v", s.task, s.err, s.deadline, want[s.task])
			}
		case <-time.After(30 * time.Second):
			t.Fatal("an activity's context never ended")
		}
	}
	if n, remote := eng.Stats().ActivitiesRun, counted.received.Load(); n != 3 || remote < 2 {
		t.Errorf("ran %d activities (%d from the work-item queue), want 3 (at least 2)", n, remote)
	}
}

// workItemCounter counts the activity messages received from the work-item queue.
type workItemCounter struct {
	backend.Backend
	received atomic.Int64
}

func (w *workItemCounter) ReceiveWorkItems(ctx context.Context, max int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	msgs, poison, err := w.Backend.ReceiveWorkItems(ctx, max, visibility)
	w.received.Add(int64(len(msgs)))
	return msgs, poison, err
}
