package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// signalFaults injects faults into one entity's signals to another: the
// sender's every 2nd history append fails before it writes (its batch's
// signals are out and go again), the receiver's every 3rd append is
// committed but its answer lost, and every 3rd numbered signal to the
// receiver is made visible a second late, so that later ones overtake it.
type signalFaults struct {
	backend.Backend
	sender, receiver string
	mu               sync.Mutex
	appends, lost    int
	sends, late      int
	failed           int
}

// count counts a call and reports whether it is a faulty one: the
// first of every group of every calls.
func (f *signalFaults) count(what *int, every int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	*what++
	return *what%every == 1
}

func (f *signalFaults) AppendHistory(ctx context.Context, id, exec string, from int, evs []history.Event, etag string) (string, error) {
	f.mu.Lock()
	sender, receiver := f.sender, f.receiver
	f.mu.Unlock()
	switch id {
	case sender:
		if f.count(&f.appends, 2) {
			f.mu.Lock()
			f.failed++
			f.mu.Unlock()
			return "", fmt.Errorf("append history of %s: injected failure after the batch's signals were sent", id)
		}
	case receiver:
		tag, err := f.Backend.AppendHistory(ctx, id, exec, from, evs, etag)
		if err == nil && f.count(&f.lost, 3) {
			return "", fmt.Errorf("append history of %s: %w (injected: the answer to a committed batch was lost)", id, backend.ErrConflict)
		}
		return tag, err
	}
	return f.Backend.AppendHistory(ctx, id, exec, from, evs, etag)
}

func (f *signalFaults) SendControl(ctx context.Context, msg backend.Message, delay time.Duration) (backend.Receipt, error) {
	if msg.Target.InstanceID == f.receiver && history.ClassifyEntityEvent(msg.Event.Name) == history.EntityMessageRequest {
		if r, err := history.DecodeEntityRequest(msg.Event); err == nil && r.Seq > 0 && delay < time.Second && f.count(&f.sends, 3) {
			f.mu.Lock()
			f.late++
			f.mu.Unlock()
			delay = time.Second
		}
	}
	return f.Backend.SendControl(ctx, msg, delay)
}

// TestEntitySignalsToEntityInOrderOnce: an orchestration sends entity A
// n operations in order (a call after every 5th makes it run several
// batches); for each, A signals entity B append(i). A and B
// are on partitions of different workers, so the signals go through B's
// queue, where some are delivered late, A's batches fail after their
// signals went out (and send them again), and B loses answers to its
// commits: B ends with exactly [1..n], in order.
func TestEntitySignalsToEntityInOrderOnce(t *testing.T) {
	const n = 40
	relay := durable.NewEntity("Relay", durable.Operations[int]{
		"send": durable.Op(func(ctx *durable.EntityContext[int], i int) error {
			ctx.SetState(ctx.State() + 1)
			ctx.SignalEntity(durable.NewEntityID("Log", "b"), "append", i)
			return nil
		}),
		"count": durable.OpResult(func(ctx *durable.EntityContext[int], _ any) (int, error) { return ctx.State(), nil }),
	})
	logEntity := durable.NewEntity("Log", durable.Operations[[]int]{
		"append": durable.Op(func(ctx *durable.EntityContext[[]int], i int) error {
			ctx.SetState(append(ctx.State(), i))
			return nil
		}),
	})
	driver := durable.NewOrchestrator("Driver", func(ctx *durable.Context, key string) (int, error) {
		relay := durable.NewEntityID("Relay", key)
		for i := 1; i <= n; i++ {
			if err := ctx.SignalEntity(relay, "send", i); err != nil {
				return 0, err
			}
			if i%5 == 0 {
				// A call between groups makes A run several batches.
				got, err := durable.CallEntity[int](ctx, relay, "count", nil).Await()
				if err != nil {
					return 0, err
				}
				if got != i {
					return 0, fmt.Errorf("relay counted %d after %d sends", got, i)
				}
			}
		}
		return n, nil
	})
	mem := memoryBackend(t)
	a, b := history.NewEntityID("Relay", "a").String(), history.NewEntityID("Log", "b").String()
	be := &signalFaults{Backend: mem, sender: a, receiver: b}
	opts := func(worker string) engine.Options {
		return engine.Options{Backend: be, WorkerID: worker, LeaseInterval: time.Second, MessageVisibility: 2 * time.Second}
	}
	e1, _, c := enginetest.Start(t, opts("w1"), relay, logEntity, driver)
	e2, _, _ := enginetest.Start(t, opts("w2"), relay, logEntity, driver)
	deadline := time.Now().Add(30 * time.Second)
	for len(e1.OwnedPartitions()) != 2 || len(e2.OwnedPartitions()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("partitions %v and %v, want two each", e1.OwnedPartitions(), e2.OwnedPartitions())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A's key on one worker's partition, B's on the other's.
	key := ""
	for k := 0; key == ""; k++ {
		id := history.NewEntityID("Relay", strconv.Itoa(k)).String()
		if e1.OwnsPartitionOf(id) != e1.OwnsPartitionOf(b) {
			key, a = strconv.Itoa(k), id
		}
	}
	be.mu.Lock()
	be.sender = a
	be.mu.Unlock()
	ctx := t.Context()
	id, err := c.StartNew(ctx, "Driver", client.StartOptions{InstanceID: "driver", Input: key})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.WaitForCompletion(ctx, id, 10*time.Millisecond); err != nil || st.Status != history.StatusCompleted {
		t.Fatalf("driver: %+v, %v", st, err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	waitEntity(t, c, durable.NewEntityID("Relay", key), strconv.Itoa(n))
	deadline = time.Now().Add(45 * time.Second)
	for {
		got, err := client.ReadEntity(ctx, c, logEntity, "b")
		if err == nil && len(got) >= n {
			if !slices.Equal(got, want) {
				t.Fatalf("B's state %v, want 1..%d in order, each once", got, n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's state %v (%v), want 1..%d", got, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	be.mu.Lock()
	failed, late, lost := be.failed, be.late, (be.lost+2)/3
	be.mu.Unlock()
	s1, s2 := e1.Stats(), e2.Stats()
	t.Logf("sender batches failed after sending: %d; signals delivered late: %d; receiver answers lost: %d; deferred %d, dropped %d",
		failed, late, lost, s1.DeferredMessages+s2.DeferredMessages, s1.DroppedMessages+s2.DroppedMessages)
	if failed == 0 || late == 0 || lost == 0 {
		t.Fatalf("faults not injected: %d failed sender batches, %d late signals, %d lost answers", failed, late, lost)
	}
	if s1.DeferredMessages+s2.DeferredMessages == 0 {
		t.Error("no signal was put back to wait for its predecessor: the late deliveries did not reorder anything")
	}
}
