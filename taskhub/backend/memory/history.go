package memory

import (
	"context"
	"fmt"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// historyLog is the History table partition of one instance: rows by
// position, each tagged with its execution, and the sentinel row.
type historyLog struct {
	sentinel    bool   // the sentinel row exists
	executionID string // the sentinel's execution
	etag        string // the sentinel's ETag
	rows        []historyRow
}

type historyRow struct {
	set         bool
	executionID string
	event       history.Event // stored form
}

// LoadHistory reads the current execution's history of instanceID: the
// sentinel's execution, rows in position order up to the first row of
// another execution (the stale tail of an older, longer one) or the first
// gap. An instance without history returns an empty History.
func (b *Backend) LoadHistory(ctx context.Context, instanceID string) (backend.History, error) {
	op := "load history of " + instanceID
	if err := checkInstanceID(op, instanceID); err != nil {
		return backend.History{}, err
	}
	if err := ctxErr(ctx, op); err != nil {
		return backend.History{}, err
	}
	h := b.h
	h.mu.Lock()
	defer h.mu.Unlock()
	out := backend.History{InstanceID: instanceID}
	if err := b.requireHub(op); err != nil {
		return out, err
	}
	log := h.history[instanceID]
	if log == nil || !log.sentinel {
		return out, nil
	}
	out.ExecutionID, out.ETag = log.executionID, log.etag
	for _, r := range log.rows {
		if !r.set || r.executionID != log.executionID {
			break
		}
		out.Events = append(out.Events, cloneEvent(r.event))
	}
	return out, nil
}

// AppendHistory writes events at positions from, from+1, ... of execution
// executionID, fenced by etag, in one atomic step: "" inserts the sentinel
// (ErrConflict if it exists), otherwise the sentinel's ETag must equal etag
// (ErrConflict if it differs or the sentinel is gone). Rows at those
// positions are replaced whatever execution wrote them, so from 0 with a
// new execution overwrites (ContinueAsNew, restart). It returns the
// sentinel's new ETag.
func (b *Backend) AppendHistory(ctx context.Context, instanceID, executionID string, from int, events []history.Event, etag string) (string, error) {
	op := "append history of " + instanceID
	if err := checkInstanceID(op, instanceID); err != nil {
		return "", err
	}
	switch {
	case executionID == "":
		return "", fmt.Errorf("memory: %s: empty execution ID", op)
	case from < 0:
		return "", fmt.Errorf("memory: %s: negative position %d", op, from)
	}
	if err := ctxErr(ctx, op); err != nil {
		return "", err
	}
	stored := make([]history.Event, len(events))
	for i := range events {
		ev, err := storedEvent(&events[i])
		if err != nil {
			return "", fmt.Errorf("memory: %s, event %d: %w", op, from+i, err)
		}
		stored[i] = ev
	}
	h := b.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := b.requireHub(op); err != nil {
		return "", err
	}
	log := h.history[instanceID]
	switch {
	case etag == "" && log != nil && log.sentinel:
		return "", fmt.Errorf("memory: %s: another writer changed the history: the sentinel exists: %w", op, backend.ErrConflict)
	case etag != "" && (log == nil || !log.sentinel):
		return "", fmt.Errorf("memory: %s: another writer changed the history: the sentinel is gone: %w", op, backend.ErrConflict)
	case etag != "" && log.etag != etag:
		return "", fmt.Errorf("memory: %s: another writer changed the history: ETag %s, not %s: %w", op, log.etag, etag, backend.ErrConflict)
	}
	if log == nil {
		log = &historyLog{}
		h.history[instanceID] = log
	}
	if end := from + len(stored); end > len(log.rows) {
		log.rows = append(log.rows, make([]historyRow, end-len(log.rows))...)
	}
	for i, ev := range stored {
		log.rows[from+i] = historyRow{set: true, executionID: executionID, event: ev}
	}
	log.sentinel, log.executionID, log.etag = true, executionID, b.st.etag()
	return log.etag, nil
}
