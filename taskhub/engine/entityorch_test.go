package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// account is an entity of an int balance whose withdraw fails when the
// balance is short.
var account = durable.NewEntity("Account", durable.Operations[int]{
	"deposit": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
	"withdraw": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		if ctx.State() < n {
			return durable.NewError("InsufficientFunds", fmt.Sprintf("balance %d, asked for %d", ctx.State(), n), nil)
		}
		ctx.SetState(ctx.State() - n)
		return nil
	}),
	"balance": durable.OpResult(func(ctx *durable.EntityContext[int], _ any) (int, error) { return ctx.State(), nil }),
})

type transferIn struct {
	From, To string
	Amount   int
}

// transferOrch reads and writes two accounts inside a critical section:
// without the locks, concurrent transfers would lose updates.
var transferOrch = durable.NewOrchestrator("Transfer", func(ctx *durable.Context, in transferIn) (string, error) {
	from, to := durable.NewEntityID("Account", in.From), durable.NewEntityID("Account", in.To)
	cs, err := ctx.LockEntities(from, to)
	if err != nil {
		return "", err
	}
	defer cs.Release()
	have, err := durable.CallEntity[int](ctx, from, "balance", nil).Await()
	if err != nil || have < in.Amount {
		return "short", err
	}
	if _, err := durable.CallEntity[any](ctx, from, "withdraw", in.Amount).Await(); err != nil {
		return "", err
	}
	if _, err := durable.CallEntity[any](ctx, to, "deposit", in.Amount).Await(); err != nil {
		return "", err
	}
	return "moved", nil
})

var auditOrch = durable.NewOrchestrator("Audit", func(ctx *durable.Context, keys []string) (int, error) {
	var ids []durable.EntityID
	for _, k := range keys {
		ids = append(ids, durable.NewEntityID("Account", k))
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
	bs, err := durable.All(ctx, calls...)
	sum := 0
	for _, b := range bs {
		sum += b
	}
	return sum, err
})

// TestEntityTransfersUnderLocks runs concurrent transfers between four
// accounts and audits that lock all four: every audit sees the total the
// accounts started with, and so does the end.
func TestEntityTransfersUnderLocks(t *testing.T) {
	be := memoryBackend(t)
	_, _, c := enginetest.Start(t, engine.Options{Backend: be}, account, transferOrch, auditOrch)
	ctx := t.Context()
	keys := []string{"a", "b", "c", "d"}
	for _, k := range keys {
		if err := c.SignalEntity(ctx, durable.NewEntityID("Account", k), "deposit", 100); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range 24 {
		in := transferIn{From: keys[i%4], To: keys[(i*3+1)%4], Amount: 10 + i}
		if in.From == in.To {
			in.To = keys[(i+2)%4]
		}
		id, err := c.StartNew(ctx, "Transfer", client.StartOptions{InstanceID: "transfer-" + strconv.Itoa(i), Input: in})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if i%6 == 0 {
			id, err := c.StartNew(ctx, "Audit", client.StartOptions{InstanceID: "audit-" + strconv.Itoa(i), Input: keys})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	moved := 0
	for _, id := range ids {
		st, err := c.WaitForCompletion(ctx, id, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case st.Status != history.StatusCompleted:
			t.Fatalf("%s: %s %s", id, st.Status, st.Output)
		case id[:5] == "audit" && st.Output != "400":
			t.Errorf("%s saw a total of %s, want 400", id, st.Output)
		case st.Output == `"moved"`:
			moved++
		}
	}
	total := 0
	for _, k := range keys {
		st, err := c.ReadEntityState(ctx, durable.NewEntityID("Account", k))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(st.State)
		if n < 0 {
			t.Errorf("account %s: balance %d", k, n)
		}
		total += n
		// The last release is on its way when the last transfer completes.
		for deadline := time.Now().Add(10 * time.Second); ; {
			row, err := be.GetInstance(ctx, durable.NewEntityID("Account", k).String(), false)
			if err != nil {
				t.Fatal(err)
			}
			s, err := history.ParseEntityStatus(row.CustomStatus)
			if err == nil && s.LockedBy == "" && s.QueueSize == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("account %s still locked or queued: %+v (%v)", k, s, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if total != 400 || moved == 0 {
		t.Fatalf("total %d after %d transfers moved money, want 400", total, moved)
	}
}

// failAppends fails chosen history appends of orchestrations before they
// write anything: the episode's messages are already sent, so the episode
// runs again and sends them again.
type failAppends struct {
	backend.Backend
	mu    sync.Mutex
	n     int
	every int
}

func (f *failAppends) AppendHistory(ctx context.Context, id, exec string, from int, evs []history.Event, etag string) (string, error) {
	if !history.IsEntityInstanceID(id) {
		f.mu.Lock()
		f.n++
		fail := f.n%f.every == 0
		f.mu.Unlock()
		if fail {
			return "", fmt.Errorf("append history of %s: injected failure after the episode's messages were sent", id)
		}
	}
	return f.Backend.AppendHistory(ctx, id, exec, from, evs, etag)
}

// TestEntityRequestsFromRetriedEpisodesApplyOnce sends signals and calls
// from orchestrations whose checkpoints fail after their messages went
// out, so that each episode sends its requests twice: the counter ends at
// the exact number of signals, and every call saw the caller's earlier
// signals (requests run in the order sent).
func TestEntityRequestsFromRetriedEpisodesApplyOnce(t *testing.T) {
	be := &failAppends{Backend: memoryBackend(t), every: 3}
	adder := durable.NewOrchestrator("Adder", func(ctx *durable.Context, key string) (int, error) {
		id := durable.NewEntityID("Counter", key)
		for i := 1; i <= 6; i++ {
			if err := ctx.SignalEntity(id, "add", 1); err != nil {
				return 0, err
			}
			if i%3 == 0 {
				got, err := durable.CallEntity[int](ctx, id, "get", nil).Await()
				if err != nil {
					return 0, err
				}
				if got < i {
					return 0, fmt.Errorf("get after %d signals saw %d", i, got)
				}
			}
		}
		return 6, nil
	})
	counterWithGet := durable.NewEntity("Counter", durable.Operations[int]{
		"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error { ctx.SetState(ctx.State() + n); return nil }),
		"get": durable.OpResult(func(ctx *durable.EntityContext[int], _ any) (int, error) { return ctx.State(), nil }),
	})
	eng, _, c := enginetest.Start(t, engine.Options{Backend: be}, adder, counterWithGet)
	ctx := t.Context()
	var ids []string
	for i := range 10 {
		id, err := c.StartNew(ctx, "Adder", client.StartOptions{InstanceID: "adder-" + strconv.Itoa(i), Input: "shared"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		st, err := c.WaitForCompletion(ctx, id, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != history.StatusCompleted || st.Output != "6" {
			t.Fatalf("%s: %s %s", id, st.Status, st.Output)
		}
	}
	waitEntity(t, c, durable.NewEntityID("Counter", "shared"), "60")
	if s := eng.Stats(); s.DroppedMessages == 0 {
		t.Errorf("no second copy was dropped (stats %+v): the failures did not make episodes send again", s)
	}
}

// TestEntityCallFailureAndLockingRules: a failed operation comes back to
// the calling orchestration as its typed error, the entity goes on, and a
// call to an unlocked entity inside a critical section is refused.
func TestEntityCallFailureAndLockingRules(t *testing.T) {
	type out struct {
		Insufficient bool
		Message      string
		Rule         string
		After        int
	}
	errShort := durable.NewError("InsufficientFunds", "", nil)
	orch := durable.NewOrchestrator("Overdraw", func(ctx *durable.Context, _ any) (out, error) {
		var o out
		id := durable.NewEntityID("Account", "x")
		_, err := durable.CallEntity[any](ctx, id, "withdraw", 5).Await()
		var de *durable.Error
		if !errors.As(err, &de) {
			return o, fmt.Errorf("want a *durable.Error, got %v", err)
		}
		o.Insufficient, o.Message = errors.Is(err, errShort), de.Message
		cs, err := ctx.LockEntities(id)
		if err != nil {
			return o, err
		}
		_, err = durable.CallEntity[int](ctx, durable.NewEntityID("Account", "y"), "balance", nil).Await()
		var lr *durable.LockingRulesError
		if !errors.As(err, &lr) {
			return o, fmt.Errorf("want a *durable.LockingRulesError, got %v", err)
		}
		o.Rule = lr.Rule
		if _, err := durable.CallEntity[any](ctx, id, "deposit", 3).Await(); err != nil {
			return o, err
		}
		cs.Release()
		o.After, err = durable.CallEntity[int](ctx, id, "balance", nil).Await()
		return o, err
	})
	_, _, c := enginetest.Start(t, engine.Options{Backend: memoryBackend(t)}, account, orch)
	o, err := client.Start(t.Context(), c, orch, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Insufficient || got.Message != "balance 0, asked for 5" || got.Rule == "" || got.After != 3 {
		t.Fatalf("got %+v", got)
	}
}
