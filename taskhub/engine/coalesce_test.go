package engine_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/invariants"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// counting wraps the store and counts the calls that serve instances
// (sends, history, rows, deletes), leaving out the idle background of
// polls and partition leases.
type counting struct {
	backend.Backend
	mu    sync.Mutex
	calls map[string]int
}

func (c *counting) add(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

// snapshot returns the counts so far and resets them.
func (c *counting) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

func (c *counting) SendControl(ctx context.Context, m backend.Message, d time.Duration) (backend.Receipt, error) {
	c.add("SendControl")
	return c.Backend.SendControl(ctx, m, d)
}

func (c *counting) SendWorkItem(ctx context.Context, m backend.Message, d time.Duration) (backend.Receipt, error) {
	c.add("SendWorkItem")
	return c.Backend.SendWorkItem(ctx, m, d)
}

func (c *counting) DeleteMessage(ctx context.Context, r backend.Receipt) error {
	c.add("DeleteMessage")
	return c.Backend.DeleteMessage(ctx, r)
}

func (c *counting) SetVisibility(ctx context.Context, r backend.Receipt, d time.Duration) (backend.Receipt, error) {
	c.add("SetVisibility")
	return c.Backend.SetVisibility(ctx, r, d)
}

func (c *counting) LoadHistory(ctx context.Context, id string) (backend.History, error) {
	c.add("LoadHistory")
	return c.Backend.LoadHistory(ctx, id)
}

func (c *counting) AppendHistory(ctx context.Context, id, exec string, from int, events []history.Event, etag string) (string, error) {
	c.add("AppendHistory")
	return c.Backend.AppendHistory(ctx, id, exec, from, events, etag)
}

func (c *counting) GetInstance(ctx context.Context, id string, withInput bool) (backend.InstanceState, error) {
	c.add("GetInstance")
	return c.Backend.GetInstance(ctx, id, withInput)
}

func (c *counting) CreateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	c.add("CreateInstance")
	return c.Backend.CreateInstance(ctx, st)
}

func (c *counting) UpdateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	c.add("UpdateInstance")
	return c.Backend.UpdateInstance(ctx, st)
}

func (c *counting) MergeInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	c.add("MergeInstance")
	return c.Backend.MergeInstance(ctx, st)
}

// chain calls greet n times in sequence and returns the last greeting.
var chain = durable.NewOrchestrator("Chain", func(ctx *durable.Context, n int) (string, error) {
	var last string
	for i := range n {
		s, err := greet.Call(ctx, fmt.Sprint(i)).Await()
		if err != nil {
			return "", err
		}
		last = s
	}
	return last, nil
})

// TestCoalescedCheckpoints shows what coalescing saves: the sample shape
// (three activities in sequence, all run here) costs the start message,
// the Instances insert, one history transaction, the final Instances
// update and the start message's delete; 50 sequential activities fit in
// three history transactions (each at most 99 rows plus the sentinel).
// The budget (and the deferral of the Running row) is set far beyond the
// run so that only the transaction size closes a window: the counts do not
// depend on the machine's speed.
func TestCoalescedCheckpoints(t *testing.T) {
	h := newHub(t)
	cb := &counting{Backend: h.store, calls: map[string]int{}}
	eng, c := h.start(engine.Options{Backend: cb, CoalesceBudget: time.Hour, StatusFlushDelay: time.Hour}, seq3, chain, greet)
	ctx := t.Context()

	cases := []struct {
		name      string
		orch      string
		input     any
		output    string
		wantCalls map[string]int
	}{
		{"sample", "Seq3", nil, `["Hi a","Hi b","Hi c"]`, map[string]int{
			"SendControl": 1, "CreateInstance": 1, "AppendHistory": 1, "MergeInstance": 1, "DeleteMessage": 1,
		}},
		{"50 sequential", "Chain", 50, `"Hi 49"`, map[string]int{
			"SendControl": 1, "CreateInstance": 1, "AppendHistory": 3, "MergeInstance": 1, "DeleteMessage": 1,
		}},
	}
	var ids []string
	for _, tc := range cases {
		eng.WaitBackground()
		cb.snapshot()
		id, err := c.StartNew(ctx, tc.orch, client.StartOptions{Input: tc.input})
		if err != nil {
			t.Fatal(err)
		}
		// Notified in process: no status polls in the counts.
		st, err := c.WaitForCompletion(ctx, id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		eng.WaitBackground()
		got := cb.snapshot()
		if st.Status != history.StatusCompleted || st.Output != tc.output {
			t.Fatalf("%s: %s %s", tc.name, st.Status, st.Output)
		}
		if !reflect.DeepEqual(got, tc.wantCalls) {
			t.Errorf("%s: storage calls %v, want %v", tc.name, got, tc.wantCalls)
		}
		ids = append(ids, id)
	}
	checkHub(t, h.name, ids, map[string]string{ids[0]: cases[0].output, ids[1]: cases[1].output})
}

// checkHub runs the invariant checker on the hub's finished instances.
func checkHub(t *testing.T, hub string, ids []string, outputs map[string]string) {
	t.Helper()
	checker, err := invariants.New(invariants.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := checker.Check(t.Context(), ids, func(id string) invariants.Want {
		return invariants.Want{Status: history.StatusCompleted, Output: outputs[id]}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) > 0 {
		t.Errorf("%d invariant violations:\n%s", len(vs), invariants.Format(vs))
	}
}

// TestStatusFromMemory shows that a status query for a running instance
// that this process owns is answered from committed state without a
// storage read, and that an uncommitted window never shows: the instance
// waits in an activity inside a window (budget of an hour), so its status
// is the client's Pending row from storage until the window commits.
func TestStatusFromMemory(t *testing.T) {
	h := newHub(t)
	cb := &counting{Backend: h.store, calls: map[string]int{}}
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	gate := durable.NewActivity("Gate", func(ctx context.Context, _ any) (string, error) {
		started <- struct{}{}
		<-release
		return "through", nil
	})
	waitEvent := durable.NewOrchestrator("GateThenEvent", func(ctx *durable.Context, _ any) (string, error) {
		s, err := gate.Call(ctx, nil).Await()
		if err != nil {
			return "", err
		}
		ctx.SetCustomStatus("waiting")
		ev, err := durable.WaitForExternalEvent[string](ctx, "Go").Await()
		return s + " " + ev, err
	})
	_, c := h.start(engine.Options{Backend: cb, CoalesceBudget: time.Hour}, waitEvent, gate)
	ctx := t.Context()
	id, err := c.StartNew(ctx, "GateThenEvent", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	st, err := c.GetStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != history.StatusPending {
		t.Errorf("inside the window the status is %s, want Pending (nothing is committed)", st.Status)
	}
	close(release)
	// The event wait commits the window; then the status comes from memory.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cb.snapshot()
		st, err = c.GetStatus(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == history.StatusRunning && st.CustomStatus == `"waiting"` {
			if n := cb.snapshot()["GetInstance"]; n != 0 {
				t.Errorf("a status from memory read storage %d times", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status stayed %s %q", st.Status, st.CustomStatus)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, as a user would
	}
	if err := c.RaiseEvent(ctx, id, "Go", `"go"`); err != nil {
		t.Fatal(err)
	}
	final := wait(t, c, id)
	if final.Status != history.StatusCompleted || final.Output != `"through go"` {
		t.Fatalf("final: %s %s", final.Status, final.Output)
	}
	if !strings.Contains(final.CustomStatus, "waiting") {
		t.Errorf("custom status %q", final.CustomStatus)
	}
	checkHub(t, h.name, []string{id}, map[string]string{id: `"through go"`})
}
