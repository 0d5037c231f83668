package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// queueLength returns the approximate number of messages (visible or not)
// in a queue of the test account.
func queueLength(t *testing.T, queue string) int32 {
	t.Helper()
	svc := rawQueueService(t)
	props, err := svc.NewQueueClient(queue).GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.ApproximateMessagesCount == nil {
		return 0
	}
	return *props.ApproximateMessagesCount
}

// TestReappearingAnchorDoesNotRewriteAFinishedRow: the recovery anchor of
// a finished instance reappears (a kill between the final row write and
// the anchor's delete). The next owner checks the row against history and,
// since it agrees, deletes the message without writing the row again (the
// previous engine re-stamped CompletedTime).
func TestReappearingAnchorDoesNotRewriteAFinishedRow(t *testing.T) {
	h := newHub(t)
	one := durable.NewOrchestrator("One", func(ctx *durable.Context, _ any) (string, error) {
		return greet.Call(ctx, "x").Await()
	})
	eng, c := h.start(engine.Options{WorkerID: "first"}, one, greet)
	ctx := context.Background()
	id := start(t, c, "One", nil)
	if st := wait(t, c, id); st.Status != history.StatusCompleted {
		t.Fatalf("status %s", st.Status)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := eng.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	before, err := h.store.GetInstance(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := h.store.LoadHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var startEv history.Event
	for _, ev := range hist.Events {
		if ev.Type == history.ExecutionStarted {
			startEv = ev
		}
	}
	if _, err := h.store.SendControl(ctx, backend.Message{Event: startEv, Target: startEv.Instance}, 0); err != nil {
		t.Fatal(err)
	}
	h.start(engine.Options{WorkerID: "second"}, one, greet)
	waitQueueEmpty(t, h, id, "the reappeared start message")
	after, err := h.store.GetInstance(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if after.ETag != before.ETag || !after.CompletedTime.Equal(before.CompletedTime) {
		t.Fatalf("the finished row was written again: CompletedTime %v → %v, ETag %s → %s",
			before.CompletedTime, after.CompletedTime, before.ETag, after.ETag)
	}
}

// twoEvents waits for two events named "e" and returns their data.
var twoEvents = durable.NewOrchestrator("TwoEvents", func(ctx *durable.Context, _ any) ([]string, error) {
	var got []string
	for range 2 {
		v, err := durable.WaitForExternalEvent[string](ctx, "e").Await()
		if err != nil {
			return nil, err
		}
		got = append(got, v)
	}
	return got, nil
})

// waitQueueEmpty waits until the control queue of instance id holds no
// message (visible or not): what was sent to it has been consumed.
func waitQueueEmpty(t *testing.T, h *hub, id, what string) {
	t.Helper()
	queue := h.store.ControlQueueName(h.store.PartitionOf(id))
	deadline := time.Now().Add(30 * time.Second)
	for queueLength(t, queue) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s was never consumed", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedeliveredEventIsNotRaisedTwice: a raised event that is already in
// history comes back (its delete was lost, or the worker died after the
// checkpoint). The orchestration must not see it a second time.
func TestRedeliveredEventIsNotRaisedTwice(t *testing.T) {
	h := newHub(t)
	_, c := h.start(engine.Options{}, twoEvents)
	ctx := context.Background()
	id := start(t, c, "TwoEvents", nil)
	if err := c.RaiseEvent(ctx, id, "e", `"1"`); err != nil {
		t.Fatal(err)
	}
	var raised *history.Event
	deadline := time.Now().Add(30 * time.Second)
	for raised == nil {
		hist, err := h.store.LoadHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range hist.Events {
			if ev.Type == history.EventRaised {
				raised = &hist.Events[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the first event never reached history")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The same message again, as a redelivery would bring it.
	if _, err := h.store.SendControl(ctx, backend.Message{Event: *raised, Target: history.OrchestrationInstance{InstanceID: id}}, 0); err != nil {
		t.Fatal(err)
	}
	waitQueueEmpty(t, h, id, "the redelivered event")
	if err := c.RaiseEvent(ctx, id, "e", `"2"`); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `["1","2"]` {
		t.Fatalf("%s %s: the redelivered event was applied again", st.Status, st.Output)
	}
}

// TestWaitAfterRestartSeesTheNewExecution: after a restart over a finished
// ID, waiting for completion returns the new execution's outcome, not the
// one the engine remembered from before.
func TestWaitAfterRestartSeesTheNewExecution(t *testing.T) {
	h := newHub(t)
	echo := durable.NewOrchestrator("Echo", func(ctx *durable.Context, n int) (int, error) { return n, nil })
	_, c := h.start(engine.Options{}, echo)
	for _, n := range []int{1, 2} {
		id := start(t, c, "Echo", n, "restarted")
		if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != fmt.Sprint(n) {
			t.Fatalf("execution %d: %s %s", n, st.Status, st.Output)
		}
	}
}

// doubled sends every control message twice, as the SDK's retry of a send
// whose answer was lost does.
type doubled struct{ backend.Backend }

func (d doubled) SendControl(ctx context.Context, m backend.Message, delay time.Duration) (backend.Receipt, error) {
	if _, err := d.Backend.SendControl(ctx, m, delay); err != nil {
		return backend.Receipt{}, err
	}
	return d.Backend.SendControl(ctx, m, delay)
}

// TestDoubledMessageIsAppliedOnce: a raised event whose send was retried
// after a lost answer sits twice in the queue, usually in one poll batch;
// the orchestration sees it once.
func TestDoubledMessageIsAppliedOnce(t *testing.T) {
	h := newHub(t)
	reg := durable.NewRegistry()
	if err := reg.Add(twoEvents); err != nil {
		t.Fatal(err)
	}
	_, c := h.start(engine.Options{}, twoEvents)
	remote := client.New(doubled{h.store}, reg, nil) // a client in another process
	ctx := context.Background()
	id := start(t, c, "TwoEvents", nil)
	if err := remote.RaiseEvent(ctx, id, "e", `"1"`); err != nil {
		t.Fatal(err)
	}
	waitQueueEmpty(t, h, id, "the doubled event")
	if err := c.RaiseEvent(ctx, id, "e", `"2"`); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `["1","2"]` {
		t.Fatalf("%s %s: the doubled event was applied twice", st.Status, st.Output)
	}
}

// TestMessageInAnotherPartitionsQueueIsProcessed: a client with another
// partition count (a Durable Functions app configured differently) puts a
// start into a control queue its instance ID does not hash to. As in
// Durable Task, the worker that owns that queue processes it; the previous
// engine released it back to the queue in a loop, and it never ran.
func TestMessageInAnotherPartitionsQueueIsProcessed(t *testing.T) {
	h := newHub(t)
	echo := durable.NewOrchestrator("Echo", func(ctx *durable.Context, n int) (int, error) { return n, nil })
	opts := engine.Options{LeaseInterval: 2 * time.Second}
	opts.WorkerID = "worker-a"
	a, _ := h.start(opts, echo)
	opts.WorkerID = "worker-b"
	b, cb := h.start(opts, echo)
	deadline := time.Now().Add(30 * time.Second)
	for len(a.OwnedPartitions()) != 2 || len(b.OwnedPartitions()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("partitions not balanced: a %v, b %v", a.OwnedPartitions(), b.OwnedPartitions())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ownedBy := func(e *engine.Engine, p int) bool {
		for _, q := range e.OwnedPartitions() {
			if q == p {
				return true
			}
		}
		return false
	}
	// An ID whose queue under a 3-partition client is A's, while it hashes
	// to one of B's partitions under our 4.
	other, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: h.name, PartitionCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for i := 0; id == ""; i++ {
		cand := fmt.Sprintf("misrouted-%d", i)
		if p := other.PartitionOf(cand); ownedBy(a, p) && ownedBy(b, h.store.PartitionOf(cand)) {
			id = cand
		}
	}
	reg := durable.NewRegistry()
	if err := reg.Add(echo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(other, reg, nil).StartNew(context.Background(), "Echo", client.StartOptions{InstanceID: id, Input: 7}); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, cb, id); st.Status != history.StatusCompleted || st.Output != "7" {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
}
