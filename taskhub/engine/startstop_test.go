package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// gatedStore fails chosen backend steps while their switch is on.
type gatedStore struct {
	backend.Backend
	createDown atomic.Bool // CreateTaskHub fails: storage unreachable
	leaseLost  atomic.Bool // RenewAppLease and AcquireAppLease report another app
	creates    atomic.Int64
	renewals   atomic.Int64
}

var errUnreachable = errors.New("dial tcp: connection refused (injected)")

func (g *gatedStore) CreateTaskHub(ctx context.Context) error {
	g.creates.Add(1)
	if g.createDown.Load() {
		return errUnreachable
	}
	return g.Backend.CreateTaskHub(ctx)
}

func (g *gatedStore) inUse() error {
	return &backend.HubInUseError{Hub: g.HubName(), Lease: "the app lease", Holder: "app \"other\"", App: ""}
}

func (g *gatedStore) AcquireAppLease(ctx context.Context) error {
	if g.leaseLost.Load() {
		return g.inUse()
	}
	return g.Backend.AcquireAppLease(ctx)
}

func (g *gatedStore) RenewAppLease(ctx context.Context) error {
	g.renewals.Add(1)
	if g.leaseLost.Load() {
		return g.inUse()
	}
	return g.Backend.RenewAppLease(ctx)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func newEngine(t *testing.T, be backend.Backend, opts engine.Options, defs ...durable.Definition) (*engine.Engine, *client.Client) {
	t.Helper()
	reg := durable.NewRegistry()
	if err := reg.Add(defs...); err != nil {
		t.Fatal(err)
	}
	opts.Backend, opts.Registry = be, reg
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.MaxPollInterval == 0 {
		opts.MaxPollInterval = 200 * time.Millisecond
	}
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		eng.Stop(ctx)
	})
	return eng, client.New(be, reg, eng)
}

// poll waits for cond, failing the test after timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStartRetriesUntilStorageIsReachable(t *testing.T) {
	h := newHub(t)
	g := &gatedStore{Backend: h.store}
	g.createDown.Store(true)
	eng, c := newEngine(t, g, engine.Options{}, greetOnce, greet)
	started := make(chan error, 1)
	go func() { started <- eng.Start(context.Background()) }()

	poll(t, 10*time.Second, "a few failed start attempts", func() bool { return g.creates.Load() >= 3 })
	err := eng.Ready()
	var ue *backend.UnavailableError
	if !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, errUnreachable) || !errors.As(err, &ue) || ue.RetryAfter <= 0 {
		t.Fatalf("Ready while storage is down: %v, want an UnavailableError with the cause and a retry delay", err)
	}
	select {
	case err := <-started:
		t.Fatalf("Start returned while storage was down: %v", err)
	default:
	}

	g.createDown.Store(false)
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Start did not succeed once storage was back")
	}
	if err := eng.Ready(); err != nil {
		t.Fatalf("Ready after Start: %v", err)
	}
	if n := g.creates.Load(); n > 20 {
		t.Errorf("%d CreateTaskHub attempts: the backoff is not backing off", n)
	}
	id := start(t, c, "GreetOnce", "Ada")
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"Hi Ada"` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
}

var greetOnce = durable.NewOrchestrator("GreetOnce", func(ctx *durable.Context, name string) (string, error) {
	return greet.Call(ctx, name).Await()
})

func TestStartIsStoppedWhileRetrying(t *testing.T) {
	h := newHub(t)
	g := &gatedStore{Backend: h.store}
	g.createDown.Store(true)
	eng, _ := newEngine(t, g, engine.Options{})
	started := make(chan error, 1)
	go func() { started <- eng.Start(context.Background()) }()
	poll(t, 10*time.Second, "a failed start attempt", func() bool { return g.creates.Load() >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := eng.Stop(ctx); err != nil {
		t.Fatalf("Stop of an engine that never started: %v", err)
	}
	select {
	case err := <-started:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), errUnreachable.Error()) {
			t.Fatalf("Start after Stop: %v, want it cancelled, naming the last failure", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start kept retrying after Stop")
	}
	if err := eng.Ready(); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Ready after Stop: %v", err)
	}
}

func TestStartRefusesAHubOfAnotherApp(t *testing.T) {
	h := newHub(t)
	conn := azuritetest.ConnectionString(t)
	one, err := azurestorage.New(azurestorage.Options{ConnectionString: conn, HubName: h.name, AppName: "one"})
	if err != nil {
		t.Fatal(err)
	}
	two, err := azurestorage.New(azurestorage.Options{ConnectionString: conn, HubName: h.name, AppName: "two"})
	if err != nil {
		t.Fatal(err)
	}
	e1, _ := newEngine(t, one, engine.Options{})
	if err := e1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e2, _ := newEngine(t, two, engine.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = e2.Start(ctx)
	var inUse *backend.HubInUseError
	if !errors.As(err, &inUse) || ctx.Err() != nil {
		t.Fatalf("Start of app two: %v, want an immediate HubInUseError", err)
	}
	if err := e2.Ready(); !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, backend.ErrHubInUse) {
		t.Fatalf("Ready of the refused engine: %v", err)
	}
	if got := e2.OwnedPartitions(); len(got) != 0 {
		t.Fatalf("the refused engine owns partitions %v", got)
	}
}

func TestLostAppLeaseStopsPartitionWork(t *testing.T) {
	h := newHub(t)
	g := &gatedStore{Backend: h.store}
	eng, c := newEngine(t, g, engine.Options{AppLeaseRenewInterval: 50 * time.Millisecond, LeaseInterval: 3 * time.Second}, greetOnce, greet)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(eng.OwnedPartitions()); n != 4 {
		t.Fatalf("owns %d partitions, want 4", n)
	}
	g.leaseLost.Store(true)
	poll(t, 10*time.Second, "the partitions to be dropped", func() bool { return len(eng.OwnedPartitions()) == 0 })
	before := g.renewals.Load()
	g.leaseLost.Store(false)
	// The lease comes back at a later renewal; the partitions follow with
	// the next ownership pass.
	poll(t, 20*time.Second, "the partitions to come back", func() bool { return len(eng.OwnedPartitions()) == 4 })
	if g.renewals.Load() == before {
		t.Error("no renewal after the lease came back")
	}
	id := start(t, c, "GreetOnce", "Bo")
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"Hi Bo"` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
}

func TestStopInterruptsActivitiesWhenTheGraceRunsOut(t *testing.T) {
	h := newHub(t)
	var mu sync.Mutex
	runs, cancelled := 0, 0
	blocking := true
	slow := durable.NewActivity("Slow", func(ctx context.Context, _ any) (string, error) {
		mu.Lock()
		runs++
		block := blocking
		mu.Unlock()
		if !block {
			return "finished", nil
		}
		<-ctx.Done()
		mu.Lock()
		cancelled++
		mu.Unlock()
		return "", ctx.Err()
	})
	orch := durable.NewOrchestrator("CallSlow", func(ctx *durable.Context, _ any) (string, error) {
		return slow.Call(ctx, nil).Await()
	})
	opts := engine.Options{MessageVisibility: 2 * time.Second, LeaseInterval: 3 * time.Second, ReleaseTimeout: time.Second}
	e1, c1 := newEngine(t, h.store, opts, orch, slow)
	if err := e1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := start(t, c1, "CallSlow", nil)
	poll(t, 10*time.Second, "the activity to run", func() bool { mu.Lock(); defer mu.Unlock(); return runs == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := e1.Stop(ctx)
	took := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a blocked activity: %v, want the grace's DeadlineExceeded", err)
	}
	t.Logf("Stop returned after %v (grace 300ms, release budget 1s): %v", took.Round(time.Millisecond), err)
	mu.Lock()
	if cancelled != 1 {
		t.Errorf("the activity saw %d cancellations, want 1", cancelled)
	}
	blocking = false
	mu.Unlock()

	// A new worker completes the instance: the interrupted run was not
	// recorded as a failure, and the activity ran again.
	_, c2 := h.start(engine.Options{}, orch, slow)
	st := wait(t, c2, id)
	if st.Status != history.StatusCompleted || st.Output != `"finished"` {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
	types := historyTypes(t, c2, id)
	if count(types, "TaskFailed") != 0 || count(types, "TaskCompleted") != 1 {
		t.Fatalf("history %v: want one TaskCompleted and no TaskFailed", types)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs != 2 {
		t.Errorf("the activity ran %d times, want 2 (interrupted, then again)", runs)
	}
}
