package azurestorage

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestMain(m *testing.M) { azuritetest.Main(m) }

// countingTransport counts the HTTP requests that reach the network, and
// separately those to the large-message blob container.
type countingTransport struct {
	n, blob atomic.Int64
	base    http.RoundTripper
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	if strings.Contains(req.URL.Path, "-largemessages") {
		c.blob.Add(1)
	}
	return c.base.RoundTrip(req)
}

// blobCalls returns the number of requests made by f, all and to blobs.
func (c *countingTransport) blobCalls(f func()) (all, blob int64) {
	n, b := c.n.Load(), c.blob.Load()
	f()
	return c.n.Load() - n, c.blob.Load() - b
}

// calls returns the number of requests made by f.
func (c *countingTransport) calls(f func()) int64 {
	before := c.n.Load()
	f()
	return c.n.Load() - before
}

// newTestStore creates a task hub unique to the test and deletes it when
// the test ends. The returned transport counts the store's requests.
func newTestStore(t *testing.T) (*Store, *countingTransport) {
	t.Helper()
	counter := &countingTransport{base: defaultHTTPClient().Transport}
	s, err := New(Options{
		ConnectionString: azuritetest.ConnectionString(t),
		HubName:          azuritetest.HubName(t),
		HTTPClient:       &http.Client{Transport: counter},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.DeleteTaskHub(context.Background()); err != nil {
			t.Errorf("DeleteTaskHub: %v", err)
		}
	})
	return s, counter
}

func (s *Store) listQueues(t *testing.T) []string {
	t.Helper()
	prefix := strings.ToLower(s.hub) + "-"
	var names []string
	pager := s.queueService.NewListQueuesPager(&azqueue.ListQueuesOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range page.Queues {
			names = append(names, *q.Name)
		}
	}
	slices.Sort(names)
	return names
}

func (s *Store) listTables(t *testing.T) []string {
	t.Helper()
	filter := fmt.Sprintf("TableName ge '%s' and TableName lt '%s~'", s.hub, s.hub)
	var names []string
	pager := s.tableService.NewListTablesPager(&aztables.ListTablesOptions{Filter: &filter})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range page.Tables {
			names = append(names, *tb.Name)
		}
	}
	slices.Sort(names)
	return names
}

func TestCreateAndDeleteTaskHub(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	if err := s.CreateTaskHub(ctx); err != nil {
		t.Fatalf("second CreateTaskHub: %v", err)
	}
	lower := strings.ToLower(s.hub)
	wantQueues := []string{lower + "-control-00", lower + "-control-01", lower + "-control-02", lower + "-control-03", lower + "-wake", lower + "-workitems"}
	if got := s.listQueues(t); !reflect.DeepEqual(got, wantQueues) {
		t.Errorf("queues %v, want %v", got, wantQueues)
	}
	wantTables := []string{s.hub + "History", s.hub + "Instances", s.hub + "Partitions", s.hub + "Poison"}
	if got := s.listTables(t); !reflect.DeepEqual(got, wantTables) {
		t.Errorf("tables %v, want %v", got, wantTables)
	}
	leases, err := s.ReadPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 4 {
		t.Fatalf("%d partition rows, want 4", len(leases))
	}
	for i, l := range leases {
		if l.Partition != i || l.QueueName != wantQueues[i] || l.CurrentOwner != "" || l.ETag == "" {
			t.Errorf("partition row %d = %+v", i, l)
		}
	}

	if err := s.DeleteTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.listQueues(t); len(got) != 0 {
		t.Errorf("queues left after DeleteTaskHub: %v", got)
	}
	if got := s.listTables(t); len(got) != 0 {
		t.Errorf("tables left after DeleteTaskHub: %v", got)
	}
}

// instanceInPartition returns an instance ID that routes to partition p.
func instanceInPartition(s *Store, p int, prefix string) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if s.PartitionOf(id) == p {
			return id
		}
	}
}

func raiseEvent(id, name, input string) backend.Message {
	ev := history.NewEvent(history.EventRaised, ts(1, 0))
	ev.Name, ev.Input = name, input
	return backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: id}}
}

func TestQueueSendReceiveDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	id := instanceInPartition(s, 2, "queue")
	msg := raiseEvent(id, "Approval", `{"ok":true}`)

	var r backend.Receipt
	var err error
	if n := counter.calls(func() { r, err = s.SendControl(ctx, msg, 0) }); n != 1 {
		t.Errorf("SendControl made %d requests, want 1", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Queue != s.ControlQueueName(2) || r.MessageID == "" || r.PopReceipt == "" {
		t.Fatalf("receipt %+v", r)
	}

	got, poison, err := s.ReceiveControl(ctx, 2, 32, time.Minute)
	if err != nil || len(poison) != 0 || len(got) != 1 {
		t.Fatalf("ReceiveControl = %v, %v, %v", got, poison, err)
	}
	rec := got[0]
	if rec.Receipt.MessageID != r.MessageID || rec.DequeueCount != 1 || rec.InsertedAt.IsZero() ||
		rec.Receipt.NextVisible.Before(time.Now().Add(50*time.Second)) {
		t.Errorf("received %+v", rec)
	}
	if rec.Message.ActivityID == "" || rec.Message.SequenceNumber <= 0 {
		t.Errorf("ActivityID/SequenceNumber not set: %+v", rec.Message)
	}
	msg.ActivityID, msg.SequenceNumber = rec.Message.ActivityID, rec.Message.SequenceNumber
	if !reflect.DeepEqual(rec.Message, msg) {
		t.Errorf("received message\n got %#v\nwant %#v", rec.Message, msg)
	}
	if more, _, err := s.ReceiveControl(ctx, 2, 32, time.Minute); err != nil || len(more) != 0 {
		t.Fatalf("hidden message received again: %v, %v", more, err)
	}
	if err := s.DeleteMessage(ctx, rec.Receipt); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMessage(ctx, rec.Receipt); err != nil {
		t.Fatalf("deleting a deleted message: %v", err)
	}
	if _, err := s.SetVisibility(ctx, rec.Receipt, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("SetVisibility of a deleted message = %v, want ErrNotFound", err)
	}
	if _, _, err := s.ReceiveControl(ctx, 4, 1, time.Second); err == nil {
		t.Error("partition 4 of 4 accepted")
	}
}

func TestQueuePutReceipt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	work := raiseEvent("inst", "x", `"payload"`)
	work.Event = history.NewEvent(history.TaskScheduled, ts(2, 0))
	work.Event.EventID, work.Event.Name, work.Event.Input = 0, "Act", `"in"`
	work.Episode = 1
	work.OrchestrationTags = map[string]string{"t": "1"}

	// A delayed message is invisible; the sender re-shows it with the Put
	// pop receipt, without dequeuing it.
	put, err := s.SendWorkItem(ctx, work, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if put.NextVisible.Before(time.Now().Add(59 * time.Minute)) {
		t.Errorf("NextVisible %v, want about an hour ahead", put.NextVisible)
	}
	if got, _, err := s.ReceiveWorkItems(ctx, 32, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("delayed message visible: %v, %v", got, err)
	}
	var shown backend.Receipt
	if n := counter.calls(func() { shown, err = s.SetVisibility(ctx, put, 0) }); n != 1 {
		t.Errorf("SetVisibility made %d requests, want 1", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	if shown.PopReceipt == put.PopReceipt || shown.MessageID != put.MessageID {
		t.Errorf("SetVisibility receipt %+v after %+v", shown, put)
	}
	// The old pop receipt is stale now.
	if err := s.DeleteMessage(ctx, put); !errors.Is(err, backend.ErrConflict) {
		t.Errorf("delete with a stale receipt = %v, want ErrConflict", err)
	}
	if _, err := s.SetVisibility(ctx, put, time.Minute); !errors.Is(err, backend.ErrConflict) && !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("SetVisibility with a stale receipt = %v, want ErrConflict or ErrNotFound", err)
	}
	got, poison, err := s.ReceiveWorkItems(ctx, 32, time.Minute)
	if err != nil || len(poison) != 0 || len(got) != 1 {
		t.Fatalf("ReceiveWorkItems = %v, %v, %v", got, poison, err)
	}
	// Changing the visibility kept the message text.
	work.ActivityID, work.SequenceNumber = got[0].Message.ActivityID, got[0].Message.SequenceNumber
	if !reflect.DeepEqual(got[0].Message, work) {
		t.Errorf("message after SetVisibility\n got %#v\nwant %#v", got[0].Message, work)
	}
	if err := s.DeleteMessage(ctx, got[0].Receipt); err != nil {
		t.Fatal(err)
	}

	// The sender deletes its own hidden message with the Put receipt.
	put2, err := s.SendWorkItem(ctx, work, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMessage(ctx, put2); err != nil {
		t.Fatalf("delete with the Put receipt: %v", err)
	}
	props, err := s.workItems.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := *props.ApproximateMessagesCount; n != 0 {
		t.Errorf("%d messages left in the work-item queue, want 0", n)
	}
}

func TestUndecodableMessagesAreReportedThenParked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	q := s.control[0]
	ttl := int32(-1)
	put := func(text string) string {
		t.Helper()
		resp, err := q.EnqueueMessage(ctx, text, &azqueue.EnqueueMessageOptions{TimeToLive: &ttl})
		if err != nil {
			t.Fatal(err)
		}
		return *resp.Messages[0].MessageID
	}
	garbage := "this is not a durable task message"
	huge := strings.Repeat("x", 33000) // above 32768 UTF-16 units: stored as binary
	large := `{"$type":"DurableTask.AzureStorage.MessageData","ActivityId":"00000000-0000-0000-0000-000000000000","TaskMessage":null,"CompressedBlobName":"inst^1/message-1-EventRaised.json.gz","SequenceNumber":1}`
	unknown := `{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"someone","ExecutionId":"e7"},"Event":{"EventType":"FromTheFuture"}}}`
	bad := map[string]string{put(garbage): garbage, put(huge): huge, put(large): large, put(unknown): unknown}

	good := raiseEvent(instanceInPartition(s, 0, "poison"), "ev", "1")
	if _, err := s.SendControl(ctx, good, 0); err != nil {
		t.Fatal(err)
	}
	body, err := encodeMessage(&good, "act", 9)
	if err != nil {
		t.Fatal(err)
	}
	put(base64.StdEncoding.EncodeToString(body)) // a base64 writer's message is fine

	got, undecodable, err := s.ReceiveControl(ctx, 0, 32, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(undecodable) != 4 {
		t.Fatalf("received %d good and %d undecodable messages, want 2 and 4", len(got), len(undecodable))
	}
	for _, g := range got {
		if g.Message.Event.Name != "ev" || g.Message.Target.InstanceID != good.Target.InstanceID || g.Body == "" {
			t.Errorf("good message %+v", g)
		}
	}
	for _, u := range undecodable {
		text, ok := bad[u.Receipt.MessageID]
		if !ok {
			t.Fatalf("unexpected undecodable message %s", u.Receipt.MessageID)
		}
		if u.DequeueCount != 1 || u.Reason == nil || u.Body != text || u.InsertedAt.IsZero() {
			t.Errorf("undecodable %s: count %d, reason %v, %d-byte body, inserted %v", u.Receipt.MessageID, u.DequeueCount, u.Reason, len(u.Body), u.InsertedAt)
		}
		switch text {
		case large:
			if !errors.Is(u.Reason, ErrLargeMessage) || !strings.Contains(u.Reason.Error(), "blob not found") {
				t.Errorf("large message reason %v does not wrap ErrLargeMessage or say the blob is missing", u.Reason)
			}
			if u.Target.InstanceID != `inst\` || u.EventType != "EventRaised" {
				t.Errorf("large message names %+v, %q; want instance inst\\ and EventRaised", u.Target, u.EventType)
			}
		case garbage:
			if !strings.Contains(u.Reason.Error(), "neither JSON") {
				t.Errorf("garbage reason %v", u.Reason)
			}
		case unknown:
			if u.Target != (history.OrchestrationInstance{InstanceID: "someone", ExecutionID: "e7"}) || u.EventType != "FromTheFuture" {
				t.Errorf("unknown event names %+v, %q", u.Target, u.EventType)
			}
		}
	}
	// Nothing was parked or deleted: all six messages are still queued.
	props, err := q.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := *props.ApproximateMessagesCount; n != 6 {
		t.Errorf("%d messages in the control queue, want all 6", n)
	}

	// ParkPoison moves each one out of its queue into the Poison table.
	for _, u := range undecodable {
		p := backend.Poison{Receipt: u.Receipt, Body: u.Body, DequeueCount: u.DequeueCount, InsertedAt: u.InsertedAt, Reason: u.Reason.Error()}
		if err := s.ParkPoison(ctx, p); err != nil {
			t.Fatal(err)
		}
		resp, err := s.poison.GetEntity(ctx, s.ControlQueueName(0), u.Receipt.MessageID, nil)
		if err != nil {
			t.Fatalf("parked row of %s: %v", u.Receipt.MessageID, err)
		}
		row, err := parseRow(resp.Value)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := row.binaryOrString(colBody)
		if err != nil || stored != bad[u.Receipt.MessageID] {
			t.Errorf("parked body of %s differs (%d vs %d bytes, %v)", u.Receipt.MessageID, len(stored), len(bad[u.Receipt.MessageID]), err)
		}
		reason, _ := row.str(colReason)
		count, _ := row.int64(colDequeueCount)
		parked, _ := row.time(colParkedTime)
		inserted, _ := row.time(colInsertedTime)
		if reason != u.Reason.Error() || count != 1 || parked.IsZero() || !inserted.Equal(u.InsertedAt) {
			t.Errorf("parked row %s: reason %q count %d parked %v inserted %v", u.Receipt.MessageID, reason, count, parked, inserted)
		}
	}
	props, _ = q.GetProperties(ctx, nil)
	if n := *props.ApproximateMessagesCount; n != 2 {
		t.Errorf("%d messages in the control queue after parking, want the 2 good ones", n)
	}
}

// sequentialEvents returns n simple events with distinct payloads.
func sequentialEvents(n int) []history.Event {
	out := make([]history.Event, n)
	for i := range out {
		ev := history.NewEvent(history.TaskCompleted, ts(i%60, i))
		ev.TaskScheduledID, ev.Result = int32(i), fmt.Sprintf(`{"i":%d}`, i)
		out[i] = ev
	}
	return out
}

func TestAppendHistoryFencing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	id := "it's a/b#c?d^e" // needs key escaping and OData quote doubling
	events := sampleEvents()

	var etag1 string
	var err error
	if n := counter.calls(func() { etag1, err = s.AppendHistory(ctx, id, "e1", 0, events[:10], "") }); n != 1 {
		t.Errorf("first AppendHistory made %d requests, want 1", n)
	}
	if err != nil || etag1 == "" {
		t.Fatalf("first AppendHistory = %q, %v", etag1, err)
	}
	if _, err := s.AppendHistory(ctx, id, "e1", 0, events[:2], ""); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("second first-writer = %v, want ErrConflict", err)
	}
	var etag2 string
	if n := counter.calls(func() { etag2, err = s.AppendHistory(ctx, id, "e1", 10, events[10:], etag1) }); n != 1 {
		t.Errorf("AppendHistory with ETag made %d requests, want 1 (no extra read)", n)
	}
	if err != nil || etag2 == "" || etag2 == etag1 {
		t.Fatalf("AppendHistory with ETag = %q, %v (previous %q)", etag2, err, etag1)
	}
	if _, err := s.AppendHistory(ctx, id, "e1", 22, events[:1], etag1); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("stale ETag = %v, want ErrConflict", err)
	}

	var h backend.History
	if n := counter.calls(func() { h, err = s.LoadHistory(ctx, id) }); n != 1 {
		t.Errorf("LoadHistory made %d requests, want 1", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	if h.InstanceID != id || h.ExecutionID != "e1" || h.ETag != etag2 {
		t.Errorf("history %q %q ETag %q, want ETag %q", h.InstanceID, h.ExecutionID, h.ETag, etag2)
	}
	if !reflect.DeepEqual(h.Events, events) {
		t.Errorf("loaded events differ from written ones\n got %#v\nwant %#v", h.Events, events)
	}

	// A sentinel-only append still fences and returns a new ETag.
	etag3, err := s.AppendHistory(ctx, id, "e1", 22, nil, etag2)
	if err != nil || etag3 == etag2 {
		t.Fatalf("empty append = %q, %v", etag3, err)
	}

	// ContinueAsNew: a shorter new execution overwrites from row 0; the old
	// tail rows are ignored on load.
	next := sequentialEvents(3)
	etag4, err := s.AppendHistory(ctx, id, "e2", 0, next, etag3)
	if err != nil {
		t.Fatal(err)
	}
	h, err = s.LoadHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if h.ExecutionID != "e2" || h.ETag != etag4 || !reflect.DeepEqual(h.Events, next) {
		t.Errorf("after ContinueAsNew: %q %q %d events", h.ExecutionID, h.ETag, len(h.Events))
	}

	empty, err := s.LoadHistory(ctx, "never-started")
	if err != nil || empty.ETag != "" || len(empty.Events) != 0 || empty.ExecutionID != "" {
		t.Errorf("history of an unknown instance = %+v, %v", empty, err)
	}
}

func TestAppendHistoryManyEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	var etag string
	var err error
	if n := counter.calls(func() { etag, err = s.AppendHistory(ctx, "ninety-nine", "e1", 0, sequentialEvents(99), "") }); n != 1 || err != nil {
		t.Errorf("99 events took %d requests (%v), want 1 transaction", n, err)
	}
	events := sequentialEvents(150)
	if n := counter.calls(func() { etag, err = s.AppendHistory(ctx, "many", "e1", 0, events, "") }); n != 2 {
		t.Errorf("150 events took %d requests, want 2 transactions", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.LoadHistory(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	if h.ETag != etag || len(h.Events) != 150 || !reflect.DeepEqual(h.Events, events) {
		t.Fatalf("loaded %d events (ETag %q, want %q)", len(h.Events), h.ETag, etag)
	}
	resp, err := s.history.GetEntity(ctx, "many", sentinelRowKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	row, _ := parseRow(resp.Value)
	complete, _ := row.bool(colIsCheckpointComplete)
	completed, _ := row.time(colCheckpointCompletedTimestamp)
	if !complete || completed.IsZero() {
		t.Errorf("sentinel after the last transaction: IsCheckpointComplete %v, CheckpointCompletedTimestamp %v", complete, completed)
	}

	// An event with a column above the property limit that does not move to
	// a blob (Version) fails before anything is written.
	big := sequentialEvents(1)
	big[0].Type, big[0].Name, big[0].Version = history.TaskScheduled, "Act", strings.Repeat("x", 33000)
	big[0].Input = `"` + strings.Repeat("y", 40000) + `"` // would be offloaded
	if n := counter.calls(func() { _, err = s.AppendHistory(ctx, "many", "e1", 150, big, etag) }); n != 0 {
		t.Errorf("a rejected append made %d requests", n)
	}
	if !errors.Is(err, ErrPayloadTooLarge) || !strings.Contains(err.Error(), "Version") {
		t.Fatalf("oversized event = %v, want ErrPayloadTooLarge naming Version", err)
	}
	if h2, _ := s.LoadHistory(ctx, "many"); h2.ETag != etag {
		t.Error("the rejected append changed the history")
	}
}

func TestInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	st := backend.InstanceState{
		InstanceID: "inst/1", Name: "MyOrch", Version: "", ExecutionID: "e1", Input: `{"x":1}`,
		CreatedTime: ts(1, 0), LastUpdatedTime: ts(1, 0), Status: history.StatusPending, Tags: map[string]string{"a": "b"},
	}
	var etag string
	var err error
	if n := counter.calls(func() { etag, err = s.CreateInstance(ctx, st) }); n != 1 {
		t.Errorf("CreateInstance made %d requests, want 1", n)
	}
	if err != nil || etag == "" {
		t.Fatalf("CreateInstance = %q, %v", etag, err)
	}
	if _, err := s.CreateInstance(ctx, st); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("second CreateInstance = %v, want ErrExists", err)
	}
	got, err := s.GetInstance(ctx, st.InstanceID, true)
	if err != nil {
		t.Fatal(err)
	}
	st.ETag = etag
	if !reflect.DeepEqual(got, st) {
		t.Errorf("GetInstance\n got %#v\nwant %#v", got, st)
	}
	if got, _ := s.GetInstance(ctx, st.InstanceID, false); got.Input != "" {
		t.Errorf("GetInstance without input returned %q", got.Input)
	}

	st.Status, st.Output, st.CustomStatus, st.CompletedTime = history.StatusCompleted, `"out"`, `{"p":1}`, ts(9, 0)
	var etag2 string
	if n := counter.calls(func() { etag2, err = s.UpdateInstance(ctx, st) }); n != 1 {
		t.Errorf("UpdateInstance made %d requests, want 1", n)
	}
	if err != nil || etag2 == "" || etag2 == etag {
		t.Fatalf("UpdateInstance = %q, %v", etag2, err)
	}
	if _, err := s.UpdateInstance(ctx, st); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("UpdateInstance with a stale ETag = %v, want ErrConflict", err)
	}
	got, _ = s.GetInstance(ctx, st.InstanceID, true)
	st.ETag = etag2
	if !reflect.DeepEqual(got, st) {
		t.Errorf("after update\n got %#v\nwant %#v", got, st)
	}

	// Upsert without ETag, then a fenced update of a missing row.
	other := backend.InstanceState{InstanceID: "inst/2", Name: "X", Status: history.StatusRunning, CreatedTime: ts(2, 0)}
	if _, err := s.UpdateInstance(ctx, other); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	missing := backend.InstanceState{InstanceID: "nope", ETag: etag2}
	if _, err := s.UpdateInstance(ctx, missing); !errors.Is(err, backend.ErrConflict) || !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("fenced update of a missing row = %v, want ErrConflict and ErrNotFound", err)
	}
	if _, err := s.GetInstance(ctx, "nope", true); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("GetInstance of a missing row = %v, want ErrNotFound", err)
	}
}

func TestQueryInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	statuses := []history.OrchestrationStatus{history.StatusRunning, history.StatusCompleted, history.StatusRunning,
		history.StatusFailed, history.StatusRunning, history.StatusPending, history.StatusRunning, history.StatusRunning}
	for i, status := range statuses {
		prefix := "a"
		if i >= 6 {
			prefix = "b"
		}
		st := backend.InstanceState{InstanceID: fmt.Sprintf("%s/%d", prefix, i), Name: "Orch", Input: fmt.Sprintf("%d", i),
			Status: status, CreatedTime: ts(i, 0)}
		if _, err := s.CreateInstance(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(q backend.InstanceQuery) (ids []string, pages int) {
		t.Helper()
		for {
			page, next, err := s.QueryInstances(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, st := range page {
				ids = append(ids, st.InstanceID)
				if !q.WithInput && st.Input != "" {
					t.Errorf("query without input returned input %q", st.Input)
				}
				if q.WithInput && st.Input == "" {
					t.Errorf("query with input returned none for %s", st.InstanceID)
				}
				if st.ETag == "" {
					t.Errorf("no ETag for %s", st.InstanceID)
				}
			}
			if next == "" {
				return ids, pages
			}
			if pages > 20 {
				t.Fatal("paging does not end")
			}
			q.Continuation = next
		}
	}
	tests := []struct {
		name      string
		q         backend.InstanceQuery
		want      []string
		wantPages int
	}{
		{"running, pages of 2", backend.InstanceQuery{Statuses: []history.OrchestrationStatus{history.StatusRunning}, PageSize: 2},
			[]string{"a/0", "a/2", "a/4", "b/6", "b/7"}, 3},
		{"all with input", backend.InstanceQuery{WithInput: true},
			[]string{"a/0", "a/1", "a/2", "a/3", "a/4", "a/5", "b/6", "b/7"}, 1},
		{"prefix", backend.InstanceQuery{InstanceIDPrefix: "b/"}, []string{"b/6", "b/7"}, 1},
		{"created range and statuses", backend.InstanceQuery{CreatedFrom: ts(1, 0), CreatedTo: ts(5, 0),
			Statuses: []history.OrchestrationStatus{history.StatusCompleted, history.StatusFailed, history.StatusPending}},
			[]string{"a/1", "a/3", "a/5"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, pages := collect(tt.q)
			if !reflect.DeepEqual(ids, tt.want) {
				t.Errorf("instances %v, want %v", ids, tt.want)
			}
			if pages != tt.wantPages {
				t.Errorf("%d pages, want %d", pages, tt.wantPages)
			}
		})
	}
	if _, _, err := s.QueryInstances(ctx, backend.InstanceQuery{Continuation: "garbage!"}); err == nil {
		t.Error("bad continuation accepted")
	}
}

func TestPurgeInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	id := "purge'me"
	if _, err := s.AppendHistory(ctx, id, "e1", 0, sequentialEvents(150), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateInstance(ctx, backend.InstanceState{InstanceID: id, Name: "X", CreatedTime: ts(0, 0)}); err != nil {
		t.Fatal(err)
	}
	keep := "purge'me-not"
	if _, err := s.AppendHistory(ctx, keep, "e1", 0, sequentialEvents(2), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeInstance(ctx, id); err != nil {
		t.Fatal(err)
	}
	h, err := s.LoadHistory(ctx, id)
	if err != nil || len(h.Events) != 0 || h.ETag != "" {
		t.Errorf("history after purge: %d events, ETag %q, %v", len(h.Events), h.ETag, err)
	}
	rows, err := s.queryPartition(ctx, s.history, id, "")
	if err != nil || len(rows) != 0 {
		t.Errorf("%d history rows left, %v", len(rows), err)
	}
	if _, err := s.GetInstance(ctx, id, false); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("instance row after purge: %v", err)
	}
	if err := s.PurgeInstance(ctx, id); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("second purge = %v, want ErrNotFound", err)
	}
	if h, _ := s.LoadHistory(ctx, keep); len(h.Events) != 2 {
		t.Errorf("purge touched another instance: %d events left", len(h.Events))
	}
}

func TestWritePartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	leases, err := s.ReadPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := leases[1]
	now := time.Now().UTC().Truncate(100 * time.Nanosecond)
	l.CurrentOwner, l.OwnedSince, l.LastRenewal, l.ExpiresAt = "worker-a", now, now, now.Add(time.Minute)
	var updated backend.PartitionLease
	if n := counter.calls(func() { updated, err = s.WritePartition(ctx, l) }); n != 1 {
		t.Errorf("WritePartition made %d requests, want 1", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	if updated.ETag == "" || updated.ETag == l.ETag {
		t.Fatalf("new ETag %q after %q", updated.ETag, l.ETag)
	}
	if _, err := s.WritePartition(ctx, l); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("stale partition write = %v, want ErrConflict", err)
	}
	leases, err = s.ReadPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(leases[1], updated) {
		t.Errorf("read back\n got %+v\nwant %+v", leases[1], updated)
	}
	updated.NextOwner, updated.IsDraining = "worker-b", true
	if _, err := s.WritePartition(ctx, updated); err != nil {
		t.Fatalf("write with the new ETag: %v", err)
	}
	leases, _ = s.ReadPartitions(ctx)
	if leases[1].NextOwner != "worker-b" || !leases[1].IsDraining || leases[1].CurrentOwner != "worker-a" {
		t.Errorf("after second write: %+v", leases[1])
	}
}
