package engine_test

import (
	"slices"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// TestPartitionHandedToADeadWorkerIsClaimed: a worker asks for a partition
// (NextOwner), its owner releases it, and the asker dies before claiming
// it. Once the released lease has run out, the partition is free for any
// worker; it was stuck unowned for ever before (seen in
// TestRepeatedKillsAcrossWorkers: a control queue nobody read).
func TestPartitionHandedToADeadWorkerIsClaimed(t *testing.T) {
	be := memoryBackend(t)
	eng, _, _ := enginetest.Start(t, engine.Options{Backend: be, WorkerID: "live", LeaseInterval: 2 * time.Second})
	deadline := time.Now().Add(20 * time.Second)
	for len(eng.OwnedPartitions()) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("owns %v, want all 4", eng.OwnedPartitions())
		}
		time.Sleep(20 * time.Millisecond)
	}
	leases, err := be.ReadPartitions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// As the owner leaves it after handing it over: no owner, the asker as
	// next owner, the lease running out a moment later.
	l := leases[0]
	l.CurrentOwner, l.NextOwner, l.ExpiresAt = "", "dead", time.Now().Add(500*time.Millisecond)
	if _, err := be.WritePartition(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	for {
		leases, err := be.ReadPartitions(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if leases[0].CurrentOwner == "live" && leases[0].NextOwner == "" && slices.Contains(eng.OwnedPartitions(), leases[0].Partition) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %d: lease %+v, owned %v; want it claimed back by the live worker", l.Partition, leases[0], eng.OwnedPartitions())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
