package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// queueLength returns the approximate number of messages (visible or not)
// in a queue of the test account.
func queueLength(t *testing.T, queue string) int32 {
	t.Helper()
	acct, err := azurestorage.ParseConnectionString(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azqueue.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(acct.QueueEndpoint, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
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
	queue := h.store.ControlQueueName(h.store.PartitionOf(id))
	h.start(engine.Options{WorkerID: "second"}, one, greet)
	deadline := time.Now().Add(30 * time.Second)
	for queueLength(t, queue) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reappeared start message was never consumed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	after, err := h.store.GetInstance(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if after.ETag != before.ETag || !after.CompletedTime.Equal(before.CompletedTime) {
		t.Fatalf("the finished row was written again: CompletedTime %v → %v, ETag %s → %s",
			before.CompletedTime, after.CompletedTime, before.ETag, after.ETag)
	}
}
