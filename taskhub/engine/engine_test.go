package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/rawstorage"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestMain(m *testing.M) { azuritetest.Main(m) }

// hub is one task hub with engines and a client for a test.
type hub struct {
	t     *testing.T
	name  string
	store *azurestorage.Store
}

func newHub(t *testing.T) *hub {
	t.Helper()
	name := azuritetest.HubName(t)
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.DeleteTaskHub(context.Background()) })
	return &hub{t: t, name: name, store: store}
}

// start runs an engine with defs on the hub until the test ends, on
// opts.Backend (default: the hub's store), and returns it with a client
// of the same process.
func (h *hub) start(opts engine.Options, defs ...durable.Definition) (*engine.Engine, *client.Client) {
	h.t.Helper()
	reg := durable.NewRegistry()
	if err := reg.Add(defs...); err != nil {
		h.t.Fatal(err)
	}
	if opts.Backend == nil {
		opts.Backend = h.store
	}
	opts.Registry = reg
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if opts.MaxPollInterval == 0 {
		opts.MaxPollInterval = 200 * time.Millisecond
	}
	eng, err := engine.New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		eng.Stop(ctx)
	})
	return eng, client.New(opts.Backend, reg, eng) // the process's client shares its storage
}

func wait(t *testing.T, c *client.Client, id string) client.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := c.WaitForCompletion(ctx, id, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return st
}

// seq3 greets a, b and c in sequence.
var seq3 = durable.NewOrchestrator("Seq3", func(ctx *durable.Context, _ any) ([]string, error) {
	var out []string
	for _, c := range []string{"a", "b", "c"} {
		s, err := greet.Call(ctx, c).Await()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

var greet = durable.NewActivity("Greet", func(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", errors.New("no name given")
	}
	return "Hi " + name, nil
})

func TestActivityFailureFailsOrchestration(t *testing.T) {
	h := newHub(t)
	orch := durable.NewOrchestrator("FailOnEmpty", func(ctx *durable.Context, name string) (string, error) {
		return greet.Call(ctx, name).Await()
	})
	_, c := h.start(engine.Options{}, orch, greet)
	id, err := c.StartNew(context.Background(), "FailOnEmpty", client.StartOptions{Input: ""})
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusFailed {
		t.Fatalf("status %s, want Failed", st.Status)
	}
	if want := `TaskFailedError: activity "Greet" (task 0) failed: Error: no name given`; st.Output != want {
		t.Fatalf("output %q, want %q", st.Output, want)
	}
	events, err := c.GetHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var failed *history.Event
	for i := range events {
		if events[i].Type == history.TaskFailed {
			failed = &events[i]
		}
	}
	if failed == nil || failed.Failure == nil || failed.Failure.ErrorMessage != "no name given" || failed.TaskScheduledID != 0 {
		t.Fatalf("TaskFailed event: %+v", failed)
	}
}

func TestUnregisteredActivityFailsInsteadOfHanging(t *testing.T) {
	h := newHub(t)
	orch := durable.NewOrchestrator("CallsMissing", func(ctx *durable.Context, _ any) (string, error) {
		return durable.CallActivity[string](ctx, "NoSuchActivity", nil).Await()
	})
	_, c := h.start(engine.Options{}, orch)
	id, err := c.StartNew(context.Background(), "CallsMissing", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusFailed || !strings.Contains(st.Output, `activity "NoSuchActivity" is not registered in this app`) {
		t.Fatalf("status %s output %q", st.Status, st.Output)
	}
}

func TestUnknownOrchestratorInQueueFailsTheInstance(t *testing.T) {
	// A start for a name this app does not know (sent by another app's
	// client) fails the instance with a clear reason.
	h := newHub(t)
	_, c := h.start(engine.Options{}, greet)
	remote := client.New(h.store, nil, nil) // no catalog: it cannot check names
	id, err := remote.StartNew(context.Background(), "Elsewhere", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusFailed || !strings.Contains(st.Output, `orchestrator "Elsewhere" is not registered`) {
		t.Fatalf("status %s output %q", st.Status, st.Output)
	}
}

func TestPoisonMessageIsParkedAndDispatcherContinues(t *testing.T) {
	h := newHub(t)
	seq := durable.NewOrchestrator("Seq", func(ctx *durable.Context, _ any) (string, error) {
		return greet.Call(ctx, "x").Await()
	})
	eng, c := h.start(engine.Options{MaxDequeueCount: 2, MessageVisibility: 2 * time.Second}, seq, greet)

	// Garbage straight into every control queue, bypassing our encoder.
	acct, err := azurestorage.ParseConnectionString(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azqueue.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		t.Fatal(err)
	}
	for p := 0; p < h.store.PartitionCount(); p++ {
		q, err := azqueue.NewQueueClientWithSharedKeyCredential(acct.QueueEndpoint+"/"+h.store.ControlQueueName(p), cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.EnqueueMessage(context.Background(), fmt.Sprintf("this is not JSON %d {", p), nil); err != nil {
			t.Fatal(err)
		}
	}
	id, err := c.StartNew(context.Background(), "Seq", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"Hi x"` {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	deadline := time.Now().Add(30 * time.Second)
	for eng.Stats().PoisonMessages < int64(h.store.PartitionCount()) {
		if time.Now().After(deadline) {
			t.Fatalf("parked %d poison messages, want %d", eng.Stats().PoisonMessages, h.store.PartitionCount())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRemoteActivitiesThroughWorkItemQueue forces activities past the local
// runner (one slot and a backlog of one, three parallel calls), so two go through the shared
// work-item queue and are picked up by polling.
func TestRemoteActivitiesThroughWorkItemQueue(t *testing.T) {
	h := newHub(t)
	var running, peak atomic.Int32
	slow := durable.NewActivity("Slow", func(ctx context.Context, n int) (int, error) {
		cur := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		return n * n, nil
	})
	fan := durable.NewOrchestrator("Fan", func(ctx *durable.Context, _ any) (int, error) {
		tasks := []*durable.Task[int]{slow.Call(ctx, 1), slow.Call(ctx, 2), slow.Call(ctx, 3)}
		sum := 0
		for _, tk := range tasks {
			v, err := tk.Await()
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
	eng, c := h.start(engine.Options{MaxConcurrentActivities: 1, MaxLocalActivityBacklog: 1}, fan, slow)
	id, err := c.StartNew(context.Background(), "Fan", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != "14" {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	if peak.Load() != 1 {
		t.Errorf("peak concurrency %d with one activity slot", peak.Load())
	}
	if n := eng.Stats().ActivitiesRun; n != 3 {
		t.Errorf("ran %d activities, want 3", n)
	}
}

// TestTwoWorkersShareAHub runs two engines on one hub: partitions are
// split between them and instances on every partition complete, whichever
// worker's client started them.
func TestTwoWorkersShareAHub(t *testing.T) {
	h := newHub(t)
	seq := durable.NewOrchestrator("Seq", func(ctx *durable.Context, n int) (string, error) {
		return greet.Call(ctx, fmt.Sprint(n)).Await()
	})
	opts := engine.Options{LeaseInterval: 2 * time.Second, WorkerID: "worker-a"}
	a, ca := h.start(opts, seq, greet)
	opts.WorkerID = "worker-b"
	b, cb := h.start(opts, seq, greet)
	deadline := time.Now().Add(30 * time.Second)
	for len(a.OwnedPartitions()) != 2 || len(b.OwnedPartitions()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("partitions not balanced: a %v, b %v", a.OwnedPartitions(), b.OwnedPartitions())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		c := ca
		if i%2 == 1 {
			c = cb
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := c.StartNew(context.Background(), "Seq", client.StartOptions{Input: i})
			if err != nil {
				t.Error(err)
				return
			}
			if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != fmt.Sprintf(`"Hi %d"`, i) {
				t.Errorf("instance %d: %s %s", i, st.Status, st.Output)
			}
		}()
	}
	wg.Wait()
	if a.Stats().Episodes == 0 || b.Stats().Episodes == 0 {
		t.Errorf("episodes: a %d, b %d; both workers should have run some", a.Stats().Episodes, b.Stats().Episodes)
	}
}

// TestNonDeterminismFailsWithPreciseMessage changes the orchestrator
// between two engine lifetimes: the instance fails naming the history
// position, what was recorded and what the code did.
func TestNonDeterminismFailsWithPreciseMessage(t *testing.T) {
	h := newHub(t)
	release := make(chan struct{})
	gate := durable.NewActivity("Gate", func(ctx context.Context, _ any) (string, error) {
		select {
		case <-release:
			return "open", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	v1 := durable.NewOrchestrator("Versioned", func(ctx *durable.Context, _ any) (string, error) {
		if _, err := greet.Call(ctx, "a").Await(); err != nil {
			return "", err
		}
		return gate.Call(ctx, nil).Await()
	})
	e1, c1 := h.start(engine.Options{}, v1, greet, gate)
	id, err := c1.StartNew(context.Background(), "Versioned", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the Gate call is recorded, then stop the first engine.
	deadline := time.Now().Add(30 * time.Second)
	for {
		events, err := c1.GetHistory(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range events {
			if ev.Type == history.TaskScheduled {
				n++
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Gate was never scheduled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stop the first engine while Gate still runs: like a deployment that
	// replaces the code of a waiting instance.
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if err := e1.Stop(ctx); err == nil {
		t.Fatal("Stop returned before the blocked activity finished")
	}
	cancel()
	v2 := durable.NewOrchestrator("Versioned", func(ctx *durable.Context, _ any) (string, error) {
		return durable.CallActivity[string](ctx, "Renamed", "a").Await()
	})
	_, c2 := h.start(engine.Options{}, v2, greet, gate)
	final := wait(t, c2, id)
	if final.Status != history.StatusFailed {
		t.Fatalf("status %s output %s", final.Status, final.Output)
	}
	for _, s := range []string{"NonDeterminismError", "history position 2", `TaskScheduled "Greet" (task 0)`, `TaskScheduled "Renamed" (task 0)`} {
		if !strings.Contains(final.Output, s) {
			t.Errorf("output %q lacks %q", final.Output, s)
		}
	}
}

// rawQueueService is a plain SDK client for the test account's queues, for
// tests that look at (or put) messages behind the engine's back.
func rawQueueService(t *testing.T) *azqueue.ServiceClient {
	t.Helper()
	svc, err := rawstorage.Queues(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// rawTableService is a plain SDK client for the test account's tables.
func rawTableService(t *testing.T) *aztables.ServiceClient {
	t.Helper()
	svc, err := rawstorage.Tables(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func testAccount(t *testing.T) azurestorage.Account {
	t.Helper()
	acct, err := azurestorage.ParseConnectionString(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	return acct
}
