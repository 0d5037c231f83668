package durabletest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
)

type mirrorInput struct {
	N  int
	At time.Time
}

var tally = durable.NewEntity("Tally", durable.Operations[int]{
	"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
	"reset": durable.Op(func(ctx *durable.EntityContext[int], _ struct{}) error {
		ctx.SetState(0)
		return nil
	}),
	"get": durable.OpResult(func(ctx *durable.EntityContext[int], _ struct{}) (int, error) {
		return ctx.State(), nil
	}),
	// "mirror" adds to the state and signals the same amount to the
	// entity of key "mirror-of-"+key, at the time given.
	"mirror": durable.Op(func(ctx *durable.EntityContext[int], in mirrorInput) error {
		ctx.SetState(ctx.State() + in.N)
		ctx.SignalEntityAt(durable.NewEntityID("Tally", "mirror-of-"+ctx.ID().Key), "add", in.N, in.At)
		return nil
	}),
	"fail": durable.Op(func(ctx *durable.EntityContext[int], _ struct{}) error {
		ctx.SetState(-1) // rolled back
		return durable.NewError("Refused", "tally refuses", map[string]int{"code": 7})
	}),
})

// TestEntitiesRunInTheHarness: signals and calls from an orchestration
// run the entity's real code in order; a failed operation comes back as a
// typed failure and leaves the state; a scheduled signal runs at its time
// on the virtual clock.
func TestEntitiesRunInTheHarness(t *testing.T) {
	orch := durable.NewOrchestrator("UsesTally", func(ctx *durable.Context, _ any) ([]string, error) {
		id := tally.ID("k")
		var out []string
		for _, n := range []int{5, 2} {
			if err := ctx.SignalEntity(id, "add", n); err != nil {
				return nil, err
			}
		}
		if err := ctx.SignalEntityAt(id, "reset", nil, ctx.CurrentTime().Add(time.Hour)); err != nil {
			return nil, err
		}
		get := func() int {
			n, err := durable.CallEntity[int](ctx, id, "get", nil).Await()
			if err != nil {
				out = append(out, "get failed: "+err.Error())
			}
			return n
		}
		out = append(out, "after two adds: "+itoa(get()))
		_, err := durable.CallEntity[int](ctx, id, "fail", nil).Await()
		var app *durable.Error
		var details struct{ Code int }
		if !errors.As(err, &app) || app.Type != "Refused" || app.Details(&details) != nil {
			return nil, errors.New("unexpected failure: " + errors.Join(err).Error())
		}
		out = append(out, "failed: "+app.Type+" "+itoa(details.Code)+", state "+itoa(get()))
		_, err = durable.CallEntity[int](ctx, id, "nope", nil).Await()
		var tf *durable.TaskFailedError
		if !errors.As(err, &tf) || tf.Failure.ErrorType != "UnknownOperationError" {
			return nil, errors.New("unknown operation: " + errors.Join(err).Error())
		}
		out = append(out, "unknown: "+tf.TaskName)
		if err := ctx.Sleep(2 * time.Hour); err != nil {
			return nil, err
		}
		out = append(out, "after the scheduled reset: "+itoa(get()))
		return out, nil
	})
	res, err := durabletest.Run(context.Background(), durabletest.New(tally), orch, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"after two adds: 7", "failed: Refused 7, state 7", `unknown: "nope" on @tally@k`, "after the scheduled reset: 0"}
	if strings.Join(res.Output, "|") != strings.Join(want, "|") {
		t.Fatalf("output %q, want %q", res.Output, want)
	}
	if res.Elapsed != 2*time.Hour {
		t.Errorf("elapsed %v, want 2h of virtual time", res.Elapsed)
	}
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

var account = durable.NewEntity("Account", durable.Operations[int]{
	"get": durable.OpResult(func(ctx *durable.EntityContext[int], _ struct{}) (int, error) { return ctx.State(), nil }),
	"set": durable.Op(func(ctx *durable.EntityContext[int], n int) error { ctx.SetState(n); return nil }),
})

// transferTen moves 10 from a to b by reading and writing both balances
// (no atomic add): only the critical section keeps concurrent transfers
// from losing updates. Odd-numbered transfers leave the release to the
// orchestrator's end.
var transferTen = durable.NewOrchestrator("TransferTen", func(ctx *durable.Context, n int) (bool, error) {
	a, b := account.ID("a"), account.ID("b")
	cs, err := ctx.LockEntities(b, a)
	if err != nil {
		return false, err
	}
	if n%2 == 0 {
		defer cs.Release()
	}
	balances, err := durable.All(ctx, durable.CallEntity[int](ctx, a, "get", nil), durable.CallEntity[int](ctx, b, "get", nil))
	if err != nil {
		return false, err
	}
	if err := durable.WhenAll(ctx, durable.CallEntity[struct{}](ctx, a, "set", balances[0]-10),
		durable.CallEntity[struct{}](ctx, b, "set", balances[1]+10)); err != nil {
		return false, err
	}
	return ctx.InCriticalSection(), nil
})

// TestEntityCriticalSectionsInTheHarness: six concurrent transfers that
// each lock both accounts queue behind each other's locks, so none loses
// an update and the total stays 100.
func TestEntityCriticalSectionsInTheHarness(t *testing.T) {
	orch := durable.NewOrchestrator("Transfers", func(ctx *durable.Context, _ any) ([]int, error) {
		if _, err := durable.CallEntity[struct{}](ctx, account.ID("a"), "set", 100).Await(); err != nil {
			return nil, err
		}
		var tasks []*durable.Task[bool]
		for i := range 6 {
			tasks = append(tasks, transferTen.Call(ctx, i))
		}
		held, err := durable.All(ctx, tasks...)
		if err != nil {
			return nil, err
		}
		for _, h := range held {
			if !h {
				return nil, errors.New("a transfer ran outside its critical section")
			}
		}
		return durable.All(ctx, durable.CallEntity[int](ctx, account.ID("a"), "get", nil), durable.CallEntity[int](ctx, account.ID("b"), "get", nil))
	})
	res, err := durabletest.Run(context.Background(), durabletest.New(account, transferTen), orch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Output) != 2 || res.Output[0] != 40 || res.Output[1] != 60 {
		t.Fatalf("balances %v, want [40 60]", res.Output)
	}
	if n := len(res.Instance.Children); n != 6 {
		t.Fatalf("%d transfers ran, want 6", n)
	}
}

// TestEntitySignalsEntityInTheHarness: an entity's scheduled signal to
// another entity runs at its time, and a message to an entity the run
// does not know stops the run with ErrEntityNotRegistered.
func TestEntitySignalsEntityInTheHarness(t *testing.T) {
	orch := durable.NewOrchestrator("Mirror", func(ctx *durable.Context, _ any) (int, error) {
		if err := ctx.SignalEntity(tally.ID("x"), "mirror", mirrorInput{N: 3, At: ctx.CurrentTime().Add(time.Hour)}); err != nil {
			return 0, err
		}
		before, err := durable.CallEntity[int](ctx, tally.ID("mirror-of-x"), "get", nil).Await()
		if err != nil || before != 0 {
			return 0, errors.Join(err, errors.New("the mirror was signalled early"))
		}
		if err := ctx.Sleep(90 * time.Minute); err != nil {
			return 0, err
		}
		return durable.CallEntity[int](ctx, tally.ID("mirror-of-x"), "get", nil).Await()
	})
	res, err := durabletest.Run(context.Background(), durabletest.New(tally), orch, nil)
	if err != nil || res.Output != 3 {
		t.Fatalf("Run: %v, %v; want 3", res, err)
	}

	unknown := durable.NewOrchestrator("UsesUnknown", func(ctx *durable.Context, _ any) (string, error) {
		return "", ctx.SignalEntity(durable.NewEntityID("Nope", "k"), "add", 1)
	})
	_, err = durabletest.Run(context.Background(), durabletest.New(tally), unknown, nil)
	if !errors.Is(err, durabletest.ErrEntityNotRegistered) ||
		!strings.Contains(err.Error(), `instance "`) || !strings.Contains(err.Error(), `sends the entity message "op" (task 0) to @nope@k`) ||
		!strings.Contains(err.Error(), "known: [tally]") {
		t.Fatalf("Run: %v; want ErrEntityNotRegistered naming the message and the known entities", err)
	}
}

// TestEntityLockWaitReported: a run that can never finish because its
// lock request waits behind a lock another instance never releases says
// so, naming the entity and the holder.
func TestEntityLockWaitReported(t *testing.T) {
	holder := durable.NewOrchestrator("Holder", func(ctx *durable.Context, _ any) (string, error) {
		if _, err := ctx.LockEntities(account.ID("a")); err != nil {
			return "", err
		}
		return durable.WaitForExternalEvent[string](ctx, "never").Await()
	})
	orch := durable.NewOrchestrator("Waiter", func(ctx *durable.Context, _ any) (int, error) {
		_ = holder.Call(ctx, nil, durable.WithInstanceID("holder"))
		if err := ctx.Sleep(time.Minute); err != nil {
			return 0, err
		}
		if _, err := ctx.LockEntities(account.ID("b"), account.ID("a")); err != nil {
			return 0, err
		}
		return 1, nil
	})
	_, err := durabletest.Run(context.Background(), durabletest.New(account, holder), orch, nil)
	var nf *durabletest.NotFinishedError
	if !errors.As(err, &nf) {
		t.Fatalf("Run: %v, want a NotFinishedError", err)
	}
	want := `the locks of @account@a, @account@b (task 2), queued at @account@a, which instance "holder" holds locked`
	if !slices.Contains(nf.Waiting, want) {
		t.Fatalf("waiting for %q, want %q among them", nf.Waiting, want)
	}
}
