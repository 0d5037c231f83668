package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// batchPlan sorts a batch into what to apply, drop and put back.
type batchPlan struct {
	start   *inbound
	apply   []*inbound
	drop    []*inbound
	later   []*inbound
	recover []*inbound // anchors of the current execution that reappeared
	rewind  *inbound   // a rewind request for a failed instance
	flush   bool
	seal    bool // commit the coalescing window: its budget is spent
	// terminate are terminations of instances whose start has not been
	// processed: only their Instances row changes.
	terminate []*inbound
	// failUnstarted are poison notices for instances whose start has not
	// been processed: their Instances row fails.
	failUnstarted []*inbound
	// fail ends the running execution as Failed: a poison notice (applied
	// with the other events) said one of its messages was parked.
	fail *history.FailureDetails
	// answered are the tasks a response in apply answers.
	answered map[int32]bool
	// copies are second copies of events in apply: their queue copies go
	// only once the checkpoint applying the first is committed, since a
	// message dequeued twice is one queue message, which must outlive a
	// checkpoint that fails.
	copies []*inbound
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

// storedRow is the Instances row read for a batch's starts before
// planning (see readStartRow), so that planning does no I/O.
type storedRow struct {
	row backend.InstanceState
	err error
}

// readStartRow reads the Instances row when the batch holds a start that
// planning must check against it: one a client in this process did not
// hand over with its row, for an instance that is not running. It returns
// nil when no start needs it.
func (e *Engine) readStartRow(ctx context.Context, inst *instance, batch []*inbound) *storedRow {
	for _, in := range batch {
		if in.msg.Event.Type != history.ExecutionStarted || in.row != nil || isAnchorFor(inst, in) ||
			inst.executionID != "" && !inst.terminal {
			continue
		}
		row, err := e.be.GetInstance(ctx, inst.id, true)
		return &storedRow{row: row, err: err}
	}
	return nil
}

// plan classifies the batch's events against what the instance records,
// and what storage said of its row (stored, see readStartRow). It does no
// I/O.
func (e *Engine) plan(inst *instance, batch []*inbound, stored *storedRow) batchPlan {
	var p batchPlan
	// Starts first: responses in the same batch may depend on them.
	sort.SliceStable(batch, func(i, j int) bool {
		return batch[i].msg.Event.Type == history.ExecutionStarted && batch[j].msg.Event.Type != history.ExecutionStarted
	})
	p.start = unrunStart(inst, batch)
	for _, in := range batch {
		if in == p.start {
			continue
		}
		if in.flush {
			p.flush = true
			continue
		}
		if in.seal {
			p.seal = true
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
			switch reason := e.acceptStart(inst, in, p.start != nil, stored); reason {
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
			case in.local && p.start == nil && (inst.ex == nil || inst.ex.TaskState(responseTo(ev)) == replay.TaskUnknown):
				// The result of a call that only an abandoned coalescing
				// window recorded: history does not have it, so the call runs
				// again when the instance recovers.
				e.dropped(in, "its call was never committed (a coalesced checkpoint was abandoned); it runs again")
				p.drop = append(p.drop, in)
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
				case replay.TaskAwaiting:
					if p.answered[responseTo(ev)] {
						// A second copy in this batch (a send retried after
						// its answer was lost, or a local result and its
						// queue copy): apply it once.
						e.log.Debug("ignoring a second copy of a response", "instance", inst.id, "task", responseTo(ev), "event", ev.Type.String())
						p.copies = append(p.copies, in)
						continue
					}
					if p.answered == nil {
						p.answered = map[int32]bool{}
					}
					p.answered[responseTo(ev)] = true
					p.apply = append(p.apply, in)
				case replay.TaskResolved:
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
				e.planNotice(inst, in, n, &p)
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
				p.terminate = append(p.terminate, in)
				continue
			}
			if ev.Type == history.EventRaised && inst.executionID == "" && p.start == nil &&
				history.IsEntityInstanceID(in.msg.Sender.InstanceID) {
				// An entity's answer to a request whose sender has no
				// history: its first episode sent the request and then lost
				// its checkpoint, and will run again from its start message.
				in.wait("it answers an entity request of an instance that has no history", false)
				p.later = append(p.later, in)
				continue
			}
			if inst.terminal || (inst.ex == nil && p.start == nil) {
				e.dropped(in, "the instance is not running")
				p.drop = append(p.drop, in)
				continue
			}
			if p.start == nil && inst.recorded(ev) {
				// Already in history: a redelivery after a crash or a lost
				// delete. Applying it again would raise the event twice.
				e.log.Debug("ignoring an event already in history", "instance", inst.id, "event", ev.Type.String(), "name", ev.Name)
				p.drop = append(p.drop, in)
				continue
			}
			if p.start == nil && p.hasEvent(ev) {
				e.log.Debug("ignoring a second copy of an event", "instance", inst.id, "event", ev.Type.String(), "name", ev.Name)
				p.copies = append(p.copies, in)
				continue
			}
			p.apply = append(p.apply, in)
		}
	}
	return p
}

// unrunStart returns the start to run for an unrun execution (see
// instance.unrun) that a batch of messages wakes: its start message (the
// instance's recovery anchor), if the batch holds it, else the start that
// history records, so that events sent to the new execution wait for no
// redelivery. It returns nil for any other instance, and for a batch of
// internal requests only.
func unrunStart(inst *instance, batch []*inbound) *inbound {
	if !inst.unrun || inst.terminal || inst.start == nil || onlyFlush(batch) {
		return nil
	}
	for _, in := range batch {
		if in.msg.Event.Type == history.ExecutionStarted && isAnchorFor(inst, in) {
			return in
		}
	}
	self := history.OrchestrationInstance{InstanceID: inst.id, ExecutionID: inst.executionID}
	return &inbound{msg: backend.Message{Event: *inst.start, Target: self, Sender: self}, recorded: true}
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
func (e *Engine) acceptStart(inst *instance, in *inbound, haveStart bool, stored *storedRow) string {
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
	if stored == nil {
		return deferStart // not read: cannot happen, but never start blind
	}
	row, err := stored.row, stored.err
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
