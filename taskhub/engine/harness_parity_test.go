package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestHarnessWritesTheEnginesHistory runs one orchestration (an activity,
// a failed activity, a timer, a sub-orchestration) on the engine over the
// in-memory backend and in durabletest, and compares the two histories
// event by event: types, sequence numbers, names, payloads, statuses and
// failures, everything but times and IDs the engine draws at random.
func TestHarnessWritesTheEnginesHistory(t *testing.T) {
	kid := durable.NewOrchestrator("ParityKid", func(ctx *durable.Context, name string) (string, error) {
		return greet.Call(ctx, name+" junior").Await()
	})
	orch := durable.NewOrchestrator("Parity", func(ctx *durable.Context, name string) ([]string, error) {
		a, err := greet.Call(ctx, name).Await()
		if err != nil {
			return nil, err
		}
		_, failed := greet.Call(ctx, "").Await()
		if err := ctx.Sleep(time.Second); err != nil {
			return nil, err
		}
		k, err := kid.Call(ctx, name, durable.WithInstanceID("parity-kid")).Await()
		if err != nil {
			return nil, err
		}
		return []string{a, fmt.Sprint(failed != nil), k}, nil
	})

	res := durabletest.MustRun(t, durabletest.New(greet, kid), orch, "Ada", durabletest.InstanceID("parity"))

	be, err := memory.New(memory.Options{HubName: "ParityHub"})
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be}, orch, kid, greet)
	id, err := c.StartNew(context.Background(), "Parity", client.StartOptions{InstanceID: "parity", Input: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != res.RawOutput {
		t.Fatalf("engine: %s %s; harness output %s", st.Status, st.Output, res.RawOutput)
	}
	for _, inst := range []*durabletest.Instance{res.Instance, res.Child("parity-kid")} {
		stored, err := be.LoadHistory(context.Background(), inst.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, want := parityKeys(inst.History), parityKeys(stored.Events)
		if len(got) != len(want) {
			t.Errorf("instance %s: the harness wrote %d events, the engine %d\nharness:\n%s", inst.ID, len(got), len(want),
				durabletest.FormatHistory(inst.History))
		}
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("instance %s, history[%d]:\n harness %+v\n engine  %+v", inst.ID, i, got[i], want[i])
			}
		}
	}
}

type parityKey struct {
	Type                      history.EventType
	EventID, TaskID, TimerID  int32
	Name, Input, Result, Inst string
	Status                    history.OrchestrationStatus
	Failure                   string
	NonRetriable              bool
	Parent                    string
	FireAfterStart            time.Duration
}

func parityKeys(evs []history.Event) []parityKey {
	out := make([]parityKey, 0, len(evs))
	var created time.Time
	for _, e := range evs {
		k := parityKey{Type: e.Type, EventID: e.EventID, TaskID: e.TaskScheduledID, TimerID: e.TimerID, Name: e.Name,
			Input: e.Input, Result: e.Result, Inst: e.InstanceID, Status: e.Status}
		if e.Failure != nil {
			k.Failure, k.NonRetriable = e.Failure.String(), e.Failure.IsNonRetriable
		}
		if e.Parent != nil {
			k.Parent = fmt.Sprintf("%s %s #%d", e.Parent.Name, e.Parent.Instance.InstanceID, e.Parent.TaskScheduleID)
		}
		switch e.Type {
		case history.TimerCreated:
			created = e.Timestamp
			k.FireAfterStart = e.FireAt.Sub(created)
		case history.TimerFired:
			k.FireAfterStart = e.FireAt.Sub(created)
		}
		out = append(out, k)
	}
	return out
}
