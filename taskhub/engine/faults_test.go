package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// faulty wraps the real store and fails chosen calls, as a flaky network
// or a throttled account would.
type faulty struct {
	backend.Backend
	mu       sync.Mutex
	failures map[string]int // operation → remaining failures
	seen     map[string]int
}

var errInjected = errors.New("injected storage failure")

func (f *faulty) fail(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[op]++
	if f.failures[op] > 0 {
		f.failures[op]--
		return errInjected
	}
	return nil
}

func (f *faulty) AppendHistory(ctx context.Context, id, exec string, from int, events []history.Event, etag string) (string, error) {
	if err := f.fail("append"); err != nil {
		return "", err
	}
	return f.Backend.AppendHistory(ctx, id, exec, from, events, etag)
}

func (f *faulty) UpdateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	if err := f.fail("update"); err != nil {
		return "", err
	}
	return f.Backend.UpdateInstance(ctx, st)
}

func (f *faulty) MergeInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	if err := f.fail("update"); err != nil {
		return "", err
	}
	return f.Backend.MergeInstance(ctx, st)
}

func (f *faulty) LoadHistory(ctx context.Context, id string) (backend.History, error) {
	if err := f.fail("load"); err != nil {
		return backend.History{}, err
	}
	if f.fail("panic") != nil {
		panic("injected panic while loading history")
	}
	return f.Backend.LoadHistory(ctx, id)
}

// TestStorageFailuresAreRetriedWithoutDuplicates fails history appends,
// history loads and status writes, and panics once inside the engine,
// along the way: the orchestration still
// completes with the right output, each step is recorded once, and the
// retries back off instead of spinning.
func TestStorageFailuresAreRetriedWithoutDuplicates(t *testing.T) {
	h := newHub(t)
	f := &faulty{Backend: h.store, failures: map[string]int{"append": 3, "load": 2, "update": 1, "panic": 1}, seen: map[string]int{}}
	eng, c := h.start(engine.Options{Backend: f, MessageVisibility: 5 * time.Second}, seq3, greet)
	id := start(t, c, "Seq3", nil)
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || st.Output != `["Hi a","Hi b","Hi c"]` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
	types := historyTypes(t, c, id)
	if count(types, "TaskScheduled") != 3 || count(types, "TaskCompleted") != 3 || count(types, "ExecutionStarted") != 1 || count(types, "ExecutionCompleted") != 1 {
		t.Fatalf("history %v", types)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures["append"] != 0 || f.failures["load"] != 0 || f.failures["update"] != 0 || f.failures["panic"] != 0 {
		t.Fatalf("not every injected failure was hit: %v", f.failures)
	}
	if f.seen["append"] > 12 {
		t.Errorf("%d history appends for 4 episodes and 3 injected failures: retries are spinning", f.seen["append"])
	}
	if eng.Stats().Episodes < 4 {
		t.Errorf("episodes %d", eng.Stats().Episodes)
	}
}
