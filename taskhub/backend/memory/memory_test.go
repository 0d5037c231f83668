package memory_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/backendtest"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// clock is a storage clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clocks maps each test storage to its clock.
var clocks sync.Map // *memory.Storage → *clock

// newHub returns a created hub on a new storage; with a manual clock
// unless realClock.
func newHub(t *testing.T, realClock bool) *memory.Backend {
	t.Helper()
	var opts memory.StorageOptions
	var c *clock
	if !realClock {
		c = &clock{t: time.Now()}
		opts.Now = c.Now
	}
	st := memory.NewStorage(opts)
	if c != nil {
		clocks.Store(st, c)
	}
	b, err := st.Open(memory.Options{HubName: "ConformanceHub"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTaskHub(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.DeleteTaskHub(context.Background()) })
	return b
}

func advance(b *memory.Backend, d time.Duration) {
	c, _ := clocks.Load(b.Storage())
	c.(*clock).Advance(d)
}

func suiteOptions(manualClock bool) backendtest.Options {
	opts := backendtest.Options{
		Open: func(t *testing.T, b backend.Backend, app string, partitions int) backend.Backend {
			mb := b.(*memory.Backend)
			other, err := mb.Storage().Open(memory.Options{HubName: mb.HubName(), PartitionCount: partitions, AppName: app})
			if err != nil {
				t.Fatal(err)
			}
			return other
		},
		PutRaw: func(t *testing.T, b backend.Backend, partition int, body string) {
			mb := b.(*memory.Backend)
			if _, err := mb.SendRaw(mb.ControlQueueName(partition), body, 0); err != nil {
				t.Fatal(err)
			}
		},
		Parked: func(t *testing.T, b backend.Backend, r backend.Receipt) (backendtest.ParkedMessage, bool) {
			for _, p := range b.(*memory.Backend).Parked() {
				if p.Queue == r.Queue && p.MessageID == r.MessageID {
					return backendtest.ParkedMessage{Reason: p.Reason, Body: p.Body, DequeueCount: p.DequeueCount,
						InsertedAt: p.InsertedAt, ParkedAt: p.ParkedAt}, true
				}
			}
			return backendtest.ParkedMessage{}, false
		},
		Wakes: func(t *testing.T, b backend.Backend) []backend.WakeMessage {
			ws, err := b.(*memory.Backend).Wakes()
			if err != nil {
				t.Fatal(err)
			}
			var out []backend.WakeMessage
			for _, w := range ws {
				if w.Visible {
					out = append(out, w.Message)
				}
			}
			return out
		},
	}
	if manualClock {
		opts.Advance = func(b backend.Backend, d time.Duration) { advance(b.(*memory.Backend), d) }
	}
	return opts
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return newHub(t, false) }, suiteOptions(true))
}

// TestConformanceRealClock runs the suite on the wall clock, as the engine
// uses the backend.
func TestConformanceRealClock(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return newHub(t, true) }, suiteOptions(false))
}

// TestPartitionOfMatchesAzureStorage routes a table of IDs with every
// partition count through both backends.
func TestPartitionOfMatchesAzureStorage(t *testing.T) {
	ids := []string{"", "a", "abc", "myinstance", "f71ac761454f41468d9923ac39e9bdbc", "order/42", "Zürich", "日本語",
		"x^y/z", "@counter@key", strings.Repeat("long", 100)}
	for n := 1; n <= memory.MaxPartitionCount; n++ {
		mem, err := memory.New(memory.Options{HubName: "RoutingHub", PartitionCount: n})
		if err != nil {
			t.Fatal(err)
		}
		az, err := azurestorage.New(azurestorage.Options{ConnectionString: "UseDevelopmentStorage=true", HubName: "RoutingHub", PartitionCount: n})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			ids = append(ids, fmt.Sprintf("instance-%d", i))
		}
		for _, id := range ids {
			if got, want := mem.PartitionOf(id), az.PartitionOf(id); got != want {
				t.Errorf("%d partitions: PartitionOf(%q) = %d, azurestorage says %d", n, id, got, want)
			}
		}
		if mem.ControlQueueName(n-1) != az.ControlQueueName(n-1) || mem.WorkItemQueueName() != az.WorkItemQueueName() {
			t.Errorf("queue names %s, %s differ from azurestorage's %s, %s", mem.ControlQueueName(n-1), mem.WorkItemQueueName(),
				az.ControlQueueName(n-1), az.WorkItemQueueName())
		}
	}
}

func raise(id, name string) backend.Message {
	ev := history.NewEvent(history.EventRaised, time.Now())
	ev.Name = name
	return backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: id}}
}

// TestVisibilityCountsWholeSeconds pins the Azure rounding: delays and
// visibilities round up to whole seconds, a receive hides for at least one.
func TestVisibilityCountsWholeSeconds(t *testing.T) {
	ctx := context.Background()
	b := newHub(t, false)
	id := "whole-seconds"
	p := b.PartitionOf(id)
	if _, err := b.SendControl(ctx, raise(id, "delayed"), 1200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	receive := func() []backend.Received {
		t.Helper()
		rs, _, err := b.ReceiveControl(ctx, p, 32, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	advance(b, 1900*time.Millisecond)
	if rs := receive(); len(rs) != 0 {
		t.Fatal("a 1.2 s delay ended before 2 s")
	}
	advance(b, 100*time.Millisecond)
	rs := receive()
	if len(rs) != 1 {
		t.Fatal("a 1.2 s delay did not end at 2 s")
	}
	if nv := rs[0].Receipt.NextVisible; nv.Nanosecond() != 0 || nv.Location() != time.UTC {
		t.Errorf("NextVisible %v: the queue service reports whole seconds in UTC", nv)
	}
	// The 100 ms visibility of that receive counts as one second.
	advance(b, 999*time.Millisecond)
	if rs := receive(); len(rs) != 0 {
		t.Fatal("a receive hid the message for less than a second")
	}
	advance(b, time.Millisecond)
	if rs := receive(); len(rs) != 1 || rs[0].DequeueCount != 2 {
		t.Fatalf("after one second: %d messages, want the message with dequeue count 2", len(rs))
	}
}

// TestStaleReceiptAfterExpiry pins the pop receipt rule: a receipt stays
// valid after its visibility ran out, until the message is received or
// re-hidden again.
func TestStaleReceiptAfterExpiry(t *testing.T) {
	ctx := context.Background()
	b := newHub(t, false)
	id := "expiry"
	if _, err := b.SendControl(ctx, raise(id, "x"), 0); err != nil {
		t.Fatal(err)
	}
	rs, _, _ := b.ReceiveControl(ctx, b.PartitionOf(id), 1, time.Second)
	advance(b, 5*time.Second)
	r, err := b.SetVisibility(ctx, rs[0].Receipt, time.Minute)
	if err != nil {
		t.Fatalf("renewing an expired but not re-received message: %v", err)
	}
	if err := b.DeleteMessage(ctx, r); err != nil || b.Len(r.Queue) != 0 {
		t.Fatalf("delete: %v, %d messages left", err, b.Len(r.Queue))
	}
}

// TestAppLeaseExpires checks expiry on the storage clock.
func TestAppLeaseExpires(t *testing.T) {
	ctx := context.Background()
	b := newHub(t, false)
	open := func(app string) *memory.Backend {
		o, err := b.Storage().Open(memory.Options{HubName: b.HubName(), AppName: app})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	one, two := open("app-one"), open("app-two")
	if err := one.AcquireAppLease(ctx); err != nil {
		t.Fatal(err)
	}
	advance(b, memory.AppLeaseDuration-time.Second)
	if err := two.AcquireAppLease(ctx); !errors.Is(err, backend.ErrHubInUse) {
		t.Fatalf("app-two before the lease ran out: %v", err)
	}
	// A lease that ran out is renewed by its holder while nobody took it.
	advance(b, 2*time.Second)
	if err := one.RenewAppLease(ctx); err != nil {
		t.Fatalf("renew after expiry, nobody else waiting: %v", err)
	}
	advance(b, memory.AppLeaseDuration)
	if err := two.AcquireAppLease(ctx); err != nil {
		t.Fatalf("app-two after the lease ran out: %v", err)
	}
	err := one.RenewAppLease(ctx)
	var inUse *backend.HubInUseError
	if !errors.As(err, &inUse) || !strings.Contains(inUse.Holder, "app-two") {
		t.Fatalf("app-one renewing a lease app-two took: %v", err)
	}
}

// TestStoredEventsKeepTheirClassMembers checks that fields an event type
// does not carry are dropped, in queues and history, as azurestorage drops
// them, and that failure properties come back as JSON values.
func TestStoredEventsKeepTheirClassMembers(t *testing.T) {
	ctx := context.Background()
	b := newHub(t, false)
	ev := history.NewEvent(history.TaskScheduled, time.Now())
	ev.EventID, ev.Name, ev.Input = 3, "Act", `"in"`
	stray := ev
	stray.Result, stray.FireAt, stray.Reason, stray.TaskScheduledID = `"not carried"`, time.Now(), "nor this", 9
	stray.Instance = history.OrchestrationInstance{InstanceID: "nor", ExecutionID: "this"}
	failed := history.NewEvent(history.TaskFailed, time.Now())
	failed.Failure = &history.FailureDetails{ErrorType: "E", Properties: map[string]any{"n": 7, "list": []int{1, 2}}}
	wantFailed := failed
	wantFailed.Failure = &history.FailureDetails{ErrorType: "E", Properties: map[string]any{"n": 7.0, "list": []any{1.0, 2.0}}}

	if _, err := b.SendWorkItem(ctx, backend.Message{Event: stray, Target: history.OrchestrationInstance{InstanceID: "i"}}, 0); err != nil {
		t.Fatal(err)
	}
	rs, _, err := b.ReceiveWorkItems(ctx, 1, time.Minute)
	if err != nil || len(rs) != 1 {
		t.Fatalf("receive: %d, %v", len(rs), err)
	}
	if !reflect.DeepEqual(rs[0].Message.Event, ev) {
		t.Errorf("queued event\n got %#v\nwant %#v", rs[0].Message.Event, ev)
	}
	if _, err := b.AppendHistory(ctx, "i", "e", 0, []history.Event{stray, failed}, ""); err != nil {
		t.Fatal(err)
	}
	h, err := b.LoadHistory(ctx, "i")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.Events, []history.Event{ev, wantFailed}) {
		t.Errorf("history\n got %#v\nwant %#v", h.Events, []history.Event{ev, wantFailed})
	}
	// What a caller does with the events it got does not reach storage.
	h.Events[1].Failure.Properties["n"] = "changed"
	if again, _ := b.LoadHistory(ctx, "i"); again.Events[1].Failure.Properties["n"] != 7.0 {
		t.Error("changing loaded events changed the stored history")
	}
	bad := failed
	bad.Failure = &history.FailureDetails{Properties: map[string]any{"f": func() {}}}
	if _, err := b.AppendHistory(ctx, "j", "e", 0, []history.Event{bad}, ""); err == nil || !strings.Contains(err.Error(), "Properties") {
		t.Errorf("properties that are not JSON: %v", err)
	}
}

// TestUndecodableSalvage checks what an undecodable message of this
// backend's format still tells.
func TestUndecodableSalvage(t *testing.T) {
	ctx := context.Background()
	b := newHub(t, false)
	q := b.ControlQueueName(0)
	for body, want := range map[string]struct {
		target    history.OrchestrationInstance
		eventType string
		reason    string
	}{
		`{"Target":{"InstanceID":"inst","ExecutionID":"e1"},"Event":{"Type":99}}`:       {history.OrchestrationInstance{InstanceID: "inst", ExecutionID: "e1"}, "EventType(99)", "unknown event type 99"},
		`{"Target":{"InstanceID":"inst"},"Event":{"Type":15,"EventID":"not a number"}}`: {history.OrchestrationInstance{InstanceID: "inst"}, "EventRaised", "not a message"},
		`{"Event":{"Type":15}}`:            {history.OrchestrationInstance{}, "EventRaised", "no target"},
		`{"Target":{"InstanceID":"inst"}}`: {history.OrchestrationInstance{InstanceID: "inst"}, "", "no event type"},
		`   `:                              {history.OrchestrationInstance{}, "", "empty"},
	} {
		if _, err := b.SendRaw(q, body, 0); err != nil {
			t.Fatal(err)
		}
		_, us, err := b.ReceiveControl(ctx, 0, 32, time.Minute)
		if err != nil || len(us) != 1 {
			t.Fatalf("%s: %d undecodable, %v", body, len(us), err)
		}
		u := us[0]
		if u.Target != want.target || u.EventType != want.eventType || !strings.Contains(u.Reason.Error(), want.reason) || u.Body != body {
			t.Errorf("%s: target %+v, event type %q, reason %v; want %+v, %q, %q", body, u.Target, u.EventType, u.Reason, want.target, want.eventType, want.reason)
		}
		if err := b.DeleteMessage(ctx, u.Receipt); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNotify checks the wake-up channel.
func TestNotify(t *testing.T) {
	ctx := context.Background()
	b := newHub(t, false)
	q := b.WorkItemQueueName()
	wake := b.Notify(q)
	r, err := b.SendWorkItem(ctx, raise("n", "delayed"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("a delayed send woke the queue's waiters")
	default:
	}
	if _, err := b.SetVisibility(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	default:
		t.Fatal("making a message visible did not wake the queue's waiters")
	}
	wake = b.Notify(q)
	if _, err := b.SendWorkItem(ctx, raise("n", "now"), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	default:
		t.Fatal("a send did not wake the queue's waiters")
	}
	if b.Len(q) != 2 {
		t.Errorf("Len = %d, want 2", b.Len(q))
	}
}

// TestOptions checks that bad configuration is refused and that hub names
// are case-insensitive within a storage, as Azure's queue and table names.
func TestOptions(t *testing.T) {
	for _, opts := range []memory.Options{{HubName: "ab"}, {HubName: "1hub"}, {HubName: "my-hub"}, {HubName: "Hub", PartitionCount: 17}, {HubName: "Hub", PartitionCount: -1}} {
		if _, err := memory.New(opts); err == nil {
			t.Errorf("New(%+v) accepted", opts)
		}
	}
	st := memory.NewStorage(memory.StorageOptions{})
	upper, err := st.Open(memory.Options{HubName: "SharedHub"})
	if err != nil {
		t.Fatal(err)
	}
	lower, err := st.Open(memory.Options{HubName: "sharedhub", PartitionCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := upper.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	err = lower.CreateTaskHub(ctx)
	var lm *memory.LayoutMismatchError
	if !errors.As(err, &lm) || lm.Found != 4 || lm.Configured != 2 || !strings.Contains(err.Error(), "configure 4 partitions") {
		t.Errorf("a 2-partition backend on the 4-partition hub: %v", err)
	}
	if upper.PartitionCount() != memory.DefaultPartitionCount {
		t.Errorf("default partition count %d", upper.PartitionCount())
	}
}

// BenchmarkSendReceiveDelete measures one message's trip through a queue.
func BenchmarkSendReceiveDelete(b *testing.B) {
	be, err := memory.New(memory.Options{HubName: "BenchHub"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := be.CreateTaskHub(ctx); err != nil {
		b.Fatal(err)
	}
	msg := raise("bench", "ev")
	for b.Loop() {
		if _, err := be.SendWorkItem(ctx, msg, 0); err != nil {
			b.Fatal(err)
		}
		rs, _, err := be.ReceiveWorkItems(ctx, 1, time.Minute)
		if err != nil || len(rs) != 1 {
			b.Fatal(len(rs), err)
		}
		if err := be.DeleteMessage(ctx, rs[0].Receipt); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMergeLeavesStoredTimesForZeroTimes pins what azurestorage does (a
// Table merge cannot store a null date) and backend.MergeInstance allows.
func TestMergeLeavesStoredTimesForZeroTimes(t *testing.T) {
	ctx := context.Background()
	b := newHub(t, false)
	t0 := history.StorageTime(time.Now())
	st := backend.InstanceState{InstanceID: "m", Name: "X", Output: `"o"`, Status: history.StatusCompleted,
		CreatedTime: t0, LastUpdatedTime: t0.Add(time.Second), CompletedTime: t0.Add(2 * time.Second), ScheduledStartTime: t0.Add(-time.Second)}
	if _, err := b.CreateInstance(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := b.MergeInstance(ctx, backend.InstanceState{InstanceID: "m", Status: history.StatusFailed}); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetInstance(ctx, "m", true)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedTime != st.CreatedTime || got.LastUpdatedTime != st.LastUpdatedTime || got.CompletedTime != st.CompletedTime ||
		got.ScheduledStartTime != st.ScheduledStartTime || got.Name != "" || got.Output != "" {
		t.Errorf("after a merge with zero times: %+v", got)
	}
	// A replace drops them.
	if _, err := b.UpdateInstance(ctx, backend.InstanceState{InstanceID: "m", Status: history.StatusFailed}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.GetInstance(ctx, "m", true); !got.CreatedTime.IsZero() || !got.CompletedTime.IsZero() {
		t.Errorf("after a replace with zero times: %+v", got)
	}
}

// TestStoredEventsKeepTheirTraceContext checks that the trace context an
// event carries survives a queue and history as Azure Storage keeps it: on
// the classes that have it, with its flags, at storage precision, and
// copied (a caller's change does not reach storage); a trace state longer
// than Durable Task keeps is dropped.
func TestStoredEventsKeepTheirTraceContext(t *testing.T) {
	ctx := context.Background()
	b := newHub(t, false)
	at := time.Date(2026, 12, 2, 7, 0, 0, 123456789, time.UTC)
	start := history.NewEvent(history.ExecutionStarted, at)
	start.Name, start.Instance = "O", history.OrchestrationInstance{InstanceID: "i", ExecutionID: "e"}
	start.ParentTraceContext = &history.TraceContext{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
		TraceState: strings.Repeat("k", history.MaxTraceStateLength+1), SpanID: "00f067aa0ba902b7", ActivityStartTime: &at}
	created := history.NewEvent(history.SubOrchestrationInstanceCreated, at)
	created.EventID, created.Name, created.InstanceID, created.ClientSpanID = 0, "C", "child", "6e0c63257de34c92"
	completed := history.NewEvent(history.TaskCompleted, at)
	completed.ParentTraceContext = &history.TraceContext{TraceParent: "not carried by TaskCompleted"}
	if _, err := b.AppendHistory(ctx, "i", "e", 0, []history.Event{start, created, completed}, ""); err != nil {
		t.Fatal(err)
	}
	h, err := b.LoadHistory(ctx, "i")
	if err != nil {
		t.Fatal(err)
	}
	got := h.Events[0].ParentTraceContext
	want := history.StorageTime(at)
	if got == nil || got.TraceParent != start.ParentTraceContext.TraceParent || got.TraceState != "" || got.SpanID != "00f067aa0ba902b7" ||
		got.ActivityStartTime == nil || !got.ActivityStartTime.Equal(want) {
		t.Errorf("stored ExecutionStarted trace context %+v", got)
	}
	if h.Events[1].ClientSpanID != "6e0c63257de34c92" || h.Events[2].ParentTraceContext != nil {
		t.Errorf("ClientSpanId %q, TaskCompleted trace context %+v", h.Events[1].ClientSpanID, h.Events[2].ParentTraceContext)
	}
	got.TraceParent = "changed"
	if again, _ := b.LoadHistory(ctx, "i"); again.Events[0].ParentTraceContext.TraceParent == "changed" {
		t.Error("changing a loaded trace context changed the stored history")
	}

	raised := history.NewEvent(history.EventRaised, at)
	raised.Name, raised.ParentTraceContext = "E", &history.TraceContext{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	if _, err := b.SendControl(ctx, backend.Message{Event: raised, Target: history.OrchestrationInstance{InstanceID: "i"}}, 0); err != nil {
		t.Fatal(err)
	}
	rs, _, err := b.ReceiveControl(ctx, b.PartitionOf("i"), 1, time.Minute)
	if err != nil || len(rs) != 1 {
		t.Fatalf("receive: %d, %v", len(rs), err)
	}
	if c := rs[0].Message.Event.ParentTraceContext; c == nil || *c != *raised.ParentTraceContext {
		t.Errorf("queued EventRaised trace context %+v", c)
	}
}
