package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// The Instances row is fenced like history. Every row the engine writes says
// what it was computed from: the execution and the history position (number
// of history rows of that execution). A write first compares that with the
// stored row (judgeRow) and never replaces a terminal status or a newer
// position with an older view; it is then fenced by the row's ETag, and a
// conflict re-reads and judges again. All times in the row come from
// history, so a row re-derived from the same history is identical and is
// never written twice.

var (
	// errRowNewer: the stored row is ahead of this worker's view of the
	// instance (another worker, or a newer execution, wrote it).
	errRowNewer = errors.New("the Instances row is newer than this worker's view of the instance")
	// errNotOwner: this worker no longer holds a valid lease on the
	// instance's partition, so it must not write.
	errNotOwner = errors.New("this worker no longer owns the instance's partition")
)

// rowVerdict is judgeRow's answer.
type rowVerdict int

const (
	rowWrite   rowVerdict = iota // the stored row is older than ours: write
	rowCurrent                   // the stored row already says what ours says
	rowNewer                     // the stored row is newer: leave it alone
)

// rowBasis is what a row write was computed from.
type rowBasis struct {
	executionID string
	started     time.Time // the execution's ExecutionStarted timestamp
	replaced    string    // an execution this worker replaced (ContinueAsNew, rewind)
}

// judgeRow compares the stored row (nil: none) with the row we want to write.
func judgeRow(stored *backend.InstanceState, want backend.InstanceState, b rowBasis) rowVerdict {
	if stored == nil {
		return rowWrite
	}
	if stored.ExecutionID != b.executionID {
		switch {
		case stored.ExecutionID == "", stored.ExecutionID == b.replaced:
			return rowWrite
		case !b.started.IsZero() && stored.CreatedTime.Before(b.started):
			// Our execution started after the row's: a ContinueAsNew or a
			// restart by a parent whose row write was lost.
			return rowWrite
		}
		return rowNewer // a client (or a parent) restarted the instance after us
	}
	if rowsAgree(stored, want) {
		return rowCurrent
	}
	if stored.Status.IsTerminal() {
		return rowNewer // a finished execution's row is final
	}
	if stored.HistoryPosition > want.HistoryPosition {
		return rowNewer
	}
	return rowWrite
}

// rowsAgree reports whether two rows of one execution say the same thing.
func rowsAgree(a *backend.InstanceState, b backend.InstanceState) bool {
	return a.ExecutionID == b.ExecutionID && a.Status == b.Status && a.Output == b.Output &&
		a.CustomStatus == b.CustomStatus && sameTime(a.CompletedTime, b.CompletedTime) &&
		(a.HistoryPosition == b.HistoryPosition || a.HistoryPosition == 0 && a.Status.IsTerminal())
}

// sameTime compares times at the precision that storage keeps.
func sameTime(a, b time.Time) bool {
	return history.StorageTime(a).Equal(history.StorageTime(b))
}

// desiredRow is the Instances row that history (as this worker knows it)
// implies, built on the stored row so that columns we do not derive stay.
func (e *Engine) desiredRow(inst *instance, stored *backend.InstanceState, completion *history.Event) backend.InstanceState {
	var row backend.InstanceState
	if stored != nil {
		row = *stored
	} else {
		row = e.rowFromStart(inst)
	}
	if row.ExecutionID != inst.executionID && inst.start != nil {
		// A new execution (ContinueAsNew, restart by a parent): its input and start time.
		row.Input, row.CreatedTime = inst.start.Input, inst.start.Timestamp
		row.CompletedTime, row.Output = time.Time{}, ""
		if inst.start.Generation != nil {
			row.Generation = *inst.start.Generation
		}
	}
	if inst.start != nil {
		// The execution's input, from its ExecutionStarted event (as
		// Durable Task's checkpoint sets it): restores a row whose client
		// left the input in a blob or out. The version too: a ContinueAsNew
		// may have changed it (durable.WithNewVersion).
		row.Input, row.Version = inst.start.Input, inst.start.Version
	}
	row.ExecutionID = inst.executionID
	row.HistoryPosition = inst.historyLen
	if !inst.lastEvent.IsZero() {
		row.LastUpdatedTime = inst.lastEvent
	} else if row.LastUpdatedTime.IsZero() {
		row.LastUpdatedTime = now()
	}
	row.CustomStatus = inst.customStatus
	if completion != nil {
		row.Status = completion.Status
		row.CompletedTime = completion.Timestamp
		row.Output = completion.Result
		if completion.Status == history.StatusFailed && completion.Failure != nil {
			row.Output = completion.Failure.String()
		}
	} else {
		row.Status = e.liveStatus(inst)
		row.CompletedTime, row.Output = time.Time{}, ""
	}
	return row
}

// writeRow brings the Instances row in line with history: the live status
// (Running or Suspended) and custom status, or the final status when
// completion is given. replaced names an execution this worker just
// replaced (the row may still name it). It writes nothing when the row
// already agrees, returns errRowNewer when the row is ahead of this worker
// (the caller should reload the instance) and errNotOwner when this worker
// has lost the partition. Any other error leaves the outcome unknown; a
// later call re-reads the row and finds out.
func (e *Engine) writeRow(ctx context.Context, inst *instance, completion *history.Event, replaced string) error {
	basis := rowBasis{executionID: inst.executionID, replaced: replaced}
	if inst.start != nil {
		basis.started = inst.start.Timestamp
	}
	for attempt := 0; ; attempt++ {
		if !e.ownsNow(inst.partition) {
			return errNotOwner
		}
		var stored *backend.InstanceState
		if inst.row != nil {
			stored = inst.row
		} else {
			row, err := e.be.GetInstance(ctx, inst.id, true)
			switch {
			case errors.Is(err, backend.ErrNotFound):
			case err != nil:
				return err
			default:
				stored = &row
			}
		}
		want := e.desiredRow(inst, stored, completion)
		switch judgeRow(stored, want, basis) {
		case rowCurrent:
			inst.row, inst.rowDirty = stored, false
			return nil
		case rowNewer:
			if inst.row != nil && attempt == 0 {
				inst.row = nil // our cached copy may be the stale one: read it
				continue
			}
			e.log.Warn("not updating the Instances row: it is ahead of this worker's view",
				"instance", inst.id, "execution", inst.executionID, "position", inst.historyLen,
				"rowExecution", stored.ExecutionID, "rowStatus", stored.Status.String(), "rowPosition", stored.HistoryPosition)
			inst.row, inst.rowDirty = stored, false
			return errRowNewer
		}
		var etag string
		var err error
		if stored == nil || stored.ETag == "" {
			etag, err = e.be.CreateInstance(ctx, want)
		} else {
			etag, err = e.be.MergeInstance(ctx, want) // keeps the columns we do not model
		}
		if err == nil {
			want.ETag = etag
			inst.row, inst.rowDirty = &want, false
			return nil
		}
		inst.row = nil // whatever happened, the next attempt reads what is stored
		if attempt >= 3 || !(errors.Is(err, backend.ErrConflict) || errors.Is(err, backend.ErrExists)) {
			return err
		}
	}
}

// scheduleFlush arranges for a deferred Instances-row update: after
// StatusFlushDelay, or after a growing backoff when earlier writes failed.
func (e *Engine) scheduleFlush(inst *instance) {
	if inst.flushPending {
		return
	}
	inst.flushPending = true
	delay := e.opts.StatusFlushDelay
	if inst.rowFailures > 0 {
		delay = max(delay, retryDelay(inst.rowFailures))
	}
	id := inst.id
	time.AfterFunc(delay, func() {
		e.deliver(&inbound{msg: backend.Message{Target: history.OrchestrationInstance{InstanceID: id}}, flush: true})
	})
}

// flushRow writes a deferred row update if it is still needed: a Running
// status, or a final status whose first write failed.
func (e *Engine) flushRow(ctx context.Context, inst *instance) {
	inst.flushPending = false
	if !inst.rowDirty || inst.start == nil || (!inst.terminal && inst.ex == nil) {
		return
	}
	var completion *history.Event
	if inst.terminal {
		completion = inst.completion
	}
	err := e.writeRow(ctx, inst, completion, "")
	switch {
	case err == nil:
		inst.rowFailures = 0
		e.rowDurable(inst)
	case errors.Is(err, errRowNewer), errors.Is(err, errNotOwner):
		e.log.Info("dropping this worker's view of an instance", "instance", inst.id, "reason", err.Error())
		e.releaseRowHeld(inst)
		inst.forget()
	default:
		inst.rowFailures++
		e.log.Warn("could not update the Instances row; retrying", "instance", inst.id, "attempt", inst.rowFailures, "err", err)
		e.scheduleFlush(inst)
	}
}

// rowDurable runs once a final row is stored: the messages kept as the
// instance's way back to a row repair are deleted, and watchers learn the
// outcome.
func (e *Engine) rowDurable(inst *instance) {
	for _, h := range inst.rowHeld {
		e.removeHeld(h)
	}
	inst.rowHeld = nil
	if inst.terminal && inst.row != nil {
		inst.closeExecutor()
		e.notifyTerminal(*inst.row)
	}
}

// releaseRowHeld makes the messages kept for a row repair visible again, so
// whoever processes them next repairs the row.
func (e *Engine) releaseRowHeld(inst *instance) {
	for _, h := range inst.rowHeld {
		e.held.release(context.Background(), h, 0)
	}
	inst.rowHeld = nil
}

// liveStatus is the status a running instance's row should show.
func (e *Engine) liveStatus(inst *instance) history.OrchestrationStatus {
	if inst.unrun {
		return history.StatusPending // recorded, but no episode has run
	}
	if inst.ex != nil && inst.ex.Suspended() {
		return history.StatusSuspended
	}
	return history.StatusRunning
}

// repairRow checks the row of a finished instance loaded from storage
// against its history and writes it only when it disagrees (a crash or a
// lost answer between the history append and the row write). It reports
// whether the row is now in line.
func (e *Engine) repairRow(ctx context.Context, inst *instance) bool {
	if !inst.terminal || inst.completion == nil || inst.completion.Type != history.ExecutionCompleted {
		return true
	}
	if err := e.writeRow(ctx, inst, inst.completion, ""); err != nil && !errors.Is(err, errRowNewer) {
		e.log.Warn("could not repair the Instances row of a finished instance", "instance", inst.id, "err", err)
		return false
	}
	return true
}

// String renders a verdict for logs and tests.
func (v rowVerdict) String() string {
	switch v {
	case rowWrite:
		return "write"
	case rowCurrent:
		return "current"
	case rowNewer:
		return "newer"
	}
	return fmt.Sprintf("rowVerdict(%d)", int(v))
}

// rowFromStart builds an Instances row for an instance that has none (a
// sub-orchestration, or a start from a client that never wrote one).
func (e *Engine) rowFromStart(inst *instance) backend.InstanceState {
	row := backend.InstanceState{InstanceID: inst.id, ExecutionID: inst.executionID, Status: history.StatusPending}
	if s := inst.start; s != nil {
		row.Name, row.Version, row.Input, row.Tags = s.Name, s.Version, s.Input, s.Tags
		row.CreatedTime = s.Timestamp
		if s.Generation != nil {
			row.Generation = *s.Generation
		}
	}
	return row
}
