package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/durable"
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
			if (len(inst.local) > 0 || inst.rowDirty && inst.terminal) && owned && !stopping {
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

// batchPlan sorts a batch into what to apply, drop and put back.
type batchPlan struct {
	start   *inbound
	apply   []*inbound
	drop    []*inbound
	later   []*inbound
	recover []*inbound // anchors of the current execution that reappeared
	rewind  *inbound   // a rewind request for a failed instance
	flush   bool
	// fail ends the running execution as Failed: a poison notice (applied
	// with the other events) said one of its messages was parked.
	fail *history.FailureDetails
	// answered are the tasks a response in apply answers.
	answered map[int32]bool
}

// hasEvent reports whether apply already holds a copy of the inbound event
// ev (one without a task ID, see dedupable).
func (p *batchPlan) hasEvent(ev history.Event) bool {
	if !dedupable(ev) {
		return false
	}
	k := keyOf(ev)
	for _, in := range p.apply {
		if dedupable(in.msg.Event) && keyOf(in.msg.Event) == k {
			return true
		}
	}
	return false
}

// processBatch runs one episode for a batch of inbound events.
func (e *Engine) processBatch(inst *instance, batch []*inbound) {
	ctx, cancel := context.WithTimeout(e.work, 2*time.Minute) // Stop cancels it when its grace runs out
	defer cancel()
	if inst.reload {
		inst.reload = false
		inst.forget()
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
	plan := e.plan(ctx, inst, batch)
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
		e.background(func(ctx context.Context) { e.held.remove(ctx, in.ack) })
	}
	e.putBack(ctx, inst, plan.later)
	for _, in := range plan.recover {
		e.recoverFrom(ctx, inst, in)
	}
	if plan.rewind != nil {
		e.rewind(ctx, inst, plan.rewind)
		return
	}
	if plan.fail != nil && inst.ex != nil {
		inst.ex.Fail(*plan.fail)
	}
	if plan.start == nil && len(plan.apply) == 0 {
		if plan.flush {
			e.flushRow(ctx, inst)
		}
		return
	}
	e.episode(ctx, inst, plan)
}

// failedExecution reports whether the instance's current execution ended
// in failure: the state a rewind applies to.
func failedExecution(inst *instance) bool {
	return inst.terminal && inst.completion != nil && inst.completion.Status == history.StatusFailed
}

// rewind makes a failed instance run its failed steps again: a new
// execution whose history is the old one without the failed calls'
// scheduling and failure events and without the failed completion, so the
// replayed code schedules those calls anew while every successful step
// keeps its recorded result. The rewind itself is recorded as a
// GenericEvent whose Data is the reason, as Durable Task's legacy rewind
// leaves it: Durable Functions 2.x and 3.0 cannot read an ExecutionRewound
// row.
func (e *Engine) rewind(ctx context.Context, inst *instance, in *inbound) {
	h, err := e.be.LoadHistory(ctx, inst.id)
	if err != nil {
		e.log.Warn("could not load history to rewind; retrying", "instance", inst.id, "err", err)
		e.held.release(ctx, in.ack, time.Second)
		return
	}
	if !historyFailed(h.Events) {
		// History moved on since it was cached (a Durable Task legacy
		// rewind rewrote it, say): reload and treat the message as an
		// ordinary event.
		inst.forget()
		e.deliver(in)
		return
	}
	failed := map[int32]bool{}
	for _, ev := range h.Events {
		if ev.Type == history.TaskFailed || ev.Type == history.SubOrchestrationInstanceFailed {
			failed[ev.TaskScheduledID] = true
		}
	}
	replaced := h.ExecutionID
	execID := history.NewID()
	var kept []history.Event
	for _, ev := range h.Events {
		switch {
		case ev.Type == history.TaskFailed, ev.Type == history.SubOrchestrationInstanceFailed, ev.Type.EndsExecution():
			continue
		case (ev.Type == history.TaskScheduled || ev.Type == history.SubOrchestrationInstanceCreated) && failed[ev.EventID]:
			continue
		case ev.Type == history.ExecutionStarted:
			ev.Instance.ExecutionID = execID
			start := ev
			inst.start = &start
		case ev.Type == history.ExecutionRewound:
			// An earlier rewind recorded by an older version of this engine:
			// rewritten in the form every reader accepts.
			rec := history.NewEvent(history.GenericEvent, ev.Timestamp)
			rec.Data = ev.Reason
			ev = rec
		}
		kept = append(kept, ev)
	}
	if inst.start == nil {
		e.dropped(in, "its history has no start")
		e.held.remove(ctx, in.ack)
		return
	}
	inst.closeExecutor()
	inst.executionID, inst.terminal, inst.completion = execID, false, nil
	inst.outstanding, inst.local, inst.episodes = map[int32]history.Event{}, nil, 0
	inst.ex = e.newExecutor(inst, inst.start.Name)
	if err := inst.ex.Replay(kept); err != nil {
		e.log.Error("replay disagrees with history while rewinding; the instance will fail again", "instance", inst.id, "err", err)
	}
	rew := history.NewEvent(history.GenericEvent, now())
	rew.Data = rewindReason(in.msg.Event)
	newEvents := []history.Event{history.NewEvent(history.OrchestratorStarted, rew.Timestamp), rew}
	actions, err := inst.ex.Run(newEvents)
	if err != nil {
		e.log.Error("orchestration failed its determinism check", "instance", inst.id, "err", err)
	}
	startLocal, cancelLocal, err := e.sendActions(ctx, inst, actions)
	if err != nil {
		inst.forget()
		e.held.release(ctx, in.ack, time.Second)
		return
	}
	all := append(append(kept, newEvents...), actions...)
	all = append(all, history.NewEvent(history.OrchestratorCompleted, now()))
	if !e.ownsNow(inst.partition) {
		cancelLocal()
		inst.forget()
		e.handBack(ctx, in)
		return
	}
	etag, err := e.be.AppendHistory(ctx, inst.id, execID, 0, all, h.ETag)
	if err != nil {
		cancelLocal()
		e.log.Warn("could not write the rewound history; retrying", "instance", inst.id, "err", err)
		inst.forget()
		e.held.release(ctx, in.ack, time.Second)
		return
	}
	inst.etag, inst.historyLen, inst.lastEvent = etag, len(all), all[len(all)-1].Timestamp
	startLocal()
	inst.customStatus = inst.ex.CustomStatus()
	completion := findCompletion(actions)
	if completion != nil {
		inst.terminal, inst.completion = true, completion
	}
	inst.row = nil
	if err := e.writeRow(ctx, inst, completion, replaced); err != nil {
		e.log.Warn("could not update the Instances row after a rewind", "instance", inst.id, "err", err)
	}
	e.log.Info("rewound a failed instance", "instance", inst.id, "failedCalls", len(failed), "execution", execID)
	e.background(func(ctx context.Context) { e.held.remove(ctx, in.ack) })
	e.dropAnchorIfIdle(inst)
	if completion != nil && inst.row != nil {
		inst.closeExecutor()
		e.notifyTerminal(*inst.row)
	}
}

// historyFailed reports whether events (one execution's history) end in
// a failed completion.
func historyFailed(events []history.Event) bool {
	for i := len(events) - 1; i >= 0; i-- {
		if ev := events[i]; ev.Type.EndsExecution() {
			return ev.Type == history.ExecutionCompleted && ev.Status == history.StatusFailed
		}
	}
	return false
}

// rewindReason is the reason a rewind request gives: the Data of a
// GenericEvent, the Reason of an ExecutionRewound event.
func rewindReason(ev history.Event) string {
	if ev.Type == history.GenericEvent {
		return ev.Data
	}
	return ev.Reason
}

// anchorData marks the GenericEvent messages used as recovery anchors.
const anchorData = "recovery anchor"

// isAnchorFor reports whether in is a recovery anchor of the instance's
// current execution: its start message, or an anchor GenericEvent.
func isAnchorFor(inst *instance, in *inbound) bool {
	ev := in.msg.Event
	switch {
	case inst.executionID == "":
		return false
	case ev.Type == history.ExecutionStarted:
		return startExecutionID(in) == inst.executionID
	case ev.Type == history.GenericEvent && ev.Data == anchorData:
		return in.msg.Target.ExecutionID == inst.executionID
	}
	return false
}

func startExecutionID(in *inbound) string {
	if id := in.msg.Event.Instance.ExecutionID; id != "" {
		return id
	}
	return in.msg.Target.ExecutionID
}

// recoverFrom handles an anchor that reappeared: the process that held it
// is gone (or lost it). Activities that history shows as outstanding and
// that do not run here are run again; a finished instance gets its
// Instances row repaired if needed.
func (e *Engine) recoverFrom(ctx context.Context, inst *instance, in *inbound) {
	switch {
	case inst.terminal:
		// processBatch has checked (and if needed repaired) the row.
		e.background(func(ctx context.Context) { e.held.remove(ctx, in.ack) })
	case inst.anchor != nil && in.ack != nil && inst.anchor.receipt.MessageID == in.ack.receipt.MessageID:
		// Our own anchor came back (a renewal was late): keep the fresh receipt.
		e.held.forget(inst.anchor)
		inst.anchor = in.ack
	case inst.anchor != nil:
		e.background(func(ctx context.Context) { e.held.remove(ctx, in.ack) })
	default:
		inst.anchor = in.ack
		var rerun []history.Event
		for id, ev := range inst.outstanding {
			if !inst.local[id] {
				rerun = append(rerun, ev)
			}
		}
		sort.Slice(rerun, func(i, j int) bool { return rerun[i].EventID < rerun[j].EventID })
		if len(rerun) > 0 {
			e.log.Info("recovering an instance: running its outstanding activities again", "instance", inst.id, "activities", len(rerun))
			start, _, err := e.sendActions(ctx, inst, rerun)
			if err != nil {
				e.log.Warn("could not restart outstanding activities; the anchor comes back for another try", "instance", inst.id, "err", err)
				e.held.release(ctx, inst.anchor, time.Second)
				inst.anchor = nil
				return
			}
			start()
		}
		e.dropAnchorIfIdle(inst)
	}
}

// dropAnchorIfIdle deletes the anchor once no activity runs here for the
// instance: whatever it waits for has its own message.
func (e *Engine) dropAnchorIfIdle(inst *instance) {
	if inst.anchor != nil && len(inst.local) == 0 {
		h := inst.anchor
		inst.anchor = nil
		e.background(func(ctx context.Context) { e.held.remove(ctx, h) })
	}
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
		if !in.flush {
			return false
		}
	}
	return true
}

// plan classifies the batch's events against what the instance records.
func (e *Engine) plan(ctx context.Context, inst *instance, batch []*inbound) batchPlan {
	var p batchPlan
	// Starts first: responses in the same batch may depend on them.
	sort.SliceStable(batch, func(i, j int) bool {
		return batch[i].msg.Event.Type == history.ExecutionStarted && batch[j].msg.Event.Type != history.ExecutionStarted
	})
	for _, in := range batch {
		if in.flush {
			p.flush = true
			continue
		}
		ev := in.msg.Event
		in.wait("", false)
		if p.start == nil && isAnchorFor(inst, in) {
			p.recover = append(p.recover, in)
			continue
		}
		switch ev.Type {
		case history.ExecutionStarted:
			switch reason := e.acceptStart(ctx, inst, in, p.start != nil); reason {
			case "":
				p.start = in
			case deferStart:
				p.later = append(p.later, in)
			default:
				e.dropped(in, reason)
				p.drop = append(p.drop, in)
			}
		case history.TaskCompleted, history.TaskFailed, history.TimerFired,
			history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
			running := p.start != nil || (inst.ex != nil && !inst.terminal)
			switch {
			case !running && inst.executionID == "":
				// Its start may not be visible yet, or there is no such instance.
				in.wait("its instance has no history: it does not exist, or no longer exists", false)
				p.later = append(p.later, in)
			case !running:
				e.dropped(in, "the instance is not running")
				p.drop = append(p.drop, in)
			case p.start == nil && in.msg.Target.ExecutionID != "" && in.msg.Target.ExecutionID != inst.executionID:
				e.dropped(in, "it belongs to an earlier execution")
				p.drop = append(p.drop, in)
			case p.start != nil:
				p.later = append(p.later, in) // apply after the new execution's first checkpoint
			default:
				switch inst.ex.TaskState(responseTo(ev)) {
				case durable.TaskAwaiting:
					if p.answered[responseTo(ev)] {
						// A second copy in this batch (a send retried after
						// its answer was lost, or a local result and its
						// queue copy): apply it once.
						e.log.Debug("ignoring a second copy of a response", "instance", inst.id, "task", responseTo(ev), "event", ev.Type.String())
						p.drop = append(p.drop, in)
						continue
					}
					if p.answered == nil {
						p.answered = map[int32]bool{}
					}
					p.answered[responseTo(ev)] = true
					p.apply = append(p.apply, in)
				case durable.TaskResolved:
					e.log.Debug("ignoring a duplicate or canceled response", "instance", inst.id, "task", responseTo(ev), "event", ev.Type.String())
					if in.local {
						delete(inst.local, ev.TaskScheduledID)
					}
					p.drop = append(p.drop, in)
				default:
					in.wait(fmt.Sprintf("the instance's history records no task %d to answer", responseTo(ev)), true)
					p.later = append(p.later, in)
				}
			}
		case history.ExecutionRewound:
			// A rewind request as newer Durable Task clients send it.
			if failedExecution(inst) && p.rewind == nil {
				p.rewind = in
				continue
			}
			e.dropped(in, "only a failed instance can be rewound")
			p.drop = append(p.drop, in)
			continue
		case history.GenericEvent:
			if n := poisonNoticeOf(ev); n != nil {
				e.planNotice(ctx, inst, in, n, &p)
				continue
			}
			switch {
			case ev.Data == anchorData:
				e.dropped(in, "an anchor of an execution that is not current")
				p.drop = append(p.drop, in)
				continue
			case failedExecution(inst) && p.start == nil:
				// A rewind request (Client.Rewind, and Durable Task's
				// legacy rewind, whose storage rewrite makes the instance
				// live again before this message comes).
				if p.rewind == nil {
					p.rewind = in
				} else {
					p.drop = append(p.drop, in) // the same request twice
				}
				continue
			}
			fallthrough
		default:
			if ev.Type == history.ExecutionTerminated && inst.executionID == "" && p.start == nil {
				// Terminated before its start was processed: only the row changes.
				e.terminateUnstarted(ctx, inst, in)
				p.drop = append(p.drop, in)
				continue
			}
			if inst.terminal || (inst.ex == nil && p.start == nil) {
				e.dropped(in, "the instance is not running")
				p.drop = append(p.drop, in)
				continue
			}
			if p.start == nil && (inst.recorded(ev) || p.hasEvent(ev)) {
				// Already in history: a redelivery after a crash or a lost
				// delete. Applying it again would raise the event twice.
				e.log.Debug("ignoring an event already in history", "instance", inst.id, "event", ev.Type.String(), "name", ev.Name)
				p.drop = append(p.drop, in)
				continue
			}
			p.apply = append(p.apply, in)
		}
	}
	return p
}

// responseTo returns the action id a response event answers.
func responseTo(ev history.Event) int32 {
	if ev.Type == history.TimerFired {
		return ev.TimerID
	}
	return ev.TaskScheduledID
}

// deferStart is acceptStart's verdict for a start whose Instances row is not
// visible yet (clients write it right after the message).
const deferStart = "defer"

// acceptStart decides whether a start message begins a new execution; it
// returns "" to accept, deferStart, or the reason to drop it.
func (e *Engine) acceptStart(ctx context.Context, inst *instance, in *inbound, haveStart bool) string {
	execID := in.msg.Event.Instance.ExecutionID
	if execID == "" {
		execID = in.msg.Target.ExecutionID
	}
	switch {
	case haveStart:
		return "another start for the instance came first in the same batch"
	case inst.executionID != "" && !inst.terminal:
		return "the instance is already running execution " + inst.executionID
	}
	if in.row != nil {
		inst.row = in.row // started by a client in this process
		inst.rowPending = in.rowETag
		return ""
	}
	row, err := e.be.GetInstance(ctx, inst.id, true)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		if in.msg.Event.Parent != nil {
			inst.row = nil // sub-orchestrations have no row until they run
			return ""
		}
		if in.dequeueCount < 5 {
			return deferStart
		}
		return "its Instances row never appeared"
	case err != nil:
		e.log.Warn("could not read the Instances row of a start; retrying", "instance", inst.id, "err", err)
		return deferStart
	case row.ExecutionID == execID, row.ExecutionID == "" && in.msg.Event.Parent == nil:
		// Ours; or a row from a client that records no execution (Durable
		// Task before 1.8.5), which leaves nothing to compare.
	case in.msg.Event.Parent != nil && row.Status.IsTerminal():
		// A parent (re)starts a child whose ID has finished before: a new execution.
		inst.row = &row
		return ""
	case in.msg.Event.Parent != nil:
		return "the Instances row names another execution (" + row.ExecutionID + "): a newer start won"
	default:
		return mismatchedStart(in.msg.Event, &row, in.dequeueCount)
	}
	if row.Status.IsTerminal() {
		return "the instance was " + row.Status.String() + " before it started"
	}
	inst.row = &row
	return ""
}

// maxStartDequeues is how often a top-level start whose Instances row names
// another execution is delivered before it is discarded (Durable Task's
// limit): by then a client whose row write failed has told its caller.
const maxStartDequeues = 10

// mismatchedStart applies Durable Task's rule to a top-level start whose
// Instances row names another execution (DedupeExecutionStartedMessagesAsync
// and IsScheduledAfterInstanceUpdate in DurableTask.AzureStorage). Clients
// send the start message first and write the row a moment later, so a
// restart's message (Generation = the row's + 1) is usually seen while the
// row still names the previous execution: it is deferred until the row
// catches up. A start of the row's own generation lost a race with the
// start the row names (clients write the row fenced by what they read,
// so its own write fails or has failed); it is discarded when the
// timestamps confirm it: the row's start is newer than the message, or the
// row is still Pending and older than the message, or the message has been
// delivered before. Any start is discarded after maxStartDequeues
// deliveries. It returns deferStart or the reason to discard.
func mismatchedStart(start history.Event, row *backend.InstanceState, dequeueCount int64) string {
	rowDesc := fmt.Sprintf("the Instances row names execution %s (generation %d, created %s)",
		row.ExecutionID, row.Generation, row.CreatedTime.Format(time.RFC3339Nano))
	if dequeueCount >= maxStartDequeues {
		return fmt.Sprintf("%s, still after %d deliveries of this start", rowDesc, dequeueCount)
	}
	if start.Generation == nil || *start.Generation != row.Generation {
		return deferStart // a restart whose row write is still to come
	}
	switch {
	case row.CreatedTime.After(start.Timestamp):
		return rowDesc + ": a newer start of the same generation won"
	case row.Status == history.StatusPending && row.CreatedTime.Before(start.Timestamp):
		return rowDesc + ": this start of the same generation was sent after that row was written"
	case dequeueCount > 1:
		return rowDesc + ": this start of the same generation is redelivered and the row still names the other execution"
	}
	return deferStart
}

// terminateUnstarted marks a Pending instance Terminated in its row: its
// start message, when it comes, is then discarded.
func (e *Engine) terminateUnstarted(ctx context.Context, inst *instance, in *inbound) {
	row, err := e.be.GetInstance(ctx, inst.id, true)
	if err != nil || row.Status != history.StatusPending {
		e.dropped(in, "the instance does not exist or is not pending")
		return
	}
	if !e.ownsNow(inst.partition) {
		e.handBack(ctx, in)
		return
	}
	t := now()
	row.Status, row.Output, row.LastUpdatedTime, row.CompletedTime = history.StatusTerminated, in.msg.Event.Input, t, t
	if _, err := e.be.MergeInstance(ctx, row); err != nil {
		e.log.Warn("could not terminate a pending instance", "instance", inst.id, "err", err)
		return
	}
	e.notifyTerminal(row)
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

// load reads an instance's history and replays it into a fresh executor.
func (e *Engine) load(ctx context.Context, inst *instance) error {
	h, err := e.be.LoadHistory(ctx, inst.id)
	if err != nil {
		return err
	}
	inst.forget()
	inst.loaded = true
	inst.etag, inst.historyLen, inst.executionID = h.ETag, len(h.Events), h.ExecutionID
	if len(h.Events) == 0 {
		return nil
	}
	inst.lastEvent = h.Events[len(h.Events)-1].Timestamp
	scheduled := map[int32]history.Event{}
	for i := range h.Events {
		ev := h.Events[i]
		inst.record(ev)
		switch ev.Type {
		case history.ExecutionStarted:
			inst.start = &ev
		case history.TaskScheduled:
			scheduled[ev.EventID] = ev
		case history.ExecutionCompleted, history.ContinueAsNew:
			inst.terminal = true
			inst.completion = &ev
		}
	}
	if inst.terminal || inst.start == nil {
		return nil
	}
	inst.ex = e.newExecutor(inst, inst.start.Name)
	if err := inst.ex.Replay(h.Events); err != nil {
		// The executor now holds a failed completion that the next episode
		// records: the instance fails instead of getting stuck.
		e.log.Error("replay disagrees with history; the instance will fail", "instance", inst.id, "err", err)
	}
	inst.outstanding = map[int32]history.Event{}
	for id, ev := range scheduled {
		if inst.ex.TaskState(id) == durable.TaskAwaiting {
			inst.outstanding[id] = ev
		}
	}
	return nil
}

// orchestrator returns the code for name, or code that fails the instance
// with a clear reason when name is not registered.
func (e *Engine) orchestrator(name string) durable.OrchestratorFunc {
	if fn, ok := e.opts.Registry.Orchestrator(name); ok {
		return fn
	}
	return func(*durable.Context) (string, error) {
		return "", &NotRegisteredError{Kind: "orchestrator", Name: name}
	}
}

// newExecutor returns an executor for the instance's orchestrator.
func (e *Engine) newExecutor(inst *instance, name string) *durable.Executor {
	ex := durable.NewExecutor(e.orchestrator(name), inst.id)
	ex.SetLogger(e.opts.Logger)
	return ex
}

// NotRegisteredError reports a function name that this app does not know.
type NotRegisteredError struct {
	Kind string
	Name string
}

// Error implements error.
func (e *NotRegisteredError) Error() string {
	return fmt.Sprintf("%s %q is not registered in this app", e.Kind, e.Name)
}

// ErrorType implements the durable ErrorType convention.
func (e *NotRegisteredError) ErrorType() string { return "NotRegisteredError" }

// episode runs the orchestrator on the plan's events and checkpoints.
func (e *Engine) episode(ctx context.Context, inst *instance, plan batchPlan) {
	t := now()
	newEvents := []history.Event{history.NewEvent(history.OrchestratorStarted, t)}
	if plan.start != nil {
		start := plan.start.msg.Event
		if start.Instance.InstanceID == "" {
			start.Instance.InstanceID = inst.id
		}
		if start.Instance.ExecutionID == "" {
			start.Instance.ExecutionID = plan.start.msg.Target.ExecutionID
		}
		inst.closeExecutor()
		inst.start = &start
		inst.executionID = start.Instance.ExecutionID
		inst.historyLen = 0 // a new execution overwrites history from row 0
		inst.terminal, inst.completion = false, nil
		inst.episodes = 0
		inst.outstanding = map[int32]history.Event{}
		inst.ex = e.newExecutor(inst, start.Name)
		newEvents = append(newEvents, start)
		// The start message becomes the instance's recovery anchor.
		if inst.anchor != nil {
			old := inst.anchor
			e.background(func(ctx context.Context) { e.held.remove(ctx, old) })
		}
		inst.anchor = plan.start.ack
	}
	for _, in := range plan.apply {
		newEvents = append(newEvents, in.msg.Event)
	}
	actions, err := inst.ex.Run(newEvents)
	if err != nil {
		e.log.Error("orchestration failed its determinism check", "instance", inst.id, "err", err)
	}
	from := inst.historyLen
	replaced := ""
	var oldAnchor *held
	// ContinueAsNew: the new execution starts in this same episode, and its
	// history replaces the old one from row 0.
	for hops := 0; ; hops++ {
		c := findCompletion(actions)
		if c == nil || c.Type != history.ContinueAsNew || hops >= 100 {
			break
		}
		if replaced == "" {
			replaced = inst.executionID
			oldAnchor, inst.anchor = inst.anchor, nil
		}
		carry := inst.ex.CarryOver()
		start := *inst.start
		start.Timestamp = now()
		start.Instance.ExecutionID = history.NewID()
		start.Input = c.Result
		start.Generation = nil
		inst.closeExecutor()
		inst.start, inst.executionID = &start, start.Instance.ExecutionID
		inst.outstanding, inst.local, inst.episodes = map[int32]history.Event{}, nil, 0
		inst.ex = e.newExecutor(inst, start.Name)
		newEvents = append([]history.Event{history.NewEvent(history.OrchestratorStarted, start.Timestamp), start}, carry...)
		if actions, err = inst.ex.Run(newEvents); err != nil {
			e.log.Error("orchestration failed its determinism check", "instance", inst.id, "err", err)
		}
		from = 0
	}
	inst.episodes++
	e.count(func(s *Stats) { s.Episodes++ })

	// giveUp abandons the episode before its history is durable.
	giveUp := func(what string, err error) {
		if oldAnchor != nil {
			inst.anchor, oldAnchor = oldAnchor, nil // released with the rest
		}
		if errors.Is(err, errNotOwner) {
			e.handBackEpisode(ctx, inst, plan)
			return
		}
		e.abandonEpisode(ctx, inst, plan, what, err)
	}
	if !e.ownsNow(inst.partition) {
		giveUp("lost the partition before the checkpoint", errNotOwner)
		return
	}

	// 1. Outbound messages first: history must never record work that has
	// nothing durable behind it (a message, or the anchor for activities
	// that run here).
	startLocal, cancelLocal, err := e.sendActions(ctx, inst, actions)
	if err != nil {
		giveUp("could not send the episode's messages", err)
		return
	}
	// 2. History, fenced by the sentinel ETag; meanwhile, for a start just
	// handed over, the client finishes writing the Instances row. Ownership
	// is checked again right before: the sends above may have taken long.
	all := append(newEvents, actions...)
	all = append(all, history.NewEvent(history.OrchestratorCompleted, now()))
	if !e.ownsNow(inst.partition) {
		cancelLocal()
		giveUp("lost the partition before the checkpoint", errNotOwner)
		return
	}
	var etag string
	if inst.rowPending != nil {
		appended := make(chan error, 1)
		go func() {
			var err error
			etag, err = e.be.AppendHistory(ctx, inst.id, inst.executionID, from, all, inst.etag)
			appended <- err
		}()
		rowOK, rowKnown := e.awaitRow(ctx, inst)
		err = <-appended
		if !rowKnown {
			// The start message goes back to the queue: the start rule
			// (or, if history was written, recovery) decides from storage.
			cancelLocal()
			giveUp("the client could not tell whether it wrote the Instances row", errRowUnknown)
			return
		}
		if !rowOK {
			cancelLocal()
			e.abandonStart(inst, plan)
			return
		}
	} else {
		etag, err = e.be.AppendHistory(ctx, inst.id, inst.executionID, from, all, inst.etag)
	}
	if err != nil {
		// The outcome may be unknown (a lost answer, or the SDK's retry of a
		// batch that had committed met the fence): look before giving up.
		if committed, ok := e.appendCommitted(ctx, inst, from, all); ok {
			e.log.Info("a history append reported an error but had committed; continuing", "instance", inst.id, "err", err)
			etag, err = committed, nil
		}
	}
	if err != nil {
		cancelLocal()
		if errors.Is(err, backend.ErrConflict) {
			e.count(func(s *Stats) { s.CheckpointRetries++ })
		}
		giveUp("could not append history", err)
		return
	}
	inst.etag = etag
	inst.historyLen = from + len(all)
	inst.lastEvent = all[len(all)-1].Timestamp
	if from == 0 {
		inst.events = nil // a new execution's history replaced the old one
	}
	for _, ev := range all {
		inst.record(ev)
	}
	inst.failures = 0
	startLocal()
	if oldAnchor != nil {
		e.background(func(ctx context.Context) { e.held.remove(ctx, oldAnchor) })
	}
	for _, in := range plan.apply {
		if ev := in.msg.Event; ev.Type == history.TaskCompleted || ev.Type == history.TaskFailed {
			// Answered, whichever copy answered it: a local run still going
			// on (a recovery ran it elsewhere too) has nothing left to do.
			delete(inst.outstanding, ev.TaskScheduledID)
			delete(inst.local, ev.TaskScheduledID)
		}
	}

	// 3. The Instances row: at once when the instance finished, was
	// suspended or resumed, or continued as new; deferred (and usually
	// superseded) for Pending→Running and custom status changes.
	completion := findCompletion(actions)
	inst.customStatus = inst.ex.CustomStatus()
	if completion != nil {
		inst.terminal, inst.completion = true, completion
	}
	var rowErr error
	switch {
	case completion != nil:
		rowErr = e.writeRow(ctx, inst, completion, replaced)
	case replaced != "" || inst.row == nil || inst.row.Status != e.liveStatus(inst) && inst.row.Status != history.StatusPending:
		rowErr = e.writeRow(ctx, inst, nil, replaced)
	case inst.row.Status != e.liveStatus(inst) || inst.row.CustomStatus != inst.customStatus:
		inst.rowDirty = true
		e.scheduleFlush(inst)
	}
	var consumed []*held
	for _, in := range plan.apply {
		if in.ack != nil {
			consumed = append(consumed, in.ack)
		}
	}
	switch {
	case rowErr == nil:
	case errors.Is(rowErr, errRowNewer), errors.Is(rowErr, errNotOwner):
		// Another worker is ahead of this one, or owns the partition now.
		// The episode is in history; the consumed messages go back to the
		// queue so that whoever processes them next brings the row in line.
		e.log.Warn("the episode is in history but this worker stops processing the instance", "instance", inst.id, "reason", rowErr.Error())
		for _, h := range consumed {
			e.held.release(ctx, h, 0)
		}
		if inst.anchor != nil {
			e.held.release(ctx, inst.anchor, 0)
			inst.anchor = nil
		}
		inst.forget()
		return
	case completion != nil:
		// History says finished, the row does not yet. Keep the consumed
		// messages (and the anchor) held until the row is stored: if this
		// process dies first they reappear and the next owner repairs the
		// row; meanwhile the write is retried with a backoff.
		inst.rowFailures++
		e.log.Warn("could not store the final Instances row; retrying", "instance", inst.id, "attempt", inst.rowFailures, "err", rowErr)
		inst.rowHeld = append(inst.rowHeld, consumed...)
		if inst.anchor != nil {
			inst.rowHeld = append(inst.rowHeld, inst.anchor)
			inst.anchor = nil
		}
		inst.local = nil
		inst.rowDirty = true
		e.scheduleFlush(inst)
		return
	default:
		// History is ahead of the row; the deferred flush brings them in line.
		inst.rowFailures++
		e.log.Warn("could not update the Instances row; retrying", "instance", inst.id, "err", rowErr)
		inst.rowDirty = true
		e.scheduleFlush(inst)
	}

	// 4. The consumed messages are now redundant, and so is the anchor once
	// nothing runs here for the instance.
	for _, h := range consumed {
		e.background(func(ctx context.Context) { e.held.remove(ctx, h) })
	}
	if completion != nil {
		inst.local = nil
	}
	e.dropAnchorIfIdle(inst)
	if completion != nil {
		inst.closeExecutor()
		e.notifyTerminal(*inst.row)
	}
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

// handBackEpisode gives up an episode because this worker no longer owns
// the instance's partition: nothing more is written for it, its messages
// become visible to the new owner at once, and a local activity result
// (which has no queue copy) is sent to the owner's queue.
func (e *Engine) handBackEpisode(ctx context.Context, inst *instance, plan batchPlan) {
	e.log.Warn("no longer owns the partition; handing the instance back without writing", "instance", inst.id)
	if inst.anchor != nil {
		e.held.release(ctx, inst.anchor, 0)
		inst.anchor = nil
	}
	inst.forget()
	for _, in := range append(plan.apply, plan.start) {
		e.handBack(ctx, in)
	}
}

// handBack makes one event that this worker will not process available to
// the partition's owner.
func (e *Engine) handBack(ctx context.Context, in *inbound) {
	switch {
	case in == nil || in.flush:
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
func (e *Engine) abandonStart(inst *instance, plan batchPlan) {
	e.log.Warn("abandoning a start whose Instances row could not be written", "instance", inst.id, "execution", inst.executionID)
	if inst.anchor != nil {
		h := inst.anchor
		inst.anchor = nil
		e.background(func(ctx context.Context) { e.held.remove(ctx, h) })
	}
	for _, in := range plan.apply {
		e.held.release(context.Background(), in.ack, 0)
	}
	inst.forget()
	inst.local = nil
}

// abandonEpisode gives up an episode whose checkpoint failed: the cached
// state is dropped and the messages are released for a retry from storage.
func (e *Engine) abandonEpisode(ctx context.Context, inst *instance, plan batchPlan, what string, err error) {
	inst.failures++
	delay := retryDelay(inst.failures)
	e.log.Warn(what+"; the episode will be retried from storage", "instance", inst.id, "attempt", inst.failures, "retryIn", delay, "err", err)
	if plan.start != nil && inst.anchor == plan.start.ack {
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
	for _, in := range append(plan.apply, plan.start) {
		e.retryLater(ctx, in, delay)
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
	case in == nil || in.flush:
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

func findCompletion(actions []history.Event) *history.Event {
	for i := range actions {
		if actions[i].Type.EndsExecution() {
			return &actions[i]
		}
	}
	return nil
}

// sendActions makes the episode's new actions durable before history
// records them:
//   - an activity runs in this process when the runner has room: it gets no
//     work-item message, the instance's anchor covers it instead (one anchor
//     per instance, sent here if not held yet); otherwise a visible work
//     item lets any worker run it;
//   - a timer is a TimerFired message to the instance's own control queue,
//     hidden until it is due;
//   - a sub-orchestration is an ExecutionStarted message to the child;
//   - the completion of a sub-orchestration notifies its parent.
//
// Messages for partitions this worker owns are also handed over in memory,
// and local activities start, when the caller calls start (after the
// checkpoint); cancel gives their reserved slots back instead.
func (e *Engine) sendActions(ctx context.Context, inst *instance, actions []history.Event) (start, cancel func(), err error) {
	self := history.OrchestrationInstance{InstanceID: inst.id, ExecutionID: inst.executionID}
	var local, remote []backend.Message
	var control []controlSend
	for _, a := range actions {
		switch a.Type {
		case history.TaskScheduled:
			msg := backend.Message{Event: a, Target: self, Sender: self, Episode: inst.episodes}
			if inst.start != nil {
				msg.OrchestrationTags = inst.start.Tags
			}
			if !e.isDraining() && e.acts.reserve() {
				local = append(local, msg)
			} else {
				remote = append(remote, msg)
			}
		case history.TimerCreated:
			fired := history.NewEvent(history.TimerFired, a.Timestamp)
			fired.TimerID, fired.FireAt = a.EventID, a.FireAt
			control = append(control, controlSend{msg: backend.Message{Event: fired, Target: self, Sender: self}, at: a.FireAt})
		case history.SubOrchestrationInstanceCreated:
			child := history.NewEvent(history.ExecutionStarted, now())
			child.Name, child.Version, child.Input = a.Name, a.Version, a.Input
			// Deterministic: a replayed parent re-sends the very same start.
			child.Instance = history.OrchestrationInstance{InstanceID: a.InstanceID, ExecutionID: derivedID(inst.executionID, a.EventID)}
			child.Parent = &history.ParentInstance{Name: inst.startName(), TaskScheduleID: a.EventID, Instance: self}
			control = append(control, controlSend{msg: backend.Message{Event: child, Target: child.Instance, Sender: self}})
		case history.ExecutionCompleted:
			if p := inst.parent(); p != nil {
				control = append(control, controlSend{msg: backend.Message{Event: parentNotice(p, a), Target: p.Instance, Sender: self}})
			}
		}
	}
	cancel = func() {
		for range local {
			e.acts.unreserve()
		}
		local = nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(remote)+len(control)+1)
	if len(local) > 0 && inst.anchor == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			anchor := history.NewEvent(history.GenericEvent, now())
			anchor.Data = anchorData
			r, err := e.be.SendControl(ctx, backend.Message{Event: anchor, Target: self}, e.opts.MessageVisibility)
			if err != nil {
				errs[len(errs)-1] = err
				return
			}
			inst.anchor = e.held.hold(r, inst.partition)
		}()
	}
	for i := range remote {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.be.SendWorkItem(ctx, remote[i], 0)
		}()
	}
	for i := range control {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[len(remote)+i] = e.sendControl(ctx, &control[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cancel()
		return func() {}, func() {}, err
	}
	for _, a := range actions {
		if a.Type == history.TaskScheduled {
			if inst.outstanding == nil {
				inst.outstanding = map[int32]history.Event{}
			}
			inst.outstanding[a.EventID] = a
		}
	}
	start = func() {
		for _, msg := range local {
			inst.markLocal(msg.Event.EventID)
			e.acts.run(msg, nil)
		}
		local = nil
		for _, c := range control {
			if c.handOver {
				e.deliver(&inbound{msg: c.msg, ack: c.held})
			}
		}
	}
	return start, cancel, nil
}

// controlSend is a control-queue message an episode sends.
type controlSend struct {
	msg      backend.Message
	at       time.Time // when it is due (timers); zero = now
	handOver bool      // sent hidden, to be handed over in memory
	held     *held
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
		// Queue visibility has whole seconds: wake the poller once it is visible.
		wake := time.Until(r.NextVisible) + 20*time.Millisecond
		if r.NextVisible.IsZero() {
			wake = delay.Truncate(time.Second) + time.Second + 20*time.Millisecond
		}
		time.AfterFunc(wake, func() { e.wakePartition(p) })
	}
	return nil
}

// parentNotice builds the message telling a parent how its child ended.
func parentNotice(p *history.ParentInstance, c history.Event) history.Event {
	if c.Status == history.StatusCompleted {
		ev := history.NewEvent(history.SubOrchestrationInstanceCompleted, now())
		ev.TaskScheduledID, ev.Result = p.TaskScheduleID, c.Result
		return ev
	}
	ev := history.NewEvent(history.SubOrchestrationInstanceFailed, now())
	ev.TaskScheduledID = p.TaskScheduleID
	fd := c.Failure
	if fd == nil {
		fd = &history.FailureDetails{ErrorType: c.Status.String(), ErrorMessage: "the sub-orchestration was " + c.Status.String() + ": " + c.Result}
	}
	ev.Reason, ev.Failure = fd.ErrorMessage, fd
	return ev
}

// derivedID derives a stable execution ID for a child from its parent's
// execution and the call's sequence number.
func derivedID(parentExecution string, seq int32) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s:%d", parentExecution, seq)))
	return hex.EncodeToString(sum[:16])
}

// waitInstancesIdle waits until no instance is being processed.
func (e *Engine) waitInstancesIdle() { e.runs.Wait() }

// closeInstances unwinds every cached executor and releases held anchors,
// so that the next owner recovers their activities without waiting for
// the anchors' visibility to expire.
func (e *Engine) closeInstances(ctx context.Context) {
	e.mu.Lock()
	var anchors []*held
	for id, inst := range e.instances {
		if inst.active {
			continue
		}
		if inst.anchor != nil {
			anchors = append(anchors, inst.anchor)
			inst.anchor = nil
		}
		inst.closeExecutor()
		e.idle.remove(inst)
		delete(e.instances, id)
	}
	e.mu.Unlock()
	for _, h := range anchors {
		e.held.release(ctx, h, 0)
	}
}
