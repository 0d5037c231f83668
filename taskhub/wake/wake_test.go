package wake_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/wake"
)

// timerAt waits for a durable timer due at its input, then returns "done".
var timerAt = durable.NewOrchestrator("TimerAt", func(ctx *durable.Context, due time.Time) (string, error) {
	if _, err := ctx.CreateTimer(due).Await(); err != nil {
		return "", err
	}
	return "done", nil
})

// waitForEvent waits for the event "go" and returns its data.
var waitForEvent = durable.NewOrchestrator("WaitForEvent", func(ctx *durable.Context, _ any) (string, error) {
	return durable.WaitForExternalEvent[string](ctx, "go").Await()
})

func newHub(t *testing.T) *memory.Backend {
	t.Helper()
	b, err := memory.New(memory.Options{HubName: "WakeHub"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTaskHub(t.Context()); err != nil {
		t.Fatal(err)
	}
	return b
}

func wakes(t *testing.T, b *memory.Backend) []memory.Wake {
	t.Helper()
	ws, err := b.Wakes()
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// startEngine runs an engine over be until the test ends.
func startEngine(t *testing.T, be backend.Backend, defs ...durable.Definition) *engine.Engine {
	t.Helper()
	eng, _, _ := enginetest.Start(t, engine.Options{Backend: be, Logger: slog.New(slog.DiscardHandler), MaxPollInterval: 200 * time.Millisecond}, defs...)
	return eng
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestClientWithoutEngine: a process that owns no partition sends a wake
// with every control message, at most one immediate wake a second plus
// one trailing wake for the rest of that second.
func TestClientWithoutEngine(t *testing.T) {
	mb := newHub(t)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	w := wake.New(mb, wake.Options{Now: clock.now})
	c := client.New(w, nil, nil)
	ctx := t.Context()

	id, err := c.StartNew(ctx, "WaitForEvent", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, id, "go", `"x"`); err != nil { // same second: the trailing wake
		t.Fatal(err)
	}
	if err := c.Terminate(ctx, id, "coalesced"); err != nil { // covered by the trailing wake
		t.Fatal(err)
	}
	clock.advance(1500 * time.Millisecond)
	if err := c.SignalEntity(ctx, history.NewEntityID("counter", "c1"), "add", 1); err != nil {
		t.Fatal(err)
	}
	// A signal scheduled for later gets a wake when it is due.
	if err := c.SignalEntity(ctx, history.NewEntityID("counter", "c1"), "add", 2,
		client.SignalOptions{At: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	if got, want := w.Stats(), (wake.Stats{Sent: 4, Coalesced: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	ws := wakes(t, mb)
	reasons := []string{}
	for _, x := range ws {
		reasons = append(reasons, x.Message.Reason)
		if x.Message.Hub != "WakeHub" {
			t.Errorf("wake names hub %q", x.Message.Hub)
		}
	}
	if strings.Join(reasons, ",") != "start,event,event,event" {
		t.Fatalf("wake reasons %v, want start,event,event,event", reasons)
	}
	if !ws[0].Visible || !ws[2].Visible {
		t.Errorf("the immediate wakes are not visible: %+v", ws)
	}
	if d := ws[1].VisibleAt.Sub(ws[0].VisibleAt); ws[1].Visible || d < 500*time.Millisecond || d > 2*time.Second {
		t.Errorf("trailing wake visible %v after the first (visible now: %v), want about a second", d, ws[1].Visible)
	}
	if d := ws[3].VisibleAt.Sub(ws[2].VisibleAt); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("scheduled signal's wake visible %v after the signal, want an hour", d)
	}
}

// TestEngineOwnsEverything: a worker that owns every partition sends no
// wake for the starts it hands itself, one wake per due second for its
// timers, visible when they are due, and one for an entity signal
// scheduled for later.
func TestEngineOwnsEverything(t *testing.T) {
	mb := newHub(t)
	var eng *engine.Engine
	w := wake.New(mb, wake.Options{Owned: func(p int) bool { return eng.OwnsPartition(p) }})
	eng = startEngine(t, w, timerAt)
	c := client.New(w, nil, eng)
	ctx := t.Context()

	due := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(500 * time.Millisecond)
	var ids []string
	for range 2 {
		id, err := c.StartNew(ctx, "TimerAt", client.StartOptions{Input: due})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		st, err := c.WaitForCompletion(wctx, id, 100*time.Millisecond)
		cancel()
		if err != nil || st.Status != history.StatusCompleted || st.Output != `"done"` {
			t.Fatalf("instance %s: %+v, %v", id, st, err)
		}
	}
	// An entity signal scheduled for later, by a client of this process to
	// a partition it owns: due work, unlike the hidden copies of work
	// handed over in memory.
	signalAt := time.Now().Add(time.Hour)
	if err := c.SignalEntity(ctx, history.NewEntityID("counter", "later"), "add", 1, client.SignalOptions{At: signalAt}); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Stats(), (wake.Stats{Sent: 2, Coalesced: 1}); got != want {
		t.Errorf("stats %+v, want %+v (one timer wake for both timers, one for the signal)", got, want)
	}
	ws := wakes(t, mb)
	if len(ws) != 2 || ws[0].Message.Reason != backend.WakeTimer || ws[1].Message.Reason != backend.WakeEvent {
		t.Fatalf("wakes %+v, want one timer wake and one event wake", ws)
	}
	if d := ws[1].VisibleAt.Sub(signalAt); d < 0 || d > 2*time.Second {
		t.Errorf("scheduled signal's wake visible %v after the signal is due", d)
	}
	if ws[0].VisibleAt.Before(due) || ws[0].VisibleAt.After(due.Add(2*time.Second)) {
		t.Errorf("timer wake visible at %v, timers due at %v", ws[0].VisibleAt, due)
	}
	if d := ws[0].Message.DueTime.Sub(due); d < -time.Second || d > time.Second {
		t.Errorf("timer wake's dueTime %v, timers due at %v", ws[0].Message.DueTime, due)
	}
}

// TestDisabled: without the decorator nothing reaches the wake queue.
func TestDisabled(t *testing.T) {
	mb := newHub(t)
	eng := startEngine(t, mb, timerAt)
	local := client.New(mb, nil, eng)
	remote := client.New(mb, nil, nil)
	ctx := t.Context()
	var ids []string
	for _, c := range []*client.Client{local, remote} {
		id, err := c.StartNew(ctx, "TimerAt", client.StartOptions{Input: time.Now().Add(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		st, err := local.WaitForCompletion(wctx, id, 100*time.Millisecond)
		cancel()
		if err != nil || st.Status != history.StatusCompleted {
			t.Fatalf("instance %s: %+v, %v", id, st, err)
		}
	}
	if ws := wakes(t, mb); len(ws) != 0 {
		t.Errorf("wakes without the decorator: %+v", ws)
	}
}

// failingWakes is a hub whose wake queue cannot be written.
type failingWakes struct{ *memory.Backend }

var errWakeQueue = errors.New("wake queue unavailable")

func (failingWakes) SendWake(context.Context, string, time.Duration) (backend.Receipt, error) {
	return backend.Receipt{}, errWakeQueue
}

// TestFailedWake: a wake that cannot be sent is logged and does not fail
// the start, and the next message tries again.
func TestFailedWake(t *testing.T) {
	mb := newHub(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	w := wake.New(failingWakes{mb}, wake.Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	c := client.New(w, nil, nil)
	for range 2 {
		if _, err := c.StartNew(t.Context(), "WaitForEvent", client.StartOptions{}); err != nil {
			t.Fatalf("start with a failing wake queue: %v", err)
		}
	}
	if got, want := w.Stats(), (wake.Stats{Failed: 2}); got != want {
		t.Errorf("stats %+v, want %+v (the second start tries again)", got, want)
	}
	if n := mb.Len(mb.ControlQueueName(0)) + mb.Len(mb.ControlQueueName(1)) + mb.Len(mb.ControlQueueName(2)) + mb.Len(mb.ControlQueueName(3)); n != 2 {
		t.Errorf("control queues hold %d messages, want the 2 starts", n)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if got := logs.String(); strings.Count(got, "level=WARN msg=\"could not send a wake message") != 2 || !strings.Contains(got, errWakeQueue.Error()) {
		t.Errorf("log:\n%s", got)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestQueueName is the naming rule the wake function's queueTrigger must
// follow.
func TestQueueName(t *testing.T) {
	for hub, want := range map[string]string{"TestHubName": "testhubname-wake", "orders2": "orders2-wake"} {
		if got := wake.QueueName(hub); got != want {
			t.Errorf("QueueName(%q) = %q, want %q", hub, got, want)
		}
	}
}

// TestPollOwned: a message sent visible at once to a partition this
// process owns was not handed over in memory (its sender decided before
// the partition was owned): no wake, but the owner is told to poll it.
func TestPollOwned(t *testing.T) {
	mb := newHub(t)
	var polled []int
	var mu sync.Mutex
	w := wake.New(mb, wake.Options{Owned: func(int) bool { return true }, PollOwned: func(p int) {
		mu.Lock()
		polled = append(polled, p)
		mu.Unlock()
	}})
	c := client.New(w, nil, nil)
	id, err := c.StartNew(t.Context(), "WaitForEvent", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(polled) != 1 || polled[0] != mb.PartitionOf(id) {
		t.Errorf("polled partitions %v, want [%d]", polled, mb.PartitionOf(id))
	}
	if ws := wakes(t, mb); len(ws) != 0 || w.Stats() != (wake.Stats{}) {
		t.Errorf("wakes %+v, stats %+v: want none for an owned partition", ws, w.Stats())
	}
}
