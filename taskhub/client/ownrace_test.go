package client

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// racingEngine is a LocalEngine that takes the instance's partition right
// after the client looked: OwnsPartitionOf answers false the first time
// for each instance and true afterwards. It records the polls asked of it.
// Only what a start and a raise of a non-owner call is implemented.
type racingEngine struct {
	LocalEngine
	mu     sync.Mutex
	looked map[string]bool
	polled []int
}

func (e *racingEngine) OwnsPartitionOf(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	owns := e.looked[id]
	e.looked[id] = true
	return owns
}

// Status knows nothing: the client reads storage.
func (e *racingEngine) Status(string) (backend.InstanceState, bool) {
	return backend.InstanceState{}, false
}

func (e *racingEngine) PollPartition(p int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.polled = append(e.polled, p)
}

// TestMessageSentJustBeforeTheEngineOwnsItsPartitionIsPolled: a start or
// an event sent visible because the local engine did not own the
// partition yet makes the engine poll that partition, now that it owns it,
// instead of waiting for its next poll.
func TestMessageSentJustBeforeTheEngineOwnsItsPartitionIsPolled(t *testing.T) {
	ctx := context.Background()
	be, err := memory.New(memory.Options{HubName: "OwnRace", PartitionCount: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := be.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	eng := &racingEngine{looked: map[string]bool{}}
	c := New(be, nil, eng)
	id, err := c.StartNew(ctx, "Work", StartOptions{InstanceID: "race-1"})
	if err != nil {
		t.Fatal(err)
	}
	p := be.PartitionOf(id)
	if len(eng.polled) != 1 || eng.polled[0] != p {
		t.Fatalf("polls after the start: %v, want [%d]", eng.polled, p)
	}
	got, _, err := be.ReceiveControl(ctx, p, 32, time.Second)
	if err != nil || len(got) != 1 || got[0].Message.Event.Type != history.ExecutionStarted {
		t.Fatalf("control queue %d: %+v, %v; want the visible start", p, got, err)
	}

	eng.looked = map[string]bool{} // the engine gives the partition up and takes it again
	if err := c.RaiseEvent(ctx, id, "go", ""); err != nil {
		t.Fatal(err)
	}
	if len(eng.polled) != 2 || eng.polled[1] != p {
		t.Fatalf("polls after the event: %v, want [%d %d]", eng.polled, p, p)
	}
}
