package azurestorage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// bigJSON returns about n bytes of varied JSON, so that gzip cannot shrink
// it to nothing.
func bigJSON(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 42))
	words := []string{"alpha", "Zürich", "東京", "ocean", "quartz", "délai", "thunder", "🙂", "river", `quote\"d`}
	var b strings.Builder
	b.Grow(n + 64)
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"word":"%s","value":%d}`, i, words[r.IntN(len(words))], r.Uint32())
	}
	b.WriteString("]}")
	return b.String()
}

// textOfUnits returns text of exactly n UTF-16 code units, mixing ASCII,
// two-byte and surrogate-pair characters (so UTF-8 bytes exceed units).
func textOfUnits(n int) string {
	var b strings.Builder
	units := 0
	for i := 0; units < n; i++ {
		switch {
		case n-units >= 2 && i%3 == 0:
			b.WriteString("😀")
			units += 2
		case i%3 == 1:
			b.WriteString("é")
			units++
		default:
			b.WriteByte('a' + byte(i%26))
			units++
		}
	}
	return b.String()
}

// ensureContainer creates the large-message container, so that request
// counts do not include its lazy creation.
func (s *Store) ensureContainer(t *testing.T) {
	t.Helper()
	if _, err := s.blobs.client.Create(context.Background(), nil); err != nil && !alreadyExists(err) {
		t.Fatal(err)
	}
}

// listBlobs returns the names of the blobs under prefix, sorted.
func (s *Store) listBlobs(t *testing.T, prefix string) []string {
	t.Helper()
	var names []string
	pager := s.blobs.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if isStatus(err, 404) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range page.Segment.BlobItems {
			names = append(names, *item.Name)
		}
	}
	slices.Sort(names)
	return names
}

func (s *Store) containerExists(t *testing.T) bool {
	t.Helper()
	_, err := s.blobs.client.GetProperties(context.Background(), nil)
	if isStatus(err, 404) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// rawRow reads a table row as stored.
func rawRow(t *testing.T, client *aztables.Client, pk, rk string) members {
	t.Helper()
	resp, err := client.GetEntity(context.Background(), pk, rk, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseRow(resp.Value)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBlobNames(t *testing.T) {
	b := &largeBlobs{name: "myhub-largemessages"}
	got := messageBlobName(escapeKey("a/b"), "5406d369-0000-4000-8000-00000000000a", "EventRaised")
	if want := "a^0b/message-" + "5406d369" + "0000" + "4000" + "8000" + "00000000000a" + "-EventRaised.json.gz"; got != want {
		t.Errorf("message blob name %q, want %q", got, want)
	}
	re := regexp.MustCompile(`^abc/history-000000000000000A-TaskCompleted-[0-9a-f]{8}-Result\.json\.gz$`)
	name := historyBlobName("abc", rowKey(10), "TaskCompleted", "Result")
	if !re.MatchString(name) || name == historyBlobName("abc", rowKey(10), "TaskCompleted", "Result") {
		t.Errorf("history blob name %q (or not random)", name)
	}
	tests := []struct {
		value, name string
		ok          bool
	}{
		{"http://127.0.0.1:10000/devstoreaccount1/myhub-largemessages/abc/history--Input-0a1b2c3d-Input.json.gz", "abc/history--Input-0a1b2c3d-Input.json.gz", true},
		{"https://acct.blob.core.windows.net/myhub-largemessages/a%5E0b%20c/message-00-ExecutionStarted.json.gz", "a^0b c/message-00-ExecutionStarted.json.gz", true},
		{"https://acct.blob.core.windows.net/myhub-largemessages/a%2Fhistory--Output-0a1b2c3d-Output.json.gz", "a/history--Output-0a1b2c3d-Output.json.gz", true},
		{"https://acct.blob.core.windows.net/otherhub-largemessages/a/x.json.gz", "", false},
		{`"http://127.0.0.1/myhub-largemessages/a/x.json.gz"`, "", false},
		{"System.Exception: boom.json.gz", "", false},
		{"http://127.0.0.1:10000/devstoreaccount1/myhub-largemessages/a/x.json", "", false},
		{`{"x":1}`, "", false},
	}
	for _, tt := range tests {
		name, ok := b.nameFromURL(tt.value)
		if name != tt.name || ok != tt.ok {
			t.Errorf("nameFromURL(%q) = %q, %v; want %q, %v", tt.value, name, ok, tt.name, tt.ok)
		}
	}
}

func TestGzipRoundTrip(t *testing.T) {
	for _, text := range []string{"", "x", bigJSON(1, 100_000), textOfUnits(5000)} {
		got, err := gunzipText(gzipBytes([]byte(text)))
		if err != nil || got != text {
			t.Fatalf("round trip of %d bytes: %v", len(text), err)
		}
	}
	if _, err := gunzipText([]byte("not gzip")); err == nil {
		t.Error("gunzip accepted garbage")
	}
	if n := len(gzipBytes([]byte(bigJSON(2, 1<<20)))); n > 600_000 || n < 50_000 {
		t.Errorf("1 MB of test JSON gzips to %d bytes; the test data is not what it should be", n)
	}
}

func TestExceedsInline(t *testing.T) {
	tests := []struct {
		units int
		want  bool
	}{{0, false}, {100, false}, {maxInlineUnits, false}, {maxInlineUnits + 1, true}, {40000, true}}
	for _, tt := range tests {
		s := textOfUnits(tt.units)
		if got := exceedsInline(s); got != tt.want || utf16Len(s) != tt.units {
			t.Errorf("exceedsInline(%d units, %d bytes) = %v, want %v", utf16Len(s), len(s), got, tt.want)
		}
	}
}

func TestLargeContainerLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	if s.LargeMessagesContainerName() != strings.ToLower(s.hub)+"-largemessages" {
		t.Errorf("container name %q", s.LargeMessagesContainerName())
	}
	if s.containerExists(t) {
		t.Fatal("CreateTaskHub created the large-message container; it is created on first use")
	}
	small := raiseEvent("lazy", "ev", `"small"`)
	if all, blob := counter.blobCalls(func() { _, _ = s.SendControl(ctx, small, 0) }); all != 1 || blob != 0 {
		t.Errorf("a small message made %d requests (%d to blobs), want 1 and 0", all, blob)
	}
	if s.containerExists(t) {
		t.Fatal("a small message created the container")
	}
	large := raiseEvent("lazy", "ev", `"`+strings.Repeat("z", 50_000)+`"`)
	var err error
	all, blob := counter.blobCalls(func() { _, err = s.SendControl(ctx, large, 0) })
	if err != nil {
		t.Fatal(err)
	}
	// upload (404 ContainerNotFound), create container, upload, enqueue
	if all != 4 || blob != 3 {
		t.Errorf("the first large message made %d requests (%d to blobs), want 4 and 3", all, blob)
	}
	if !s.containerExists(t) || len(s.listBlobs(t, "lazy/")) != 1 {
		t.Fatal("no container or blob after a large message")
	}
	if err := s.DeleteTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	if s.containerExists(t) {
		t.Error("DeleteTaskHub left the large-message container")
	}
}

func TestLargeQueueMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	s.ensureContainer(t)

	started := history.NewEvent(history.ExecutionStarted, ts(3, 7))
	started.Instance = history.OrchestrationInstance{InstanceID: "start/me?", ExecutionID: "e1"}
	started.Name, started.Input, started.Tags, started.Generation = "Orch", bigJSON(1, 1<<20), map[string]string{"k": "v"}, ptr(int32(0))
	scheduled := history.NewEvent(history.TaskScheduled, ts(4, 0))
	scheduled.EventID, scheduled.Name, scheduled.Input = 3, "Act", bigJSON(2, 1<<20)

	tests := []struct {
		name     string
		workItem bool
		msg      backend.Message
	}{
		{"control EventRaised", false, raiseEvent("big-event", "Approval", bigJSON(3, 1<<20))},
		{"control ExecutionStarted", false, backend.Message{Event: started, Target: started.Instance}},
		{"work item TaskScheduled", true, backend.Message{Event: scheduled, Target: history.OrchestrationInstance{InstanceID: "orch#1", ExecutionID: "e9"},
			Sender: history.OrchestrationInstance{InstanceID: "orch#1", ExecutionID: "e9"}, Episode: 2, OrchestrationTags: map[string]string{"t": "1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.msg.Target.InstanceID
			pk := escapeKey(id)
			var put backend.Receipt
			var err error
			all, blob := counter.blobCalls(func() {
				if tt.workItem {
					put, err = s.SendWorkItem(ctx, tt.msg, 0)
				} else {
					put, err = s.SendControl(ctx, tt.msg, 0)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if all != 2 || blob != 1 {
				t.Errorf("send made %d requests (%d to blobs), want 2 (upload, enqueue)", all, blob)
			}

			// The queue holds a small wrapper naming the blob.
			q, partition := s.workItems, 0
			if !tt.workItem {
				partition = s.PartitionOf(id)
				q = s.control[partition]
			}
			peeked, err := q.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: ptr(int32(32))})
			if err != nil || len(peeked.Messages) != 1 {
				t.Fatalf("peek: %v, %d messages", err, len(peeked.Messages))
			}
			text := *peeked.Messages[0].MessageText
			blobs := s.listBlobs(t, pk+"/")
			if len(blobs) != 1 {
				t.Fatalf("blobs under %s/: %v, want one", pk, blobs)
			}
			re := regexp.MustCompile(`^` + regexp.QuoteMeta(pk) + `/message-([0-9a-f]{32})-` + tt.msg.Event.Type.String() + `\.json\.gz$`)
			m := re.FindStringSubmatch(blobs[0])
			if m == nil {
				t.Fatalf("blob name %q does not match %s", blobs[0], re)
			}
			want := `{"$type":"DurableTask.AzureStorage.MessageData","ActivityId":"00000000-0000-0000-0000-000000000000","TaskMessage":null,` +
				`"CompressedBlobName":"` + blobs[0] + `","SequenceNumber":0,"SerializableTraceContext":null}`
			if text != want {
				t.Errorf("queue message\n got %s\nwant %s", text, want)
			}

			var got []backend.Received
			var poison []backend.Undecodable
			all, blob = counter.blobCalls(func() {
				if tt.workItem {
					got, poison, err = s.ReceiveWorkItems(ctx, 32, time.Minute)
				} else {
					got, poison, err = s.ReceiveControl(ctx, partition, 32, time.Minute)
				}
			})
			if err != nil || len(poison) != 0 || len(got) != 1 {
				t.Fatalf("receive = %d messages, %v, %v", len(got), poison, err)
			}
			if all != 2 || blob != 1 {
				t.Errorf("receive made %d requests (%d to blobs), want 2 (dequeue, download)", all, blob)
			}
			r := got[0]
			if r.Receipt.MessageID != put.MessageID || strings.ReplaceAll(r.Message.ActivityID, "-", "") != m[1] || r.Message.SequenceNumber <= 0 {
				t.Errorf("receipt %+v / activity %s sequence %d, blob %s", r.Receipt, r.Message.ActivityID, r.Message.SequenceNumber, blobs[0])
			}
			msg := tt.msg
			msg.ActivityID, msg.SequenceNumber = r.Message.ActivityID, r.Message.SequenceNumber
			if !reflect.DeepEqual(r.Message, msg) {
				t.Errorf("received message differs from the one sent (input %d vs %d bytes)", len(r.Message.Event.Input), len(msg.Event.Input))
			}
			if err := s.DeleteMessage(ctx, r.Receipt); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLargeMessagePoison(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	s.ensureContainer(t)
	put := func(name string, content []byte) {
		t.Helper()
		if _, err := s.blobs.client.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(content)), nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, blob string
		content    []byte // nil: no blob
		want       string
	}{
		{"missing blob", "p/message-00000000000000000000000000000001-EventRaised.json.gz", nil, "blob not found"},
		{"not gzip", "p/message-00000000000000000000000000000002-EventRaised.json.gz", []byte("plain text"), "not valid gzip"},
		{"gzip of garbage", "p/message-00000000000000000000000000000003-EventRaised.json.gz", gzipBytes([]byte("hello")), "holds no valid message"},
		{"nested wrapper", "p/message-00000000000000000000000000000004-EventRaised.json.gz", gzipBytes(encodeWrapper("p/other.json.gz")), "holds no valid message"},
	}
	ttl := int32(-1)
	q := s.control[0]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.content != nil {
				put(tt.blob, tt.content)
			}
			wrapper := string(encodeWrapper(tt.blob))
			if _, err := q.EnqueueMessage(ctx, wrapper, &azqueue.EnqueueMessageOptions{TimeToLive: &ttl}); err != nil {
				t.Fatal(err)
			}
			got, undecodable, err := s.ReceiveControl(ctx, 0, 32, time.Minute)
			if err != nil || len(got) != 0 || len(undecodable) != 1 {
				t.Fatalf("receive = %d good, %d undecodable, %v", len(got), len(undecodable), err)
			}
			u := undecodable[0]
			if !errors.Is(u.Reason, ErrLargeMessage) || !strings.Contains(u.Reason.Error(), tt.want) || !strings.Contains(u.Reason.Error(), tt.blob) {
				t.Errorf("reason %q does not wrap ErrLargeMessage, name the blob and say %q", u.Reason, tt.want)
			}
			if u.Body != wrapper || u.Target.InstanceID != "p" || u.EventType != "EventRaised" {
				t.Errorf("undecodable body %q, target %+v, event %q; want the wrapper, instance p, EventRaised", u.Body, u.Target, u.EventType)
			}
			if err := s.ParkPoison(ctx, backend.Poison{Receipt: u.Receipt, Body: u.Body, DequeueCount: u.DequeueCount, Reason: u.Reason.Error()}); err != nil {
				t.Fatal(err)
			}
			row := rawRow(t, s.poison, s.ControlQueueName(0), u.Receipt.MessageID)
			if body, _ := row.binaryOrString(colBody); body != wrapper {
				t.Errorf("parked body %q, want the wrapper", body)
			}
		})
	}
}

func TestLargeHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	s.ensureContainer(t)
	id := "big/history?"
	pk := escapeKey(id)

	events := make([]history.Event, 0, 6)
	e := history.NewEvent(history.ExecutionStarted, ts(1, 1))
	e.Instance = history.OrchestrationInstance{InstanceID: id, ExecutionID: "e1"}
	e.Name, e.Input, e.Tags, e.Generation = "Orch", bigJSON(10, 1<<20), map[string]string{"k": "v"}, ptr(int32(0))
	events = append(events, e)
	e = history.NewEvent(history.TaskScheduled, ts(2, 0))
	e.EventID, e.Name, e.Input = 0, "Act", `"small"`
	events = append(events, e)
	e = history.NewEvent(history.TaskCompleted, ts(3, 0))
	e.TaskScheduledID, e.Result = 0, bigJSON(11, 1<<20)
	events = append(events, e)
	e = history.NewEvent(history.TaskFailed, ts(4, 0))
	e.TaskScheduledID, e.Reason, e.Details = 1, "boom", textOfUnits(maxInlineUnits+1)
	e.Failure = &history.FailureDetails{ErrorType: "E", ErrorMessage: "m", StackTrace: textOfUnits(40000)}
	events = append(events, e)
	e = history.NewEvent(history.ExecutionCompleted, ts(5, 0))
	e.EventID, e.Status, e.Result = 4, history.StatusCompleted, `"done"`
	events = append(events, e)
	// Column → row of the offloaded values.
	offloaded := map[string]int{"Input": 0, "Result": 2, "Details": 3, "FailureDetails": 3}

	var etag string
	var err error
	all, blob := counter.blobCalls(func() { etag, err = s.AppendHistory(ctx, id, "e1", 0, events, "") })
	if err != nil {
		t.Fatal(err)
	}
	if all != 5 || blob != 4 {
		t.Errorf("AppendHistory made %d requests (%d to blobs), want 5 (4 uploads, 1 transaction)", all, blob)
	}
	for column, pos := range offloaded {
		row := rawRow(t, s.history, pk, rowKey(pos))
		name, _ := row.str(column + "BlobName")
		value, _ := row.str(column)
		re := regexp.MustCompile(`^` + regexp.QuoteMeta(pk) + `/history-` + rowKey(pos) + `-` + events[pos].Type.String() + `-[0-9a-f]{8}-` + column + `\.json\.gz$`)
		if !re.MatchString(name) || value != "" {
			t.Errorf("row %d: %sBlobName %q (want %s), %s %d chars (want empty)", pos, column, name, re, column, len(value))
		}
	}
	if n := len(s.listBlobs(t, pk+"/")); n != 4 {
		t.Errorf("%d blobs under %s/, want 4", n, pk)
	}

	var h backend.History
	all, blob = counter.blobCalls(func() { h, err = s.LoadHistory(ctx, id) })
	if err != nil {
		t.Fatal(err)
	}
	if all != 5 || blob != 4 {
		t.Errorf("LoadHistory made %d requests (%d to blobs), want 5 (query, 4 downloads)", all, blob)
	}
	if h.ETag != etag || !reflect.DeepEqual(h.Events, events) {
		t.Errorf("loaded history differs (%d events, ETag %q/%q)", len(h.Events), h.ETag, etag)
	}

	// A conflicting append deletes the blobs it uploaded.
	late := history.NewEvent(history.TaskCompleted, ts(6, 0))
	late.Result = bigJSON(12, 100_000)
	if _, err := s.AppendHistory(ctx, id, "e1", 5, []history.Event{late}, ""); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("conflicting append = %v, want ErrConflict", err)
	}
	if n := len(s.listBlobs(t, pk+"/")); n != 4 {
		t.Errorf("%d blobs after a rejected append, want the 4 committed ones", n)
	}
}

func TestLargeInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	s.ensureContainer(t)
	st := backend.InstanceState{
		InstanceID: "big/instance", Name: "Orch", ExecutionID: "e1", Input: bigJSON(20, 1<<20),
		CreatedTime: ts(1, 0), LastUpdatedTime: ts(1, 0), Status: history.StatusPending,
	}
	pk := escapeKey(st.InstanceID)
	small := backend.InstanceState{InstanceID: "big/small", Name: "Orch", ExecutionID: "e2", Input: `"tiny"`, Status: history.StatusRunning, CreatedTime: ts(2, 0)}
	if _, err := s.CreateInstance(ctx, small); err != nil {
		t.Fatal(err)
	}

	var err error
	all, blob := counter.blobCalls(func() { st.ETag, err = s.CreateInstance(ctx, st) })
	if err != nil {
		t.Fatal(err)
	}
	if all != 2 || blob != 1 {
		t.Errorf("CreateInstance made %d requests (%d to blobs), want 2", all, blob)
	}
	checkURL := func(column string) {
		t.Helper()
		v, _ := rawRow(t, s.instances, pk, "").str(column)
		name, ok := s.blobs.nameFromURL(v)
		re := regexp.MustCompile(`^` + regexp.QuoteMeta(pk) + `/history--` + column + `-[0-9a-f]{8}-` + column + `\.json\.gz$`)
		if !ok || v != s.blobs.URL(name) || !strings.HasPrefix(v, s.blobs.client.URL()+"/big%5E0instance/") || !re.MatchString(name) {
			t.Errorf("%s column %q is not the URL of a blob named like %s", column, v, re)
		}
	}
	checkURL(colInput)

	get := func(withInput bool, wantAll, wantBlob int64) backend.InstanceState {
		t.Helper()
		var got backend.InstanceState
		all, blob := counter.blobCalls(func() { got, err = s.GetInstance(ctx, st.InstanceID, withInput) })
		if err != nil {
			t.Fatal(err)
		}
		if all != wantAll || blob != wantBlob {
			t.Errorf("GetInstance(withInput %v) made %d requests (%d to blobs), want %d and %d", withInput, all, blob, wantAll, wantBlob)
		}
		return got
	}
	if got := get(true, 2, 1); !reflect.DeepEqual(got, st) {
		t.Errorf("GetInstance differs (input %d vs %d bytes)", len(got.Input), len(st.Input))
	}
	if got := get(false, 1, 0); got.Input != "" || got.Name != st.Name {
		t.Errorf("GetInstance without input: input %d bytes", len(got.Input))
	}

	// Completion with a large output and custom status: the input's blob is
	// reused, the new values are uploaded.
	st.Status, st.Output, st.CustomStatus, st.CompletedTime = history.StatusCompleted, bigJSON(21, 1<<20), textOfUnits(40000), ts(9, 0)
	all, blob = counter.blobCalls(func() { st.ETag, err = s.UpdateInstance(ctx, st) })
	if err != nil {
		t.Fatal(err)
	}
	if all != 3 || blob != 2 {
		t.Errorf("UpdateInstance made %d requests (%d to blobs), want 3 (2 uploads, 1 update)", all, blob)
	}
	checkURL(colOutput)
	checkURL(colCustomStatus)
	// Rewriting the same values reuses every blob.
	all, blob = counter.blobCalls(func() { st.ETag, err = s.UpdateInstance(ctx, st) })
	if err != nil || all != 1 || blob != 0 {
		t.Errorf("unchanged UpdateInstance made %d requests (%d to blobs), %v; want 1 and 0", all, blob, err)
	}
	if n := len(s.listBlobs(t, pk+"/")); n != 3 {
		t.Errorf("%d blobs for the instance, want 3 (input, output, custom status)", n)
	}
	if got := get(true, 4, 3); !reflect.DeepEqual(got, st) {
		t.Errorf("GetInstance after update differs")
	}

	for _, withInput := range []bool{true, false} {
		t.Run(fmt.Sprintf("query withInput=%v", withInput), func(t *testing.T) {
			rows, next, err := s.QueryInstances(ctx, backend.InstanceQuery{InstanceIDPrefix: "big/", WithInput: withInput})
			if err != nil || next != "" || len(rows) != 2 {
				t.Fatalf("query = %d rows, %q, %v", len(rows), next, err)
			}
			want := []backend.InstanceState{st, small}
			if !withInput {
				want[0].Input, want[1].Input = "", ""
			}
			for i := range rows {
				want[i].ETag = rows[i].ETag
			}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("query rows differ from the stored instances")
			}
		})
	}
}

func TestPurgeLargeBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	s.ensureContainer(t)
	// "abc" is a prefix of the others' IDs and of their escaped keys.
	ids := []string{"abc", "abcd", "abc/x", "ab"}
	for i, id := range ids {
		ev := history.NewEvent(history.TaskCompleted, ts(i, 0))
		ev.Result = bigJSON(uint64(30+i), 200_000)
		if _, err := s.AppendHistory(ctx, id, "e1", 0, []history.Event{ev}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateInstance(ctx, backend.InstanceState{InstanceID: id, Name: "X", ExecutionID: "e1", Input: bigJSON(uint64(40+i), 200_000), CreatedTime: ts(i, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SendControl(ctx, raiseEvent(id, "ev", bigJSON(uint64(50+i), 200_000)), 0); err != nil {
			t.Fatal(err)
		}
		if n := len(s.listBlobs(t, escapeKey(id)+"/")); n != 3 {
			t.Fatalf("%d blobs for %s, want 3", n, id)
		}
	}
	// Only a large message, no rows: purge still cleans up.
	if _, err := s.SendControl(ctx, raiseEvent("orphan", "ev", bigJSON(60, 200_000)), 0); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		purge   string
		wantErr error
	}{{"abc", nil}, {"abc", backend.ErrNotFound}, {"orphan", nil}, {"orphan", backend.ErrNotFound}}
	for _, tt := range tests {
		if err := s.PurgeInstance(ctx, tt.purge); !errors.Is(err, tt.wantErr) {
			t.Fatalf("PurgeInstance(%s) = %v, want %v", tt.purge, err, tt.wantErr)
		}
	}
	if got := s.listBlobs(t, "abc/"); len(got) != 0 {
		t.Errorf("blobs of abc left: %v", got)
	}
	if got := s.listBlobs(t, "orphan/"); len(got) != 0 {
		t.Errorf("blobs of orphan left: %v", got)
	}
	if _, err := s.GetInstance(ctx, "abc", true); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("instance abc after purge: %v", err)
	}
	for _, id := range ids[1:] {
		if n := len(s.listBlobs(t, escapeKey(id)+"/")); n != 3 {
			t.Errorf("purging abc left %d of the 3 blobs of %s", n, id)
		}
		h, err := s.LoadHistory(ctx, id)
		if err != nil || len(h.Events) != 1 || len(h.Events[0].Result) < 200_000 {
			t.Errorf("history of %s after purging abc: %v", id, err)
		}
		if st, err := s.GetInstance(ctx, id, true); err != nil || len(st.Input) < 200_000 {
			t.Errorf("instance %s after purging abc: %v", id, err)
		}
	}
}

func TestOffloadThresholds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, counter := newTestStore(t)
	s.ensureContainer(t)

	// The queue threshold counts the UTF-8 bytes of the whole MessageData.
	queueMessage := func(id string, bodyBytes int) backend.Message {
		msg := raiseEvent(id, "ev", "")
		overhead, err := encodeMessage(&msg, newGUID(), messageSequence.Load()+1)
		if err != nil {
			t.Fatal(err)
		}
		msg.Event.Input = strings.Repeat("q", bodyBytes-len(overhead)+len("null")-2) // quoted now
		return msg
	}
	entityUnits := func(units int) string { return textOfUnits(units) }

	tests := []struct {
		name      string
		do        func(t *testing.T) error
		wantBlobs int64
	}{
		{"queue message 16 bytes under", func(t *testing.T) error {
			_, err := s.SendControl(ctx, queueMessage("q-under", maxQueuePayloadBytes-16), 0)
			return err
		}, 0},
		{"queue message 16 bytes over", func(t *testing.T) error {
			_, err := s.SendControl(ctx, queueMessage("q-over", maxQueuePayloadBytes+16), 0)
			return err
		}, 1},
		{"history column at the limit", func(t *testing.T) error {
			ev := history.NewEvent(history.TaskCompleted, ts(0, 0))
			ev.Result = entityUnits(maxInlineUnits)
			_, err := s.AppendHistory(ctx, "h-under", "e1", 0, []history.Event{ev}, "")
			return err
		}, 0},
		{"history column one unit over", func(t *testing.T) error {
			ev := history.NewEvent(history.TaskCompleted, ts(0, 0))
			ev.Result = entityUnits(maxInlineUnits + 1)
			_, err := s.AppendHistory(ctx, "h-over", "e1", 0, []history.Event{ev}, "")
			return err
		}, 1},
		{"instance input at the limit", func(t *testing.T) error {
			_, err := s.CreateInstance(ctx, backend.InstanceState{InstanceID: "i-under", ExecutionID: "e", Input: entityUnits(maxInlineUnits)})
			return err
		}, 0},
		{"instance input one unit over", func(t *testing.T) error {
			_, err := s.CreateInstance(ctx, backend.InstanceState{InstanceID: "i-over", ExecutionID: "e", Input: entityUnits(maxInlineUnits + 1)})
			return err
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			all, blob := counter.blobCalls(func() { err = tt.do(t) })
			if err != nil {
				t.Fatal(err)
			}
			if blob != tt.wantBlobs || all != 1+tt.wantBlobs {
				t.Errorf("%d requests, %d to blobs; want %d and %d", all, blob, 1+tt.wantBlobs, tt.wantBlobs)
			}
		})
	}

	// The values come back unchanged, and the small ones cost no blob call.
	for _, id := range []string{"q-under", "q-over"} {
		got, _, err := s.ReceiveControl(ctx, s.PartitionOf(id), 32, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if r.Message.Target.InstanceID == id && len(r.Message.Event.Input) < maxQueuePayloadBytes-2000 {
				t.Errorf("%s: input of %d bytes", id, len(r.Message.Event.Input))
			}
		}
	}
	for _, tt := range []struct {
		id    string
		units int
		blobs int64
	}{{"h-under", maxInlineUnits, 0}, {"h-over", maxInlineUnits + 1, 1}} {
		var h backend.History
		var err error
		_, blob := counter.blobCalls(func() { h, err = s.LoadHistory(ctx, tt.id) })
		if err != nil || len(h.Events) != 1 || h.Events[0].Result != textOfUnits(tt.units) || blob != tt.blobs {
			t.Errorf("history %s: %v, %d blob calls (want %d)", tt.id, err, blob, tt.blobs)
		}
	}
	for _, tt := range []struct {
		id    string
		units int
		blobs int64
	}{{"i-under", maxInlineUnits, 0}, {"i-over", maxInlineUnits + 1, 1}} {
		var st backend.InstanceState
		var err error
		_, blob := counter.blobCalls(func() { st, err = s.GetInstance(ctx, tt.id, true) })
		if err != nil || st.Input != textOfUnits(tt.units) || blob != tt.blobs {
			t.Errorf("instance %s: %v, %d blob calls (want %d)", tt.id, err, blob, tt.blobs)
		}
	}
}

// A Durable Task client that offloads a start message stores the message
// blob's URL as the Instances Input; readers take the input from the
// message.
func TestInstanceInputFromStartMessageBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	id := "dtfx-start"
	started := history.NewEvent(history.ExecutionStarted, ts(1, 0))
	started.Instance = history.OrchestrationInstance{InstanceID: id, ExecutionID: "e1"}
	started.Name, started.Input = "Orch", bigJSON(70, 300_000)
	if _, err := s.SendControl(ctx, backend.Message{Event: started, Target: started.Instance}, 0); err != nil {
		t.Fatal(err)
	}
	blobs := s.listBlobs(t, id+"/")
	if len(blobs) != 1 {
		t.Fatalf("blobs %v", blobs)
	}
	// The blob is the gzipped full MessageData, CompressedBlobName null.
	resp, err := s.blobs.client.NewBlobClient(blobs[0]).DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	text, err := gunzipText(raw)
	if err != nil || !strings.HasPrefix(text, `{"$type":"DurableTask.AzureStorage.MessageData","ActivityId":"`) ||
		!strings.Contains(text, `"CompressedBlobName":null`) {
		t.Fatalf("blob content (%v): %.200s", err, text)
	}

	st := backend.InstanceState{InstanceID: id, Name: "Orch", ExecutionID: "e1", Input: s.blobs.URL(blobs[0]), Status: history.StatusPending, CreatedTime: ts(1, 0)}
	if _, err := s.CreateInstance(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetInstance(ctx, id, true)
	if err != nil || got.Input != started.Input {
		t.Fatalf("GetInstance input %d bytes, %v; want the start message's %d bytes", len(got.Input), err, len(started.Input))
	}
}
