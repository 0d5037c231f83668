// Package backendtest is the conformance suite of backend.Backend: one set
// of tests, derived from the contract's doc comments, that every
// implementation must pass (the Azure Storage one on Azurite, the in-memory
// one). Run it from a test of the implementation's package:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, newBackend, backendtest.Options{Open: ..., PutRaw: ..., Parked: ..., Wakes: ...})
//	}
//
// Every subtest gets a fresh hub from newBackend and runs in parallel with
// the others. Waits for visibility to run out are real (about a second on
// Azure, whose queues count in whole seconds) unless Options.Advance can
// move the backend's clock.
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// Options are what the suite needs of an implementation besides the
// Backend methods.
type Options struct {
	// Open returns another backend on the task hub of b, in the same
	// storage, as another process would open it: for app name app, with
	// partitions control queues. It must not create the hub. Required.
	Open func(t *testing.T, b backend.Backend, app string, partitions int) backend.Backend
	// PutRaw puts body, as it is, on control queue partition of b's hub,
	// bypassing the backend's encoder (as another writer could). Required.
	PutRaw func(t *testing.T, b backend.Backend, partition int, body string)
	// Parked returns what ParkPoison recorded for the message of r, and
	// false if it recorded nothing. Required.
	Parked func(t *testing.T, b backend.Backend, r backend.Receipt) (ParkedMessage, bool)
	// Wakes returns the decoded messages of b's wake queue that are
	// visible now, without receiving them. Required.
	Wakes func(t *testing.T, b backend.Backend) []backend.WakeMessage
	// Advance moves b's clock forward by d. When nil the suite waits in
	// real time, polling.
	Advance func(b backend.Backend, d time.Duration)
}

// ParkedMessage is what a backend recorded for a parked message.
type ParkedMessage struct {
	Reason       string
	Body         string
	DequeueCount int64
	InsertedAt   time.Time
	ParkedAt     time.Time
}

// Run runs the conformance suite. newBackend returns a backend on a new,
// created task hub (CreateTaskHub done) that is deleted when its test ends.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend, opts Options) {
	t.Helper()
	if opts.Open == nil || opts.PutRaw == nil || opts.Parked == nil || opts.Wakes == nil {
		t.Fatal("backendtest: Options.Open, Options.PutRaw, Options.Parked and Options.Wakes are required")
	}
	s := &suite{newBackend: newBackend, opts: opts}
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Routing", s.testRouting},
		{"CreateTaskHub", s.testCreateTaskHub},
		{"LayoutMismatch", s.testLayoutMismatch},
		{"DeleteTaskHub", s.testDeleteTaskHub},
		{"MessageRoundTrip", s.testMessageRoundTrip},
		{"SendRejects", s.testSendRejects},
		{"VisibilityAndRedelivery", s.testVisibilityAndRedelivery},
		{"SetVisibilityAndDelete", s.testSetVisibilityAndDelete},
		{"ReceiveLimits", s.testReceiveLimits},
		{"ConcurrentReceivers", s.testConcurrentReceivers},
		{"Undecodable", s.testUndecodable},
		{"ParkPoison", s.testParkPoison},
		{"QueueLength", s.testQueueLength},
		{"Wake", s.testWake},
		{"HistoryRoundTrip", s.testHistoryRoundTrip},
		{"HistoryFencing", s.testHistoryFencing},
		{"HistoryContinueAsNew", s.testHistoryContinueAsNew},
		{"HistoryConcurrentWriters", s.testHistoryConcurrentWriters},
		{"HistoryRejects", s.testHistoryRejects},
		{"Instances", s.testInstances},
		{"InstanceMerge", s.testInstanceMerge},
		{"InstanceMissingRows", s.testInstanceMissingRows},
		{"QueryInstances", s.testQueryInstances},
		{"PurgeInstance", s.testPurgeInstance},
		{"BadInstanceIDs", s.testBadInstanceIDs},
		{"Partitions", s.testPartitions},
		{"AppLease", s.testAppLease},
		{"CheckPartitionLeases", s.testCheckPartitionLeases},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

type suite struct {
	newBackend func(t *testing.T) backend.Backend
	opts       Options
}

// waitFor lets d pass on b's clock (advancing it when the backend allows)
// and then polls cond until it holds, failing the test after d plus 10 s of
// real time.
func (s *suite) waitFor(t *testing.T, b backend.Backend, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if s.opts.Advance != nil {
		s.opts.Advance(b, d)
	}
	deadline := time.Now().Add(d + 10*time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d+10*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// instanceInPartition returns an instance ID that routes to partition p.
func instanceInPartition(b backend.Backend, p int, prefix string) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if b.PartitionOf(id) == p {
			return id
		}
	}
}

// ts returns a UTC time with 100 ns precision, the precision that survives
// storage.
func ts(sec, hundredNanos int) time.Time {
	return time.Date(2024, 5, 1, 10, 0, sec, hundredNanos*100, time.UTC)
}

func ptr[T any](v T) *T { return &v }

// isConflictOrGone reports ErrConflict or ErrNotFound, what the contract
// allows for a stale receipt.
func isConflictOrGone(err error) bool {
	return errors.Is(err, backend.ErrConflict) || errors.Is(err, backend.ErrNotFound)
}

func ctx(t *testing.T) context.Context { return t.Context() }
