package memory

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// leaseRow is one row of the partition table.
type leaseRow struct {
	lease backend.PartitionLease // stored form, ETag empty
	etag  string
	// ownerApp is the app of the backend that wrote the row with an owner
	// (azurestorage's OwnerApp column).
	ownerApp string
}

// ReadPartitions returns every row of the partition table with its ETag,
// ordered by partition.
func (b *Backend) ReadPartitions(ctx context.Context) ([]backend.PartitionLease, error) {
	const op = "read partitions"
	if err := b.enter(ctx, op); err != nil {
		return nil, err
	}
	defer b.h.mu.Unlock()
	out := make([]backend.PartitionLease, 0, len(b.h.leases))
	for _, r := range b.h.leases {
		l := r.lease
		l.ETag = r.etag
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b backend.PartitionLease) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return strings.Compare(a.QueueName, b.QueueName)
	})
	return out, nil
}

// WritePartition replaces one ownership row (by QueueName, or by Partition
// when QueueName is empty) if its ETag still equals lease.ETag, and returns
// the lease with its new ETag; ErrConflict otherwise, also when the row is
// gone. Times are stored at storage precision.
func (b *Backend) WritePartition(ctx context.Context, lease backend.PartitionLease) (backend.PartitionLease, error) {
	if lease.ETag == "" {
		return lease, fmt.Errorf("memory: write partition: %w", errNoETag)
	}
	if lease.QueueName == "" {
		if lease.Partition < 0 || lease.Partition >= b.partitions {
			return lease, fmt.Errorf("memory: write partition: partition %d is outside 0..%d", lease.Partition, b.partitions-1)
		}
		lease.QueueName = b.ControlQueueName(lease.Partition)
	}
	op := "write partition " + lease.QueueName
	if err := ctxErr(ctx, op); err != nil {
		return lease, err
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	r := b.h.leases[lease.QueueName]
	switch {
	case r == nil:
		return lease, fmt.Errorf("memory: %s: the row is gone: %w", op, backend.ErrConflict)
	case r.etag != lease.ETag:
		return lease, fmt.Errorf("memory: %s: the row changed (ETag %s, not %s): %w", op, r.etag, lease.ETag, backend.ErrConflict)
	}
	stored := lease
	stored.ETag = ""
	stored.Partition = b.partitionOfQueue(lease.QueueName)
	stored.OwnedSince, stored.LastRenewal, stored.ExpiresAt = storageTime(lease.OwnedSince), storageTime(lease.LastRenewal), storageTime(lease.ExpiresAt)
	r.lease, r.etag, r.ownerApp = stored, b.st.etag(), ""
	if lease.CurrentOwner != "" {
		r.ownerApp = b.app
	}
	lease.ETag = r.etag
	return lease, nil
}

// partitionOfQueue is the partition a control queue name stands for, -1
// for another name.
func (b *Backend) partitionOfQueue(name string) int {
	prefix := strings.ToLower(b.name) + "-control-"
	if n, err := strconv.Atoi(strings.TrimPrefix(name, prefix)); err == nil && strings.HasPrefix(name, prefix) {
		return n
	}
	return -1
}

// appLease is the hub's app lease.
type appLease struct {
	held    bool
	app     string // the holder, or the last holder when it expired
	expires time.Time
}

// AcquireAppLease takes the hub's app lease for this backend's app name
// for AppLeaseDuration: a lease of the same app is shared (and extended),
// a live lease of another app is refused with a *backend.HubInUseError.
func (b *Backend) AcquireAppLease(ctx context.Context) error {
	const op = "acquire the app lease"
	if err := b.enter(ctx, op); err != nil {
		return err
	}
	defer b.h.mu.Unlock()
	l, now := &b.h.appLease, b.st.now()
	if l.held && l.app != b.app && now.Before(l.expires) {
		return b.appLeaseHeld()
	}
	*l = appLease{held: true, app: b.app, expires: now.Add(AppLeaseDuration)}
	return nil
}

// RenewAppLease extends this app's lease, also one that ran out while no
// other app took it (as a blob lease renews). A lease held by another app,
// or not held at all, is lost: a *backend.HubInUseError.
func (b *Backend) RenewAppLease(ctx context.Context) error {
	const op = "renew the app lease"
	if err := b.enter(ctx, op); err != nil {
		return err
	}
	defer b.h.mu.Unlock()
	l := &b.h.appLease
	if !l.held || l.app != b.app {
		return b.appLeaseHeld()
	}
	l.expires = b.st.now().Add(AppLeaseDuration)
	return nil
}

// appLeaseHeld builds the refusal naming the lease's holder. Call with
// h.mu held.
func (b *Backend) appLeaseHeld() error {
	holder := "nobody (the lease is not held)"
	if l := b.h.appLease; l.held {
		holder = fmt.Sprintf("app %q", l.app)
		if !b.st.now().Before(l.expires) {
			holder += " (expired)"
		}
	}
	return &backend.HubInUseError{Hub: b.name, Lease: "the app lease of task hub " + b.name, Holder: holder, App: b.app}
}

// CheckPartitionLeases reports, as a *backend.HubInUseError, a live
// partition lease (an owner and an expiry after now) written by a backend
// of another named app, as azurestorage reads its OwnerApp column. A hub
// that does not exist has none.
func (b *Backend) CheckPartitionLeases(ctx context.Context) error {
	const op = "check partition leases"
	if err := ctxErr(ctx, op); err != nil {
		return err
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	now := b.st.now()
	names := make([]string, 0, len(b.h.leases))
	for name := range b.h.leases {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		r := b.h.leases[name]
		l := r.lease
		if l.CurrentOwner == "" || !now.Before(l.ExpiresAt) || r.ownerApp == "" || r.ownerApp == b.app {
			continue
		}
		return &backend.HubInUseError{
			Hub:    b.name,
			Lease:  fmt.Sprintf("partition %s (lease valid until %s)", name, l.ExpiresAt.UTC().Format(time.RFC3339)),
			Holder: fmt.Sprintf("worker %q of app %q", l.CurrentOwner, r.ownerApp),
			App:    b.app,
		}
	}
	return nil
}
