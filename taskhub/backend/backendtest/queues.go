package backendtest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/routing"
)

// testRouting checks PartitionOf against Durable Task's routing: FNV-1a of
// the instance ID's UTF-8 bytes modulo the partition count.
func (s *suite) testRouting(t *testing.T) {
	b := s.newBackend(t)
	n := b.PartitionCount()
	if n < 1 || n > 16 {
		t.Fatalf("PartitionCount() = %d, want 1..16", n)
	}
	for _, tc := range []struct {
		id   string
		hash uint32 // FNV-1a, independently known values
	}{
		{"", 0x811C9DC5}, {"a", 0xE40C292C}, {"abc", 0x1A47E90B}, {"myinstance", 0xC06A6290},
		{"f71ac761454f41468d9923ac39e9bdbc", 0x6198F775},
	} {
		if got, want := b.PartitionOf(tc.id), int(tc.hash%uint32(n)); got != want {
			t.Errorf("PartitionOf(%q) = %d, want %d (FNV-1a %#08x mod %d)", tc.id, got, want, tc.hash, n)
		}
	}
	for _, id := range []string{"order/42", "Zürich", "日本", "x^y", "a-much-longer-instance-id-0123456789"} {
		if got, want := b.PartitionOf(id), routing.Partition(id, n); got != want {
			t.Errorf("PartitionOf(%q) = %d, want %d", id, got, want)
		}
	}
}

// receiveAll receives from every control partition (and the work-item
// queue) until want messages arrived or the deadline passes. Messages are
// hidden for a minute.
func receiveAll(t *testing.T, b backend.Backend, want int) (map[string]backend.Received, map[string]int) {
	t.Helper()
	got := map[string]backend.Received{}
	partition := map[string]int{} // message ID → partition; -1 = work item
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < want {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages", len(got), want)
		}
		for p := -1; p < b.PartitionCount(); p++ {
			var rs []backend.Received
			var us []backend.Undecodable
			var err error
			if p < 0 {
				rs, us, err = b.ReceiveWorkItems(ctx(t), 32, time.Minute)
			} else {
				rs, us, err = b.ReceiveControl(ctx(t), p, 32, time.Minute)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(us) > 0 {
				t.Fatalf("partition %d: %d undecodable messages: %v", p, len(us), us[0].Reason)
			}
			for _, r := range rs {
				if _, dup := got[r.Receipt.MessageID]; dup {
					t.Errorf("message %s received twice while hidden", r.Receipt.MessageID)
				}
				got[r.Receipt.MessageID], partition[r.Receipt.MessageID] = r, p
			}
		}
	}
	return got, partition
}

// testMessageRoundTrip sends every event type as a control message and a
// few work items, and checks that every field of backend.Message and of
// the receipt comes back.
func (s *suite) testMessageRoundTrip(t *testing.T) {
	b := s.newBackend(t)
	type sent struct {
		msg     backend.Message
		receipt backend.Receipt
		work    bool
	}
	var all []sent
	before := time.Now()
	for i, ev := range allEvents() {
		msg := backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: fmt.Sprintf("target/%d", i)}}
		if i%2 == 0 {
			msg.Target.ExecutionID = fmt.Sprintf("exec-%d", i)
			msg.Sender = history.OrchestrationInstance{InstanceID: "parent", ExecutionID: "exec-p"}
			msg.Episode = i + 1
		}
		r, err := b.SendControl(ctx(t), msg, 0)
		if err != nil {
			t.Fatalf("SendControl %s: %v", ev.Type, err)
		}
		all = append(all, sent{msg: msg, receipt: r})
	}
	work := []backend.Message{
		{Event: allEvents()[4], Target: history.OrchestrationInstance{InstanceID: "w/1", ExecutionID: "e1"},
			Sender: history.OrchestrationInstance{InstanceID: "w/1", ExecutionID: "e1"}, Episode: 3,
			OrchestrationTags: map[string]string{"tenant": "t1", "tier": "gold"}},
		{Event: allEvents()[4], Target: history.OrchestrationInstance{InstanceID: "w/2"}},
	}
	large := allEvents()[15] // EventRaised
	large.Input = largeJSON(100_000)
	work = append(work, backend.Message{Event: large, Target: history.OrchestrationInstance{InstanceID: "w/large"}})
	for _, msg := range work {
		r, err := b.SendWorkItem(ctx(t), msg, 0)
		if err != nil {
			t.Fatalf("SendWorkItem: %v", err)
		}
		all = append(all, sent{msg: msg, receipt: r, work: true})
	}
	largeControl := backend.Message{Event: large, Target: history.OrchestrationInstance{InstanceID: "c/large"}}
	r, err := b.SendControl(ctx(t), largeControl, 0)
	if err != nil {
		t.Fatalf("SendControl of a large message: %v", err)
	}
	all = append(all, sent{msg: largeControl, receipt: r})

	got, partitions := receiveAll(t, b, len(all))
	activityIDs := map[string]bool{}
	queues := map[int]string{}
	for _, snt := range all {
		rc := snt.receipt
		if rc.Queue == "" || rc.MessageID == "" || rc.PopReceipt == "" {
			t.Errorf("send receipt %+v lacks a field", rc)
		}
		r, ok := got[rc.MessageID]
		if !ok {
			t.Errorf("%s message %s (sent to %s) was not received", snt.msg.Event.Type, rc.MessageID, rc.Queue)
			continue
		}
		wantPartition := -1
		if !snt.work {
			wantPartition = b.PartitionOf(snt.msg.Target.InstanceID)
		}
		if p := partitions[rc.MessageID]; p != wantPartition {
			t.Errorf("message for %s received from partition %d, want %d", snt.msg.Target.InstanceID, p, wantPartition)
		}
		if q, seen := queues[wantPartition]; seen && q != rc.Queue {
			t.Errorf("partition %d has queue names %s and %s", wantPartition, q, rc.Queue)
		}
		queues[wantPartition] = rc.Queue
		if r.Receipt.Queue != rc.Queue || r.Receipt.MessageID != rc.MessageID || r.Receipt.PopReceipt == "" {
			t.Errorf("received receipt %+v for send receipt %+v", r.Receipt, rc)
		}
		if r.Receipt.PopReceipt == rc.PopReceipt {
			t.Errorf("the receive kept the send's pop receipt %q", rc.PopReceipt)
		}
		if r.DequeueCount != 1 {
			t.Errorf("dequeue count %d on first receive", r.DequeueCount)
		}
		if r.InsertedAt.IsZero() || r.InsertedAt.Before(before.Add(-time.Minute)) || r.InsertedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("InsertedAt %v, want about %v", r.InsertedAt, before)
		}
		if r.Receipt.NextVisible.Before(r.InsertedAt.Add(50 * time.Second)) {
			t.Errorf("NextVisible %v after a receive hiding it for a minute (inserted %v)", r.Receipt.NextVisible, r.InsertedAt)
		}
		if r.Body == "" {
			t.Error("received message has no Body")
		}
		if r.Message.ActivityID == "" || r.Message.SequenceNumber <= 0 || activityIDs[r.Message.ActivityID] {
			t.Errorf("ActivityID %q / SequenceNumber %d: want a new ID and a positive number", r.Message.ActivityID, r.Message.SequenceNumber)
		}
		activityIDs[r.Message.ActivityID] = true
		want := snt.msg
		want.ActivityID, want.SequenceNumber = r.Message.ActivityID, r.Message.SequenceNumber
		if !reflect.DeepEqual(r.Message, want) {
			t.Errorf("%s message round trip\n got %#v\nwant %#v", want.Event.Type, r.Message, want)
		}
	}
	if len(got) != len(all) {
		t.Errorf("received %d messages, sent %d", len(got), len(all))
	}
}

// testSendRejects checks that sends the queues cannot carry fail clearly.
func (s *suite) testSendRejects(t *testing.T) {
	b := s.newBackend(t)
	ok := backend.Message{Event: history.NewEvent(history.EventRaised, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: "x"}}
	noTarget := ok
	noTarget.Target.InstanceID = ""
	unknown := ok
	unknown.Event.Type = history.EventType(99)
	tests := []struct {
		name  string
		send  func() error
		wants string
	}{
		{"control without target", func() error { _, err := b.SendControl(ctx(t), noTarget, 0); return err }, "instance"},
		{"work item without target", func() error { _, err := b.SendWorkItem(ctx(t), noTarget, 0); return err }, "instance"},
		{"delay beyond 7 days", func() error { _, err := b.SendControl(ctx(t), ok, 8*24*time.Hour); return err }, "7 days"},
		{"unknown event type", func() error { _, err := b.SendControl(ctx(t), unknown, 0); return err }, "99"},
		{"partition out of range", func() error { _, _, err := b.ReceiveControl(ctx(t), b.PartitionCount(), 1, time.Second); return err }, "partition"},
		{"receive visibility beyond 7 days", func() error { _, _, err := b.ReceiveWorkItems(ctx(t), 1, 8*24*time.Hour); return err }, "7 days"},
	}
	for _, tc := range tests {
		err := tc.send()
		if err == nil || !strings.Contains(err.Error(), tc.wants) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.wants)
		}
	}
	for p := range b.PartitionCount() {
		if rs, us, err := b.ReceiveControl(ctx(t), p, 32, time.Minute); err != nil || len(rs)+len(us) != 0 {
			t.Errorf("partition %d after rejected sends: %d messages, %d undecodable, %v", p, len(rs), len(us), err)
		}
	}
}

// testVisibilityAndRedelivery checks that a delayed message appears, and a
// received one reappears, when its time runs out: with a higher dequeue
// count and a new pop receipt, the old one being stale. This is the
// suite's one real-time wait on backends whose clock cannot be moved.
func (s *suite) testVisibilityAndRedelivery(t *testing.T) {
	b := s.newBackend(t)
	id := instanceInPartition(b, 0, "vis")
	msg := backend.Message{Event: history.NewEvent(history.EventRaised, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: id}}
	msg.Event.Name = "now"
	if _, err := b.SendControl(ctx(t), msg, 0); err != nil {
		t.Fatal(err)
	}
	msg.Event.Name = "later"
	delayed, err := b.SendControl(ctx(t), msg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rs, _, err := b.ReceiveControl(ctx(t), 0, 32, time.Second)
	if err != nil || len(rs) != 1 || rs[0].Message.Event.Name != "now" || rs[0].DequeueCount != 1 {
		t.Fatalf("first receive = %d messages (%v), want only the undelayed one once", len(rs), err)
	}
	first := rs[0].Receipt
	if more, _, err := b.ReceiveControl(ctx(t), 0, 32, time.Second); err != nil || len(more) != 0 {
		t.Fatalf("receive while one message is hidden and one delayed = %d messages, %v", len(more), err)
	}

	got := map[string]backend.Received{}
	s.waitFor(t, b, time.Second, "hidden and delayed messages visible", func() bool {
		rs, _, err := b.ReceiveControl(ctx(t), 0, 32, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got[r.Message.Event.Name] = r
		}
		return len(got) == 2
	})
	again, later := got["now"], got["later"]
	if again.Receipt.MessageID != first.MessageID || again.DequeueCount != 2 || again.Receipt.PopReceipt == first.PopReceipt {
		t.Errorf("redelivered message: ID %s count %d pop receipt %q; want ID %s, count 2, a new pop receipt",
			again.Receipt.MessageID, again.DequeueCount, again.Receipt.PopReceipt, first.MessageID)
	}
	if later.Receipt.MessageID != delayed.MessageID || later.DequeueCount != 1 {
		t.Errorf("delayed message: ID %s count %d, want ID %s count 1", later.Receipt.MessageID, later.DequeueCount, delayed.MessageID)
	}
	// The first receive's pop receipt is stale now: it neither deletes
	// nor re-hides the message.
	if err := b.DeleteMessage(ctx(t), first); !errors.Is(err, backend.ErrConflict) {
		t.Errorf("delete with a stale pop receipt = %v, want ErrConflict", err)
	}
	if _, err := b.SetVisibility(ctx(t), first, 0); !isConflictOrGone(err) {
		t.Errorf("SetVisibility with a stale pop receipt = %v, want ErrConflict or ErrNotFound", err)
	}
	shown, err := b.SetVisibility(ctx(t), again.Receipt, 0)
	if err != nil {
		t.Fatalf("SetVisibility with the current receipt: %v", err)
	}
	rs, _, err = b.ReceiveControl(ctx(t), 0, 32, time.Minute)
	if err != nil || len(rs) != 1 || rs[0].Receipt.MessageID != first.MessageID || rs[0].DequeueCount != 3 {
		t.Fatalf("after the stale delete and SetVisibility 0: %d messages (%v), want the message once more with count 3", len(rs), err)
	}
	if shown.PopReceipt == again.Receipt.PopReceipt {
		t.Error("SetVisibility returned the old pop receipt")
	}
}

// testSetVisibilityAndDelete checks visibility changes with send and
// receive receipts, and that deletes are idempotent.
func (s *suite) testSetVisibilityAndDelete(t *testing.T) {
	b := s.newBackend(t)
	msg := backend.Message{Event: history.NewEvent(history.TaskScheduled, ts(2, 0)), Target: history.OrchestrationInstance{InstanceID: "setvis"}}
	msg.Event.EventID, msg.Event.Name = 0, "Act"
	receive := func() []backend.Received {
		t.Helper()
		rs, us, err := b.ReceiveWorkItems(ctx(t), 32, time.Minute)
		if err != nil || len(us) != 0 {
			t.Fatalf("ReceiveWorkItems: %v, %d undecodable", err, len(us))
		}
		return rs
	}

	// A delayed message is invisible; the sender shows it with its send
	// receipt, without dequeuing it.
	put, err := b.SendWorkItem(ctx(t), msg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if put.NextVisible.Before(time.Now().Add(58 * time.Minute)) {
		t.Errorf("send receipt NextVisible %v, want about an hour ahead", put.NextVisible)
	}
	if rs := receive(); len(rs) != 0 {
		t.Fatalf("delayed message received")
	}
	shown, err := b.SetVisibility(ctx(t), put, 0)
	if err != nil {
		t.Fatal(err)
	}
	if shown.MessageID != put.MessageID || shown.Queue != put.Queue || shown.PopReceipt == "" || shown.PopReceipt == put.PopReceipt {
		t.Errorf("SetVisibility receipt %+v after %+v: want the same message with a new pop receipt", shown, put)
	}
	if shown.NextVisible.After(time.Now().Add(2 * time.Second)) {
		t.Errorf("NextVisible %v after SetVisibility 0", shown.NextVisible)
	}
	if err := b.DeleteMessage(ctx(t), put); !errors.Is(err, backend.ErrConflict) {
		t.Errorf("delete with the replaced send receipt = %v, want ErrConflict", err)
	}
	rs := receive()
	if len(rs) != 1 || rs[0].DequeueCount != 1 || rs[0].Message.Event.Name != "Act" {
		t.Fatalf("after SetVisibility 0: %d messages, want the message with dequeue count 1", len(rs))
	}

	// A receiver re-hides and then shows a message: no dequeue in between.
	hidden, err := b.SetVisibility(ctx(t), rs[0].Receipt, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if hidden.NextVisible.Before(time.Now().Add(58 * time.Minute)) {
		t.Errorf("NextVisible %v after SetVisibility 1h", hidden.NextVisible)
	}
	if rs := receive(); len(rs) != 0 {
		t.Fatal("re-hidden message received")
	}
	shown, err = b.SetVisibility(ctx(t), hidden, 0)
	if err != nil {
		t.Fatal(err)
	}
	rs = receive()
	if len(rs) != 1 || rs[0].DequeueCount != 2 {
		t.Fatalf("after re-hiding and showing: %d messages, want one with dequeue count 2", len(rs))
	}
	if _, err := b.SetVisibility(ctx(t), shown, 0); !isConflictOrGone(err) {
		t.Errorf("SetVisibility with the receipt a receive replaced = %v, want ErrConflict or ErrNotFound", err)
	}

	// Delete is idempotent; a deleted message is gone.
	for i := range 2 {
		if err := b.DeleteMessage(ctx(t), rs[0].Receipt); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
	}
	if _, err := b.SetVisibility(ctx(t), rs[0].Receipt, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("SetVisibility of a deleted message = %v, want ErrNotFound", err)
	}

	// The sender deletes its own hidden message with the send receipt.
	put, err = b.SendWorkItem(ctx(t), msg, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteMessage(ctx(t), put); err != nil {
		t.Fatalf("delete with the send receipt: %v", err)
	}
	if _, err := b.SetVisibility(ctx(t), put, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("SetVisibility of the deleted message = %v, want ErrNotFound", err)
	}
	if rs := receive(); len(rs) != 0 {
		t.Errorf("%d messages left, want none", len(rs))
	}
}

// testReceiveLimits checks that a receive takes at least one and at most
// min(max, 32) messages.
func (s *suite) testReceiveLimits(t *testing.T) {
	b := s.newBackend(t)
	const total = 40
	id := instanceInPartition(b, 0, "limits")
	var wg sync.WaitGroup
	for i := range total {
		wg.Go(func() {
			msg := backend.Message{Event: history.NewEvent(history.EventRaised, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: id}}
			msg.Event.Name = fmt.Sprint(i)
			if _, err := b.SendControl(ctx(t), msg, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, limit := range []int{0, 5, 100, 100} {
		rs, _, err := b.ReceiveControl(ctx(t), 0, limit, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		most := min(max(limit, 1), 32)
		if len(rs) < 1 || len(rs) > most {
			t.Errorf("receive with max %d took %d messages, want 1..%d", limit, len(rs), most)
		}
		for _, r := range rs {
			seen[r.Message.Event.Name] = true
		}
	}
	for len(seen) < total {
		rs, _, err := b.ReceiveControl(ctx(t), 0, 32, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			t.Fatalf("received %d distinct messages of %d", len(seen), total)
		}
		for _, r := range rs {
			seen[r.Message.Event.Name] = true
		}
	}
}

// testConcurrentReceivers checks that concurrent receivers never get the
// same hidden message.
func (s *suite) testConcurrentReceivers(t *testing.T) {
	b := s.newBackend(t)
	const total = 24
	for i := range total {
		msg := backend.Message{Event: history.NewEvent(history.TaskScheduled, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: fmt.Sprint("c", i)}}
		msg.Event.EventID, msg.Event.Name = int32(i), "Act"
		if _, err := b.SendWorkItem(ctx(t), msg, 0); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	owner := map[string]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range 20 {
				rs, _, err := b.ReceiveWorkItems(ctx(t), 3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range rs {
					if prev, dup := owner[r.Receipt.MessageID]; dup {
						t.Errorf("message %s received by workers %d and %d", r.Receipt.MessageID, prev, w)
					}
					owner[r.Receipt.MessageID] = w
				}
				done := len(owner) == total
				mu.Unlock()
				if done {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(owner) != total {
		t.Errorf("%d messages received, want %d", len(owner), total)
	}
}

// testUndecodable checks that a message the backend cannot decode is
// reported with its text and dequeue count and stays in its queue, hidden.
func (s *suite) testUndecodable(t *testing.T) {
	b := s.newBackend(t)
	garbage := "this is not a durable task message {"
	s.opts.PutRaw(t, b, 1%b.PartitionCount(), garbage)
	p := 1 % b.PartitionCount()
	good := backend.Message{Event: history.NewEvent(history.EventRaised, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: instanceInPartition(b, p, "undecodable")}}
	goodReceipt, err := b.SendControl(ctx(t), good, 0)
	if err != nil {
		t.Fatal(err)
	}
	rs, us, err := b.ReceiveControl(ctx(t), p, 32, time.Minute)
	if err != nil || len(rs) != 1 || len(us) != 1 {
		t.Fatalf("receive = %d good, %d undecodable, %v; want 1 and 1", len(rs), len(us), err)
	}
	u := us[0]
	if u.Body != garbage || u.DequeueCount != 1 || u.Reason == nil || u.InsertedAt.IsZero() ||
		u.Receipt.Queue != goodReceipt.Queue || u.Receipt.MessageID == "" || u.Receipt.PopReceipt == "" {
		t.Errorf("undecodable %+v (reason %v)", u, u.Reason)
	}
	if u.Target != (history.OrchestrationInstance{}) || u.EventType != "" {
		t.Errorf("garbage names target %+v, event type %q; want none", u.Target, u.EventType)
	}
	// It stays, hidden like any received message, until the caller
	// decides.
	if rs, us, _ := b.ReceiveControl(ctx(t), p, 32, time.Minute); len(rs)+len(us) != 0 {
		t.Fatalf("hidden messages received again: %d, %d", len(rs), len(us))
	}
	shown, err := b.SetVisibility(ctx(t), u.Receipt, 0)
	if err != nil {
		t.Fatalf("SetVisibility of an undecodable message: %v", err)
	}
	if _, us, _ = b.ReceiveControl(ctx(t), p, 32, time.Minute); len(us) != 1 || us[0].DequeueCount != 2 || us[0].Receipt.MessageID != shown.MessageID {
		t.Fatalf("undecodable message after SetVisibility 0: %+v, want it again with dequeue count 2", us)
	}
}

// testParkPoison checks that ParkPoison records a message with its reason
// and removes it from its queue, for decodable and undecodable messages.
func (s *suite) testParkPoison(t *testing.T) {
	b := s.newBackend(t)
	garbage := `{"TaskMessage": {"Event": ` // cut short
	s.opts.PutRaw(t, b, 0, garbage)
	good := backend.Message{Event: history.NewEvent(history.TaskCompleted, ts(3, 0)), Target: history.OrchestrationInstance{InstanceID: instanceInPartition(b, 0, "poison")}}
	good.Event.Result = `"result"`
	if _, err := b.SendControl(ctx(t), good, 0); err != nil {
		t.Fatal(err)
	}
	rs, us, err := b.ReceiveControl(ctx(t), 0, 32, time.Minute)
	if err != nil || len(rs) != 1 || len(us) != 1 {
		t.Fatalf("receive = %d good, %d undecodable, %v; want 1 and 1", len(rs), len(us), err)
	}
	poisons := []backend.Poison{
		{Receipt: us[0].Receipt, Body: us[0].Body, DequeueCount: us[0].DequeueCount, InsertedAt: us[0].InsertedAt, Reason: us[0].Reason.Error()},
		{Receipt: rs[0].Receipt, Body: rs[0].Body, DequeueCount: 7, InsertedAt: rs[0].InsertedAt, Reason: "processing kept failing: ünïcödé reason"},
	}
	for _, p := range poisons {
		before := time.Now()
		if err := b.ParkPoison(ctx(t), p); err != nil {
			t.Fatalf("ParkPoison: %v", err)
		}
		if _, err := b.SetVisibility(ctx(t), p.Receipt, 0); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("parked message still in its queue: SetVisibility = %v, want ErrNotFound", err)
		}
		got, ok := s.opts.Parked(t, b, p.Receipt)
		if !ok {
			t.Fatalf("nothing recorded for parked message %s", p.Receipt.MessageID)
		}
		if got.Body != p.Body || got.Reason != p.Reason || got.DequeueCount != p.DequeueCount || !got.InsertedAt.Equal(p.InsertedAt) {
			t.Errorf("parked record %+v, want body %q, reason %q, count %d, inserted %v", got, p.Body, p.Reason, p.DequeueCount, p.InsertedAt)
		}
		if got.ParkedAt.Before(before.Add(-time.Minute)) || got.ParkedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("ParkedAt %v, want about %v", got.ParkedAt, before)
		}
		// Parking again (a retry after a lost answer) is not an error.
		if err := b.ParkPoison(ctx(t), p); err != nil {
			t.Errorf("second ParkPoison of %s: %v", p.Receipt.MessageID, err)
		}
	}
	if _, ok := s.opts.Parked(t, b, backend.Receipt{Queue: rs[0].Receipt.Queue, MessageID: "never-parked"}); ok {
		t.Error("Parked reports a message that was never parked")
	}
	if rs, us, _ := b.ReceiveControl(ctx(t), 0, 32, time.Minute); len(rs)+len(us) != 0 {
		t.Errorf("%d messages left after parking both", len(rs)+len(us))
	}
}
