package backendtest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// testQueueLength checks ControlQueueLength and WorkItemQueueLength: every
// stored message counts, hidden (received or delayed) ones too, deleted
// and parked ones no longer; queues are counted apart; a partition outside
// the hub and a deleted hub are errors.
func (s *suite) testQueueLength(t *testing.T) {
	b := s.newBackend(t)
	n := b.PartitionCount()
	lengths := func() []int64 {
		t.Helper()
		out := make([]int64, n+1) // out[n] = work items
		for p := range n {
			l, err := b.ControlQueueLength(ctx(t), p)
			if err != nil {
				t.Fatalf("ControlQueueLength(%d): %v", p, err)
			}
			out[p] = l
		}
		l, err := b.WorkItemQueueLength(ctx(t))
		if err != nil {
			t.Fatalf("WorkItemQueueLength: %v", err)
		}
		out[n] = l
		return out
	}
	// want is the expected lengths: control partition p has c messages,
	// the work-item queue w.
	want := func(p int, c, w int64) []int64 {
		out := make([]int64, n+1)
		out[p], out[n] = c, w
		return out
	}
	// The counts are approximate on Azure: poll until they settle.
	expect := func(what string, w []int64) {
		t.Helper()
		var got []int64
		deadline := time.Now().Add(10 * time.Second)
		for {
			if got = lengths(); fmt.Sprint(got) == fmt.Sprint(w) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: lengths (control 0..%d, work items) = %v, want %v", what, n-1, got, w)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	p := n - 1
	expect("a new hub", want(p, 0, 0))

	id := instanceInPartition(b, p, "qlen")
	msg := backend.Message{Event: history.NewEvent(history.EventRaised, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: id}}
	msg.Event.Name = "e"
	if _, err := b.SendControl(ctx(t), msg, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SendControl(ctx(t), msg, time.Hour); err != nil { // delayed, like a timer
		t.Fatal(err)
	}
	work := backend.Message{Event: history.NewEvent(history.TaskScheduled, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: id}}
	work.Event.EventID, work.Event.Name = 0, "Act"
	for range 3 {
		if _, err := b.SendWorkItem(ctx(t), work, 0); err != nil {
			t.Fatal(err)
		}
	}
	expect("after 2 control messages (one delayed) and 3 work items", want(p, 2, 3))

	rs, _, err := b.ReceiveControl(ctx(t), p, 32, time.Minute)
	if err != nil || len(rs) != 1 {
		t.Fatalf("receive = %d messages, %v; want the undelayed one", len(rs), err)
	}
	expect("with the received message hidden", want(p, 2, 3))
	if err := b.DeleteMessage(ctx(t), rs[0].Receipt); err != nil {
		t.Fatal(err)
	}
	ws, _, err := b.ReceiveWorkItems(ctx(t), 1, time.Minute)
	if err != nil || len(ws) != 1 {
		t.Fatalf("receive work item = %d messages, %v", len(ws), err)
	}
	if err := b.ParkPoison(ctx(t), backend.Poison{Receipt: ws[0].Receipt, Body: ws[0].Body, DequeueCount: 1, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	expect("after a delete and a park", want(p, 1, 2))

	if _, err := b.ControlQueueLength(ctx(t), n); err == nil {
		t.Errorf("ControlQueueLength(%d) of a hub with %d partitions: no error", n, n)
	}
	if _, err := b.ControlQueueLength(ctx(t), -1); err == nil {
		t.Error("ControlQueueLength(-1): no error")
	}
	if err := b.DeleteTaskHub(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WorkItemQueueLength(ctx(t)); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("WorkItemQueueLength of a deleted hub = %v, want ErrNotFound", err)
	}
	if _, err := b.ControlQueueLength(ctx(t), 0); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("ControlQueueLength of a deleted hub = %v, want ErrNotFound", err)
	}
}
