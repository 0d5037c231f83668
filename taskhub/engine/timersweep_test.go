package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestCancelledTimersLeaveTheQueue shows that timers an orchestration no
// longer needs do not stay in its control queue until they are due (an
// hour here): a call that beats its WithTimeout timer, a Timer cancelled
// by the code, a timer still pending when the orchestration completes, and
// the pending timer of an execution that continued as new. The invariant
// checker's "queues drained" would fail on any of them. A timer that fires
// is consumed as before.
func TestCancelledTimersLeaveTheQueue(t *testing.T) {
	h := newHub(t)
	quick := durable.NewActivity("Quick", func(ctx context.Context, s string) (string, error) { return "quick " + s, nil })
	orch := durable.NewOrchestrator("TimersGalore", func(ctx *durable.Context, gen int) (string, error) {
		if gen == 0 {
			ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour)) // void once the execution continues as new
			return "", ctx.ContinueAsNew(1)
		}
		a, err := quick.Call(ctx, "a", durable.WithTimeout(time.Hour)).Await()
		if err != nil {
			return "", err
		}
		cancelled := ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour))
		b, err := quick.Call(ctx, "b").Await()
		if err != nil {
			return "", err
		}
		cancelled.Cancel()
		if err := ctx.Sleep(time.Second); err != nil { // fires and is consumed
			return "", err
		}
		ctx.CreateTimer(ctx.CurrentTime().Add(time.Hour)) // left behind at completion
		c, err := quick.Call(ctx, "c").Await()
		return strings.Join([]string{a, b, c}, ", "), err
	})
	_, c := h.start(engine.Options{}, orch, quick)
	id, err := c.StartNew(context.Background(), "TimersGalore", client.StartOptions{Input: 0})
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	want := `"quick a, quick b, quick c"`
	if st.Status != history.StatusCompleted || st.Output != want {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	checkHub(t, h.name, []string{id}, map[string]string{id: want})
}
