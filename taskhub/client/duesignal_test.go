package client_test

import (
	"context"
	"testing"
	"time"

	counter "github.com/go-durable/durablefunctions/Counter"
	"github.com/go-durable/durablefunctions/internal/enginetest"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestScheduledSignalToAnOwnedEntityRunsWhenDue: a signal that a client in
// the engine's process schedules for later, to an entity whose partition
// the engine owns, runs when it falls due, not at the engine's next poll:
// the engine here polls once a minute only.
func TestScheduledSignalToAnOwnedEntityRunsWhenDue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	be, err := memory.New(memory.Options{HubName: "DueSignal", PartitionCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	eng, _, c := enginetest.Start(t, engine.Options{Backend: be, MinPollInterval: time.Minute, MaxPollInterval: time.Minute}, counter.Entity)
	id := history.NewEntityID("Counter", "due")
	for !eng.OwnsPartitionOf(id.String()) {
		if ctx.Err() != nil {
			t.Fatal("the engine did not take the entity's partition")
		}
		time.Sleep(10 * time.Millisecond)
	}
	due := time.Now().Add(1500 * time.Millisecond)
	if err := c.SignalEntity(ctx, id, "add", 5, client.SignalOptions{At: due}); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := c.ReadEntityState(ctx, id)
		if err == nil && st.State == "5" {
			t.Logf("the signal ran %v after its due time (the engine polls once a minute)", time.Since(due).Round(time.Millisecond))
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the scheduled signal did not run within 30 s of being sent: %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
