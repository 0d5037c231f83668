package engine_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"

	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestWake: with polling and ownership passes slowed to minutes, work
// queued by another process (a start for a partition released by a
// stopped worker) is processed once Wake is called, not minutes later:
// Wake runs an ownership pass, which claims the free partitions, and makes
// every poller poll.
func TestWake(t *testing.T) {
	st := memory.NewStorage(memory.StorageOptions{})
	open := func() *memory.Backend {
		b, err := st.Open(memory.Options{HubName: "WakeHub", PartitionCount: 1})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	echo := durable.NewOrchestrator("Echo", func(ctx *durable.Context, in string) (string, error) { return in, nil })
	slow := func(worker string) *engine.Engine {
		eng, _, _ := enginetest.Start(t, engine.Options{Backend: open(), WorkerID: worker, Logger: slog.New(slog.DiscardHandler),
			MinPollInterval: 10 * time.Minute, MaxPollInterval: 10 * time.Minute, LeaseInterval: 10 * time.Minute}, echo)
		return eng
	}
	a := slow("a")
	b := slow("b") // A owns the partition; B's next ownership pass is minutes away
	if got := b.OwnedPartitions(); len(got) != 0 {
		t.Fatalf("B owns %v at start", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil { // releases the partition
		t.Fatal(err)
	}

	remote := client.New(open(), nil, nil)
	id, err := remote.StartNew(ctx, "Echo", client.StartOptions{Input: "woken"})
	if err != nil {
		t.Fatal(err)
	}
	b.Wake()
	st2, err := remote.WaitForCompletion(ctx, id, 50*time.Millisecond)
	if err != nil || st2.Status != history.StatusCompleted || st2.Output != `"woken"` {
		t.Fatalf("after Wake: %+v, %v (without it B would claim the partition and poll minutes later)", st2, err)
	}
	if got := b.OwnedPartitions(); len(got) != 1 {
		t.Errorf("B owns %v after Wake, want the partition", got)
	}

	// Owned and idle: a poller waiting out its 10-minute backoff polls at
	// once.
	id, err = remote.StartNew(ctx, "Echo", client.StartOptions{Input: "again"})
	if err != nil {
		t.Fatal(err)
	}
	b.Wake()
	st2, err = remote.WaitForCompletion(ctx, id, 50*time.Millisecond)
	if err != nil || st2.Status != history.StatusCompleted || st2.Output != `"again"` {
		t.Fatalf("second start after Wake: %+v, %v", st2, err)
	}
}
