package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// step decides the episode a plan calls for and either keeps it in the
// instance's coalescing window (it only waits on activities that run here,
// quickly) or commits it, together with the window before it.
func (e *Engine) step(ctx context.Context, inst *instance, plan batchPlan) {
	began := begin(e.metrics.episodeDuration)
	cp := e.decide(inst, plan)
	name, outcome := inst.startName(), episodeOutcome(inst, &cp)
	if w := inst.window; w != nil {
		inst.window = nil
		if w.fits(&cp) {
			cp = w.merge(cp)
		} else if !e.commit(ctx, inst, w) {
			// The window's failure handling released its inputs and dropped
			// the cached state; this episode was decided on that state.
			e.discard(ctx, inst, &cp)
			e.metrics.episode(typeOrchestration, name, outcomeAbandoned, began)
			return
		}
	}
	if e.coalescible(inst, &cp) {
		e.openWindow(ctx, inst, &cp)
		e.metrics.episode(typeOrchestration, name, outcome, began)
		return
	}
	inst.committing = &cp
	if !e.commit(ctx, inst, &cp) {
		outcome = outcomeAbandoned
	}
	inst.committing = nil
	e.metrics.episode(typeOrchestration, name, outcome, began)
}

// salvage gives back what the instance's window, or the checkpoint being
// committed, consumed beyond batch, when processing the batch panicked:
// those inputs would otherwise stay held for ever. A start among them is
// the anchor: it comes back with the rest. (Any other anchor stays held:
// releasing it would run the committed calls again.)
func (e *Engine) salvage(ctx context.Context, inst *instance, batch []*inbound, delay time.Duration) {
	inBatch := map[*inbound]bool{}
	for _, in := range batch {
		inBatch[in] = true
	}
	for _, cp := range []*checkpoint{inst.window, inst.committing} {
		if cp == nil {
			continue
		}
		e.unreserve(cp)
		cp.eachReturned(func(in *inbound) {
			if inBatch[in] {
				return
			}
			inBatch[in] = true
			if in.ack != nil && in.ack == inst.anchor {
				inst.anchor = nil
			}
			e.retryLater(ctx, in, delay)
		})
	}
	inst.window, inst.committing = nil, nil
}

// seal commits the instance's window once its latency budget is spent
// while its activities still run.
func (e *Engine) seal(ctx context.Context, inst *instance) {
	if w := inst.window; w != nil && time.Since(w.opened) >= e.opts.CoalesceBudget {
		inst.window = nil
		e.commit(ctx, inst, w)
	}
}

// openWindow keeps cp uncommitted as the instance's window and starts its
// activities at once; their results feed the next episode, and the window
// is committed with it. Nothing of the window is durable yet except the
// instance's anchor, held so that a crash brings the instance back (the
// activities then run again); its inputs have no queue copies (see
// coalescible).
func (e *Engine) openWindow(ctx context.Context, inst *instance, cp *checkpoint) {
	if !e.ownsNow(inst.partition) {
		e.abandon(ctx, inst, cp, "lost the partition before the checkpoint", errNotOwner)
		return
	}
	if inst.rowPending != nil {
		// No activity starts before the client's Instances row exists.
		if ok, known := e.awaitRow(ctx, inst); !known {
			e.abandon(ctx, inst, cp, "the client could not tell whether it wrote the Instances row", errRowUnknown)
			return
		} else if !ok {
			e.unreserve(cp)
			e.abandonStart(inst, cp)
			return
		}
	}
	e.takeAnchor(inst, cp)
	if err := e.ensureAnchor(ctx, inst); err != nil {
		e.abandon(ctx, inst, cp, "could not send the instance's recovery anchor", err)
		return
	}
	first := cp.episodes == 1 && cp.running == 0
	for _, ev := range cp.events {
		inst.record(ev)
	}
	e.settleAnswers(inst, cp)
	e.startLocal(inst, cp)
	inst.window = cp
	e.count(func(s *Stats) { s.CoalescedEpisodes++ })
	if first {
		id := inst.id
		time.AfterFunc(e.opts.CoalesceBudget, func() {
			e.deliver(&inbound{msg: backend.Message{Target: history.OrchestrationInstance{InstanceID: id}}, seal: true})
		})
	}
}

// commit makes a checkpoint durable, in the crash-safe order:
//  1. the messages it sends (and the anchor for activities that run here),
//     so that history never records work that has nothing durable behind it;
//  2. its events, appended to history fenced by the sentinel ETag;
//  3. the Instances row, at once or deferred;
//  4. the deletion of the consumed queue copies, and of the anchor once
//     nothing runs here for the instance.
//
// It reports whether history holds the checkpoint. Every path that changes
// history goes through it: episodes, starts, ContinueAsNew, rewind.
func (e *Engine) commit(ctx context.Context, inst *instance, cp *checkpoint) bool {
	if !e.ownsNow(inst.partition) {
		e.abandon(ctx, inst, cp, "lost the partition before the checkpoint", errNotOwner)
		return false
	}
	e.takeAnchor(inst, cp)
	if err := e.send(ctx, inst, cp); err != nil {
		e.abandon(ctx, inst, cp, "could not send the episode's messages", err)
		return false
	}
	// Ownership is checked again right before the append: the sends may
	// have taken long.
	if !e.ownsNow(inst.partition) {
		e.abandon(ctx, inst, cp, "lost the partition before the checkpoint", errNotOwner)
		return false
	}
	etag, err, ok := e.appendHistory(ctx, inst, cp)
	if !ok {
		return false
	}
	if err != nil {
		if errors.Is(err, backend.ErrConflict) {
			e.count(func(s *Stats) { s.CheckpointRetries++ })
		}
		e.abandon(ctx, inst, cp, "could not append history", err)
		return false
	}
	e.count(func(s *Stats) { s.Checkpoints++ })
	inst.etag = etag
	e.emitSpans(cp.spans)
	inst.historyLen = cp.from + len(cp.events)
	inst.lastEvent = cp.events[len(cp.events)-1].Timestamp
	if cp.from == 0 {
		// A new execution's history replaced the old one.
		inst.events, inst.outstanding = nil, map[int32]history.Event{}
	}
	for _, ev := range cp.events {
		inst.record(ev)
		switch ev.Type {
		case history.TaskScheduled:
			if inst.outstanding == nil {
				inst.outstanding = map[int32]history.Event{}
			}
			inst.outstanding[ev.EventID] = ev
		case history.TaskCompleted, history.TaskFailed:
			// Answered, whichever copy answered it: a local run still going
			// on (a recovery ran it elsewhere too) has nothing left to do.
			delete(inst.outstanding, ev.TaskScheduledID)
		}
	}
	inst.failures = 0
	e.sweepTimers(inst, cp)
	e.settleAnswers(inst, cp)
	e.startLocal(inst, cp)
	e.handOver(cp)
	if cp.newAnchor {
		e.removeHeld(cp.oldAnchor)
	}
	if cp.completion != nil {
		inst.terminal, inst.completion = true, cp.completion
	}
	inst.customStatus = cp.customStatus
	if !e.storeRow(ctx, inst, cp) {
		return true
	}
	for _, in := range cp.inputs {
		if h := in.ack; h != nil {
			e.background(func(ctx context.Context) {
				if e.held.removeOK(ctx, h) && cp.deleted != nil {
					cp.deleted(in)
				}
			})
		}
	}
	if cp.completion != nil {
		inst.local = nil
	}
	e.dropAnchorIfIdle(inst)
	e.publish(inst)
	if cp.completion != nil {
		inst.closeExecutor()
		e.notifyTerminal(*inst.row)
	}
	return true
}

// appendHistory appends the checkpoint's events; for a start just handed
// over, the client finishes writing the Instances row meanwhile. ok=false
// means the checkpoint was given up on (the row write failed or its
// outcome is unknown).
func (e *Engine) appendHistory(ctx context.Context, inst *instance, cp *checkpoint) (etag string, err error, ok bool) {
	if inst.rowPending != nil {
		appended := make(chan error, 1)
		go func() {
			var err error
			etag, err = e.be.AppendHistory(ctx, inst.id, cp.executionID, cp.from, cp.events, inst.etag)
			appended <- err
		}()
		rowOK, rowKnown := e.awaitRow(ctx, inst)
		err = <-appended
		if !rowKnown {
			// The start message goes back to the queue: the start rule
			// (or, if history was written, recovery) decides from storage.
			e.abandon(ctx, inst, cp, "the client could not tell whether it wrote the Instances row", errRowUnknown)
			return "", nil, false
		}
		if !rowOK {
			e.unreserve(cp)
			e.abandonStart(inst, cp)
			return "", nil, false
		}
	} else {
		etag, err = e.be.AppendHistory(ctx, inst.id, cp.executionID, cp.from, cp.events, inst.etag)
	}
	if err != nil {
		// The outcome may be unknown (a lost answer, or the SDK's retry of a
		// batch that had committed met the fence): look before giving up.
		if committed, found := e.appendCommitted(ctx, inst, cp.from, cp.events); found {
			e.log.Info("a history append reported an error but had committed; continuing", "instance", inst.id, "err", err)
			return committed, nil, true
		}
	}
	return etag, err, true
}

// storeRow brings the Instances row in line with a committed checkpoint. It
// reports whether the checkpoint's consumed messages may go now; if not,
// it has arranged what happens to them.
func (e *Engine) storeRow(ctx context.Context, inst *instance, cp *checkpoint) bool {
	var err error
	switch cp.row {
	case rowNow:
		err = e.writeRow(ctx, inst, cp.completion, cp.replaced)
	case rowDeferred:
		inst.rowDirty = true
		e.scheduleFlush(inst)
	}
	var consumed []*held
	for _, in := range cp.inputs {
		if in.ack != nil {
			consumed = append(consumed, in.ack)
		}
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, errRowNewer), errors.Is(err, errNotOwner):
		// Another worker is ahead of this one, or owns the partition now.
		// The episode is in history; the consumed messages go back to the
		// queue so that whoever processes them next brings the row in line.
		e.log.Warn("the episode is in history but this worker stops processing the instance", "instance", inst.id, "reason", err.Error())
		for _, h := range consumed {
			e.held.release(ctx, h, 0)
		}
		if inst.anchor != nil {
			e.held.release(ctx, inst.anchor, 0)
			inst.anchor = nil
		}
		inst.forget()
		return false
	case cp.completion != nil:
		// History says finished, the row does not yet. Keep the consumed
		// messages (and the anchor) held until the row is stored: if this
		// process dies first they reappear and the next owner repairs the
		// row; meanwhile the write is retried with a backoff.
		inst.rowFailures++
		e.log.Warn("could not store the final Instances row; retrying", "instance", inst.id, "attempt", inst.rowFailures, "err", err)
		inst.rowHeld = append(inst.rowHeld, consumed...)
		if inst.anchor != nil {
			inst.rowHeld = append(inst.rowHeld, inst.anchor)
			inst.anchor = nil
		}
		inst.local = nil
		inst.rowDirty = true
		e.scheduleFlush(inst)
		return false
	default:
		// History is ahead of the row; the deferred flush brings them in line.
		inst.rowFailures++
		e.log.Warn("could not update the Instances row; retrying", "instance", inst.id, "err", err)
		inst.rowDirty = true
		e.scheduleFlush(inst)
		return true
	}
}

// takeAnchor moves the instance's recovery anchor to what the checkpoint
// needs: a start message becomes the anchor of the execution it starts,
// and a ContinueAsNew sets the old execution's anchor aside (it goes once
// the new history is durable).
func (e *Engine) takeAnchor(inst *instance, cp *checkpoint) {
	if cp.start != nil && inst.anchor != cp.start.ack {
		e.removeHeld(inst.anchor)
		inst.anchor = cp.start.ack
	}
	if cp.newAnchor && cp.oldAnchor == nil && inst.anchor != nil {
		cp.oldAnchor, inst.anchor = inst.anchor, nil
	}
}

// settleAnswers notes that the activity results the checkpoint applies no
// longer run here.
func (e *Engine) settleAnswers(inst *instance, cp *checkpoint) {
	for _, in := range cp.inputs {
		if ev := in.msg.Event; ev.Type == history.TaskCompleted || ev.Type == history.TaskFailed {
			delete(inst.local, ev.TaskScheduledID)
		}
	}
}

// startLocal starts the checkpoint's activities that run here and have not
// started yet.
func (e *Engine) startLocal(inst *instance, cp *checkpoint) {
	for _, msg := range cp.local[cp.running:] {
		inst.markLocal(msg.Event.EventID)
		e.acts.run(msg, nil)
	}
	cp.running = len(cp.local)
}

// handOver gives the engine the control messages a committed checkpoint
// sent hidden to partitions this worker owns.
func (e *Engine) handOver(cp *checkpoint) {
	for _, c := range cp.control {
		if c.handOver {
			e.deliver(&inbound{msg: c.msg, ack: c.held})
		}
	}
}

// abandon gives up a checkpoint before its history is durable.
func (e *Engine) abandon(ctx context.Context, inst *instance, cp *checkpoint, what string, err error) {
	e.unreserve(cp)
	e.releaseSent(ctx, cp)
	if cp.oldAnchor != nil {
		inst.anchor, cp.oldAnchor = cp.oldAnchor, nil // released with the rest
	}
	if errors.Is(err, errNotOwner) {
		e.handBackEpisode(ctx, inst, cp)
		return
	}
	e.abandonEpisode(ctx, inst, cp, what, err)
}

// releaseSent gives back, visible at once, the control messages an
// abandoned checkpoint sent hidden to be handed over in memory after its
// commit (a child's start, a timer due now, a parent's notice for a
// partition this worker owns). They are durable already; held, they would
// stay hidden until the process stops. Back in their queue they are
// received like any message: the retried episode sends them again, and
// the receiver drops the second copy as a duplicate.
func (e *Engine) releaseSent(ctx context.Context, cp *checkpoint) {
	for i := range cp.control {
		c := &cp.control[i]
		if c.handOver && c.held != nil {
			e.held.release(ctx, c.held, 0)
		}
		c.handOver, c.held = false, nil
	}
}

// discard drops a checkpoint decided on state that a failed commit has
// since dropped: its slots are given back and its inputs come back like the
// failed commit's.
func (e *Engine) discard(ctx context.Context, inst *instance, cp *checkpoint) {
	e.unreserve(cp)
	delay := retryDelay(max(inst.failures, 1))
	cp.eachReturned(func(in *inbound) { e.retryLater(ctx, in, delay) })
}

// appendCommitted reports whether stored history holds exactly the events
// of an append whose outcome is unknown (its answer was lost, or the SDK's
// retry of a batch that had committed met the fence it had just moved). It
// then returns the sentinel ETag to continue from.
func (e *Engine) appendCommitted(ctx context.Context, inst *instance, from int, events []history.Event) (string, bool) {
	h, err := e.be.LoadHistory(ctx, inst.id)
	if err != nil || h.ExecutionID != inst.executionID || len(h.Events) != from+len(events) {
		return "", false
	}
	for i, ev := range events {
		got := h.Events[from+i]
		if got.Type != ev.Type || got.EventID != ev.EventID || !sameTime(got.Timestamp, ev.Timestamp) {
			return "", false
		}
	}
	return h.ETag, true
}

// handBackEpisode gives up a checkpoint because this worker no longer owns
// the instance's partition: nothing more is written for it, its messages
// become visible to the new owner at once, and a local activity result
// (which has no queue copy) is sent to the owner's queue, unless the
// checkpoint itself scheduled the call (history does not record it, so the
// owner runs it again anyway).
func (e *Engine) handBackEpisode(ctx context.Context, inst *instance, cp *checkpoint) {
	e.log.Warn("no longer owns the partition; handing the instance back without writing", "instance", inst.id)
	if inst.anchor != nil {
		e.held.release(ctx, inst.anchor, 0)
		inst.anchor = nil
	}
	inst.forget()
	cp.eachReturned(func(in *inbound) { e.handBack(ctx, in) })
}

// handBack makes one event that this worker will not process available to
// the partition's owner.
func (e *Engine) handBack(ctx context.Context, in *inbound) {
	switch {
	case in == nil || in.internal():
	case in.activityResult():
		// The result of an activity run here: the owner needs it durably,
		// or it runs the activity again (a released work item would too).
		if !e.persistResult(ctx, nil, in, 0) {
			e.log.Warn("could not hand an activity result to the partition's owner; it runs the activity again",
				"instance", in.msg.Target.InstanceID, "task", in.msg.Event.TaskScheduledID)
			e.held.release(ctx, in.ack, 0)
		}
	case in.ack != nil:
		e.held.release(ctx, in.ack, 0)
	}
}

// errRowUnknown: the client sent "" for the Instances row's ETag.
var errRowUnknown = errors.New("the outcome of the client's Instances-row write is unknown")

// awaitRow waits for the client's Instances-row write of a start handed
// over in memory; it reports whether the row exists, and known=false when
// the client could not tell (it sends "" instead of an ETag).
func (e *Engine) awaitRow(ctx context.Context, inst *instance) (ok, known bool) {
	ch := inst.rowPending
	inst.rowPending = nil
	select {
	case etag, ok := <-ch:
		if ok && etag == "" {
			return false, false
		}
		if ok {
			inst.row.ETag = etag
		}
		return ok, true
	case <-ctx.Done():
		return false, true
	}
}

// abandonStart drops a start whose client could not write the Instances
// row: the client reported the failure to its caller, so the instance must
// not run. Its first history rows, if written, stay unreferenced.
func (e *Engine) abandonStart(inst *instance, cp *checkpoint) {
	e.log.Warn("abandoning a start whose Instances row could not be written", "instance", inst.id, "execution", inst.executionID)
	if inst.anchor != nil {
		h := inst.anchor
		inst.anchor = nil
		e.removeHeld(h)
	}
	for _, in := range cp.inputs {
		if in.ack != nil {
			e.held.release(context.Background(), in.ack, 0)
		}
	}
	inst.forget()
	inst.local = nil
}

// abandonEpisode gives up a checkpoint that could not be made durable: the
// cached state is dropped and the messages are released for a retry from
// storage. Results of activities the checkpoint itself scheduled are
// dropped: history does not record those calls, so they run again.
func (e *Engine) abandonEpisode(ctx context.Context, inst *instance, cp *checkpoint, what string, err error) {
	inst.failures++
	delay := retryDelay(inst.failures)
	e.log.Warn(what+"; the episode will be retried from storage", "instance", inst.id, "attempt", inst.failures, "retryIn", delay, "err", err)
	if cp.start != nil && inst.anchor == cp.start.ack {
		inst.anchor = nil // released with the other messages below
	}
	if inst.anchor != nil {
		// The anchor must come back too: the failed append may have
		// committed after all (its activities then need running), and while
		// it is held nothing else would recover them.
		e.held.release(ctx, inst.anchor, delay)
		inst.anchor = nil
	}
	inst.forget()
	cp.eachReturned(func(in *inbound) { e.retryLater(ctx, in, delay) })
}

// send makes the checkpoint's messages durable before history records the
// work they stand for: the anchor for activities that run here (one per
// instance, sent if not held yet), work items for the others, and control
// messages (timers, child starts, parent notices). Control messages for
// partitions this worker owns are handed over in memory after the commit.
func (e *Engine) send(ctx context.Context, inst *instance, cp *checkpoint) error {
	var wg sync.WaitGroup
	errs := make([]error, len(cp.workItems)+len(cp.control)+1)
	var anchor *held // set by its goroutine; inst is only touched after Wait
	if len(cp.local) > cp.running && inst.anchor == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			anchor, errs[len(errs)-1] = e.sendAnchor(ctx, inst.id, inst.executionID, inst.partition)
		}()
	}
	for i := range cp.workItems {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.be.SendWorkItem(ctx, cp.workItems[i], 0)
		}()
	}
	for i := range cp.control {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[len(cp.workItems)+i] = e.sendControl(ctx, &cp.control[i])
		}()
	}
	wg.Wait()
	if anchor != nil {
		inst.anchor = anchor // released with the rest if another send failed
	}
	return errors.Join(errs...)
}

// ensureAnchor sends the instance a recovery anchor if it holds none.
func (e *Engine) ensureAnchor(ctx context.Context, inst *instance) error {
	if inst.anchor != nil {
		return nil
	}
	h, err := e.sendAnchor(ctx, inst.id, inst.executionID, inst.partition)
	if err != nil {
		return err
	}
	inst.anchor = h
	return nil
}

// sendAnchor sends a recovery anchor for the execution, hidden for
// MessageVisibility, and holds it.
func (e *Engine) sendAnchor(ctx context.Context, id, executionID string, partition int) (*held, error) {
	anchor := history.NewEvent(history.GenericEvent, now())
	anchor.Data = anchorData
	self := history.OrchestrationInstance{InstanceID: id, ExecutionID: executionID}
	r, err := e.be.SendControl(ctx, backend.Message{Event: anchor, Target: self}, e.opts.MessageVisibility)
	if err != nil {
		return nil, err
	}
	return e.held.hold(r, partition), nil
}

// controlSend is a control-queue message an episode sends.
type controlSend struct {
	msg      backend.Message
	at       time.Time // when it is due (timers); zero = now
	handOver bool      // sent hidden, to be handed over in memory
	held     *held
	timer    bool            // a TimerFired of the sending instance
	receipt  backend.Receipt // of a message sent hidden until due
}

// sendControl sends one control message. A due message for a partition
// this worker owns is sent hidden and handed over in memory after the
// checkpoint; a timer is hidden until due, and its partition's poller is
// woken then.
func (e *Engine) sendControl(ctx context.Context, c *controlSend) error {
	target := c.msg.Target.InstanceID
	p := e.be.PartitionOf(target)
	delay := time.Until(c.at)
	if delay < 0 {
		delay = 0
	}
	local := delay == 0 && e.OwnsPartitionOf(target)
	if local {
		delay = e.opts.MessageVisibility
	}
	r, err := e.be.SendControl(ctx, c.msg, delay)
	if err != nil {
		return err
	}
	switch {
	case local:
		c.handOver, c.held = true, e.held.hold(r, p)
	case delay > 0:
		c.receipt = r
		// Wake the poller once the message is visible.
		for _, wake := range backend.VisibleWakes(r, delay) {
			time.AfterFunc(wake, func() { e.wakePartition(p) })
		}
	}
	return nil
}

// sweepTimers keeps track of the timer messages a committed checkpoint sent
// and deletes those whose timers no longer matter: cancelled by the code
// (a call that beat its timeout, a cancelled Timer), or left behind by a
// completed or continued execution. Durable Task leaves them in the queue
// until they are due, to be dropped on arrival; deleting them keeps queues
// drained and saves their delivery. It is best effort: a message already
// received (its receipt is stale) or a crash before the delete only means
// the TimerFired arrives and is dropped as before.
func (e *Engine) sweepTimers(inst *instance, cp *checkpoint) {
	var stale []backend.Receipt
	if cp.from == 0 {
		// A new execution: the previous one's timers are void.
		for _, r := range inst.timers {
			stale = append(stale, r)
		}
		inst.timers = nil
	}
	for i := range cp.control {
		c := &cp.control[i]
		if !c.timer || c.receipt.MessageID == "" {
			continue
		}
		if inst.timers == nil {
			inst.timers = map[int32]backend.Receipt{}
		}
		inst.timers[c.msg.Event.TimerID] = c.receipt
	}
	for _, ev := range cp.events {
		if ev.Type == history.TimerFired {
			delete(inst.timers, ev.TimerID) // consumed through its own message
		}
	}
	for id, r := range inst.timers {
		if cp.completion != nil || inst.ex == nil || inst.ex.TaskState(id) == replay.TaskResolved {
			stale = append(stale, r)
			delete(inst.timers, id)
		}
	}
	if len(stale) == 0 {
		return
	}
	e.background(func(ctx context.Context) {
		for _, r := range stale {
			if err := e.be.DeleteMessage(ctx, r); err != nil && !errors.Is(err, backend.ErrConflict) {
				e.log.Debug("could not delete a cancelled timer's message; it will be dropped when it fires",
					"instance", inst.id, "err", err)
			}
		}
	})
}

// derivedID derives a stable execution ID for a child from its parent's
// execution and the call's sequence number.
func derivedID(parentExecution string, seq int32) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s:%d", parentExecution, seq)))
	return hex.EncodeToString(sum[:16])
}

// commitRow commits a checkpoint that changes only the Instances row: the
// end of an instance whose start was never processed (terminated, or
// failed by a poison notice). The row, read just before, is written fenced
// by its ETag; then the consumed message (in, if any) goes and watchers
// learn the outcome.
func (e *Engine) commitRow(ctx context.Context, inst *instance, row backend.InstanceState, in *inbound) error {
	if !e.ownsNow(inst.partition) {
		if in != nil {
			e.handBack(ctx, in)
		}
		return errNotOwner
	}
	etag, err := e.be.MergeInstance(ctx, row)
	if err != nil {
		if in != nil {
			e.retryLater(ctx, in, retryDelay(1))
		}
		return err
	}
	row.ETag = etag
	if in != nil {
		e.removeHeld(in.ack)
	}
	e.notifyTerminal(row)
	return nil
}

// terminateUnstarted marks a Pending instance Terminated in its row: its
// start message, when it comes, is then discarded.
func (e *Engine) terminateUnstarted(ctx context.Context, inst *instance, in *inbound) {
	row, err := e.be.GetInstance(ctx, inst.id, true)
	switch {
	case err != nil && !errors.Is(err, backend.ErrNotFound):
		e.log.Warn("could not read the Instances row to terminate a pending instance; retrying", "instance", inst.id, "err", err)
		e.retryLater(ctx, in, retryDelay(1))
		return
	case err != nil || row.Status != history.StatusPending:
		e.dropped(in, "the instance does not exist or is not pending")
		e.removeHeld(in.ack)
		return
	}
	t := now()
	row.Status, row.Output, row.LastUpdatedTime, row.CompletedTime = history.StatusTerminated, in.msg.Event.Input, t, t
	if err := e.commitRow(ctx, inst, row, in); err != nil {
		e.log.Warn("could not terminate a pending instance", "instance", inst.id, "err", err)
	}
}
