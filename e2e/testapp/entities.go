package main

import (
	"errors"
	"fmt"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// The entity workloads of the end-to-end tests:
//   - CounterAdder signals Counter/{key} "add" 1, Signals times, and every
//     fifth time calls "get", which must count at least its own signals so
//     far (an orchestration's requests run in the order sent);
//   - Account is an entity of an int balance: deposit, withdraw (fails with
//     InsufficientFunds when the balance is short) and balance;
//   - Transfer moves an amount between two accounts inside a critical
//     section over both, when the source has it;
//   - Audit locks every account it is given and sums their balances;
//   - Overdraw calls withdraw for more than there is and reports the
//     failure it got back.

// CounterAdderInput is the input of CounterAdder.
type CounterAdderInput struct {
	Key     string `json:"key"`
	Signals int    `json:"signals"`
}

var counterAdder = durable.NewOrchestrator("CounterAdder", func(ctx *durable.Context, in CounterAdderInput) (int, error) {
	id := durable.NewEntityID("Counter", in.Key)
	for i := 1; i <= in.Signals; i++ {
		if err := ctx.SignalEntity(id, "add", 1); err != nil {
			return 0, err
		}
		if i%5 != 0 {
			continue
		}
		got, err := durable.CallEntity[int](ctx, id, "get", nil).Await()
		if err != nil {
			return 0, err
		}
		if got < i {
			return 0, fmt.Errorf("get after %d signals of mine returned %d: a request overtook the call", i, got)
		}
	}
	return in.Signals, nil
})

var errInsufficientFunds = durable.NewError("InsufficientFunds", "insufficient funds", nil)

var account = durable.NewEntity("Account", durable.Operations[int]{
	"deposit": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
	"withdraw": durable.OpResult(func(ctx *durable.EntityContext[int], n int) (int, error) {
		if b := ctx.State(); b < n {
			return 0, durable.NewError("InsufficientFunds", fmt.Sprintf("balance %d, asked for %d", b, n), map[string]int{"balance": b})
		}
		ctx.SetState(ctx.State() - n)
		return ctx.State(), nil
	}),
	"balance": durable.OpResult(func(ctx *durable.EntityContext[int], _ any) (int, error) {
		return ctx.State(), nil
	}),
})

// TransferInput is the input of Transfer.
type TransferInput struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int    `json:"amount"`
}

var transfer = durable.NewOrchestrator("Transfer", func(ctx *durable.Context, in TransferInput) (string, error) {
	from, to := durable.NewEntityID("Account", in.From), durable.NewEntityID("Account", in.To)
	cs, err := ctx.LockEntities(from, to)
	if err != nil {
		return "", err
	}
	defer cs.Release()
	have, err := durable.CallEntity[int](ctx, from, "balance", nil).Await()
	if err != nil {
		return "", err
	}
	if have < in.Amount {
		return "short", nil
	}
	if _, err := durable.CallEntity[int](ctx, from, "withdraw", in.Amount).Await(); err != nil {
		return "", err
	}
	if _, err := durable.CallEntity[any](ctx, to, "deposit", in.Amount).Await(); err != nil {
		return "", err
	}
	return "moved", nil
})

var audit = durable.NewOrchestrator("Audit", func(ctx *durable.Context, keys []string) (int, error) {
	ids := make([]durable.EntityID, len(keys))
	for i, k := range keys {
		ids[i] = durable.NewEntityID("Account", k)
	}
	cs, err := ctx.LockEntities(ids...)
	if err != nil {
		return 0, err
	}
	defer cs.Release()
	calls := make([]*durable.Task[int], len(ids))
	for i, id := range ids {
		calls[i] = durable.CallEntity[int](ctx, id, "balance", nil)
	}
	balances, err := durable.All(ctx, calls...)
	if err != nil {
		return 0, err
	}
	sum := 0
	for _, b := range balances {
		sum += b
	}
	return sum, nil
})

// OverdrawOutput is what Overdraw saw of the failed withdrawal.
type OverdrawOutput struct {
	IsInsufficient bool   `json:"isInsufficient"`
	Type           string `json:"type"`
	Message        string `json:"message"`
	Balance        int    `json:"balance"`
	LockedRule     string `json:"lockedRule"`
}

var overdraw = durable.NewOrchestrator("Overdraw", func(ctx *durable.Context, key string) (OverdrawOutput, error) {
	var out OverdrawOutput
	id := durable.NewEntityID("Account", key)
	_, err := durable.CallEntity[int](ctx, id, "withdraw", 1_000_000).Await()
	var ae *durable.Error
	if !errors.As(err, &ae) {
		return out, fmt.Errorf("want a *durable.Error from the failed withdrawal, got %v", err)
	}
	var d struct {
		Balance int `json:"balance"`
	}
	if err := ae.Details(&d); err != nil {
		return out, err
	}
	out = OverdrawOutput{IsInsufficient: errors.Is(err, errInsufficientFunds), Type: ae.Type, Message: ae.Message, Balance: d.Balance}
	// A locking rule: inside a critical section, only locked entities may be called.
	cs, err := ctx.LockEntities(id)
	if err != nil {
		return out, err
	}
	_, err = durable.CallEntity[int](ctx, durable.NewEntityID("Account", key+"-other"), "balance", nil).Await()
	cs.Release()
	var lr *durable.LockingRulesError
	if !errors.As(err, &lr) {
		return out, fmt.Errorf("want a *durable.LockingRulesError, got %v", err)
	}
	out.LockedRule = lr.Error()
	return out, nil
})
