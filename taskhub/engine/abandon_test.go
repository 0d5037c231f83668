package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// failChildStartAppend fails the first history append that records a
// sub-orchestration's creation: the checkpoint has sent the child's start
// by then (messages go first), and it is handed over in memory only after
// the append.
type failChildStartAppend struct {
	backend.Backend
	mu     sync.Mutex
	failed int
}

func (f *failChildStartAppend) AppendHistory(ctx context.Context, id, exec string, from int, events []history.Event, etag string) (string, error) {
	f.mu.Lock()
	fail := f.failed == 0 && slices.ContainsFunc(events, func(ev history.Event) bool {
		return ev.Type == history.SubOrchestrationInstanceCreated
	})
	if fail {
		f.failed++
	}
	f.mu.Unlock()
	if fail {
		return "", errInjected
	}
	return f.Backend.AppendHistory(ctx, id, exec, from, events, etag)
}

// TestAbandonedEpisodeReleasesItsSentMessages: an episode whose history
// append fails after it sent a control message to a partition this worker
// owns (held, hidden, to be handed over in memory after the commit) gives
// that message back to its queue, visible, instead of holding it until the
// process stops. The retried episode sends the child's start again; the
// first copy is then a duplicate, consumed without a trace, and the queues
// drain.
func TestAbandonedEpisodeReleasesItsSentMessages(t *testing.T) {
	be, err := memory.New(memory.Options{HubName: "AbandonHub", PartitionCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := &failChildStartAppend{Backend: be}
	child := durable.NewOrchestrator("Child", func(ctx *durable.Context, s string) (string, error) { return "child " + s, nil })
	parent := durable.NewOrchestrator("Parent", func(ctx *durable.Context, _ any) (string, error) {
		return child.Call(ctx, "x", durable.WithInstanceID(ctx.InstanceID()+"-child")).Await()
	})
	h := &hub{t: t, name: be.HubName()}
	eng, c := h.start(engine.Options{Backend: wrapped}, parent, child)
	id, err := c.StartNew(context.Background(), "Parent", client.StartOptions{InstanceID: "abandoned"})
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || st.Output != `"child x"` {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	wrapped.mu.Lock()
	failed := wrapped.failed
	wrapped.mu.Unlock()
	if failed != 1 {
		t.Fatalf("%d appends failed, want the one injected", failed)
	}
	until(t, "the queues drained while the engine runs", func() bool { return queued(be) == 0 })
	ch := storedHistory(t, be, id+"-child")
	starts := 0
	for _, ev := range ch.Events {
		if ev.Type == history.ExecutionStarted {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("the child's history records %d starts, want 1", starts)
	}
	if s := eng.Stats(); s.PoisonMessages != 0 {
		t.Errorf("%d messages parked as poison", s.PoisonMessages)
	}
}
