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

// busyApp is an orchestration whose one activity blocks until released (or
// its context ends).
func busyApp(entered chan<- struct{}, release <-chan struct{}) []durable.Definition {
	block := durable.NewActivity("Block", func(ctx context.Context, _ any) (string, error) {
		entered <- struct{}{}
		select {
		case <-release:
			return "released", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	orch := durable.NewOrchestrator("Blocking", func(ctx *durable.Context, _ any) (string, error) {
		return durable.CallActivity[string](ctx, "Block", nil).Await()
	})
	return []durable.Definition{block, orch}
}

// waitBusy polls eng.Busy until it reports want.
func waitBusy(t *testing.T, eng *engine.Engine, want bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for eng.Busy() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Busy() is not %v within 10 s: %s", want, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBusy: an engine is busy while an activity runs and its instance's
// anchor is held, idle again once the instance completed and its messages
// are deleted; a clean stop of an idle engine left no work.
func TestBusy(t *testing.T) {
	be, err := memory.New(memory.Options{HubName: "BusyHub", PartitionCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	eng, _, c := enginetest.Start(t, engine.Options{Backend: be, Logger: slog.New(slog.DiscardHandler)}, busyApp(entered, release)...)
	waitBusy(t, eng, false, "after Start")
	id, err := c.StartNew(t.Context(), "Blocking", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	if !eng.Busy() {
		t.Fatal("Busy() = false while an activity runs")
	}
	close(release)
	st, err := c.WaitForCompletion(t.Context(), id, 10*time.Millisecond)
	if err != nil || st.Status != history.StatusCompleted || st.Output != `"released"` {
		t.Fatalf("instance: %+v, %v", st, err)
	}
	waitBusy(t, eng, false, "after the instance completed")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := eng.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if eng.LeftWork() {
		t.Error("LeftWork() = true after stopping an idle engine")
	}
}

// TestLeftWorkAfterInterruptedStop: a stop whose grace runs out while an
// activity runs interrupts it and gives the instance's messages back, and
// reports that it left work.
func TestLeftWorkAfterInterruptedStop(t *testing.T) {
	be, err := memory.New(memory.Options{HubName: "LeftHub", PartitionCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{}, 1)
	eng, _, c := enginetest.Start(t, engine.Options{Backend: be, Logger: slog.New(slog.DiscardHandler)}, busyApp(entered, nil)...)
	if _, err := c.StartNew(t.Context(), "Blocking", client.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	<-entered
	if eng.LeftWork() {
		t.Fatal("LeftWork() = true before Stop")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := eng.Stop(ctx); err == nil {
		t.Fatal("Stop with a blocked activity and a 100 ms grace reported a clean stop")
	}
	if !eng.LeftWork() {
		t.Error("LeftWork() = false after a stop that interrupted an activity")
	}
}
