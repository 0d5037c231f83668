package engine_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/invariants"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// counter is the test entity: add, and forward (adds to this entity and
// signals the same add to the entity named by the input's key).
var counter = durable.NewEntity("Counter", durable.Operations[int]{
	"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
	"forward": durable.Op(func(ctx *durable.EntityContext[int], to string) error {
		ctx.SetState(ctx.State() + 1)
		ctx.SignalEntity(durable.NewEntityID("Counter", to), "add", 1)
		return nil
	}),
})

func memoryBackend(t *testing.T) *memory.Backend {
	t.Helper()
	be, err := memory.New(memory.Options{HubName: "EntityHub"})
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// waitEntity polls the entity's state until it is want.
func waitEntity(t *testing.T, c *client.Client, id history.EntityID, want string) client.EntityState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.ReadEntityState(context.Background(), id)
		if err == nil && st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("entity %s: state %q (%v), want %q", id, st.State, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signalConcurrently sends n concurrent add signals of 1..n and returns their sum.
func signalConcurrently(t *testing.T, c *client.Client, id history.EntityID, n int) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.SignalEntity(context.Background(), id, "add", i+1)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return n * (n + 1) / 2
}

// TestEntityCounterOnMemory: 200 concurrent add signals from the client end
// in the exact sum, read back with ReadEntityState; the entity's history is
// an ExecutionStarted whose input is the scheduler state, and its row
// follows Durable Task's entity shape.
func TestEntityCounterOnMemory(t *testing.T) {
	be := memoryBackend(t)
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be}, counter)
	id := counter.ID("k1")
	sum := signalConcurrently(t, c, id, 200)
	st := waitEntity(t, c, id, strconv.Itoa(sum))
	if !st.Exists || st.LastOperationTime.IsZero() {
		t.Errorf("entity state %+v", st)
	}
	if n, err := client.ReadEntity(context.Background(), c, counter, "k1"); err != nil || n != sum {
		t.Errorf("ReadEntity = %d, %v; want %d", n, err, sum)
	}
	checkEntityStorage(t, be, id, sum)
}

// checkEntityStorage checks an entity's history and Instances row.
func checkEntityStorage(t *testing.T, be backend.Backend, id history.EntityID, sum int) {
	t.Helper()
	hist, err := be.LoadHistory(context.Background(), id.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.Events) != 3 || hist.Events[0].Type != history.OrchestratorStarted || hist.Events[1].Type != history.ExecutionStarted ||
		hist.Events[2].Type != history.OrchestratorCompleted || hist.Events[1].Name != id.String() {
		t.Fatalf("entity history %+v, want OrchestratorStarted, ExecutionStarted named %s, OrchestratorCompleted", hist.Events, id)
	}
	s, err := history.ParseEntitySchedulerState(hist.Events[1].Input)
	if err != nil || s.State != strconv.Itoa(sum) {
		t.Fatalf("scheduler state %+v (%v), want state %d", s, err, sum)
	}
	row, err := be.GetInstance(context.Background(), id.String(), true)
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != history.StatusRunning || row.ExecutionID != hist.ExecutionID || row.Input != hist.Events[1].Input ||
		row.CustomStatus != `{"entityExists":true}` || !row.CreatedTime.Equal(hist.Events[1].Timestamp) || row.Name != id.String() {
		t.Errorf("Instances row %+v does not match the entity's history %+v", row, hist.Events[1])
	}
}

// failDeletes fails the first n deletes of messages for entities: a crash
// between the commit and the delete, as the message sees it.
type failDeletes struct {
	backend.Backend
	left atomic.Int32
}

func (f *failDeletes) DeleteMessage(ctx context.Context, r backend.Receipt) error {
	if f.left.Add(-1) >= 0 {
		return errors.New("injected: delete lost")
	}
	return f.Backend.DeleteMessage(ctx, r)
}

// TestEntityRedeliveredRequestNotReapplied: the deletes of the first
// five applied requests fail (as after a crash between the commit and the
// deletes), so their messages reappear after MessageVisibility; the entity
// recognises them by their request IDs and the sum stays exact, on the
// in-memory backend and on Azurite.
func TestEntityRedeliveredRequestNotReapplied(t *testing.T) {
	for _, name := range []string{"memory", "azurite"} {
		t.Run(name, func(t *testing.T) {
			var inner backend.Backend
			var drained func() bool
			h := &hub{t: t}
			if name == "memory" {
				mem := memoryBackend(t)
				inner, h.name = mem, mem.HubName()
				drained = func() bool { return queued(mem) == 0 }
			} else {
				h = newHub(t)
				inner = h.store
				drained = func() bool { return true } // the invariant checker below waits for the queues
			}
			be := &failDeletes{Backend: inner}
			be.left.Store(5)
			eng, c := h.start(engine.Options{Backend: be, MessageVisibility: 2 * time.Second}, counter)
			id := counter.ID("dup")
			sum := 0
			for i := 1; i <= 10; i++ {
				if err := c.SignalEntity(context.Background(), id, "add", i); err != nil {
					t.Fatal(err)
				}
				sum += i
			}
			waitEntity(t, c, id, strconv.Itoa(sum))
			deadline := time.Now().Add(30 * time.Second)
			for eng.Stats().DroppedMessages < 5 || !drained() {
				if time.Now().After(deadline) {
					t.Fatalf("dropped %d messages (want 5), queues drained: %v", eng.Stats().DroppedMessages, drained())
				}
				time.Sleep(20 * time.Millisecond)
			}
			checkEntityStorage(t, inner, id, sum)
			if name == "azurite" {
				checker, err := invariants.New(invariants.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: h.name, DrainTimeout: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				vs, err := checker.Check(t.Context(), []string{id.String()}, func(string) invariants.Want { return invariants.Want{EntityState: strconv.Itoa(sum)} })
				if err != nil {
					t.Fatal(err)
				}
				if len(vs) > 0 {
					t.Errorf("%d invariant violations:\n%s", len(vs), invariants.Format(vs))
				}
			}
		})
	}
}

// TestEntitySignalsEntity: an operation's signal to another entity is
// delivered and applied once.
func TestEntitySignalsEntity(t *testing.T) {
	be := memoryBackend(t)
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be}, counter)
	for range 5 {
		if err := c.SignalEntity(context.Background(), counter.ID("a"), "forward", "b"); err != nil {
			t.Fatal(err)
		}
	}
	waitEntity(t, c, counter.ID("a"), "5")
	waitEntity(t, c, counter.ID("b"), "5")
}

// TestSignalEntityBadInput: invalid IDs and unknown names fail with
// errors naming the problem, and nothing is sent.
func TestSignalEntityBadInput(t *testing.T) {
	be := memoryBackend(t)
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be}, counter)
	for _, tc := range []struct {
		id   history.EntityID
		op   string
		want error
	}{
		{history.NewEntityID("Counter", ""), "add", history.ErrInvalidEntityID},
		{history.NewEntityID("Counter", "a/b"), "add", history.ErrInvalidEntityID},
		{history.NewEntityID("Nope", "k"), "add", client.ErrUnknownEntity},
		{history.NewEntityID("Counter", "k"), "", client.ErrInvalidInput},
	} {
		if err := c.SignalEntity(context.Background(), tc.id, tc.op, 1); !errors.Is(err, tc.want) {
			t.Errorf("SignalEntity(%v, %q) = %v, want %v", tc.id, tc.op, err, tc.want)
		}
	}
	if n := queued(be); n != 0 {
		t.Errorf("%d messages queued after rejected signals", n)
	}
	if _, err := c.ReadEntityState(context.Background(), counter.ID("none")); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("ReadEntityState of a missing entity = %v, want ErrNotFound", err)
	}
}

// recordReleases records the delays of SetVisibility calls.
type recordReleases struct {
	backend.Backend
	mu     sync.Mutex
	delays []time.Duration
}

func (r *recordReleases) SetVisibility(ctx context.Context, rc backend.Receipt, d time.Duration) (backend.Receipt, error) {
	r.mu.Lock()
	r.delays = append(r.delays, d)
	r.mu.Unlock()
	return r.Backend.SetVisibility(ctx, rc, d)
}

func (r *recordReleases) released(d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.delays, d)
}

// TestUnregisteredEntityKept: a signal to an entity this app does not
// define stays in its queue, hidden for a minute, unapplied and not parked.
func TestUnregisteredEntityKept(t *testing.T) {
	mem := memoryBackend(t)
	be := &recordReleases{Backend: mem}
	h := &hub{t: t, name: mem.HubName()}
	h.start(engine.Options{Backend: be}, counter)
	c := client.New(mem, nil, nil) // no catalog: the name is not checked
	id := history.NewEntityID("Removed", "k")
	if err := c.SignalEntity(context.Background(), id, "add", 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !be.released(time.Minute) {
		if time.Now().After(deadline) {
			t.Fatal("the signal to an unregistered entity was not put back for a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := mem.Len(mem.ControlQueueName(mem.PartitionOf(id.String()))); n != 1 {
		t.Errorf("%d messages in the entity's control queue, want the signal kept", n)
	}
	if p := mem.Parked(); len(p) != 0 {
		t.Errorf("parked %+v, want nothing parked", p)
	}
	if hist, err := mem.LoadHistory(context.Background(), id.String()); err == nil && len(hist.Events) > 0 {
		t.Errorf("history written for an unregistered entity: %+v", hist.Events)
	}
}

// TestEntityOnAzurite: 200 concurrent add signals into a Counter on
// Azurite end in the exact sum; the entity's Instances row and History
// rows, read with the plain SDK, have Durable Task's entity shape; the
// invariant checker passes (one ExecutionStarted, row equal to history,
// queues drained).
func TestEntityOnAzurite(t *testing.T) {
	h := newHub(t)
	_, c := h.start(engine.Options{}, counter)
	id := counter.ID("azurite")
	sum := signalConcurrently(t, c, id, 200)
	for range 3 {
		if err := c.SignalEntity(context.Background(), counter.ID("src"), "forward", "azurite"); err != nil {
			t.Fatal(err)
		}
	}
	sum += 3
	st := waitEntity(t, c, id, strconv.Itoa(sum))
	waitEntity(t, c, counter.ID("src"), "3")

	raw := rawStorage(t, h)
	row := raw.instanceRow(t, h, id.String())
	state, err := history.ParseEntitySchedulerState(row["Input"].(string))
	if err != nil || state.State != strconv.Itoa(sum) {
		t.Errorf("Instances Input %v: state %+v (%v), want %d", row["Input"], state, err, sum)
	}
	for col, want := range map[string]string{"RuntimeStatus": "Running", "Name": id.String(), "CustomStatus": `{"entityExists":true}`} {
		if row[col] != want {
			t.Errorf("Instances %s = %v, want %q", col, row[col], want)
		}
	}
	if v, ok := row["Version"]; ok && v != "" {
		t.Errorf("Instances Version = %v, want empty", v)
	}
	created, err := time.Parse(time.RFC3339Nano, row["CreatedTime"].(string))
	if err != nil || !created.Equal(st.LastOperationTime) {
		t.Errorf("CreatedTime %v (%v), ReadEntityState's last operation time %v", row["CreatedTime"], err, st.LastOperationTime)
	}
	var events []map[string]any
	for _, r := range raw.historyRows(t, h, id.String()) {
		if r["RowKey"] != "sentinel" && r["ExecutionId"] == row["ExecutionId"] {
			events = append(events, r)
		}
	}
	if len(events) != 3 || events[0]["EventType"] != "OrchestratorStarted" || events[1]["EventType"] != "ExecutionStarted" ||
		events[2]["EventType"] != "OrchestratorCompleted" || events[1]["Name"] != id.String() || events[1]["Input"] != row["Input"] {
		t.Errorf("History rows of the current execution %v, want OrchestratorStarted, ExecutionStarted named %s with the row's Input, OrchestratorCompleted", events, id)
	}

	checker, err := invariants.New(invariants.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: h.name, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{id.String(), counter.ID("src").String()}
	vs, err := checker.Check(t.Context(), ids, func(id string) invariants.Want {
		if id == counter.ID("src").String() {
			return invariants.Want{EntityState: "3"}
		}
		return invariants.Want{EntityState: strconv.Itoa(sum)}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) > 0 {
		t.Errorf("%d invariant violations:\n%s", len(vs), invariants.Format(vs))
	}
}

// TestEntitySignalFromEntityRedelivered: the deletes of both the client's
// request and the signal the entity sent fail; both copies reappear and
// are dropped, so each entity counts once.
func TestEntitySignalFromEntityRedelivered(t *testing.T) {
	mem := memoryBackend(t)
	be := &failDeletes{Backend: mem}
	be.left.Store(2)
	h := &hub{t: t, name: mem.HubName()}
	eng, c := h.start(engine.Options{Backend: be, MessageVisibility: 2 * time.Second}, counter)
	if err := c.SignalEntity(context.Background(), counter.ID("a"), "forward", "b"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for eng.Stats().DroppedMessages < 2 || queued(mem) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %d messages (want 2), %d still queued", eng.Stats().DroppedMessages, queued(mem))
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkEntityStorage(t, mem, counter.ID("a"), 1)
	checkEntityStorage(t, mem, counter.ID("b"), 1)
}

// TestEntityScheduledSignal: a signal for a later time ("op@{due}") is
// applied at or after that time.
func TestEntityScheduledSignal(t *testing.T) {
	be := memoryBackend(t)
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be}, counter)
	due := time.Now().Add(1500 * time.Millisecond)
	if err := c.SignalEntity(context.Background(), counter.ID("later"), "add", 7, client.SignalOptions{At: due}); err != nil {
		t.Fatal(err)
	}
	st := waitEntity(t, c, counter.ID("later"), "7")
	if st.LastOperationTime.Before(history.StorageTime(due)) {
		t.Errorf("applied at %v, before its due time %v", st.LastOperationTime, due)
	}
}
