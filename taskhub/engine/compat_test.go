package engine_test

// Durable Task compatibility of the engine's storage behaviour: its start
// rule, the rewind record, merged Instances updates and inputs that a
// Durable Task client left in a blob. Storage is written "by hand" here the
// way Durable Task's clients write it.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// logRecords collects log records, for tests that count log lines.
type logRecords struct {
	mu      sync.Mutex
	records []map[string]string // "msg" and every attribute, as text
}

type captureHandler struct {
	logs  *logRecords
	attrs []slog.Attr
}

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	rec := map[string]string{"msg": r.Message, "level": r.Level.String()}
	for _, a := range h.attrs {
		rec[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec[a.Key] = a.Value.String()
		return true
	})
	h.logs.mu.Lock()
	h.logs.records = append(h.logs.records, rec)
	h.logs.mu.Unlock()
	return nil
}

func (h captureHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return captureHandler{logs: h.logs, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h captureHandler) WithGroup(string) slog.Handler { return h }

// matching returns the records whose attributes include every pair of kv.
func (l *logRecords) matching(kv map[string]string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
next:
	for _, r := range l.records {
		for k, v := range kv {
			if !strings.Contains(r[k], v) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// storage is raw access to the hub's tables, queues and blobs, as another
// tool (or a Durable Task client) has it.
type storage struct {
	tables    *aztables.ServiceClient
	queues    *azqueue.ServiceClient
	largeBlob *container.Client
}

func rawStorage(t *testing.T, h *hub) storage {
	t.Helper()
	acct := testAccount(t)
	tables, queues := rawTableService(t), rawQueueService(t)
	bcred, err := container.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := container.NewClientWithSharedKeyCredential(acct.BlobEndpoint+"/"+h.store.LargeMessagesContainerName(), bcred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return storage{tables: tables, queues: queues, largeBlob: blobs}
}

// instanceRow reads an instance's Instances row as stored.
func (s storage) instanceRow(t *testing.T, h *hub, id string) map[string]any {
	t.Helper()
	resp, err := s.tables.NewClient(h.store.InstancesTableName()).GetEntity(context.Background(), id, "", nil)
	if err != nil {
		t.Fatalf("Instances row of %s: %v", id, err)
	}
	var row map[string]any
	if err := json.Unmarshal(resp.Value, &row); err != nil {
		t.Fatal(err)
	}
	return row
}

// historyRows reads an instance's History rows as stored, sentinel included.
func (s storage) historyRows(t *testing.T, h *hub, id string) []map[string]any {
	t.Helper()
	filter := "PartitionKey eq '" + id + "'"
	pager := s.tables.NewClient(h.store.HistoryTableName()).NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	var rows []map[string]any
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, data := range page.Entities {
			var row map[string]any
			if err := json.Unmarshal(data, &row); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// queuedMessages counts the messages (visible or not) in a control queue.
func (s storage) queuedMessages(t *testing.T, h *hub, id string) int32 {
	t.Helper()
	q := s.queues.NewQueueClient(h.store.ControlQueueName(h.store.PartitionOf(id)))
	props, err := q.GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return *props.ApproximateMessagesCount
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExecution polls the row until execution execID of the instance has
// finished. (Client.WaitForCompletion may answer with an earlier
// execution's outcome that the local engine remembers.)
func waitExecution(t *testing.T, c *client.Client, id, execID string) client.Status {
	t.Helper()
	var st client.Status
	eventually(t, "execution "+execID+" of "+id+" to finish", 60*time.Second, func() bool {
		var err error
		st, err = c.GetStatus(context.Background(), id, true)
		return err == nil && (execID == "" || st.ExecutionID == execID) && st.Status.IsTerminal()
	})
	return st
}

var echo = durable.NewOrchestrator("Echo", func(ctx *durable.Context, in string) (string, error) { return in, nil })

// durableTaskStart builds the start message a Durable Task client sends.
func durableTaskStart(id, name, input string, generation int32, at time.Time) (backend.Message, string) {
	execID := history.NewID()
	ev := history.NewEvent(history.ExecutionStarted, at)
	ev.Instance = history.OrchestrationInstance{InstanceID: id, ExecutionID: execID}
	ev.Name, ev.Input, ev.Generation = name, input, &generation
	return backend.Message{Event: ev, Target: ev.Instance, ActivityID: history.NewID()}, execID
}

// TestDurableTaskStyleRestartWaitsForItsRow restarts a finished instance
// the way a Durable Task client does, from another process: the start
// message (generation + 1) first, the Instances row a moment later. The
// engine sees the message while the row still names the finished
// execution; it must defer it, not drop it, and run the new execution
// once the row catches up.
func TestDurableTaskStyleRestartWaitsForItsRow(t *testing.T) {
	h := newHub(t)
	eng, c := h.start(engine.Options{}, echo)
	ctx := context.Background()
	id := start(t, c, "Echo", "first", "restart-me")
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"first"` {
		t.Fatalf("first run: %s %s", st.Status, st.Output)
	}
	old, err := h.store.GetInstance(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	before := eng.Stats()

	msg, execID := durableTaskStart(id, "Echo", `"second"`, old.Generation+1, time.Now())
	if _, err := h.store.SendControl(ctx, msg, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the engine to defer the restart", 30*time.Second, func() bool {
		s := eng.Stats()
		if s.DroppedMessages > before.DroppedMessages {
			t.Fatalf("the engine dropped the restart's start message (stats %+v)", s)
		}
		return s.DeferredMessages > before.DeferredMessages
	})
	row := backend.InstanceState{
		InstanceID: id, Name: "Echo", ExecutionID: execID, Input: `"second"`, CreatedTime: msg.Event.Timestamp,
		LastUpdatedTime: time.Now(), Status: history.StatusPending, Generation: old.Generation + 1, ETag: old.ETag,
	}
	if _, err := h.store.UpdateInstance(ctx, row); err != nil {
		t.Fatalf("the client's row write: %v", err)
	}
	written := time.Now()

	st := waitExecution(t, c, id, execID)
	t.Logf("restart deferred %d times, completed %v after the row write", eng.Stats().DeferredMessages-before.DeferredMessages, time.Since(written).Round(time.Millisecond))
	stored, err := h.store.GetInstance(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != history.StatusCompleted || st.ExecutionID != execID || st.Output != `"second"` || stored.Generation != 1 {
		t.Fatalf("after the restart: status %s execution %s (want %s) output %s generation %d", st.Status, st.ExecutionID, execID, st.Output, stored.Generation)
	}
	h2, err := h.store.LoadHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if h2.ExecutionID != execID || len(h2.Events) == 0 {
		t.Fatalf("history is of execution %s (%d events), want %s", h2.ExecutionID, len(h2.Events), execID)
	}
	if got := eng.Stats().DroppedMessages - before.DroppedMessages; got != 0 {
		t.Errorf("%d messages dropped during the restart, want none", got)
	}
}

// TestStaleStartOfTheSameGenerationIsDropped sends a start of the row's
// own generation that is older than the start the row names: it lost the
// race, and is discarded at once with one log line.
func TestStaleStartOfTheSameGenerationIsDropped(t *testing.T) {
	h := newHub(t)
	logs := &logRecords{}
	eng, c := h.start(engine.Options{Logger: slog.New(captureHandler{logs: logs})}, echo)
	raw := rawStorage(t, h)
	ctx := context.Background()
	id := start(t, c, "Echo", "winner", "stale-start")
	if st := wait(t, c, id); st.Status != history.StatusCompleted {
		t.Fatalf("first run: %s", st.Status)
	}
	first, err := h.store.GetInstance(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the control queue to drain", 30*time.Second, func() bool { return raw.queuedMessages(t, h, id) == 0 })
	before := eng.Stats()

	msg, staleExec := durableTaskStart(id, "Echo", `"loser"`, first.Generation, first.CreatedTime.Add(-time.Minute))
	if _, err := h.store.SendControl(ctx, msg, 0); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"msg": "discarded a message", "instance": id, "execution": staleExec, "reason": "a newer start of the same generation won"}
	eventually(t, "the stale start to be discarded", 30*time.Second, func() bool { return len(logs.matching(want)) > 0 })
	eventually(t, "the stale start to leave the queue", 30*time.Second, func() bool { return raw.queuedMessages(t, h, id) == 0 })

	if n := len(logs.matching(map[string]string{"execution": staleExec})); n != 1 {
		t.Errorf("%d log lines about the stale start, want 1: %v", n, logs.matching(map[string]string{"execution": staleExec}))
	}
	if s := eng.Stats(); s.DroppedMessages-before.DroppedMessages != 1 || s.DeferredMessages != before.DeferredMessages {
		t.Errorf("dropped %d deferred %d, want 1 and 0", s.DroppedMessages-before.DroppedMessages, s.DeferredMessages-before.DeferredMessages)
	}
	st, err := h.store.GetInstance(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExecutionID != first.ExecutionID || st.Status != history.StatusCompleted || st.Output != `"winner"` || st.ETag != first.ETag {
		t.Errorf("row changed: %+v, was %+v", st, first)
	}
}

// df2EventTypes are the History EventType values Durable Functions 2.x
// and 3.0 can read (DurableTask.Core 2.17 / 3.0: one class per type up to
// ExecutionResumed, none for ExecutionFailed).
var df2EventTypes = map[string]bool{
	"ExecutionStarted": true, "ExecutionCompleted": true, "ExecutionTerminated": true, "TaskScheduled": true,
	"TaskCompleted": true, "TaskFailed": true, "SubOrchestrationInstanceCreated": true,
	"SubOrchestrationInstanceCompleted": true, "SubOrchestrationInstanceFailed": true, "TimerCreated": true,
	"TimerFired": true, "OrchestratorStarted": true, "OrchestratorCompleted": true, "EventSent": true,
	"EventRaised": true, "ContinueAsNew": true, "GenericEvent": true, "HistoryState": true,
	"ExecutionSuspended": true, "ExecutionResumed": true,
}

// TestRewindIsRecordedAsGenericEvent rewinds failed instances, asked as
// Client.Rewind asks (a GenericEvent) and as newer Durable Task clients ask
// (an ExecutionRewound message). Only the failed step runs again; while it
// runs, the row shows Running with no output and no completion time; and
// the stored history holds only event types Durable Functions 2.x reads,
// the rewind being a GenericEvent whose Data is the reason.
func TestRewindIsRecordedAsGenericEvent(t *testing.T) {
	h := newHub(t)
	var mu sync.Mutex
	runs := map[string]int{}
	healed := map[string]bool{}
	release := map[string]chan struct{}{}
	step := durable.NewActivity("Step", func(ctx context.Context, key string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		runs[key+"/step"]++
		return "stepped", nil
	})
	fragile := durable.NewActivity("Fragile", func(ctx context.Context, key string) (string, error) {
		mu.Lock()
		runs[key+"/fragile"]++
		ok, gate := healed[key], release[key]
		mu.Unlock()
		if !ok {
			return "", fmt.Errorf("%s is broken", key)
		}
		select {
		case <-gate:
			return "mended", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	mend := durable.NewOrchestrator("Mend", func(ctx *durable.Context, key string) (string, error) {
		a, err := step.Call(ctx, key).Await()
		if err != nil {
			return "", err
		}
		b, err := fragile.Call(ctx, key).Await()
		if err != nil {
			return "", err
		}
		return a + " " + b, nil
	})
	_, c := h.start(engine.Options{}, mend, step, fragile)
	raw := rawStorage(t, h)
	ctx := context.Background()

	clientRewind := func(id, reason string) error { return c.Rewind(ctx, id, reason) }
	tests := []struct {
		name    string
		reason  string
		rewind  func(id, reason string) error
		records []string                       // the Data of every GenericEvent row afterwards
		setup   func(t *testing.T, key string) // makes instance key fail; nil: run it
	}{
		{"Client.Rewind", "fixed the config", clientRewind, []string{"fixed the config"}, nil},
		{"ExecutionRewound message", "fixed it elsewhere", func(id, reason string) error {
			ev := history.NewEvent(history.ExecutionRewound, time.Now())
			ev.Reason = reason
			_, err := h.store.SendControl(ctx, backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: id}, ActivityID: history.NewID()}, 0)
			return err
		}, []string{"fixed it elsewhere"}, nil},
		{"history rewound by an older engine", "second try", clientRewind, []string{"first try", "second try"}, func(t *testing.T, key string) {
			failedOnceRewoundFailedAgain(t, h, key)
			mu.Lock()
			runs[key+"/step"], runs[key+"/fragile"] = 1, 1 // what that history records
			mu.Unlock()
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("mend-%d", i)
			id := key
			if tc.setup != nil {
				tc.setup(t, key)
			} else {
				start(t, c, "Mend", key, key)
			}
			failed := waitExecution(t, c, id, "")
			if failed.Status != history.StatusFailed || !strings.Contains(failed.Output, key+" is broken") || failed.CompletedTime.IsZero() {
				t.Fatalf("before the rewind: %s %q completed %v", failed.Status, failed.Output, failed.CompletedTime)
			}
			gate := make(chan struct{})
			mu.Lock()
			healed[key], release[key] = true, gate
			mu.Unlock()
			if err := tc.rewind(id, tc.reason); err != nil {
				t.Fatal(err)
			}

			// The failed step runs again; meanwhile the row is live again.
			eventually(t, "the failed step to run again", 30*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return runs[key+"/fragile"] == 2
			})
			running := waitStatus(t, c, id, history.StatusRunning)
			if running.Output != "" || !running.CompletedTime.IsZero() || running.ExecutionID == failed.ExecutionID {
				t.Errorf("rewound row: output %q completed %v execution %s (was %s)", running.Output, running.CompletedTime, running.ExecutionID, failed.ExecutionID)
			}
			if row := raw.instanceRow(t, h, id); row["Output"] != "" {
				t.Errorf("stored Output of the rewound row = %#v, want \"\"", row["Output"])
			}
			close(gate)

			st := waitExecution(t, c, id, running.ExecutionID)
			if st.Status != history.StatusCompleted || st.Output != `"stepped mended"` {
				t.Fatalf("after the rewind: %s %s", st.Status, st.Output)
			}
			mu.Lock()
			if runs[key+"/step"] != 1 || runs[key+"/fragile"] != 2 {
				t.Errorf("runs %v: the successful step must not run again, the failed one once more", runs)
			}
			mu.Unlock()

			rows := raw.historyRows(t, h, id)
			var records []string
			for _, row := range rows {
				if row["RowKey"] == "sentinel" {
					continue
				}
				typ, _ := row["EventType"].(string)
				if !df2EventTypes[typ] {
					t.Errorf("History row %v has EventType %q, which Durable Functions 2.x cannot read", row["RowKey"], typ)
				}
				if typ == "GenericEvent" {
					data, _ := row["Data"].(string)
					records = append(records, data)
				}
				if row["ExecutionId"] != st.ExecutionID {
					t.Errorf("History row %v of execution %v, want %s", row["RowKey"], row["ExecutionId"], st.ExecutionID)
				}
			}
			if fmt.Sprint(records) != fmt.Sprint(tc.records) {
				t.Errorf("GenericEvent rows hold %q, want the rewind records %q", records, tc.records)
			}
			if types := historyTypes(t, c, id); count(types, "ExecutionStarted") != 1 || count(types, "ExecutionCompleted") != 1 ||
				count(types, "TaskFailed") != 0 || count(types, "TaskScheduled") != 2 {
				t.Errorf("history %v", types)
			}
		})
	}
}

// failedOnceRewoundFailedAgain stores the history an older engine left for
// a Mend instance: Step succeeded, Fragile failed, a rewind recorded as an
// ExecutionRewound row ran Fragile again, and it failed again.
func failedOnceRewoundFailedAgain(t *testing.T, h *hub, key string) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Minute)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	execID := history.NewID()
	ev := func(typ history.EventType, s int, set func(*history.Event)) history.Event {
		e := history.NewEvent(typ, at(s))
		if set != nil {
			set(&e)
		}
		return e
	}
	failure := func(e *history.Event) {
		e.TaskScheduledID, e.Reason = 1, key+" is broken"
		e.Failure = &history.FailureDetails{ErrorType: "errors.errorString", ErrorMessage: key + " is broken"}
	}
	completedFailed := func(e *history.Event) {
		e.EventID, e.Status = 3, history.StatusFailed
		e.Failure = &history.FailureDetails{ErrorType: "TaskFailedError", ErrorMessage: "activity \"Fragile\" (task 1) failed: errors.errorString: " + key + " is broken"}
	}
	events := []history.Event{
		ev(history.OrchestratorStarted, 0, nil),
		ev(history.ExecutionStarted, 0, func(e *history.Event) {
			e.Instance = history.OrchestrationInstance{InstanceID: key, ExecutionID: execID}
			e.Name, e.Input, e.Generation = "Mend", `"`+key+`"`, new(int32)
		}),
		ev(history.TaskScheduled, 0, func(e *history.Event) { e.EventID, e.Name, e.Input = 0, "Step", `"`+key+`"` }),
		ev(history.OrchestratorCompleted, 0, nil),
		ev(history.OrchestratorStarted, 1, nil),
		ev(history.TaskCompleted, 1, func(e *history.Event) { e.TaskScheduledID, e.Result = 0, `"stepped"` }),
		ev(history.OrchestratorCompleted, 1, nil),
		ev(history.OrchestratorStarted, 3, nil),
		ev(history.ExecutionRewound, 3, func(e *history.Event) { e.Reason = "first try" }),
		ev(history.TaskScheduled, 3, func(e *history.Event) { e.EventID, e.Name, e.Input = 1, "Fragile", `"`+key+`"` }),
		ev(history.OrchestratorCompleted, 3, nil),
		ev(history.OrchestratorStarted, 4, nil),
		ev(history.TaskFailed, 4, failure),
		ev(history.ExecutionCompleted, 4, completedFailed),
		ev(history.OrchestratorCompleted, 4, nil),
	}
	if _, err := h.store.AppendHistory(ctx, key, execID, 0, events, ""); err != nil {
		t.Fatal(err)
	}
	row := backend.InstanceState{
		InstanceID: key, Name: "Mend", ExecutionID: execID, Input: `"` + key + `"`, Output: events[13].Failure.String(),
		CreatedTime: at(0), LastUpdatedTime: at(4), CompletedTime: at(4), Status: history.StatusFailed, HistoryPosition: len(events),
	}
	if _, err := h.store.CreateInstance(ctx, row); err != nil {
		t.Fatal(err)
	}
}

// TestInstanceUpdatesKeepForeignColumns adds a column to a running
// instance's row, as a monitoring tool may: the engine's later updates
// (custom status, completion) merge into the row and keep it.
func TestInstanceUpdatesKeepForeignColumns(t *testing.T) {
	h := newHub(t)
	wait4 := durable.NewOrchestrator("AwaitGo", func(ctx *durable.Context, _ any) (string, error) {
		ctx.SetCustomStatus("waiting")
		if _, err := durable.WaitForExternalEvent[string](ctx, "go").Await(); err != nil {
			return "", err
		}
		ctx.SetCustomStatus("done")
		return "finished", nil
	})
	_, c := h.start(engine.Options{}, wait4)
	raw := rawStorage(t, h)
	ctx := context.Background()
	id := start(t, c, "AwaitGo", nil, "foreign-column")
	waitStatus(t, c, id, history.StatusRunning)

	note, err := json.Marshal(map[string]any{"PartitionKey": id, "RowKey": "", "MonitorNote": "keep me"})
	if err != nil {
		t.Fatal(err)
	}
	instances := raw.tables.NewClient(h.store.InstancesTableName())
	star := azcore.ETagAny
	if _, err := instances.UpdateEntity(ctx, note, &aztables.UpdateEntityOptions{UpdateMode: aztables.UpdateModeMerge, IfMatch: &star}); err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, id, "go", `"now"`); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted || st.Output != `"finished"` || st.CustomStatus != `"done"` {
		t.Fatalf("%s %s %s", st.Status, st.Output, st.CustomStatus)
	}
	row := raw.instanceRow(t, h, id)
	if row["MonitorNote"] != "keep me" || row["RuntimeStatus"] != "Completed" || row["Output"] != `"finished"` {
		t.Errorf("row after the engine's updates: %v", row)
	}
}

// gzipped compresses text as Durable Task stores blobs.
func gzipped(t *testing.T, text string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestInputFromDurableTaskClientBlob starts an instance the way a Durable
// Task client does when the input fits a queue message but not a table
// column: the message carries the input, the row has Input "" and
// InputBlobName naming a blob with the input. Readers get the input from
// the blob before the instance runs; after its first checkpoint the row's
// Input column holds it (the blob's URL, as Durable Task sets it).
func TestInputFromDurableTaskClientBlob(t *testing.T) {
	h := newHub(t)
	measure := durable.NewOrchestrator("Measure", func(ctx *durable.Context, in string) (int, error) {
		if _, err := durable.WaitForExternalEvent[string](ctx, "go").Await(); err != nil {
			return 0, err
		}
		return len(in), nil
	})
	raw := rawStorage(t, h)
	ctx := context.Background()
	if err := h.store.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	id := "large-input"
	text := strings.Repeat("0123456789", 3500) // 35,000 characters: above a column's 30,720
	input := `"` + text + `"`

	// The Durable Task client: message first, then the blob and the row.
	msg, execID := durableTaskStart(id, "Measure", input, 0, time.Now())
	if _, err := h.store.SendControl(ctx, msg, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.largeBlob.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatal(err)
	}
	blobName := id + "/history--Input-1A2B3C4D-Input.json.gz"
	if _, err := raw.largeBlob.NewBlockBlobClient(blobName).UploadBuffer(ctx, gzipped(t, input), nil); err != nil {
		t.Fatal(err)
	}
	entity, err := json.Marshal(map[string]any{
		"PartitionKey": id, "RowKey": "", "Input": "", "InputBlobName": blobName,
		"CreatedTime": msg.Event.Timestamp.Format(time.RFC3339Nano), "CreatedTime@odata.type": "Edm.DateTime",
		"LastUpdatedTime": time.Now().UTC().Format(time.RFC3339Nano), "LastUpdatedTime@odata.type": "Edm.DateTime",
		"Name": "Measure", "Version": "", "RuntimeStatus": "Pending", "TaskHubName": h.name,
		"ExecutionId": execID, "Generation": 0, "Tags": "null",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.tables.NewClient(h.store.InstancesTableName()).AddEntity(ctx, entity, nil); err != nil {
		t.Fatal(err)
	}

	reader := client.New(h.store, nil, nil)
	if st, err := reader.GetStatus(ctx, id, true); err != nil || st.Input != input || st.Status != history.StatusPending {
		t.Fatalf("read before the first checkpoint: %s, input of %d characters (want %d), %v", st.Status, len(st.Input), len(input), err)
	}
	if st, err := reader.GetStatus(ctx, id, false); err != nil || st.Input != "" {
		t.Fatalf("read without input: %d characters, %v", len(st.Input), err)
	}
	page, _, err := reader.ListInstances(ctx, client.Query{WithInput: true})
	if err != nil || len(page) != 1 || page[0].Input != input {
		t.Fatalf("list with input: %d rows, %v", len(page), err)
	}

	_, c := h.start(engine.Options{}, measure)
	// The reader has no engine: it sees the stored row, not the engine's
	// memory (which says Running before the deferred row write).
	waitStatus(t, reader, id, history.StatusRunning)
	row := raw.instanceRow(t, h, id)
	stored, _ := row["Input"].(string)
	if !strings.HasSuffix(stored, "/"+blobName) {
		t.Errorf("stored Input after the first checkpoint = %.120q, want the URL of %s", stored, blobName)
	}
	if err := c.RaiseEvent(ctx, id, "go", `""`); err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || st.Output != fmt.Sprint(len(text)) || st.Input != input {
		t.Fatalf("%s output %s, input of %d characters", st.Status, st.Output, len(st.Input))
	}
	started := 0
	for _, r := range raw.historyRows(t, h, id) {
		if r["EventType"] == "ExecutionStarted" {
			started++
		}
	}
	if started != 1 {
		t.Errorf("%d ExecutionStarted rows, want 1", started)
	}
}
