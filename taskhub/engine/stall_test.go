package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// stallable wraps the store of one worker: while frozen, every storage call
// of that worker waits, as the calls of a process stopped by SIGSTOP or a
// long GC pause would, and goes through when the worker thaws.
type stallable struct {
	backend.Backend
	mu       sync.Mutex
	frozen   chan struct{} // closed on thaw; nil while running
	inFlight int
	idle     *sync.Cond
}

func newStallable(b backend.Backend) *stallable {
	s := &stallable{Backend: b}
	s.idle = sync.NewCond(&s.mu)
	return s
}

func (s *stallable) freeze() {
	s.mu.Lock()
	s.frozen = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallable) thaw() {
	s.mu.Lock()
	close(s.frozen)
	s.frozen = nil
	s.mu.Unlock()
}

// settle waits until no call that was held back is still running.
func (s *stallable) settle() {
	s.mu.Lock()
	for s.inFlight > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
}

func (s *stallable) gate() func() {
	s.mu.Lock()
	ch := s.frozen
	s.inFlight++
	s.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return func() {
		s.mu.Lock()
		s.inFlight--
		if s.inFlight == 0 {
			s.idle.Broadcast()
		}
		s.mu.Unlock()
	}
}

func (s *stallable) SendControl(ctx context.Context, m backend.Message, d time.Duration) (backend.Receipt, error) {
	defer s.gate()()
	return s.Backend.SendControl(ctx, m, d)
}

func (s *stallable) ReceiveControl(ctx context.Context, p, n int, v time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	defer s.gate()()
	return s.Backend.ReceiveControl(ctx, p, n, v)
}

func (s *stallable) SendWorkItem(ctx context.Context, m backend.Message, d time.Duration) (backend.Receipt, error) {
	defer s.gate()()
	return s.Backend.SendWorkItem(ctx, m, d)
}

func (s *stallable) ReceiveWorkItems(ctx context.Context, n int, v time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	defer s.gate()()
	return s.Backend.ReceiveWorkItems(ctx, n, v)
}

func (s *stallable) DeleteMessage(ctx context.Context, r backend.Receipt) error {
	defer s.gate()()
	return s.Backend.DeleteMessage(ctx, r)
}

func (s *stallable) SetVisibility(ctx context.Context, r backend.Receipt, d time.Duration) (backend.Receipt, error) {
	defer s.gate()()
	return s.Backend.SetVisibility(ctx, r, d)
}

func (s *stallable) LoadHistory(ctx context.Context, id string) (backend.History, error) {
	defer s.gate()()
	return s.Backend.LoadHistory(ctx, id)
}

func (s *stallable) AppendHistory(ctx context.Context, id, exec string, from int, evs []history.Event, etag string) (string, error) {
	defer s.gate()()
	return s.Backend.AppendHistory(ctx, id, exec, from, evs, etag)
}

func (s *stallable) GetInstance(ctx context.Context, id string, withInput bool) (backend.InstanceState, error) {
	defer s.gate()()
	return s.Backend.GetInstance(ctx, id, withInput)
}

func (s *stallable) CreateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	defer s.gate()()
	return s.Backend.CreateInstance(ctx, st)
}

func (s *stallable) UpdateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	defer s.gate()()
	return s.Backend.UpdateInstance(ctx, st)
}

func (s *stallable) MergeInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	defer s.gate()()
	return s.Backend.MergeInstance(ctx, st)
}

func (s *stallable) ReadPartitions(ctx context.Context) ([]backend.PartitionLease, error) {
	defer s.gate()()
	return s.Backend.ReadPartitions(ctx)
}

func (s *stallable) WritePartition(ctx context.Context, l backend.PartitionLease) (backend.PartitionLease, error) {
	defer s.gate()()
	return s.Backend.WritePartition(ctx, l)
}

// TestStalledWorkerNeverOverwritesTheNewOwner reproduces issue 7's first
// two findings in process: worker A runs an instance and has its deferred
// Pending→Running write on the way when it stalls past its lease; worker B
// takes the partitions and completes the instance; when A thaws, its
// delayed write must not turn the Completed row back into Running, and A
// must stop processing the partitions it lost.
func TestStalledWorkerNeverOverwritesTheNewOwner(t *testing.T) {
	h := newHub(t)
	orch := durable.NewOrchestrator("WaitThenGreet", func(ctx *durable.Context, _ any) (string, error) {
		name, err := durable.WaitForExternalEvent[string](ctx, "go").Await()
		if err != nil {
			return "", err
		}
		return greet.Call(ctx, name).Await()
	})
	lease := 3 * time.Second
	sa := newStallable(h.store)
	a, ca := h.start(engine.Options{Backend: sa, WorkerID: "worker-a", LeaseInterval: lease, StatusFlushDelay: 1500 * time.Millisecond}, orch, greet)
	ctx := context.Background()
	id, err := ca.StartNew(ctx, "WaitThenGreet", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Freeze A once its first episode is in history: its Running write is
	// then due in 1.5 s, while A is stalled, and blocks mid-call.
	deadline := time.Now().Add(20 * time.Second)
	for {
		hist, err := h.store.LoadHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist.Events) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first episode never reached history")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sa.freeze()
	lost := a.OwnedPartitions()

	b, cb := h.start(engine.Options{WorkerID: "worker-b", LeaseInterval: lease}, orch, greet)
	deadline = time.Now().Add(30 * time.Second)
	for len(b.OwnedPartitions()) != h.store.PartitionCount() {
		if time.Now().After(deadline) {
			t.Fatalf("worker B never took over the stalled worker's partitions: %v", b.OwnedPartitions())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cb.RaiseEvent(ctx, id, "go", `"Tokyo"`); err != nil {
		t.Fatal(err)
	}
	st := wait(t, cb, id)
	if st.Status != history.StatusCompleted || st.Output != `"Hi Tokyo"` {
		t.Fatalf("instance: %s %s", st.Status, st.Output)
	}
	finished, err := h.store.GetInstance(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	completed := finished.ETag

	sa.thaw()
	deadline = time.Now().Add(30 * time.Second)
	for len(a.OwnedPartitions()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled worker still treats partitions %v as its own (had %v)", a.OwnedPartitions(), lost)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sa.settle()
	row, err := h.store.GetInstance(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != history.StatusCompleted || row.ETag != completed {
		t.Fatalf("the finished row was written again by the stalled worker: %s (ETag %s, was %s)", row.Status, row.ETag, completed)
	}
	if a.OwnsPartitionOf(id) {
		t.Fatal("the stalled worker still claims the instance's partition")
	}
}
