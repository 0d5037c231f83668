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
)

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
