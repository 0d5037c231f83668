package backendtest

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func readPartitions(t *testing.T, b backend.Backend) []backend.PartitionLease {
	t.Helper()
	leases, err := b.ReadPartitions(ctx(t))
	if err != nil {
		t.Fatalf("ReadPartitions: %v", err)
	}
	return leases
}

// now is a wall-clock time at storage precision.
func now() time.Time { return history.StorageTime(time.Now()) }

// testCreateTaskHub checks the seeded partition table and that creating
// the hub again changes nothing.
func (s *suite) testCreateTaskHub(t *testing.T) {
	b := s.newBackend(t)
	leases := readPartitions(t, b)
	if len(leases) != b.PartitionCount() {
		t.Fatalf("%d partition rows, want %d", len(leases), b.PartitionCount())
	}
	names := map[string]bool{}
	for i, l := range leases {
		if l.Partition != i || l.QueueName == "" || names[l.QueueName] || l.CurrentOwner != "" || l.NextOwner != "" || l.IsDraining || l.ETag == "" {
			t.Errorf("partition row %d = %+v, want partition %d, its own queue name, no owner, an ETag", i, l, i)
		}
		names[l.QueueName] = true
	}
	// A control message lands in the queue the partition table names.
	id := instanceInPartition(b, b.PartitionCount()-1, "routed")
	r, err := b.SendControl(ctx(t), backend.Message{Event: history.NewEvent(history.EventRaised, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: id}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Queue != leases[b.PartitionCount()-1].QueueName {
		t.Errorf("message for partition %d went to %s, the partition table names %s", b.PartitionCount()-1, r.Queue, leases[b.PartitionCount()-1].QueueName)
	}

	owned := leases[0]
	owned.CurrentOwner, owned.OwnedSince, owned.LastRenewal, owned.ExpiresAt = "worker-1", now(), now(), now().Add(time.Minute)
	owned, err = b.WritePartition(ctx(t), owned)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTaskHub(ctx(t)); err != nil {
		t.Fatalf("second CreateTaskHub: %v", err)
	}
	again := readPartitions(t, b)
	if !reflect.DeepEqual(again[0], owned) || !reflect.DeepEqual(again[1:], leases[1:]) {
		t.Errorf("CreateTaskHub changed the partition table:\n got %+v\nwant %+v then %+v", again, owned, leases[1:])
	}
	if rs, _, err := b.ReceiveControl(ctx(t), b.PartitionCount()-1, 32, time.Minute); err != nil || len(rs) != 1 {
		t.Errorf("CreateTaskHub lost the queued message: %d received, %v", len(rs), err)
	}
}

// testLayoutMismatch checks that a hub refuses another partition count and
// stays as it was.
func (s *suite) testLayoutMismatch(t *testing.T) {
	b := s.newBackend(t)
	n := b.PartitionCount()
	other := n + 1
	if n == 16 {
		other = n - 1
	}
	err := s.opts.Open(t, b, "", other).CreateTaskHub(ctx(t))
	if !errors.Is(err, backend.ErrLayoutMismatch) {
		t.Fatalf("CreateTaskHub with %d partitions on a hub of %d = %v, want ErrLayoutMismatch", other, n, err)
	}
	if leases := readPartitions(t, b); len(leases) != n {
		t.Errorf("%d partition rows after the refused creation, want %d", len(leases), n)
	}
	if err := s.opts.Open(t, b, "", n).CreateTaskHub(ctx(t)); err != nil {
		t.Errorf("CreateTaskHub with the hub's own count: %v", err)
	}
}

// testDeleteTaskHub checks that deleting a hub removes what it holds.
func (s *suite) testDeleteTaskHub(t *testing.T) {
	b := s.newBackend(t)
	msg := backend.Message{Event: history.NewEvent(history.EventRaised, ts(1, 0)), Target: history.OrchestrationInstance{InstanceID: "doomed"}}
	if _, err := b.SendControl(ctx(t), msg, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateInstance(ctx(t), fullInstance("doomed")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendHistory(ctx(t), "doomed", "e1", 0, completions(1), ""); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteTaskHub(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetInstance(ctx(t), "doomed", false); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("GetInstance after DeleteTaskHub = %v, want ErrNotFound", err)
	}
	if _, err := b.ReadPartitions(ctx(t)); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("ReadPartitions after DeleteTaskHub = %v, want ErrNotFound", err)
	}
	if _, err := b.SendControl(ctx(t), msg, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("SendControl after DeleteTaskHub = %v, want ErrNotFound", err)
	}
	if err := b.DeleteTaskHub(ctx(t)); err != nil {
		t.Errorf("DeleteTaskHub of a deleted hub: %v", err)
	}
}

// testPartitions checks fenced writes of the partition table.
func (s *suite) testPartitions(t *testing.T) {
	b := s.newBackend(t)
	leases := readPartitions(t, b)
	l := leases[b.PartitionCount()-1]
	t0 := now()
	l.CurrentOwner, l.OwnedSince, l.LastRenewal, l.ExpiresAt = "worker-a", t0, t0, t0.Add(time.Minute)
	updated, err := b.WritePartition(ctx(t), l)
	if err != nil {
		t.Fatal(err)
	}
	if updated.ETag == "" || updated.ETag == l.ETag {
		t.Fatalf("new ETag %q after %q", updated.ETag, l.ETag)
	}
	want := l
	want.ETag = updated.ETag
	if !reflect.DeepEqual(updated, want) {
		t.Errorf("WritePartition returned\n %+v\nwant %+v", updated, want)
	}
	if _, err := b.WritePartition(ctx(t), l); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("stale partition write = %v, want ErrConflict", err)
	}
	if got := readPartitions(t, b)[l.Partition]; !reflect.DeepEqual(got, updated) {
		t.Errorf("read back\n got %+v\nwant %+v", got, updated)
	}
	// Hand-over: next owner, draining, then a release by Partition alone.
	updated.NextOwner, updated.IsDraining = "worker-b", true
	updated, err = b.WritePartition(ctx(t), updated)
	if err != nil {
		t.Fatal(err)
	}
	if got := readPartitions(t, b)[l.Partition]; got.NextOwner != "worker-b" || !got.IsDraining || got.CurrentOwner != "worker-a" {
		t.Errorf("after the hand-over write: %+v", got)
	}
	released := backend.PartitionLease{Partition: l.Partition, ETag: updated.ETag}
	released, err = b.WritePartition(ctx(t), released)
	if err != nil {
		t.Fatalf("write by partition number only: %v", err)
	}
	got := readPartitions(t, b)[l.Partition]
	if got.QueueName != l.QueueName || got.CurrentOwner != "" || got.NextOwner != "" || got.IsDraining || !got.ExpiresAt.IsZero() || got.ETag != released.ETag {
		t.Errorf("after the release: %+v", got)
	}

	// Precise times come back at storage precision.
	precise := time.Date(2024, 3, 4, 14, 6, 7, 123456789, time.FixedZone("JST", 9*3600))
	got.CurrentOwner, got.ExpiresAt = "worker-c", precise
	if _, err := b.WritePartition(ctx(t), got); err != nil {
		t.Fatal(err)
	}
	if back := readPartitions(t, b)[l.Partition]; back.ExpiresAt != history.StorageTime(precise) {
		t.Errorf("ExpiresAt %#v, want %#v", back.ExpiresAt, history.StorageTime(precise))
	}

	for name, bad := range map[string]backend.PartitionLease{
		"no ETag":                {Partition: 0},
		"partition out of range": {Partition: b.PartitionCount(), ETag: leases[0].ETag},
	} {
		if _, err := b.WritePartition(ctx(t), bad); err == nil || errors.Is(err, backend.ErrConflict) {
			t.Errorf("WritePartition with %s: %v, want an error that is not a conflict", name, err)
		}
	}

	// Of several writers with the same ETag exactly one wins.
	current := readPartitions(t, b)[0]
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for w := range 5 {
		wg.Go(func() {
			l := current
			l.CurrentOwner, l.ExpiresAt = "contender-"+string(rune('a'+w)), now().Add(time.Minute)
			_, err := b.WritePartition(ctx(t), l)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, backend.ErrConflict):
				conflicts++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || conflicts != 4 {
		t.Errorf("concurrent partition writes: %d won, %d conflicts; want 1 and 4", wins, conflicts)
	}
}

// testAppLease checks that workers of one app share the app lease and
// another app is refused, naming the holder.
func (s *suite) testAppLease(t *testing.T) {
	b := s.newBackend(t)
	n := b.PartitionCount()
	a1, a2 := s.opts.Open(t, b, "app-one", n), s.opts.Open(t, b, "app-one", n)
	if err := a1.AcquireAppLease(ctx(t)); err != nil {
		t.Fatalf("first worker of app-one: %v", err)
	}
	if err := a2.AcquireAppLease(ctx(t)); err != nil {
		t.Fatalf("second worker of app-one: %v", err)
	}
	for _, app := range []string{"app-two", ""} {
		other := s.opts.Open(t, b, app, n)
		err := other.AcquireAppLease(ctx(t))
		var inUse *backend.HubInUseError
		if !errors.Is(err, backend.ErrHubInUse) || !errors.As(err, &inUse) {
			t.Fatalf("app %q: %v, want a *backend.HubInUseError", app, err)
		}
		if inUse.Hub != b.HubName() || inUse.App != app || !strings.Contains(inUse.Holder, "app-one") || inUse.Lease == "" {
			t.Errorf("refusal of app %q: %+v, want hub %s, app %q, holder naming app-one", app, inUse, b.HubName(), app)
		}
		if err := other.RenewAppLease(ctx(t)); !errors.Is(err, backend.ErrHubInUse) {
			t.Errorf("renew by app %q, which never held the lease: %v, want ErrHubInUse", app, err)
		}
	}
	for i, w := range []backend.Backend{a1, a2} {
		if err := w.RenewAppLease(ctx(t)); err != nil {
			t.Errorf("renew by worker %d of app-one: %v", i+1, err)
		}
	}
}

// testCheckPartitionLeases checks that live partition leases of another
// app's workers are reported, and nothing else is.
func (s *suite) testCheckPartitionLeases(t *testing.T) {
	b := s.newBackend(t)
	n := b.PartitionCount()
	one, two := s.opts.Open(t, b, "app-one", n), s.opts.Open(t, b, "app-two", n)
	if err := one.CheckPartitionLeases(ctx(t)); err != nil {
		t.Fatalf("fresh hub: %v", err)
	}
	l := readPartitions(t, one)[n-1]
	l.CurrentOwner, l.OwnedSince, l.LastRenewal, l.ExpiresAt = "w1", now(), now(), now().Add(time.Minute)
	l, err := one.WritePartition(ctx(t), l)
	if err != nil {
		t.Fatal(err)
	}
	err = two.CheckPartitionLeases(ctx(t))
	var inUse *backend.HubInUseError
	if !errors.Is(err, backend.ErrHubInUse) || !errors.As(err, &inUse) ||
		!strings.Contains(inUse.Holder, "w1") || !strings.Contains(inUse.Holder, "app-one") || !strings.Contains(inUse.Lease, l.QueueName) {
		t.Fatalf("app-two with a live lease of app-one's worker: %v, want a refusal naming worker w1, app-one and %s", err, l.QueueName)
	}
	if err := s.opts.Open(t, b, "app-one", n).CheckPartitionLeases(ctx(t)); err != nil {
		t.Errorf("app-one's own worker's lease: %v", err)
	}
	// An expired lease, and a released one, stop nobody.
	l.ExpiresAt = now().Add(-time.Second)
	if l, err = one.WritePartition(ctx(t), l); err != nil {
		t.Fatal(err)
	}
	if err := two.CheckPartitionLeases(ctx(t)); err != nil {
		t.Errorf("app-two with an expired lease of app-one: %v", err)
	}
	l.CurrentOwner, l.ExpiresAt = "", now().Add(time.Minute)
	if _, err = one.WritePartition(ctx(t), l); err != nil {
		t.Fatal(err)
	}
	if err := two.CheckPartitionLeases(ctx(t)); err != nil {
		t.Errorf("app-two after the release: %v", err)
	}
}
