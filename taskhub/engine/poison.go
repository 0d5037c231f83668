package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Poison handling. A queue message that cannot be decoded, whose processing
// keeps failing, or whose instance does not exist comes back after a growing
// delay (poisonBackoff), so a passing fault or an instance that appears late
// gets its chance without a hot loop. After Options.MaxDequeueCount tries
// it is parked (Backend.ParkPoison: copied, with the reason, then deleted);
// if it belongs to an instance, that instance fails with a reason naming
// the message, through its normal checkpoint, so that nothing waits for
// work that will never be done.
//
// The dequeue count is the queue's own count of receives, so it is checked
// only when processing failed, never on receipt: a recovery anchor that
// came back after many crashes is not poison.

// poisonBackoff is how long a message that failed on its dequeueCount-th
// try stays hidden before the next: 1 s doubling, at most
// MessageVisibility (the delay a crash would cause) and 10 minutes.
func (e *Engine) poisonBackoff(dequeueCount int64) time.Duration {
	d := time.Second << min(max(dequeueCount-1, 0), 10)
	return max(min(d, e.opts.MessageVisibility, 10*time.Minute), time.Second)
}

// undecodable handles the messages a poll could not decode: each is tried
// again after a backoff (a newer version of the code, a blob that is late,
// a passing fault may make it readable) and parked after MaxDequeueCount
// tries; the instance it names, as far as the backend could tell, then fails.
func (e *Engine) undecodable(list []backend.Undecodable) {
	for _, u := range list {
		e.background(func(ctx context.Context) {
			if u.DequeueCount < e.opts.MaxDequeueCount {
				delay := e.poisonBackoff(u.DequeueCount)
				e.log.Warn("could not decode a queue message; it is tried again later",
					"queue", u.Receipt.Queue, "message", u.Receipt.MessageID, "instance", u.Target.InstanceID,
					"dequeueCount", u.DequeueCount, "maxDequeueCount", e.opts.MaxDequeueCount, "retryIn", delay, "reason", u.Reason)
				if _, err := e.be.SetVisibility(ctx, u.Receipt, delay); err != nil && !errors.Is(err, backend.ErrNotFound) {
					e.log.Warn("could not delay an undecodable message; it comes back when its visibility expires",
						"queue", u.Receipt.Queue, "message", u.Receipt.MessageID, "err", err)
				}
				return
			}
			e.park(ctx, poison{
				receipt: u.Receipt, body: u.Body, dequeueCount: u.DequeueCount, inserted: u.InsertedAt,
				target: u.Target, event: u.EventType, reason: u.Reason.Error(), failTarget: u.Target.InstanceID != "",
				undecodable: true,
			})
		})
	}
}

// poison is a message the engine gives up on.
type poison struct {
	receipt      backend.Receipt // of an unheld message
	held         *held           // or the held queue copy
	body         string
	dequeueCount int64
	inserted     time.Time
	target       history.OrchestrationInstance // the instance it belongs to, if known
	event        string                        // its event type, if known
	reason       string
	// failTarget: the target instance is running (or may be) and must fail.
	failTarget bool
	// undeliverable: its instance does not exist; counted as dropped too.
	undeliverable bool
	// undecodable: it could not be read (for the metric's reason).
	undecodable bool
}

// giveUp parks an event whose processing failed once too often (or whose
// instance never appeared) in the background. failInstance says that the
// instance it belongs to must fail.
func (e *Engine) giveUp(in *inbound, reason string, failInstance bool) {
	p := poison{
		held: in.ack, body: in.body, dequeueCount: in.dequeueCount, inserted: in.insertedAt,
		target: in.msg.Target, event: in.msg.Event.Type.String(), reason: reason,
		// A notice that cannot be processed asks for no further notice.
		failTarget:    failInstance && poisonNoticeOf(in.msg.Event) == nil,
		undeliverable: !failInstance,
	}
	if p.target.InstanceID == "" {
		p.target.InstanceID = in.msg.Target.InstanceID
	}
	e.background(func(ctx context.Context) { e.park(ctx, p) })
}

// park records the message in the poison table and deletes it from its
// queue, after telling the instance it belongs to (first, so that a crash
// in between parks the message again, and the second notice finds the
// instance already failed). If either step fails, the message comes back
// after a backoff for another try.
func (e *Engine) park(ctx context.Context, p poison) {
	retry := e.poisonBackoff(p.dequeueCount)
	where := p.receipt
	if p.held != nil {
		where = receiptOf(p.held)
	}
	if p.failTarget {
		if err := e.sendPoisonNotice(ctx, p, where); err != nil {
			e.log.Warn("could not tell an instance that its message is poison; the message is tried again later",
				"queue", where.Queue, "message", where.MessageID, "instance", p.target.InstanceID, "retryIn", retry, "err", err)
			e.unpark(ctx, p, retry)
			return
		}
	}
	rec := backend.Poison{Body: p.body, DequeueCount: p.dequeueCount, InsertedAt: p.inserted, Reason: p.reason}
	var err error
	if p.held != nil {
		err = errLostHold
		e.held.finish(p.held, func(r backend.Receipt) {
			rec.Receipt = r
			if err = e.be.ParkPoison(ctx, rec); err != nil {
				_, _ = e.be.SetVisibility(ctx, r, retry)
			}
		})
	} else {
		rec.Receipt = p.receipt
		if err = e.be.ParkPoison(ctx, rec); err != nil {
			_, _ = e.be.SetVisibility(ctx, p.receipt, retry)
		}
	}
	if err != nil {
		e.log.Warn("could not park a poison message; it is tried again later",
			"queue", where.Queue, "message", where.MessageID, "retryIn", retry, "err", err)
		return
	}
	e.metrics.parkedMessage(rec.Receipt.Queue, p.reasonClass())
	e.count(func(s *Stats) {
		s.PoisonMessages++
		if p.undeliverable {
			s.DroppedMessages++
		}
	})
	e.log.Error("parked a poison message", "queue", rec.Receipt.Queue, "message", rec.Receipt.MessageID,
		"instance", p.target.InstanceID, "execution", p.target.ExecutionID, "event", p.event,
		"dequeueCount", p.dequeueCount, "instanceFails", p.failTarget, "reason", p.reason)
}

// errLostHold: the held queue copy was lost (someone else received it
// after it became visible); whoever has it now decides.
var errLostHold = errors.New("the message is no longer held by this worker")

// receiptOf returns the current receipt of a held message.
func receiptOf(h *held) backend.Receipt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.receipt
}

// unpark makes a message that could not be parked visible again after delay.
func (e *Engine) unpark(ctx context.Context, p poison, delay time.Duration) {
	if p.held != nil {
		e.held.release(ctx, p.held, delay)
		return
	}
	_, _ = e.be.SetVisibility(ctx, p.receipt, delay)
}

// poisonNotice describes a parked message to the instance it belonged to.
// It travels as the JSON Data of a GenericEvent control message, so any
// worker that owns the instance's partition applies it (and history shows
// it before the failed completion); Durable Task workers ignore such
// events.
type poisonNotice struct {
	Queue        string `json:"queue"`
	MessageID    string `json:"messageId"`
	EventType    string `json:"eventType,omitempty"`
	DequeueCount int64  `json:"dequeueCount"`
	Reason       string `json:"reason"`
}

// poisonNoticeKey opens the Data of a poison notice.
const poisonNoticeKey = `{"poisonMessage":`

// poisonNoticeOf returns the notice an event carries, or nil.
func poisonNoticeOf(ev history.Event) *poisonNotice {
	if ev.Type != history.GenericEvent || !strings.HasPrefix(ev.Data, poisonNoticeKey) {
		return nil
	}
	var d struct {
		PoisonMessage *poisonNotice `json:"poisonMessage"`
	}
	if json.Unmarshal([]byte(ev.Data), &d) != nil {
		return nil
	}
	return d.PoisonMessage
}

// failure is how the instance fails: ErrorType PoisonMessage and a message
// naming the queue, the message, its event type and the reason.
func (n *poisonNotice) failure() durable.FailureDetails {
	event := n.EventType
	if event == "" {
		event = "event type unknown"
	}
	return durable.FailureDetails{
		ErrorType: "PoisonMessage",
		ErrorMessage: fmt.Sprintf("message %s (%s) in queue %s, addressed to this instance, was parked as poison after %d dequeues: %s",
			n.MessageID, event, n.Queue, n.DequeueCount, n.Reason),
		IsNonRetriable: true,
	}
}

// sendPoisonNotice asks the message's instance to fail: in memory when this
// worker owns it (with a hidden queue copy), otherwise through its control
// queue.
func (e *Engine) sendPoisonNotice(ctx context.Context, p poison, r backend.Receipt) error {
	queue, id := r.Queue, r.MessageID
	data, err := json.Marshal(struct {
		PoisonMessage poisonNotice `json:"poisonMessage"`
	}{poisonNotice{Queue: queue, MessageID: id, EventType: p.event, DequeueCount: p.dequeueCount, Reason: p.reason}})
	if err != nil {
		return err
	}
	ev := history.NewEvent(history.GenericEvent, now())
	ev.Data = string(data)
	c := controlSend{msg: backend.Message{Event: ev, Target: p.target}}
	if err := e.sendControl(ctx, &c); err != nil {
		return err
	}
	if c.handOver {
		e.deliver(&inbound{msg: c.msg, ack: c.held})
	}
	return nil
}

// planNotice decides what a poison notice does to the instance: a running
// execution it belongs to fails (the notice is applied, and processBatch
// has the executor fail); a start in the same batch goes first; an
// instance that never started fails in its Instances row; anything else
// has nothing left to fail.
func (e *Engine) planNotice(inst *instance, in *inbound, n *poisonNotice, p *batchPlan) {
	exec := in.msg.Target.ExecutionID
	switch {
	case p.start != nil:
		p.later = append(p.later, in)
	case inst.ex != nil && !inst.terminal && (exec == "" || exec == inst.executionID):
		fd := n.failure()
		p.fail = &fd
		p.apply = append(p.apply, in)
	case inst.executionID == "" && !inst.terminal:
		p.failUnstarted = append(p.failUnstarted, in)
	default:
		e.dropped(in, "a poison notice for an execution that is not running: nothing to fail")
		p.drop = append(p.drop, in)
	}
}

// failUnstarted fails an instance whose start was never processed: its
// Pending Instances row becomes Failed with the notice's reason (the start
// message, should it still come, is then discarded). It reports whether
// the notice is done with (false: try again later).
func (e *Engine) failUnstarted(ctx context.Context, inst *instance, in *inbound, n *poisonNotice) bool {
	row, err := e.be.GetInstance(ctx, inst.id, true)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		e.dropped(in, "a poison notice for an instance that does not exist: nothing to fail")
		return true
	case err != nil:
		e.log.Warn("could not read the Instances row to fail an instance; retrying", "instance", inst.id, "err", err)
		return false
	case row.Status != history.StatusPending:
		e.dropped(in, "a poison notice for an instance that is "+row.Status.String()+" and has no history: nothing to fail")
		return true
	}
	fd := n.failure()
	t := now()
	row.Status, row.Output, row.LastUpdatedTime, row.CompletedTime = history.StatusFailed, fd.String(), t, t
	if err := e.commitRow(ctx, inst, row, nil); err != nil {
		e.log.Warn("could not fail a pending instance; retrying", "instance", inst.id, "err", err)
		return false
	}
	e.log.Error("failed a pending instance: one of its messages is poison", "instance", inst.id, "reason", fd.ErrorMessage)
	return true
}

// persistResult makes the result of an activity that ran here durable as a
// message to its instance's control queue, hidden for delay, and then
// deletes the work item it came from, if any: from then on the result waits
// (and is given up on, if need be) on its own, and the activity is never run
// again for want of a place to deliver its result. It reports success;
// otherwise the result is still the caller's.
func (e *Engine) persistResult(ctx context.Context, inst *instance, in *inbound, delay time.Duration) bool {
	id := in.msg.Target.InstanceID
	if _, err := e.be.SendControl(ctx, in.msg, delay); err != nil {
		e.log.Warn("could not store an activity result that has to wait; keeping it in memory",
			"instance", id, "task", in.msg.Event.TaskScheduledID, "err", err)
		return false
	}
	if h := in.ack; h != nil {
		in.ack = nil
		e.removeHeld(h)
	}
	if in.local && inst != nil {
		// It no longer runs here: the anchor that stood for it is redundant
		// once nothing else does.
		delete(inst.local, in.msg.Event.TaskScheduledID)
		e.dropAnchorIfIdle(inst)
	}
	in.local = false
	p := e.be.PartitionOf(id)
	time.AfterFunc(delay+time.Second, func() { e.wakePartition(p) })
	e.log.Info("stored an activity result that cannot be applied yet as a control message",
		"instance", id, "execution", in.msg.Target.ExecutionID, "task", in.msg.Event.TaskScheduledID, "visibleIn", delay)
	return true
}

// instanceOf returns the in-memory instance an event is for, or nil.
func (e *Engine) instanceOf(in *inbound) *instance {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.instances[in.msg.Target.InstanceID]
}
