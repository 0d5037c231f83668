package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// panicky makes the engine panic whenever it appends an episode that holds
// an EventRaised named "boom" or the start of a "Doomed" orchestration:
// well-formed events whose processing always fails.
type panicky struct{ backend.Backend }

func (p panicky) AppendHistory(ctx context.Context, id, exec string, from int, events []history.Event, etag string) (string, error) {
	for _, ev := range events {
		if ev.Type == history.EventRaised && ev.Name == "boom" {
			panic("injected: the engine cannot process the event boom")
		}
		if ev.Type == history.ExecutionStarted && ev.Name == "Doomed" {
			panic("injected: the engine cannot start Doomed")
		}
	}
	return p.Backend.AppendHistory(ctx, id, exec, from, events, etag)
}

// rawQueues writes queue messages bypassing our encoder.
type rawQueues struct {
	t    *testing.T
	svc  *azqueue.ServiceClient
	tbls *aztables.ServiceClient
}

func newRawQueues(t *testing.T) *rawQueues {
	t.Helper()
	svc, tbls := rawQueueService(t), rawTableService(t)
	return &rawQueues{t: t, svc: svc, tbls: tbls}
}

// put enqueues text on queue and returns the message ID.
func (r *rawQueues) put(queue, text string) string {
	r.t.Helper()
	resp, err := r.svc.NewQueueClient(queue).EnqueueMessage(context.Background(), text, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return *resp.Messages[0].MessageID
}

// count returns the approximate number of messages in queue.
func (r *rawQueues) count(queue string) int32 {
	r.t.Helper()
	props, err := r.svc.NewQueueClient(queue).GetProperties(context.Background(), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return *props.ApproximateMessagesCount
}

// parkedRow is one row of the {hub}Poison table.
type parkedRow struct {
	Queue, MessageID, Reason, Body string
	DequeueCount                   int64
	Inserted, Parked               time.Time
}

// parked lists the Poison table.
func (r *rawQueues) parked(table string) []parkedRow {
	r.t.Helper()
	var rows []parkedRow
	pager := r.tbls.NewClient(table).NewListEntitiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			r.t.Fatal(err)
		}
		for _, raw := range page.Entities {
			var e aztables.EDMEntity
			if err := e.UnmarshalJSON(raw); err != nil {
				r.t.Fatal(err)
			}
			row := parkedRow{Queue: e.PartitionKey, MessageID: e.RowKey}
			row.Reason, _ = e.Properties["Reason"].(string)
			switch b := e.Properties["Body"].(type) {
			case string:
				row.Body = b
			case []byte:
				row.Body = string(b)
			}
			if n, ok := e.Properties["DequeueCount"].(aztables.EDMInt64); ok {
				row.DequeueCount = int64(n)
			}
			if t, ok := e.Properties["InsertedTime"].(aztables.EDMDateTime); ok {
				row.Inserted = time.Time(t)
			}
			if t, ok := e.Properties["ParkedTime"].(aztables.EDMDateTime); ok {
				row.Parked = time.Time(t)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// TestHostileMessagesAreRetriedThenParked puts every kind of hostile queue
// message in front of one engine (MaxDequeueCount 3): each comes back after
// a growing delay, is parked after exactly three dequeues with its reason,
// the running instance it belongs to fails with a reason naming it, an
// activity whose instance was purged runs once, and sample instances keep
// completing meanwhile.
func TestHostileMessagesAreRetriedThenParked(t *testing.T) {
	h := newHub(t)
	const maxDequeue = 3
	var tallies atomic.Int32
	tally := durable.NewActivity("Tally", func(ctx context.Context, n int) (int, error) {
		tallies.Add(1)
		return n + 1, nil
	})
	waiter := durable.NewOrchestrator("Waiter", func(ctx *durable.Context, _ any) (string, error) {
		return durable.WaitForExternalEvent[string](ctx, "never").Await()
	})
	echo := durable.NewOrchestrator("Echo", func(ctx *durable.Context, in string) (string, error) { return in, nil })
	seq := durable.NewOrchestrator("Seq", func(ctx *durable.Context, n int) (string, error) {
		return greet.Call(ctx, fmt.Sprint(n)).Await()
	})
	doomed := durable.NewOrchestrator("Doomed", func(ctx *durable.Context, _ any) (string, error) { return "", nil })
	be := panicky{h.store}
	eng, c := h.start(engine.Options{Backend: be, MaxDequeueCount: maxDequeue,
		MessageVisibility: 2 * time.Second}, tally, waiter, echo, seq, greet, doomed)
	ctx := context.Background()
	raw := newRawQueues(t)
	controlOf := func(id string) string { return h.store.ControlQueueName(h.store.PartitionOf(id)) }

	// Running instances for the hostile messages to belong to.
	waiters := map[string]string{}
	for _, k := range []string{"unknown-event", "missing-blob", "no-such-task", "panic", "bad-work-item"} {
		waiters[k] = start(t, c, "Waiter", nil, "w-"+k)
	}
	for _, id := range waiters {
		waitStatus(t, c, id, history.StatusRunning)
	}
	// An instance that is gone: finished and purged.
	purged := start(t, c, "Echo", "x", "purged")
	if st := wait(t, c, purged); st.Status != history.StatusCompleted {
		t.Fatalf("purged-to-be: %s", st.Status)
	}
	if err := c.Purge(ctx, purged); err != nil {
		t.Fatal(err)
	}

	type hostile struct {
		queue, id string // where it was put (id "" when unknown in advance)
		bodyHas   string // with id "": the parked body contains this
		instance  string // the running instance it belongs to ("" = none)
		reason    string // the parked reason must contain this
		event     string // event type named in the instance's failure
		unstarted bool   // the instance never started: no history
	}
	cases := map[string]*hostile{}

	// 1. Not JSON at all, in a control queue: nothing to fail.
	q := h.store.ControlQueueName(0)
	cases["invalid JSON"] = &hostile{queue: q, id: raw.put(q, "this is not JSON {"), reason: "neither JSON"}

	// 2. Valid JSON naming a running instance and an event type we do not know.
	w := waiters["unknown-event"]
	q = controlOf(w)
	cases["unknown event type"] = &hostile{queue: q, instance: w, reason: `unknown event type name "FromTheFuture"`, event: "FromTheFuture",
		id: raw.put(q, fmt.Sprintf(`{"TaskMessage":{"OrchestrationInstance":{"InstanceId":%q},"Event":{"EventType":"FromTheFuture"}}}`, w))}

	// 3. A large-message wrapper whose blob does not exist.
	w = waiters["missing-blob"]
	q = controlOf(w)
	cases["missing blob"] = &hostile{queue: q, instance: w, reason: "blob not found", event: "EventRaised",
		id: raw.put(q, fmt.Sprintf(`{"$type":"DurableTask.AzureStorage.MessageData","ActivityId":"00000000-0000-0000-0000-000000000000","TaskMessage":null,"CompressedBlobName":"%s/message-0123456789abcdef0123456789abcdef-EventRaised.json.gz","SequenceNumber":0}`, w))}

	// 4. A well-formed answer to a task the running instance never scheduled.
	w = waiters["no-such-task"]
	answer := history.NewEvent(history.TaskCompleted, time.Now())
	answer.TaskScheduledID, answer.Result = 99, `"surprise"`
	r, err := h.store.SendControl(ctx, backend.Message{Event: answer, Target: history.OrchestrationInstance{InstanceID: w}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	cases["answer to no task"] = &hostile{queue: r.Queue, id: r.MessageID, instance: w, reason: "records no task 99", event: "TaskCompleted"}

	// 5. A well-formed event whose processing makes the engine panic.
	w = waiters["panic"]
	if err := c.RaiseEvent(ctx, w, "boom", `1`); err != nil {
		t.Fatal(err)
	}
	cases["engine panic"] = &hostile{queue: controlOf(w), bodyHas: `"boom"`, instance: w, reason: "injected: the engine cannot process the event boom", event: "EventRaised"}

	// 6. An answer for an instance that never existed.
	ghost := history.NewEvent(history.TaskCompleted, time.Now())
	ghost.TaskScheduledID, ghost.Result = 0, `"boo"`
	r, err = h.store.SendControl(ctx, backend.Message{Event: ghost, Target: history.OrchestrationInstance{InstanceID: "ghost", ExecutionID: "e0"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	cases["answer to no instance"] = &hostile{queue: r.Queue, id: r.MessageID, reason: "its instance has no history"}

	// 7. A work item of the purged instance: the activity runs once, and its
	// result, which has nowhere to go, is parked.
	call := history.NewEvent(history.TaskScheduled, time.Now())
	call.EventID, call.Name, call.Input = 0, "Tally", "41"
	if _, err := h.store.SendWorkItem(ctx, backend.Message{Event: call, Target: history.OrchestrationInstance{InstanceID: purged, ExecutionID: "gone"}}, 0); err != nil {
		t.Fatal(err)
	}
	cases["work item of a purged instance"] = &hostile{queue: controlOf(purged), bodyHas: `"purged"`, reason: "its instance has no history"}

	// 8. An undecodable work item naming a running instance.
	w = waiters["bad-work-item"]
	q = h.store.WorkItemQueueName()
	cases["undecodable work item"] = &hostile{queue: q, instance: w, reason: `unknown event type name "Nope"`, event: "Nope",
		id: raw.put(q, fmt.Sprintf(`{"TaskMessage":{"OrchestrationInstance":{"InstanceId":%q},"Event":{"EventType":"Nope"}}}`, w))}
	// 9. A start whose processing makes the engine panic, sent by a client
	// in another process: the instance never starts, and its Pending row
	// fails.
	remote := client.New(be, nil, nil)
	d, err := remote.StartNew(ctx, "Doomed", client.StartOptions{InstanceID: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	cases["start that makes the engine panic"] = &hostile{queue: controlOf(d), bodyHas: `"doomed"`, instance: d, unstarted: true,
		reason: "injected: the engine cannot start Doomed", event: "ExecutionStarted"}
	injected := time.Now()

	// Sample instances keep completing while the hostile messages cycle.
	var done atomic.Bool
	var normal atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !done.Load(); i++ {
			id, err := c.StartNew(ctx, "Seq", client.StartOptions{Input: i})
			if err != nil {
				t.Error(err)
				return
			}
			if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != fmt.Sprintf(`"Hi %d"`, i) {
				t.Errorf("sample instance %d: %s %s", i, st.Status, st.Output)
				return
			}
			normal.Add(1)
		}
	}()

	poll(t, 60*time.Second, "every hostile message to be parked", func() bool { return len(raw.parked(h.store.PoisonTableName())) >= len(cases) })
	parkedAt := time.Now()
	done.Store(true)
	wg.Wait()
	if normal.Load() == 0 {
		t.Error("no sample instance completed while the hostile messages were retried")
	}

	rows := raw.parked(h.store.PoisonTableName())
	if len(rows) != len(cases) {
		t.Errorf("%d parked messages, want %d", len(rows), len(cases))
	}
	// The minimum time a message needs to be dequeued three times: the
	// backoffs after its first and second tries (1 s, 2 s).
	const backoffs = 3 * time.Second
	for name, hc := range cases {
		t.Run(name, func(t *testing.T) {
			var got *parkedRow
			for i := range rows {
				row := &rows[i]
				if row.Queue == hc.queue && (row.MessageID == hc.id || hc.id == "" && strings.Contains(row.Body, hc.bodyHas)) {
					got = row
				}
			}
			if got == nil {
				t.Fatalf("no parked row in %s for message %q (reason %q); parked: %+v", hc.queue, hc.id, hc.reason, rows)
			}
			if !strings.Contains(got.Reason, hc.reason) || got.Body == "" {
				t.Errorf("parked reason %q lacks %q (body %d bytes)", got.Reason, hc.reason, len(got.Body))
			}
			if got.DequeueCount != maxDequeue {
				t.Errorf("parked after %d dequeues, want %d", got.DequeueCount, maxDequeue)
			}
			if d := got.Parked.Sub(got.Inserted); d < backoffs-100*time.Millisecond {
				t.Errorf("parked %v after it was queued: it was not backed off (want at least %v)", d, backoffs)
			}
			if hc.instance == "" {
				return
			}
			st := waitStatus(t, c, hc.instance, history.StatusFailed)
			for _, s := range []string{"PoisonMessage: message " + got.MessageID + " (" + hc.event + ") in queue " + hc.queue, hc.reason} {
				if !strings.Contains(st.Output, s) {
					t.Errorf("failure %q does not name %q", st.Output, s)
				}
			}
			if hc.unstarted {
				return
			}
			// The failure is an ordinary checkpoint: history records the
			// notice, then one failed completion.
			events, err := c.GetHistory(ctx, hc.instance)
			if err != nil {
				t.Fatal(err)
			}
			last := events[len(events)-2] // before OrchestratorCompleted
			types := historyTypes(t, c, hc.instance)
			if count(types, "ExecutionCompleted") != 1 || count(types, "GenericEvent") != 1 ||
				last.Type != history.ExecutionCompleted || last.Failure == nil || last.Failure.ErrorType != "PoisonMessage" {
				t.Errorf("history %v ends with %+v", types, last)
			}
		})
	}
	if n := tallies.Load(); n != 1 {
		t.Errorf("the purged instance's activity ran %d times, want once", n)
	}
	if n := raw.count(h.store.WorkItemQueueName()); n != 0 {
		t.Errorf("%d messages left in the work-item queue", n)
	}
	if st, err := c.GetStatus(ctx, purged, false); err == nil {
		t.Errorf("the purged instance came back: %+v", st)
	}
	s := eng.Stats()
	if s.PoisonMessages != int64(len(cases)) || s.DroppedMessages < 2 {
		t.Errorf("stats %+v: want %d poison messages and at least 2 dropped", s, len(cases))
	}
	t.Logf("%d hostile messages parked %v after injection; %d sample instances completed meanwhile; stats %+v",
		len(cases), parkedAt.Sub(injected).Round(100*time.Millisecond), normal.Load(), s)
}

// resultPanics makes the engine panic whenever it appends an activity
// result: results that can never be checkpointed.
type resultPanics struct{ backend.Backend }

func (p resultPanics) AppendHistory(ctx context.Context, id, exec string, from int, events []history.Event, etag string) (string, error) {
	for _, ev := range events {
		if ev.Type == history.TaskCompleted {
			panic("injected: the engine cannot record an activity result")
		}
	}
	return p.Backend.AppendHistory(ctx, id, exec, from, events, etag)
}

// TestUndeliverableResultsDoNotRerunActivities runs two activities, one in
// the process (local) and one through the work-item queue, whose results
// can never be checkpointed: each activity runs exactly once, the results
// are retried in memory, then stored as control messages of their own (the
// work item is deleted, not released); the first to reach MaxDequeueCount
// dequeues is parked and the instance fails naming it.
func TestUndeliverableResultsDoNotRerunActivities(t *testing.T) {
	h := newHub(t)
	var runs sync.Map // input → *atomic.Int32
	tally := durable.NewActivity("Tally", func(ctx context.Context, n int) (int, error) {
		v, _ := runs.LoadOrStore(n, new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
		return n + 1, nil
	})
	pair := durable.NewOrchestrator("Pair", func(ctx *durable.Context, _ any) (int, error) {
		a, b := tally.Call(ctx, 1), tally.Call(ctx, 2)
		x, err := a.Await()
		if err != nil {
			return 0, err
		}
		y, err := b.Await()
		return x + y, err
	})
	// One local slot: the second call goes through the work-item queue.
	eng, c := h.start(engine.Options{Backend: resultPanics{h.store}, MaxDequeueCount: 3, MessageVisibility: 2 * time.Second,
		MaxConcurrentActivities: 1, MaxLocalActivityBacklog: 1}, tally, pair)
	id := start(t, c, "Pair", nil)
	st := wait(t, c, id)
	if st.Status != history.StatusFailed || !strings.Contains(st.Output, "PoisonMessage: message ") ||
		!strings.Contains(st.Output, "(TaskCompleted)") || !strings.Contains(st.Output, "injected: the engine cannot record an activity result") {
		t.Fatalf("status %s, output %q", st.Status, st.Output)
	}
	for _, n := range []int{1, 2} {
		v, ok := runs.Load(n)
		if !ok || v.(*atomic.Int32).Load() != 1 {
			t.Errorf("Tally(%d) ran %v times, want once", n, v)
		}
	}
	raw := newRawQueues(t)
	if n := raw.count(h.store.WorkItemQueueName()); n != 0 {
		t.Errorf("%d messages left in the work-item queue", n)
	}
	// The first result to reach three dequeues is parked and fails the
	// instance; the other is then discarded, as any response for a
	// finished instance: nothing is left in any queue.
	queues := []string{h.store.WorkItemQueueName()}
	for p := 0; p < h.store.PartitionCount(); p++ {
		queues = append(queues, h.store.ControlQueueName(p))
	}
	poll(t, 60*time.Second, "every queue to drain", func() bool {
		for _, q := range queues {
			if raw.count(q) != 0 {
				return false
			}
		}
		return true
	})
	rows := raw.parked(h.store.PoisonTableName())
	if len(rows) != 1 || rows[0].Queue != h.store.ControlQueueName(h.store.PartitionOf(id)) || rows[0].DequeueCount != 3 ||
		!strings.Contains(rows[0].Reason, "injected: the engine cannot record an activity result") || !strings.Contains(st.Output, rows[0].MessageID) {
		t.Errorf("parked %+v; want the one result the failure names, after 3 dequeues", rows)
	}
	if s := eng.Stats(); s.ActivitiesRun != 2 {
		t.Errorf("%d activity runs, want 2", s.ActivitiesRun)
	}
}

// redelivered reports every work item as received many times already, as
// a work item whose activity crashed the worker over and over would be.
type redelivered struct {
	backend.Backend
	extra int64
}

func (r redelivered) ReceiveWorkItems(ctx context.Context, n int, v time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	msgs, bad, err := r.Backend.ReceiveWorkItems(ctx, n, v)
	for i := range msgs {
		msgs[i].DequeueCount += r.extra
	}
	return msgs, bad, err
}

// TestWorkItemThatKeepsCrashingIsCapped: a work item received more than
// twice MaxDequeueCount times has never finished (its activity takes the
// worker down); it is parked and its orchestration fails naming it,
// instead of crashing workers for ever.
func TestWorkItemThatKeepsCrashingIsCapped(t *testing.T) {
	h := newHub(t)
	var remoteRan atomic.Bool
	boom := durable.NewActivity("Boom", func(ctx context.Context, n int) (int, error) {
		if n == 2 { // the second call goes to the work-item queue (local backlog 1)
			remoteRan.Store(true)
		}
		return n, nil
	})
	pair := durable.NewOrchestrator("Pair", func(ctx *durable.Context, _ any) (int, error) {
		a, b := boom.Call(ctx, 1), boom.Call(ctx, 2)
		x, err := a.Await()
		if err != nil {
			return 0, err
		}
		y, err := b.Await()
		return x + y, err
	})
	_, c := h.start(engine.Options{Backend: redelivered{Backend: h.store, extra: 10}, MaxDequeueCount: 3,
		MaxConcurrentActivities: 1, MaxLocalActivityBacklog: 1}, pair, boom)
	id := start(t, c, "Pair", nil)
	st := wait(t, c, id)
	if st.Status != history.StatusFailed || !strings.Contains(st.Output, "never finished") {
		t.Fatalf("%s %s", st.Status, st.Output)
	}
	if remoteRan.Load() {
		t.Fatal("the work item that kept crashing was run again")
	}
}
