package engine

import (
	"context"
	"sort"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

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
			// The rewound execution is a new span in the same trace.
			ev.ParentTraceContext = continuedTrace(ev.ParentTraceContext)
			stampStart(&ev, now())
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
	inst.etag, inst.row = h.ETag, nil
	inst.ex = e.newExecutor(inst, inst.start.Name)
	if err := inst.ex.Replay(kept); err != nil {
		e.log.Error("replay disagrees with history while rewinding; the instance will fail again", "instance", inst.id, "err", err)
	}
	traceLoaded(inst, kept)
	rew := history.NewEvent(history.GenericEvent, now())
	rew.Data = rewindReason(in.msg.Event)
	episode, actions, err := inst.ex.Step(func() time.Time { return rew.Timestamp }, []history.Event{rew})
	if err != nil {
		e.log.Error("orchestration failed its determinism check", "instance", inst.id, "err", err)
	}
	var traced checkpoint
	e.traceStep(inst, &traced, episode, actions)
	// The rewound history replaces the failed one from row 0, with the
	// rewind's own episode at its end.
	cp := checkpoint{executionID: execID, events: append(kept, episode...), replaced: replaced,
		inputs: []*inbound{in}, completion: findCompletion(actions), row: rowNow,
		customStatus: inst.ex.CustomStatus(), episodes: 1, opened: time.Now(), spans: traced.spans}
	e.route(inst, &cp, actions)
	if e.commit(ctx, inst, &cp) {
		e.log.Info("rewound a failed instance", "instance", inst.id, "failedCalls", len(failed), "execution", execID)
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
		e.removeHeld(in.ack)
	case inst.anchor != nil && in.ack != nil && inst.anchor.receipt.MessageID == in.ack.receipt.MessageID:
		// Our own anchor came back (a renewal was late): keep the fresh receipt.
		e.held.forget(inst.anchor)
		inst.anchor = in.ack
	case inst.anchor != nil:
		e.removeHeld(in.ack)
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
			// A checkpoint without events: its activities are in history already.
			cp := checkpoint{executionID: inst.executionID}
			e.route(inst, &cp, rerun)
			if err := e.send(ctx, inst, &cp); err != nil {
				e.unreserve(&cp)
				e.log.Warn("could not restart outstanding activities; the anchor comes back for another try", "instance", inst.id, "err", err)
				e.held.release(ctx, inst.anchor, time.Second)
				inst.anchor = nil
				return
			}
			e.startLocal(inst, &cp)
		}
		e.dropAnchorIfIdle(inst)
	}
}

// dropAnchorIfIdle deletes the anchor once no activity runs here for the
// instance: whatever it waits for has its own message.
func (e *Engine) dropAnchorIfIdle(inst *instance) {
	if inst.anchor != nil && len(inst.local) == 0 && inst.window == nil {
		h := inst.anchor
		inst.anchor = nil
		e.removeHeld(h)
	}
}
