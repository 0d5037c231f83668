package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	counter "github.com/go-durable/durablefunctions/Counter"
	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/enginetest"
	"github.com/go-durable/durablefunctions/internal/rawstorage"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// quick is an orchestration that completes at once: a lock holder that no
// longer runs.
var quick = durable.NewOrchestrator("Quick", func(*durable.Context, any) (string, error) { return "done", nil })

// cleanBackend returns a fresh task hub on storage ("memory" or "azurite").
func cleanBackend(t *testing.T, storage string) backend.Backend {
	t.Helper()
	switch storage {
	case "memory":
		m, err := memory.New(memory.Options{HubName: "CleanHub"})
		if err != nil {
			t.Fatal(err)
		}
		return m
	case "azurite":
		store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: azuritetest.HubName(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.DeleteTaskHub(context.Background()) })
		return store
	}
	t.Fatalf("unknown storage %q", storage)
	return nil
}

// writeEntityRow writes the history (the execution's ExecutionStarted with
// s as its input) and the Instances row an entity with scheduler state s
// has after a batch at last, as a storage fault (or a crashed lock holder)
// leaves it.
func writeEntityRow(ctx context.Context, t *testing.T, be backend.Backend, key string, s history.EntitySchedulerState, last time.Time) {
	t.Helper()
	id := history.NewEntityID("Counter", key).String()
	input, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	status, err := s.Status().Encode()
	if err != nil {
		t.Fatal(err)
	}
	start := history.NewEvent(history.ExecutionStarted, last)
	start.Name, start.Input = id, input
	start.Instance = history.OrchestrationInstance{InstanceID: id, ExecutionID: history.NewID()}
	if _, err := be.AppendHistory(ctx, id, start.Instance.ExecutionID, 0, []history.Event{start}, ""); err != nil {
		t.Fatalf("write entity history %s: %v", id, err)
	}
	row := backend.InstanceState{InstanceID: id, Name: id, ExecutionID: start.Instance.ExecutionID, Input: input, CustomStatus: status,
		CreatedTime: last, LastUpdatedTime: last, Status: history.StatusRunning, HistoryPosition: 1}
	if _, err := be.CreateInstance(ctx, row); err != nil {
		t.Fatalf("write entity row %s: %v", id, err)
	}
}

// waitRow polls the Instances row of id until cond holds.
func waitRow(ctx context.Context, t *testing.T, be backend.Backend, id string, cond func(backend.InstanceState) bool) backend.InstanceState {
	t.Helper()
	for {
		row, err := be.GetInstance(ctx, id, true)
		if err == nil && cond(row) {
			return row
		}
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("row %s: %+v, %v; the condition did not hold in time", id, row, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// release is what the tests expect in the queue: the target and the
// EventRaised's name and input.
type release struct{ target, name, input string }

// controlMessages returns, sorted, every message in the hub's control
// queues as a release, leaving them there: from Azurite through the plain
// SDK (the stored MessageData JSON), from memory through the backend.
func controlMessages(ctx context.Context, t *testing.T, be backend.Backend, storage string) []release {
	t.Helper()
	var out []release
	switch storage {
	case "memory":
		for p := range be.PartitionCount() {
			got, bad, err := be.ReceiveControl(ctx, p, 32, time.Minute)
			if err != nil || len(bad) != 0 {
				t.Fatalf("receive control %d: %v, %d undecodable", p, err, len(bad))
			}
			for _, m := range got {
				out = append(out, release{m.Message.Target.InstanceID + "|" + m.Message.Target.ExecutionID, m.Message.Event.Name, m.Message.Event.Input})
				// Visible again, for the engine that comes next (a peek).
				if _, err := be.SetVisibility(ctx, m.Receipt, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	case "azurite":
		svc, err := rawstorage.Queues(azuritetest.ConnectionString(t))
		if err != nil {
			t.Fatal(err)
		}
		for p := range be.PartitionCount() {
			q := svc.NewQueueClient(fmt.Sprintf("%s-control-%02d", strings.ToLower(be.HubName()), p))
			n := int32(32)
			peeked, err := q.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: &n})
			if err != nil {
				t.Fatalf("peek control %d: %v", p, err)
			}
			for _, m := range peeked.Messages {
				// DurableTask.AzureStorage MessageData > TaskMessage
				// (TaskMessage.cs): the event and its target.
				var md struct {
					TaskMessage struct {
						Event struct {
							Type      string `json:"$type"`
							EventType int
							Name      string
							Input     string
						}
						OrchestrationInstance struct{ InstanceId, ExecutionId string }
					}
				}
				if err := json.Unmarshal([]byte(*m.MessageText), &md); err != nil {
					t.Fatalf("queue message %s: %v", *m.MessageText, err)
				}
				ev, inst := md.TaskMessage.Event, md.TaskMessage.OrchestrationInstance
				if ev.Type != "DurableTask.Core.History.EventRaisedEvent" || ev.EventType != int(history.EventRaised) {
					t.Errorf("queue message event type %q (%d), want an EventRaisedEvent", ev.Type, ev.EventType)
				}
				out = append(out, release{inst.InstanceId + "|" + inst.ExecutionId, ev.Name, ev.Input})
			}
		}
	}
	slices.SortFunc(out, func(a, b release) int { return strings.Compare(a.target, b.target) })
	return out
}

// TestCleanEntityStorage runs Counter entities through an engine (one with
// state, one emptied by "delete"), adds the rows a storage fault leaves
// (entities locked by an orchestration that never existed, by one that
// completed, by one that runs, by two whose rows lag behind their started
// histories; 110 empty entities idle for an hour, so that
// the clean pages), and cleans, on memory and on Azurite: orphaned locks get
// exactly Durable Task's release message, which the engine honours; the
// idle empty entities go, the just-emptied one stays until EmptyFor allows
// it, and a last run finds nothing more to do.
func TestCleanEntityStorage(t *testing.T) { onBothBackends(t, testCleanEntityStorage) }

func testCleanEntityStorage(t *testing.T, storage string) {
	ctx := testCtx(t)
	be := cleanBackend(t, storage)
	eng, reg, c := enginetest.Start(t, engine.Options{Backend: be}, counter.Entity, quick)

	full, gone := history.NewEntityID("Counter", "full"), history.NewEntityID("Counter", "gone")
	for _, s := range []struct {
		id history.EntityID
		op string
		in any
	}{{full, "add", 3}, {gone, "add", 1}, {gone, "delete", nil}} {
		if err := c.SignalEntity(ctx, s.id, s.op, s.in); err != nil {
			t.Fatal(err)
		}
	}
	waitRow(ctx, t, be, full.String(), func(r backend.InstanceState) bool { return strings.Contains(r.Input, `"state":"3"`) })
	emptied := waitRow(ctx, t, be, gone.String(), func(r backend.InstanceState) bool { return r.CustomStatus == "{}" })
	if _, err := c.ReadEntityState(ctx, gone); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("deleted entity: %v, want ErrNotFound", err)
	}
	done, err := c.StartNew(ctx, "Quick", client.StartOptions{InstanceID: "holder-done"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.WaitForCompletion(ctx, done, 0); err != nil || st.Status != history.StatusCompleted {
		t.Fatalf("holder: %+v, %v", st, err)
	}
	// From here on nothing processes the control queues: the releases stay
	// there to be read.
	if err := eng.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	if _, err := be.CreateInstance(ctx, backend.InstanceState{InstanceID: "holder-live", Name: "Quick", ExecutionID: history.NewID(),
		CreatedTime: now, LastUpdatedTime: now, Status: history.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	// Holders whose row lags behind their history, as the engine's deferred
	// row updates leave them: running, so their locks stay.
	startedAt := history.NewEvent(history.ExecutionStarted, now)
	startedAt.Name = "Quick"
	for _, holder := range []string{"holder-unwritten", "holder-pending"} {
		startedAt.Instance = history.OrchestrationInstance{InstanceID: holder, ExecutionID: history.NewID()}
		if _, err := be.AppendHistory(ctx, holder, startedAt.Instance.ExecutionID, 0, []history.Event{startedAt}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := be.CreateInstance(ctx, backend.InstanceState{InstanceID: "holder-pending", Name: "Quick", ExecutionID: history.NewID(),
		CreatedTime: now, LastUpdatedTime: now, Status: history.StatusPending}); err != nil {
		t.Fatal(err)
	}
	writeEntityRow(ctx, t, be, "held-unwritten", history.EntitySchedulerState{LockedBy: "holder-unwritten"}, now.Add(-time.Hour))
	writeEntityRow(ctx, t, be, "held-pending", history.EntitySchedulerState{LockedBy: "holder-pending"}, now.Add(-time.Hour))
	writeEntityRow(ctx, t, be, "orphan-ghost", history.EntitySchedulerState{State: "5", LockedBy: "ghost", LockID: history.NewID()}, now)
	writeEntityRow(ctx, t, be, "orphan-done", history.EntitySchedulerState{LockedBy: "holder-done"}, now.Add(-time.Hour))
	writeEntityRow(ctx, t, be, "held", history.EntitySchedulerState{State: "7", LockedBy: "holder-live"}, now.Add(-time.Hour))
	const stale = 110 // more than the 100 rows of a page
	var wg sync.WaitGroup
	for i := range stale {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeEntityRow(ctx, t, be, fmt.Sprintf("stale-%03d", i), history.EntitySchedulerState{}, now.Add(-time.Hour))
		}()
	}
	wg.Wait()

	remote := client.New(be, reg, nil) // another process: no engine to hand over to
	res, err := remote.CleanEntityStorage(ctx, client.CleanEntityStorageOptions{RemoveEmptyEntities: true, ReleaseOrphanedLocks: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := (client.CleanEntityStorageResult{EmptyEntitiesRemoved: stale, OrphanedLocksReleased: 2}); res != want {
		t.Fatalf("first clean = %+v, want %+v", res, want)
	}
	got := controlMessages(ctx, t, be, storage)
	want := []release{
		{"@counter@orphan-done|", "release", `{"parent":"holder-done","id":"fix-orphaned-lock"}`},
		{"@counter@orphan-ghost|", "release", `{"parent":"ghost","id":"fix-orphaned-lock"}`},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("control queues hold\n %v\nwant\n %v", got, want)
	}
	rows, _, err := be.QueryInstances(ctx, backend.InstanceQuery{InstanceIDPrefix: "@counter@stale-"})
	if err != nil || len(rows) != 0 {
		t.Fatalf("stale entities left: %d, %v", len(rows), err)
	}
	for _, key := range []string{"full", "gone", "orphan-ghost", "orphan-done", "held", "held-unwritten", "held-pending"} {
		if _, err := be.GetInstance(ctx, history.NewEntityID("Counter", key).String(), false); err != nil {
			t.Errorf("entity %s after the first clean: %v", key, err)
		}
	}
	if st, err := remote.ReadEntityState(ctx, full); err != nil || st.State != "3" {
		t.Fatalf("full entity: %+v, %v", st, err)
	}

	// An engine again: it takes the releases, which free the two locks.
	enginetest.Start(t, engine.Options{Backend: be}, counter.Entity, quick)
	waitRow(ctx, t, be, "@counter@orphan-ghost", func(r backend.InstanceState) bool { return r.CustomStatus == `{"entityExists":true}` })
	waitRow(ctx, t, be, "@counter@orphan-done", func(r backend.InstanceState) bool { return r.CustomStatus == "{}" })

	// The entity emptied a moment ago, and the one whose lock was the
	// only thing left, go once EmptyFor is shorter than their idle time
	// (their batches ran before their rows were written); then nothing is
	// left to do.
	res, err = remote.CleanEntityStorage(ctx, client.CleanEntityStorageOptions{RemoveEmptyEntities: true, ReleaseOrphanedLocks: true, EmptyFor: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if want := (client.CleanEntityStorageResult{EmptyEntitiesRemoved: 2}); res != want {
		t.Fatalf("second clean (gone emptied %v ago) = %+v, want %+v", time.Since(emptied.LastUpdatedTime), res, want)
	}
	for _, id := range []string{gone.String(), "@counter@orphan-done"} {
		if _, err := be.GetInstance(ctx, id, false); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("emptied entity %s's row after the clean: %v, want ErrNotFound", id, err)
		}
		if h, err := be.LoadHistory(ctx, id); err != nil || len(h.Events) != 0 {
			t.Fatalf("emptied entity %s's history after the clean: %d events, %v", id, len(h.Events), err)
		}
	}
	res, err = remote.CleanEntityStorage(ctx, client.CleanEntityStorageOptions{RemoveEmptyEntities: true, ReleaseOrphanedLocks: true, EmptyFor: time.Nanosecond})
	if err != nil || res != (client.CleanEntityStorageResult{}) {
		t.Fatalf("last clean = %+v, %v; want nothing to do", res, err)
	}
	list, _, err := remote.ListEntities(ctx, client.EntityQuery{Name: "Counter", WithState: true})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range list {
		left = append(left, e.ID.Key+"="+e.State)
	}
	if g := strings.Join(left, " "); g != "full=3 held=7 orphan-ghost=5" {
		t.Fatalf("entities with state after cleaning: %q", g)
	}
}

// TestCleanEntityStorageBadStatus: an entity row whose status is not JSON
// stops the clean with an error naming the entity, and nothing else is
// touched; without an option nothing is read at all.
func TestCleanEntityStorageBadStatus(t *testing.T) {
	ctx := testCtx(t)
	be := cleanBackend(t, "memory")
	if err := be.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	id := history.NewEntityID("Counter", "bad").String()
	if _, err := be.CreateInstance(ctx, backend.InstanceState{InstanceID: id, Name: id, CustomStatus: "not json",
		Status: history.StatusRunning, LastUpdatedTime: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c := client.New(be, nil, nil)
	if res, err := c.CleanEntityStorage(ctx, client.CleanEntityStorageOptions{}); err != nil || res != (client.CleanEntityStorageResult{}) {
		t.Fatalf("clean without options = %+v, %v", res, err)
	}
	_, err := c.CleanEntityStorage(ctx, client.CleanEntityStorageOptions{RemoveEmptyEntities: true, ReleaseOrphanedLocks: true})
	var syntax *json.SyntaxError
	if !errors.As(err, &syntax) || !strings.Contains(err.Error(), `entity "@counter@bad"`) {
		t.Fatalf("clean = %v, want a JSON syntax error naming the entity", err)
	}
	if _, err := be.GetInstance(ctx, id, false); err != nil {
		t.Fatalf("row after the failed clean: %v", err)
	}
}

// TestCleanedEntityStartsAfresh: an entity removed by the clean of the
// engine's own process (whose cache still holds it) takes its next signal as
// a new entity, on memory and on Azurite.
func TestCleanedEntityStartsAfresh(t *testing.T) { onBothBackends(t, testCleanedEntityStartsAfresh) }

func testCleanedEntityStartsAfresh(t *testing.T, storage string) {
	ctx := testCtx(t)
	be := cleanBackend(t, storage)
	_, _, c := enginetest.Start(t, engine.Options{Backend: be}, counter.Entity)
	id := history.NewEntityID("Counter", "again")
	for _, op := range []string{"add", "delete"} {
		if err := c.SignalEntity(ctx, id, op, map[string]any{"add": 2}[op]); err != nil {
			t.Fatal(err)
		}
	}
	waitRow(ctx, t, be, id.String(), func(r backend.InstanceState) bool { return r.CustomStatus == "{}" })
	// The batch ran before its row was written, so its time is in the past
	// by more than a nanosecond now.
	res, err := c.CleanEntityStorage(ctx, client.CleanEntityStorageOptions{RemoveEmptyEntities: true, EmptyFor: time.Nanosecond})
	if err != nil || res != (client.CleanEntityStorageResult{EmptyEntitiesRemoved: 1}) {
		t.Fatalf("clean = %+v, %v; want one entity removed", res, err)
	}
	if _, err := be.GetInstance(ctx, id.String(), false); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("row after the clean: %v", err)
	}
	if err := c.SignalEntity(ctx, id, "add", 4); err != nil {
		t.Fatal(err)
	}
	row := waitRow(ctx, t, be, id.String(), func(r backend.InstanceState) bool { return strings.Contains(r.Input, `"state":"4"`) })
	if st, err := c.ReadEntityState(ctx, id); err != nil || st.State != "4" {
		t.Fatalf("entity after the clean and a signal: %+v, %v (row %+v)", st, err, row)
	}
}
