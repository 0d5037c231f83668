package durable_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// An orchestration signals a Counter one-way, now and in an hour; the
// signals run in the order sent.
func ExampleContext_SignalEntity() {
	_ = durable.NewOrchestrator("Tally", func(ctx *durable.Context, n int) (string, error) {
		id := Counter.ID("daily")
		if err := ctx.SignalEntity(id, "add", n); err != nil {
			return "", err // an invalid ID or input, or a locking rule broken: nothing was sent
		}
		if err := ctx.SignalEntityAt(id, "reset", nil, ctx.CurrentTime().Add(time.Hour)); err != nil {
			return "", err
		}
		return "signalled " + id.String(), nil
	})
}

// errOverdrawn is the error type an Account entity fails "withdraw" with.
var errOverdrawn = durable.NewError("Overdrawn", "overdrawn", nil)

// An orchestration calls an entity and waits for the operation's result;
// a failed operation is a *durable.TaskFailedError that errors.Is and
// errors.As match against the entity's error, as for activities.
func ExampleCallEntity() {
	_ = durable.NewOrchestrator("Checkout", func(ctx *durable.Context, cents int) (int, error) {
		balance, err := durable.CallEntity[int](ctx, durable.NewEntityID("Account", "alice"), "withdraw", cents).Await()
		if errors.Is(err, errOverdrawn) {
			return 0, durable.NonRetriable(fmt.Errorf("checkout declined: %w", err))
		}
		return balance, err
	})
}

// A critical section moves an amount between two accounts: no other
// orchestration's operation runs on either until Release, so the total
// never changes. The locks are taken in a global order, so two transfers
// in opposite directions cannot deadlock.
func ExampleContext_LockEntities() {
	_ = durable.NewOrchestrator("Transfer", func(ctx *durable.Context, amount int) (bool, error) {
		from, to := durable.NewEntityID("Account", "alice"), durable.NewEntityID("Account", "bob")
		cs, err := ctx.LockEntities(from, to)
		if err != nil {
			return false, err
		}
		defer cs.Release() // also released when the orchestrator returns
		balance, err := durable.CallEntity[int](ctx, from, "get", nil).Await()
		if err != nil || balance < amount {
			return false, err
		}
		// Calls to different locked entities may run at once; one call
		// at a time per entity.
		withdraw := durable.CallEntity[int](ctx, from, "add", -amount)
		deposit := durable.CallEntity[int](ctx, to, "add", amount)
		return true, durable.WhenAll(ctx, withdraw, deposit)
	})
}
