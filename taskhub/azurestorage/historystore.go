package azurestorage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Columns of History rows besides the event members.
const (
	colExecutionID                  = "ExecutionId"
	colIsCheckpointComplete         = "IsCheckpointComplete"
	colCheckpointCompletedTimestamp = "CheckpointCompletedTimestamp"
)

// maxEventsPerBatch leaves room for the sentinel in a 100-operation
// transaction.
const maxEventsPerBatch = maxBatchOperations - 1

// LoadHistory reads the current execution's history of instanceID: one
// query of the instance's partition. The current execution is the
// sentinel's ExecutionId (or the first row's when there is no sentinel);
// rows are taken in RowKey order up to the first row of another execution
// (the stale tail of an older, longer execution) or the first gap.
func (s *Store) LoadHistory(ctx context.Context, instanceID string) (backend.History, error) {
	pk, err := partitionKeyFor(instanceID)
	if err != nil {
		return backend.History{}, err
	}
	h := backend.History{InstanceID: instanceID}
	rows, err := s.queryPartition(ctx, s.history, pk, "")
	if err != nil {
		return h, tableError("load history of "+instanceID, err)
	}
	var sentinel members
	events := rows[:0]
	for _, r := range rows {
		if rk, _ := r.str("RowKey"); rk == sentinelRowKey {
			sentinel = r
		} else {
			events = append(events, r)
		}
	}
	slices.SortStableFunc(events, func(a, b members) int {
		ra, _ := a.str("RowKey")
		rb, _ := b.str("RowKey")
		return strings.Compare(ra, rb)
	})
	switch {
	case sentinel != nil:
		if h.ExecutionID, err = sentinel.str(colExecutionID); err != nil {
			return h, fmt.Errorf("azurestorage: history sentinel of %s: %w", instanceID, err)
		}
		h.ETag = sentinel.etag()
	case len(events) > 0:
		if h.ExecutionID, err = events[0].str(colExecutionID); err != nil {
			return h, fmt.Errorf("azurestorage: history of %s: %w", instanceID, err)
		}
	default:
		return h, nil
	}
	for i, r := range events {
		rk, _ := r.str("RowKey")
		exec, _ := r.str(colExecutionID)
		if exec != h.ExecutionID || rk != rowKey(i) {
			events = events[:i]
			break
		}
	}
	if err := s.restoreHistoryRows(ctx, events); err != nil {
		return h, fmt.Errorf("azurestorage: load history of %s: %w", instanceID, err)
	}
	for _, r := range events {
		ev, err := eventFromRow(r)
		if err != nil {
			rk, _ := r.str("RowKey")
			return h, fmt.Errorf("azurestorage: history of %s, row %s: %w", instanceID, rk, err)
		}
		h.Events = append(h.Events, ev)
	}
	return h, nil
}

// eventFromRow decodes a History row.
func eventFromRow(r members) (history.Event, error) {
	name, err := r.str(mEventType)
	if err != nil {
		return history.Event{}, err
	}
	t, err := history.ParseEventType(name)
	if err != nil {
		return history.Event{}, err
	}
	return r.decodeEvent(t, "_"+mTimestamp)
}

// AppendHistory writes events at positions from, from+1, ... of execution
// executionID in entity group transactions of at most 99 events plus the
// sentinel row, fenced by etag: "" inserts the sentinel (ErrConflict if it
// exists), otherwise the sentinel is merged with If-Match etag (ErrConflict
// on mismatch). It returns the sentinel's new ETag, taken from the
// transaction's response, so a checkpoint of up to 99 events is exactly one
// HTTP request. Larger checkpoints are several transactions chained by ETag
// (IsCheckpointComplete is false on all but the last); they are not atomic:
// after a failure part of the events may be stored, behind a sentinel ETag
// the caller does not know, so the caller must reload.
//
// Columns above 60 KiB (offloadedColumns) are first uploaded to blobs, one
// request each, in parallel; blobs of transactions the service rejected are
// deleted again.
func (s *Store) AppendHistory(ctx context.Context, instanceID, executionID string, from int, events []history.Event, etag string) (string, error) {
	pk, err := partitionKeyFor(instanceID)
	if err != nil {
		return "", err
	}
	if executionID == "" {
		return "", fmt.Errorf("azurestorage: append history of %s: empty execution ID", instanceID)
	}
	if from < 0 {
		return "", fmt.Errorf("azurestorage: append history of %s: negative position %d", instanceID, from)
	}
	// Render every row before writing anything, so that an oversized event
	// fails the whole append up front.
	ops := make([]batchOp, len(events))
	var blobs []pendingBlob
	var opBlobs [][]pendingBlob // per op, only when there are blobs
	for i := range events {
		e, err := eventEntity(pk, from+i, executionID, &events[i])
		if err != nil {
			return "", fmt.Errorf("azurestorage: append history of %s, event %d: %w", instanceID, from+i, err)
		}
		if large := offloadHistoryRow(e, events[i].Type.String()); len(large) > 0 {
			if opBlobs == nil {
				opBlobs = make([][]pendingBlob, len(events))
			}
			opBlobs[i] = large
			blobs = append(blobs, large...)
		}
		if ops[i], err = newOp(opInsertReplace, e, ""); err != nil {
			return "", fmt.Errorf("azurestorage: append history of %s, event %d (%s): %w", instanceID, from+i, events[i].Type, err)
		}
	}
	if len(blobs) > 0 {
		if err := s.uploadAll(ctx, blobs); err != nil {
			s.discardBlobs(ctx, blobNames(blobs)...)
			return "", fmt.Errorf("azurestorage: append history of %s: %w", instanceID, err)
		}
	}
	batches := splitBatches(ops)
	current := etag
	first := 0 // index of the first op of the current batch
	for i, batch := range batches {
		start := first
		first += len(batch)
		final := i == len(batches)-1
		sentinel := &entity{pk: pk, rk: sentinelRowKey}
		sentinel.str(colExecutionID, executionID)
		sentinel.bool(colIsCheckpointComplete, final)
		if final {
			sentinel.time(colCheckpointCompletedTimestamp, time.Now())
		}
		kind := opMerge
		if current == "" {
			kind = opInsert
		}
		op, err := newOp(kind, sentinel, current)
		if err != nil {
			return "", err
		}
		batch = append(batch, op)
		responses, err := s.rest.submitBatch(ctx, s.HistoryTableName(), batch)
		if err != nil {
			if opBlobs != nil {
				// Blobs of rows that were never written are garbage. A
				// transaction the service rejected wrote nothing; after
				// another failure it may have committed.
				var be *batchError
				if !errors.As(err, &be) {
					start = first
				}
				var unused []string
				for _, large := range opBlobs[start:] {
					unused = append(unused, blobNames(large)...)
				}
				s.discardBlobs(ctx, unused...)
			}
			return "", historyWriteError(instanceID, i, len(batches), len(batch)-1, err)
		}
		next := responses[len(responses)-1].etag
		if next == "" {
			s.log.Warn("history transaction response carried no sentinel ETag; reading the sentinel", "instanceId", instanceID)
			got, err := s.history.GetEntity(ctx, pk, sentinelRowKey, nil)
			if err != nil {
				return "", tableError("read history sentinel of "+instanceID, err)
			}
			next = string(got.ETag)
		}
		current = next
	}
	return current, nil
}

// blobNames returns the names of the blobs.
func blobNames(blobs []pendingBlob) []string {
	names := make([]string, len(blobs))
	for i, b := range blobs {
		names[i] = b.name
	}
	return names
}

// splitBatches groups event operations into transactions of at most 99
// events whose bodies stay below the transaction size limit. No events give
// one empty group (a sentinel-only transaction).
func splitBatches(ops []batchOp) [][]batchOp {
	var out [][]batchOp
	var cur []batchOp
	size := 2 * opOverhead // the sentinel and the multipart frame
	for _, op := range ops {
		n := len(op.body) + opOverhead
		if len(cur) > 0 && (len(cur) == maxEventsPerBatch || size+n > maxBatchBodyBytes) {
			out = append(out, cur)
			cur, size = nil, 2*opOverhead
		}
		cur = append(cur, op)
		size += n
	}
	return append(out, cur)
}

// historyWriteError maps a failed history transaction: a 409 (sentinel
// already inserted), 412 (sentinel ETag changed) or 404 on the sentinel
// (sentinel deleted) is ErrConflict.
func historyWriteError(instanceID string, batch, batches, sentinelIndex int, err error) error {
	op := fmt.Sprintf("append history of %s", instanceID)
	if batches > 1 {
		op += fmt.Sprintf(" (transaction %d of %d)", batch+1, batches)
	}
	var be *batchError
	if errors.As(err, &be) {
		switch {
		case be.status == http.StatusConflict, be.status == http.StatusPreconditionFailed,
			be.status == http.StatusNotFound && be.index == sentinelIndex:
			return fmt.Errorf("azurestorage: %s: another writer changed the history: %w: HTTP %d %s", op, backend.ErrConflict, be.status, be.code)
		}
		return fmt.Errorf("azurestorage: %s: %w", op, err)
	}
	return fmt.Errorf("azurestorage: %s: %w", op, err)
}

// queryPartition returns every row of table with PartitionKey pk, following
// continuation tokens. selectCols, when not empty, limits the columns.
func (s *Store) queryPartition(ctx context.Context, table *aztables.Client, pk, selectCols string) ([]members, error) {
	filter := "PartitionKey eq " + odataString(pk)
	opts := &aztables.ListEntitiesOptions{Filter: &filter}
	if selectCols != "" {
		opts.Select = &selectCols
	}
	var rows []members
	pager := table.NewListEntitiesPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, data := range page.Entities {
			r, err := parseRow(data)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// tableError maps a Table service error onto the backend sentinels: 404 is
// ErrNotFound, 412 ErrConflict, 409 ErrExists.
func tableError(op string, err error) error {
	status, code, ok := responseError(err)
	switch {
	case !ok:
		return fmt.Errorf("azurestorage: %s: %w", op, err)
	case status == http.StatusNotFound:
		return fmt.Errorf("azurestorage: %s: %w: HTTP %d %s", op, backend.ErrNotFound, status, code)
	case status == http.StatusPreconditionFailed:
		return fmt.Errorf("azurestorage: %s: %w: HTTP %d %s", op, backend.ErrConflict, status, code)
	case status == http.StatusConflict:
		return fmt.Errorf("azurestorage: %s: %w: HTTP %d %s", op, backend.ErrExists, status, code)
	}
	return fmt.Errorf("azurestorage: %s: %w", op, err)
}
