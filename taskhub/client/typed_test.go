package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// order and receipt are the typed input and output of the tests' orchestrator.
type order struct {
	Item  string `json:"item"`
	Count int    `json:"count"`
}

type receipt struct {
	Lines []string `json:"lines"`
	Total int      `json:"total"`
}

// progress is the tests' custom status.
type progress struct {
	Done  int    `json:"done"`
	Stage string `json:"stage"`
}

var errOutOfStock = errors.New("out of stock")

var pack = durable.NewActivity("Pack", func(_ context.Context, o order) (string, error) {
	if o.Item == "unobtainium" {
		return "", errOutOfStock
	}
	return fmt.Sprintf("%d x %s", o.Count, o.Item), nil
})

// fulfil packs an order in three parallel parts; with Item "wait" it
// first publishes its progress and waits for the event "go".
var fulfil = durable.NewOrchestrator("Fulfil", func(ctx *durable.Context, o order) (receipt, error) {
	if o.Item == "wait" {
		if err := ctx.SetCustomStatus(progress{Done: 1, Stage: "waiting for go"}); err != nil {
			return receipt{}, err
		}
		if _, err := durable.WaitForExternalEvent[string](ctx, "go").Await(); err != nil {
			return receipt{}, err
		}
		if err := ctx.SetCustomStatus(progress{Done: 2, Stage: "packing"}); err != nil {
			return receipt{}, err
		}
	}
	parts := make([]*durable.Task[string], 3)
	for i := range parts {
		parts[i] = pack.Call(ctx, order{Item: o.Item, Count: o.Count + i})
	}
	lines, err := durable.All(ctx, parts...)
	if err != nil {
		return receipt{}, err
	}
	return receipt{Lines: lines, Total: 3*o.Count + 3}, nil
})

// fulfilAsInt is a definition of the same orchestrator name with another
// output type, as a client built from other code might have: its output
// does not fit.
var fulfilAsInt = durable.NewOrchestrator("Fulfil", func(*durable.Context, order) (int, error) { return 0, nil })

// other is a second orchestrator, for Get's name check.
var other = durable.NewOrchestrator("Other", func(*durable.Context, any) (string, error) { return "other", nil })

// anyInput takes any input, for an input that cannot be encoded.
var anyInput = durable.NewOrchestrator("AnyInput", func(*durable.Context, any) (string, error) { return "", nil })

// typedHub runs an engine on the in-memory backend and returns the
// client of its process (hand-over and completion notices in memory) and
// a client that only shares the storage, as another process would.
func typedHub(t *testing.T, storage string) (local, remote *client.Client) {
	t.Helper()
	var be backend.Backend
	switch storage {
	case "memory":
		m, err := memory.New(memory.Options{HubName: "TypedHub"})
		if err != nil {
			t.Fatal(err)
		}
		be = m
	case "azurite":
		store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: azuritetest.HubName(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.DeleteTaskHub(context.Background()) })
		be = store
	default:
		t.Fatalf("unknown storage %q", storage)
	}
	_, reg, c := enginetest.Start(t, engine.Options{Backend: be}, fulfil, pack, other, anyInput)
	return c, client.New(be, reg, nil)
}

// onBothBackends runs test on the in-memory backend and on Azurite.
func onBothBackends(t *testing.T, test func(t *testing.T, storage string)) {
	for _, storage := range []string{"memory", "azurite"} {
		t.Run(storage, func(t *testing.T) { test(t, storage) })
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTypedStartAndWait(t *testing.T) { onBothBackends(t, testTypedStartAndWait) }

func testTypedStartAndWait(t *testing.T, storage string) {
	local, remote := typedHub(t, storage)
	for name, c := range map[string]*client.Client{"local": local, "remote": remote} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			inst, err := client.Start(ctx, c, fulfil, order{Item: "tea", Count: 2}, client.WithInstanceID("typed-"+name))
			if err != nil {
				t.Fatal(err)
			}
			inst.PollInterval = 20 * time.Millisecond
			if inst.ID() != "typed-"+name || inst.Name() != "Fulfil" {
				t.Fatalf("handle for %q of %q", inst.ID(), inst.Name())
			}
			got, err := inst.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := receipt{Lines: []string{"2 x tea", "3 x tea", "4 x tea"}, Total: 9}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("output %+v, want %+v", got, want)
			}
			st, err := inst.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.RuntimeStatus != history.StatusCompleted || fmt.Sprint(st.Output) != fmt.Sprint(want) || st.Err() != nil ||
				st.Failure != nil || st.CompletedTime.IsZero() || st.Raw.Input != `{"item":"tea","count":2}` {
				t.Fatalf("status %+v", st)
			}

			// Started again under the same ID while it runs: refused.
			waiting, err := client.Start(ctx, c, fulfil, order{Item: "wait"}, client.WithInstanceID("typed-wait-"+name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.Start(ctx, c, fulfil, order{}, client.WithInstanceID(waiting.ID())); !errors.Is(err, client.ErrInstanceExists) {
				t.Fatalf("second start of a running ID: %v, want ErrInstanceExists", err)
			}
			if err := c.Terminate(ctx, waiting.ID(), "cleanup"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTypedCustomStatus(t *testing.T) { onBothBackends(t, testTypedCustomStatus) }

func testTypedCustomStatus(t *testing.T, storage string) {
	c, _ := typedHub(t, storage)
	ctx := testCtx(t)
	inst, err := client.Start(ctx, c, fulfil, order{Item: "wait", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Poll until the orchestrator has published its progress.
	var p progress
	deadline := time.Now().Add(20 * time.Second)
	for p.Done == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the custom status never appeared")
		}
		st, err := inst.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p, err = client.CustomStatus[progress](st); err != nil {
			t.Fatal(err)
		}
		if p.Done == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if p != (progress{Done: 1, Stage: "waiting for go"}) {
		t.Fatalf("custom status %+v", p)
	}
	// The custom status does not fit another type; the untyped status
	// can be read too.
	st, err := c.GetStatus(ctx, inst.ID(), false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.CustomStatus[[]int](st)
	var de *client.DecodeError
	if !errors.As(err, &de) || de.What != "custom status" || de.Type != "[]int" || de.InstanceID != inst.ID() ||
		!strings.Contains(err.Error(), "does not fit type []int") {
		t.Fatalf("custom status into []int: %v", err)
	}

	if err := c.RaiseEvent(ctx, inst.ID(), "go", `"now"`); err != nil {
		t.Fatal(err)
	}
	final, err := inst.WaitStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := client.CustomStatus[progress](final); err != nil || p != (progress{Done: 2, Stage: "packing"}) {
		t.Fatalf("final custom status %+v, %v", p, err)
	}
	if final.Output.Total != 6 || len(final.Output.Lines) != 3 {
		t.Fatalf("output %+v", final.Output)
	}
}

func TestTypedFailureAndTermination(t *testing.T) { onBothBackends(t, testTypedFailureAndTermination) }

func testTypedFailureAndTermination(t *testing.T, storage string) {
	c, _ := typedHub(t, storage)
	ctx := testCtx(t)

	t.Run("failed", func(t *testing.T) {
		inst, err := client.Start(ctx, c, fulfil, order{Item: "unobtainium", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		out, err := inst.Wait(ctx)
		var fe *client.FailedError
		if !errors.As(err, &fe) || !errors.Is(err, client.ErrFailed) || errors.Is(err, client.ErrTerminated) {
			t.Fatalf("Wait = %+v, %v; want a FailedError", out, err)
		}
		if fe.InstanceID != inst.ID() || fe.Name != "Fulfil" || fe.Failure.ErrorType != "TaskFailedError" ||
			fe.Failure.InnerFailure == nil || fe.Failure.InnerFailure.ErrorMessage != "out of stock" {
			t.Fatalf("failure %+v (inner %+v)", fe, fe.Failure.InnerFailure)
		}
		if !strings.Contains(err.Error(), `orchestration "Fulfil" (instance "`+inst.ID()+`") failed: TaskFailedError: activity "Pack"`) {
			t.Errorf("message %q", err)
		}
		if len(out.Lines) != 0 {
			t.Errorf("output %+v with the error", out)
		}
		st, err := inst.Status(ctx)
		if err != nil || st.RuntimeStatus != history.StatusFailed || st.Failure == nil || st.Failure.InnerFailure == nil ||
			!errors.Is(st.Err(), client.ErrFailed) {
			t.Fatalf("status %+v, %v", st, err)
		}
	})

	t.Run("terminated", func(t *testing.T) {
		inst, err := client.Start(ctx, c, fulfil, order{Item: "wait"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Terminate(ctx, inst.ID(), "customer cancelled"); err != nil {
			t.Fatal(err)
		}
		_, err = inst.Wait(ctx)
		var te *client.TerminatedError
		if !errors.As(err, &te) || !errors.Is(err, client.ErrTerminated) || errors.Is(err, client.ErrFailed) ||
			errors.Is(err, client.ErrCanceled) || te.Reason != "customer cancelled" || te.Status != history.StatusTerminated {
			t.Fatalf("Wait err = %v (%+v), want a TerminatedError with the reason", err, te)
		}
		if want := `orchestration "Fulfil" (instance "` + inst.ID() + `") was terminated: customer cancelled`; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
	})

	t.Run("output does not fit", func(t *testing.T) {
		inst, err := client.Start(ctx, c, fulfil, order{Item: "tea", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inst.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		asInt, err := client.Get(ctx, c, fulfilAsInt, inst.ID())
		if err != nil {
			t.Fatal(err)
		}
		n, err := asInt.Wait(ctx)
		var de *client.DecodeError
		if !errors.As(err, &de) || de.What != "output" || de.Type != "int" || n != 0 ||
			!strings.Contains(de.JSON, `"total":6`) || !strings.Contains(err.Error(), "does not fit type int") {
			t.Fatalf("Wait = %d, %v; want a DecodeError naming int", n, err)
		}
		// Status still reports the instance, with the same error.
		st, err := asInt.Status(ctx)
		if st == nil || st.RuntimeStatus != history.StatusCompleted || !errors.As(err, &de) {
			t.Fatalf("Status = %+v, %v", st, err)
		}
	})
}

func TestTypedGetAndBadInput(t *testing.T) {
	c, _ := typedHub(t, "memory")
	ctx := testCtx(t)
	inst, err := client.Start(ctx, c, other, nil, client.WithInstanceID("the-other"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := inst.Wait(ctx); err != nil || got != "other" {
		t.Fatalf("Wait = %q, %v", got, err)
	}
	if st, err := c.GetStatus(ctx, "the-other", true); err != nil || st.Input != "" {
		t.Fatalf("a nil input is stored as none: %q, %v", st.Input, err)
	}
	again, err := client.Get(ctx, c, other, "the-other")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Wait(ctx); err != nil || got != "other" {
		t.Fatalf("Wait via Get = %q, %v", got, err)
	}
	if _, err := client.Get(ctx, c, fulfil, "the-other"); !errors.Is(err, client.ErrOtherOrchestrator) ||
		!strings.Contains(err.Error(), `runs orchestrator "Other", not "Fulfil"`) {
		t.Fatalf("Get of another orchestrator's instance: %v", err)
	}
	if _, err := client.Get(ctx, c, fulfil, "nobody"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Get of an unknown ID: %v", err)
	}
	if _, err := client.Start(ctx, c, anyInput, any(make(chan int))); !errors.Is(err, client.ErrInvalidInput) ||
		!strings.Contains(err.Error(), "chan int") {
		t.Fatalf("start with a channel as input: %v", err)
	}
	if _, err := client.Start(ctx, c, fulfil, order{}, client.WithInstanceID("a/b")); !errors.Is(err, client.ErrInvalidInstanceID) {
		t.Fatalf("start with a bad ID: %v", err)
	}
	// A context that ends first ends the wait.
	waiting, err := client.Start(ctx, c, fulfil, order{Item: "wait"})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := waiting.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the deadline: %v", err)
	}
}
