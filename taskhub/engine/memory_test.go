package engine_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestOrchestrationOnMemoryBackend runs activities in sequence and in
// parallel around a durable timer on the in-memory backend, without any
// storage emulator, and checks the output, the recorded history and that
// every queue is drained.
func TestOrchestrationOnMemoryBackend(t *testing.T) {
	be, err := memory.New(memory.Options{HubName: "MemoryHub"})
	if err != nil {
		t.Fatal(err)
	}
	const pause = time.Second
	orch := durable.NewOrchestrator("GreetAroundATimer", func(ctx *durable.Context, _ any) ([]string, error) {
		first, err := greet.Call(ctx, "a").Await()
		if err != nil {
			return nil, err
		}
		if err := ctx.Sleep(pause); err != nil {
			return nil, err
		}
		rest, err := durable.All(ctx, greet.Call(ctx, "b"), greet.Call(ctx, "c"))
		if err != nil {
			return nil, err
		}
		return append([]string{first}, rest...), nil
	})
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be}, orch, greet)
	id, err := c.StartNew(context.Background(), "GreetAroundATimer", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || st.Output != `["Hi a","Hi b","Hi c"]` {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}

	h2, err := be.LoadHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	count := map[history.EventType]int{}
	var created, fired, firedEpisode history.Event // firedEpisode: the OrchestratorStarted of the episode that saw TimerFired
	var episode history.Event
	for _, ev := range h2.Events {
		count[ev.Type]++
		switch ev.Type {
		case history.OrchestratorStarted:
			episode = ev
		case history.TimerCreated:
			created = ev
		case history.TimerFired:
			fired, firedEpisode = ev, episode
		}
	}
	for typ, want := range map[history.EventType]int{history.ExecutionStarted: 1, history.TaskScheduled: 3,
		history.TaskCompleted: 3, history.TimerCreated: 1, history.TimerFired: 1, history.ExecutionCompleted: 1} {
		if count[typ] != want {
			t.Errorf("%d %s events in history, want %d", count[typ], typ, want)
		}
	}
	if fired.FireAt != created.FireAt || fired.TimerID != created.EventID || created.FireAt.Sub(created.Timestamp) != pause ||
		firedEpisode.Timestamp.Before(created.FireAt) {
		t.Errorf("timer %d created at %v for %v; timer %d fired for %v, seen by the episode of %v",
			created.EventID, created.Timestamp, created.FireAt, fired.TimerID, fired.FireAt, firedEpisode.Timestamp)
	}
	row, err := be.GetInstance(context.Background(), id, false)
	if err != nil || row.Status != history.StatusCompleted || row.HistoryPosition != len(h2.Events) {
		t.Errorf("Instances row %+v (%v), want Completed at history position %d", row, err, len(h2.Events))
	}

	// The consumed messages are deleted in the background; wait for it.
	queues := []string{be.WorkItemQueueName()}
	for p := range be.PartitionCount() {
		queues = append(queues, be.ControlQueueName(p))
	}
	deadline := time.Now().Add(10 * time.Second)
	for slices.ContainsFunc(queues, func(q string) bool { return be.Len(q) > 0 }) {
		if time.Now().After(deadline) {
			for _, q := range queues {
				t.Errorf("queue %s holds %d messages after completion", q, be.Len(q))
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}
