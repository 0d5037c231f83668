package engine

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// maxMemoryDeferrals is how often an out-of-order event is put back in
// memory before its queue copy is released with a backoff instead.
const maxMemoryDeferrals = 3

// deliver queues an event for its instance and makes sure a goroutine
// processes the instance's inbox.
func (e *Engine) deliver(in *inbound) {
	id := in.msg.Target.InstanceID
	e.mu.Lock()
	inst := e.instances[id]
	if inst == nil {
		p := e.be.PartitionOf(id)
		if in.fromQueue && in.ack != nil && in.ack.partition != workItems {
			p = in.ack.partition // the owned queue it sat in, wherever its ID hashes
		}
		inst = &instance{id: id, partition: p}
		e.instances[id] = inst
	}
	e.idle.remove(inst)
	inst.inbox = append(inst.inbox, in)
	start := !inst.active
	inst.active = true
	if start {
		e.runs.Add(1)
	}
	e.mu.Unlock()
	if start {
		go e.runInstance(inst)
	}
}

// HandOffStart gives the engine a start that a client in this process has
// made durable: its queue message is sent with a visibility delay (and
// becomes the instance's recovery anchor). It returns false if this worker
// does not own the instance's partition; the caller should then make the
// message visible for the owner.
//
// rowETag reports the client's Instances-row write: it yields the row's
// ETag, or is closed without a value if the write failed (the start is
// then abandoned), or yields "" if the client could not tell whether the
// row was written (the message then goes back to the queue, for the start
// rule to decide from storage). The engine may run the first episode meanwhile, but it
// starts no activity before the row exists. A nil rowETag means row is
// already written.
//
// fresh says the client created the row, so no instance of that ID
// existed: the engine then skips reading history for it. (Should stale
// history exist after all, the first checkpoint's sentinel insert fails and
// the episode is retried from storage.)
func (e *Engine) HandOffStart(msg backend.Message, receipt backend.Receipt, row backend.InstanceState, fresh bool, rowETag <-chan string) bool {
	if !e.OwnsPartitionOf(msg.Target.InstanceID) {
		return false
	}
	r := row
	e.deliver(&inbound{msg: msg, ack: e.held.hold(receipt, e.be.PartitionOf(msg.Target.InstanceID)), row: &r, fresh: fresh, rowETag: rowETag})
	return true
}

// HandOff gives the engine a control message that a client in this process
// sent hidden (for MessageVisibility): the engine processes it at once and
// deletes the queue copy once the event is in history. It returns false if
// this worker does not own the target's partition; the caller should then
// make the message visible for the owner.
func (e *Engine) HandOff(msg backend.Message, receipt backend.Receipt) bool {
	if !e.OwnsPartitionOf(msg.Target.InstanceID) {
		return false
	}
	e.deliver(&inbound{msg: msg, ack: e.held.hold(receipt, e.be.PartitionOf(msg.Target.InstanceID))})
	return true
}

// runInstance processes an instance's inbox until it is empty.
func (e *Engine) runInstance(inst *instance) {
	defer e.runs.Done()
	e.orchSlots <- struct{}{}
	defer func() { <-e.orchSlots }()
	for {
		owned := e.ownsNow(inst.partition)
		e.mu.Lock()
		batch := inst.inbox
		inst.inbox = nil
		stopping := e.stopped
		if len(batch) == 0 {
			inst.active = false
			var anchor *held
			var rowHeld []*held
			if (len(inst.local) > 0 || inst.window != nil || inst.rowDirty && inst.terminal) && owned && !stopping {
				// Activities run here for it, or its final row is still being
				// written: keep it, out of the eviction order.
			} else if inst.terminal || !inst.loaded || !owned || stopping {
				if !owned || stopping {
					// Whoever owns it next recovers from the anchor at once.
					anchor, inst.anchor = inst.anchor, nil
					rowHeld = append(rowHeld, inst.rowHeld...)
					inst.rowHeld = nil
				}
				inst.closeExecutor()
				e.idle.remove(inst)
				delete(e.instances, inst.id)
			} else {
				e.idle.touch(inst)
				for e.idle.len() > e.opts.CacheSize {
					old := e.idle.oldest()
					e.idle.remove(old)
					old.closeExecutor()
					delete(e.instances, old.id)
				}
			}
			e.mu.Unlock()
			if anchor != nil {
				e.held.release(context.Background(), anchor, 0)
			}
			for _, h := range rowHeld {
				e.held.release(context.Background(), h, 0)
			}
			return
		}
		e.mu.Unlock()
		if !owned || stopping {
			// Not ours (any more): let the owner have the queue copies now.
			for _, in := range batch {
				e.handBack(context.Background(), in)
			}
			e.releaseRowHeld(inst)
			if inst.anchor != nil {
				e.held.release(context.Background(), inst.anchor, 0)
				inst.anchor = nil
			}
			inst.forget()
			continue
		}
		e.processBatchSafely(inst, batch)
	}
}

// processBatchSafely contains a panic in the engine's own processing of one
// instance: the instance's state is reloaded later and its messages come
// back after a backoff, instead of one bad instance taking the worker down.
func (e *Engine) processBatchSafely(inst *instance, batch []*inbound) {
	defer func() {
		if r := recover(); r != nil {
			inst.failures++
			delay := retryDelay(inst.failures)
			e.log.Error("internal error while processing an instance; retrying it later",
				"instance", inst.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()), "retryIn", delay)
			e.salvage(context.Background(), inst, batch, delay)
			inst.forget()
			for _, in := range batch {
				if in.ack != nil && !in.activityResult() && in.dequeueCount >= e.opts.MaxDequeueCount {
					e.giveUp(in, fmt.Sprintf("processing it made the engine panic on each of %d tries; last panic: %v", in.dequeueCount, r), true)
					continue
				}
				d := delay
				if in.dequeueCount > 0 {
					d = max(d, e.poisonBackoff(in.dequeueCount)) // back off across receives too
				}
				e.retryLater(context.Background(), in, d)
			}
		}
	}()
	e.processBatch(inst, batch)
}

// processBatch runs one episode for a batch of inbound events.
func (e *Engine) processBatch(inst *instance, batch []*inbound) {
	ctx, cancel := context.WithTimeout(e.work, 2*time.Minute) // Stop cancels it when its grace runs out
	defer cancel()
	if inst.reload {
		inst.reload = false
		inst.forget()
	}
	if history.IsEntityInstanceID(inst.id) {
		if id, fn, ok := e.entityOf(inst.id); ok {
			if !inst.loaded {
				if onlyFlush(batch) {
					return
				}
				if err := e.load(ctx, inst); err != nil {
					e.log.Warn("could not load entity history; will retry", "entity", inst.id, "err", err)
					for _, in := range batch {
						e.retryLater(ctx, in, e.poisonBackoff(in.dequeueCount))
					}
					return
				}
			}
			e.processEntity(ctx, inst, batch, id, fn)
			return
		}
		if _, ok := history.ParseEntityID(inst.id); ok {
			e.keepUnregisteredEntity(ctx, inst, batch)
			return
		}
	}
	if !inst.loaded {
		if onlyFlush(batch) {
			return // evicted meanwhile: nothing cached to flush
		}
		if fresh := freshStart(batch); fresh != nil {
			inst.forget()
			inst.loaded = true // a brand-new instance: no history to read
		} else if err := e.load(ctx, inst); err != nil {
			e.log.Warn("could not load instance history; will retry", "instance", inst.id, "err", err)
			for _, in := range batch {
				e.retryLater(ctx, in, e.poisonBackoff(in.dequeueCount))
			}
			return
		}
	}
	if e.rejectVersion(ctx, inst, batch) {
		return
	}
	plan := e.plan(inst, batch, e.readStartRow(ctx, inst, batch))
	if inst.terminal && inst.row == nil && !inst.rowDirty && len(plan.drop)+len(plan.recover) > 0 {
		// A finished instance read from storage gets messages: a crash or a
		// lost answer may have come between its last history append and its
		// final row. Check the row (written only if it disagrees) before the
		// messages go; if that fails they come back after a backoff.
		if !e.repairRow(ctx, inst) {
			inst.failures++
			for _, in := range append(plan.drop, plan.recover...) {
				e.retryLater(ctx, in, retryDelay(inst.failures))
			}
			plan.drop, plan.recover = nil, nil
		}
	}
	for _, in := range plan.drop {
		e.removeHeld(in.ack)
	}
	e.putBack(ctx, inst, plan.later)
	for _, in := range plan.recover {
		e.recoverFrom(ctx, inst, in)
	}
	for _, in := range plan.terminate {
		e.terminateUnstarted(ctx, inst, in)
	}
	for _, in := range plan.failUnstarted {
		if e.failUnstarted(ctx, inst, in, poisonNoticeOf(in.msg.Event)) {
			e.removeHeld(in.ack)
		} else {
			e.retryLater(ctx, in, time.Second)
		}
	}
	if plan.rewind != nil {
		for _, in := range plan.copies {
			e.removeHeld(in.ack)
		}
		e.rewind(ctx, inst, plan.rewind)
		return
	}
	if plan.fail != nil && inst.ex != nil {
		inst.ex.Fail(*plan.fail)
	}
	if plan.start == nil && len(plan.apply) == 0 {
		if plan.seal {
			e.seal(ctx, inst)
		}
		if plan.flush {
			e.flushRow(ctx, inst)
		}
		return
	}
	e.step(ctx, inst, plan)
}

// freshStart returns the batch's start of a brand-new instance, if any.
func freshStart(batch []*inbound) *inbound {
	for _, in := range batch {
		if in.fresh {
			return in
		}
	}
	return nil
}

func onlyFlush(batch []*inbound) bool {
	for _, in := range batch {
		if !in.internal() {
			return false
		}
	}
	return true
}

// dropped logs a discarded event: nothing is dropped silently.
func (e *Engine) dropped(in *inbound, reason string) {
	e.count(func(s *Stats) { s.DroppedMessages++ })
	e.log.Info("discarded a message", "instance", in.msg.Target.InstanceID, "execution", in.msg.Target.ExecutionID,
		"event", in.msg.Event.Type.String(), "reason", reason)
}

// putBack re-queues out-of-order events: in memory a few times (they
// usually wait for a checkpoint in progress), then via their queue copy
// with an exponential backoff.
func (e *Engine) putBack(ctx context.Context, inst *instance, later []*inbound) {
	if len(later) == 0 {
		return
	}
	e.count(func(s *Stats) { s.DeferredMessages += int64(len(later)) })
	var keep []*inbound
	for _, in := range later {
		in.deferrals++
		if in.deferrals <= maxMemoryDeferrals {
			keep = append(keep, in)
			continue
		}
		switch {
		case in.activityResult():
			// Never run the activity again because its result has to wait:
			// the result becomes a message of its own.
			if !e.persistResult(ctx, inst, in, e.poisonBackoff(1)) {
				time.AfterFunc(e.poisonBackoff(1), func() { e.deliver(in) })
			}
		case in.ack == nil:
			e.dropped(in, "out of order, and it has no queue copy to retry from")
		case in.waitReason != "" && in.dequeueCount >= e.opts.MaxDequeueCount:
			if in.waitFails && !in.reloaded {
				// Before failing the instance, rule out a stale cache: try
				// once more on history read afresh.
				in.reloaded, inst.reload = true, true
				keep = append(keep, in)
				continue
			}
			e.giveUp(in, fmt.Sprintf("it could not be applied in %d tries: %s", in.dequeueCount, in.waitReason), in.waitFails)
		default:
			delay := e.poisonBackoff(in.dequeueCount)
			e.background(func(ctx context.Context) { e.held.release(ctx, in.ack, delay) })
		}
	}
	if len(keep) > 0 {
		e.mu.Lock()
		inst.inbox = append(keep, inst.inbox...)
		e.mu.Unlock()
		if len(keep) == len(later) {
			// Give the work that will make them applicable a moment.
			sleepCtx(ctx, time.Millisecond)
		}
	}
}

// retryLater gives an event that could not be processed another try after
// delay: its queue copy is released. The result of an activity run here is
// re-delivered from memory instead (releasing its work item would run the
// activity again), and after MaxDequeueCount such tries it is stored as a
// control message, where it is given up on if it never applies. Internal
// flush markers are simply dropped: a later episode writes the status anyway.
func (e *Engine) retryLater(ctx context.Context, in *inbound, delay time.Duration) {
	switch {
	case in == nil || in.internal():
	case in.activityResult():
		in.retries++
		if in.retries >= e.opts.MaxDequeueCount && e.persistResult(ctx, e.instanceOf(in), in, delay) {
			return
		}
		time.AfterFunc(delay, func() { e.deliver(in) })
	case in.ack != nil:
		e.held.release(ctx, in.ack, delay)
	default:
		e.dropped(in, "it could not be processed and has no queue copy; the sender's copy is redelivered")
	}
}

// retryDelay backs off an instance whose episodes keep failing (storage
// errors, conflicts): 100 ms doubling up to 30 s, so a persistent problem
// never turns into a hot loop against storage.
func retryDelay(failures int) time.Duration {
	d := 100 * time.Millisecond << min(failures-1, 9)
	return min(d, 30*time.Second)
}
