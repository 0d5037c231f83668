package azurestorage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// Columns of the Partitions table (Durable Task's table partition manager).
const (
	colCurrentOwner = "CurrentOwner"
	colNextOwner    = "NextOwner"
	colOwnedSince   = "OwnedSince"
	colLastRenewal  = "LastRenewal"
	colExpiresAt    = "ExpiresAt"
	colIsDraining   = "IsDraining"
)

// ReadPartitions returns every row of the Partitions table with its ETag,
// ordered by partition: one query.
func (s *Store) ReadPartitions(ctx context.Context) ([]backend.PartitionLease, error) {
	var leases []backend.PartitionLease
	pager := s.leases.NewListEntitiesPager(&aztables.ListEntitiesOptions{})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, tableError("read partitions", err)
		}
		for _, data := range page.Entities {
			r, err := parseRow(data)
			if err != nil {
				return nil, err
			}
			l, err := s.leaseFromRow(r)
			if err != nil {
				return nil, err
			}
			leases = append(leases, l)
		}
	}
	slices.SortFunc(leases, func(a, b backend.PartitionLease) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return strings.Compare(a.QueueName, b.QueueName)
	})
	return leases, nil
}

func (s *Store) leaseFromRow(r members) (backend.PartitionLease, error) {
	var l backend.PartitionLease
	var err error
	if l.QueueName, err = r.str("RowKey"); err != nil {
		return l, err
	}
	l.Partition = -1
	prefix := strings.ToLower(s.hub) + "-control-"
	if n, err := strconv.Atoi(strings.TrimPrefix(l.QueueName, prefix)); err == nil && strings.HasPrefix(l.QueueName, prefix) {
		l.Partition = n
	}
	fail := func(err error) (backend.PartitionLease, error) {
		return l, fmt.Errorf("azurestorage: partition row %s: %w", l.QueueName, err)
	}
	if l.CurrentOwner, err = r.str(colCurrentOwner); err != nil {
		return fail(err)
	}
	if l.NextOwner, err = r.str(colNextOwner); err != nil {
		return fail(err)
	}
	if l.OwnedSince, err = r.time(colOwnedSince); err != nil {
		return fail(err)
	}
	if l.LastRenewal, err = r.time(colLastRenewal); err != nil {
		return fail(err)
	}
	if l.ExpiresAt, err = r.time(colExpiresAt); err != nil {
		return fail(err)
	}
	if l.IsDraining, err = r.bool(colIsDraining); err != nil {
		return fail(err)
	}
	l.ETag = r.etag()
	return l, nil
}

// WritePartition replaces one ownership row if its ETag still equals
// lease.ETag (one request) and returns the lease with the new ETag;
// ErrConflict otherwise (also when the row is gone). Empty owners and zero
// times are stored as absent (null) columns. A row with an owner also gets
// our OwnerApp column, this store's app name (see AcquireAppLease).
func (s *Store) WritePartition(ctx context.Context, lease backend.PartitionLease) (backend.PartitionLease, error) {
	if lease.ETag == "" {
		return lease, errors.New("azurestorage: write partition: the lease has no ETag (read it first)")
	}
	if lease.QueueName == "" {
		if lease.Partition < 0 || lease.Partition >= s.partitions {
			return lease, fmt.Errorf("azurestorage: write partition: partition %d is outside 0..%d", lease.Partition, s.partitions-1)
		}
		lease.QueueName = s.ControlQueueName(lease.Partition)
	}
	e := &entity{pk: "", rk: lease.QueueName}
	e.optStr(colCurrentOwner, lease.CurrentOwner)
	e.optStr(colNextOwner, lease.NextOwner)
	e.time(colOwnedSince, lease.OwnedSince)
	e.time(colLastRenewal, lease.LastRenewal)
	e.time(colExpiresAt, lease.ExpiresAt)
	e.bool(colIsDraining, lease.IsDraining)
	if lease.CurrentOwner != "" {
		// Only workers of this app write rows with an owner (the app lease
		// refused the others), so the row's owner belongs to this app.
		e.optStr(colOwnerApp, s.appName)
	}
	op, err := newOp(opReplace, e, lease.ETag)
	if err != nil {
		return lease, err
	}
	// A one-operation transaction: the SDK cannot address the empty
	// PartitionKey that Durable Task uses for this table.
	responses, err := s.rest.submitBatch(ctx, s.PartitionsTableName(), []batchOp{op})
	if err != nil {
		var be *batchError
		if errors.As(err, &be) && (be.status == http.StatusPreconditionFailed || be.status == http.StatusNotFound) {
			return lease, fmt.Errorf("azurestorage: write partition %s: %w: HTTP %d %s", lease.QueueName, backend.ErrConflict, be.status, be.code)
		}
		return lease, fmt.Errorf("azurestorage: write partition %s: %w", lease.QueueName, err)
	}
	lease.ETag = responses[0].etag
	if lease.ETag == "" {
		s.log.Warn("partition write response carried no ETag; reading the row", "queue", lease.QueueName)
		rows, err := s.queryPartition(ctx, s.leases, "", "")
		if err != nil {
			return lease, tableError("read partition "+lease.QueueName, err)
		}
		for _, r := range rows {
			if rk, _ := r.str("RowKey"); rk == lease.QueueName {
				lease.ETag = r.etag()
			}
		}
	}
	return lease, nil
}
