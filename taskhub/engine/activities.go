package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// activityRunner runs activities with bounded concurrency, from local
// hand-overs (which may queue in memory up to a backlog limit) and from
// polling the shared work-item queue when nothing local waits.
type activityRunner struct {
	e     *Engine
	slots chan struct{} // one per running activity
	wg    sync.WaitGroup
	freed chan struct{} // a slot became free
	wake  chan struct{} // a work item became visible

	mu       sync.Mutex
	admitted int // local activities accepted and not finished (waiting or running)
	waiting  int // local activities waiting for a slot
}

func newActivityRunner(e *Engine) *activityRunner {
	return &activityRunner{e: e, slots: make(chan struct{}, e.opts.MaxConcurrentActivities),
		freed: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

// reserve admits one local activity if the local backlog has room.
func (a *activityRunner) reserve() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.admitted >= a.e.opts.MaxLocalActivityBacklog {
		return false
	}
	a.admitted++
	return true
}

// unreserve gives back an admission that will not run.
func (a *activityRunner) unreserve() {
	a.mu.Lock()
	a.admitted--
	a.mu.Unlock()
}

// freeSlots is how many work items the poller may take now: free slots
// not claimed by local activities waiting for one.
func (a *activityRunner) freeSlots() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return cap(a.slots) - len(a.slots) - a.waiting
}

func (a *activityRunner) releaseSlot() {
	<-a.slots
	select {
	case a.freed <- struct{}{}:
	default:
	}
}

// poke wakes the work-item poller: a slot freed or a message became visible.
func (a *activityRunner) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *activityRunner) wait() { a.wg.Wait() }

// run executes an admitted local activity (h == nil) once a slot is free,
// or a polled work item whose slot the poller already took.
func (a *activityRunner) run(msg backend.Message, h *held) { a.runReceived(msg, h, 0) }

// runReceived is run with the work item's dequeue count, which the result
// carries on.
func (a *activityRunner) runReceived(msg backend.Message, h *held, dequeueCount int64) {
	a.wg.Add(1)
	if h == nil {
		a.mu.Lock()
		a.waiting++
		a.mu.Unlock()
	}
	go func() {
		defer a.wg.Done()
		if h == nil {
			var interrupted bool
			select {
			case a.slots <- struct{}{}:
			case <-a.e.work.Done():
				interrupted = true // Stop ran out of grace: the anchor brings it back
			}
			a.mu.Lock()
			a.waiting--
			a.mu.Unlock()
			defer a.unreserve()
			if interrupted {
				return
			}
		}
		defer a.releaseSlot()
		a.execute(msg, h, dequeueCount)
	}()
}

// pollLoop takes activity messages sent by other processes (or left over
// from a crash) whenever there are free slots.
func (a *activityRunner) pollLoop() {
	e := a.e
	defer e.wg.Done()
	bo := backoff{min: e.opts.MinPollInterval, max: e.opts.MaxPollInterval}
	for e.ctx.Err() == nil {
		free := a.freeSlots()
		if free <= 0 {
			select {
			case <-a.freed:
			case <-e.ctx.Done():
			}
			continue
		}
		msgs, poison, err := e.be.ReceiveWorkItems(e.ctx, min(free, 32), e.opts.MessageVisibility)
		if err != nil && e.ctx.Err() == nil {
			e.log.Warn("work-item queue poll failed", "err", err)
		}
		e.undecodable(poison)
		for _, m := range msgs {
			e.metrics.dequeued(queueWorkItems, &m)
			h := e.held.hold(m.Receipt, workItems)
			if m.DequeueCount > 2*e.opts.MaxDequeueCount {
				// Received that often without ever being finished: its
				// activity most likely takes the worker down (a crash, an
				// out-of-memory kill) every time. Stop the loop; the
				// orchestration gets a failure naming the message.
				in := &inbound{msg: m.Message, ack: h, dequeueCount: m.DequeueCount, body: m.Body, insertedAt: m.InsertedAt}
				e.giveUp(in, fmt.Sprintf("activity %q was started %d times and never finished; it may crash the worker", m.Message.Event.Name, m.DequeueCount-1), true)
				continue
			}
			select {
			case a.slots <- struct{}{}:
				a.runReceived(m.Message, h, m.DequeueCount)
			case <-e.ctx.Done():
				ctx, cancel := context.WithTimeout(context.Background(), e.opts.ReleaseTimeout)
				e.held.release(ctx, h, 0)
				cancel()
			}
		}
		if len(msgs) > 0 || len(poison) > 0 {
			bo.reset()
			continue
		}
		if waitForWork(e.ctx, bo.next(), a.wake) {
			bo.reset()
		}
	}
}

// execute runs one activity and delivers its result: in memory when this
// worker owns the orchestration (the work item is then deleted after the
// orchestration checkpoints the result, or once the result is stored on its
// own), otherwise through the owner's control queue (then the work item is
// deleted at once). Once the activity has run, nothing releases its work
// item while this process lives: an activity is never run again because
// its result could not be delivered.
func (a *activityRunner) execute(msg backend.Message, h *held, dequeueCount int64) {
	e := a.e
	ev := msg.Event
	if ev.Type != history.TaskScheduled || ev.Name == "" {
		e.log.Error("discarding a work item that is not an activity call", "event", ev.Type.String(), "instance", msg.Target.InstanceID)
		if h != nil {
			e.held.remove(context.Background(), h)
		}
		return
	}
	e.count(func(s *Stats) { s.ActivitiesRun++ })
	ctx, span := e.startActivitySpan(e.work, &msg)
	began := begin(e.metrics.activityDuration)
	result, failure := a.call(ctx, msg)
	e.metrics.activity(ev.Name, activityOutcome(e, failure), began)
	if span != nil && e.work.Err() == nil {
		// An activity interrupted by shutdown runs again: its span is left
		// unended, so never exported.
		if failure != nil {
			span.SetStatus(codes.Error, failure.ErrorMessage)
		}
		span.End()
	}
	if e.work.Err() != nil {
		// Stop ran out of grace and cancelled the activity's context: what
		// it returned now says nothing about the activity. It runs again
		// from its work item, or from the instance's anchor.
		e.log.Info("activity interrupted by shutdown; it will run again", "activity", ev.Name, "instance", msg.Target.InstanceID)
		if h != nil {
			ctx, cancel := context.WithTimeout(context.Background(), e.opts.ReleaseTimeout)
			e.held.release(ctx, h, 0)
			cancel()
		}
		return
	}
	var resp history.Event
	if failure != nil {
		resp = history.NewEvent(history.TaskFailed, now())
		resp.Reason = failure.ErrorMessage
		resp.Failure = failure
	} else {
		resp = history.NewEvent(history.TaskCompleted, now())
		resp.Result = result
	}
	resp.TaskScheduledID = ev.EventID
	out := backend.Message{Event: resp, Target: msg.Target, Episode: msg.Episode}
	if e.OwnsPartitionOf(msg.Target.InstanceID) {
		// The work item (if any) is deleted once the result is in history.
		e.deliver(&inbound{msg: out, ack: h, local: h == nil, dequeueCount: dequeueCount})
		return
	}
	ctx, cancel := context.WithTimeout(e.work, time.Minute)
	defer cancel()
	for attempt := 1; ; attempt++ {
		_, err := e.be.SendControl(ctx, out, 0)
		if err == nil {
			break
		}
		if ctx.Err() != nil || e.ctx.Err() != nil {
			// Out of time, or stopping: the work item (or, for a local
			// activity, the instance's anchor) brings the call back.
			e.log.Warn("could not send an activity result; the activity will run again", "activity", ev.Name,
				"instance", msg.Target.InstanceID, "attempts", attempt, "err", err)
			if h != nil {
				rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				e.held.release(rctx, h, time.Second)
				cancel()
			}
			return
		}
		e.log.Warn("could not send an activity result; retrying", "activity", ev.Name,
			"instance", msg.Target.InstanceID, "attempt", attempt, "err", err)
		sleepCtx(ctx, retryDelay(attempt))
	}
	if h != nil {
		e.held.remove(ctx, h)
	}
}

// call runs the activity code, turning errors, panics and unknown names
// into failure details.
func (a *activityRunner) call(ctx context.Context, msg backend.Message) (result string, failure *durable.FailureDetails) {
	ev := msg.Event
	fn, ok := replay.LookupActivity(a.e.opts.Registry, ev.Name)
	if !ok {
		err := &NotRegisteredError{Kind: "activity", Name: ev.Name}
		return "", &durable.FailureDetails{ErrorType: err.ErrorType(), ErrorMessage: err.Error(), IsNonRetriable: true}
	}
	defer func() {
		if r := recover(); r != nil {
			failure = &durable.FailureDetails{ErrorType: "panic", ErrorMessage: fmt.Sprintf("activity %q panicked: %v", ev.Name, r), StackTrace: string(debug.Stack())}
		}
	}()
	deadline, hasDeadline, refuse := replay.ActivityDeadline(ev, msg.Target.InstanceID, now())
	if refuse != nil {
		return "", refuse
	}
	// The context (e.work, with the activity's span) ends when Stop runs
	// out of grace (Options.ReleaseTimeout after that, Stop returns whether
	// or not the activity has), and at the call's deadline.
	if hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	ctx = replay.WithActivityInfo(ctx, replay.ActivityInfo{
		Name: ev.Name, InstanceID: msg.Target.InstanceID, ExecutionID: msg.Target.ExecutionID, TaskID: ev.EventID,
		Deadline: deadline,
	})
	out, err := fn(ctx, ev.Input)
	if err != nil {
		if hasDeadline && errors.Is(ctx.Err(), context.DeadlineExceeded) && a.e.work.Err() == nil {
			return "", replay.CancelledAtDeadline(ev, deadline, replay.FailureFromError(err))
		}
		return "", replay.FailureFromError(err)
	}
	return out, nil
}
