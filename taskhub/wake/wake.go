// Package wake feeds a task hub's wake queue, so that a serverless
// Functions app scaled to zero is started when work falls due.
//
// On the Consumption and Flex Consumption plans the Functions host scales
// on the queues of the app's triggers; it cannot see the task hub's control
// queues. An app that has the wake function (a queueTrigger function on the
// hub's wake queue, QueueName) gets a worker whenever a wake message becomes
// visible, and the wake invocation makes that worker poll
// (engine.Engine.Wake). Backend decorates the task hub's backend so that
// every control message that no running worker may see is accompanied by a
// wake message:
//
//   - a TimerFired sent with a delay (a durable timer), or an entity signal
//     scheduled for later: a wake with the same delay, visible when it is
//     due;
//   - any other control message (start, raised event, terminate, entity
//     signal, activity result...) whose partition this process does not own
//     right now: a wake visible when the message is. A client without an
//     engine owns no partition.
//
// Wakes are coalesced: at most one immediate wake per second per process
// (a message in the rest of that second gets one trailing wake at the end
// of it), and delayed wakes are sent once per due second. They are best
// effort: a failed wake is logged at warn level and never fails the
// operation it accompanies, whose message is already stored.
//
// Watchdog covers the work a worker holds when it dies without a graceful
// stop (a killed or recycled instance): while the worker is busy it keeps
// one wake of its own hidden until the work it holds would be free again,
// and deletes it when the worker is idle.
package wake

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/routing"
)

// QueueName returns the wake queue of hub: the hub name in lower case
// followed by "-wake" ("testhubname-wake" for TestHubName). The wake
// function's queueTrigger must name it.
func QueueName(hub string) string { return routing.WakeQueue(hub) }

// immediateGap is the least time between two immediate wakes of a process.
const immediateGap = time.Second

// sendTimeout bounds one wake send; it does not end with the operation's
// context, whose message is already stored.
const sendTimeout = 10 * time.Second

// Options configure a Backend.
type Options struct {
	// Owned reports whether this process processes control-queue partition
	// p right now (engine.Engine.OwnsPartition). Nil means none: a client
	// without an engine.
	Owned func(partition int) bool
	// PollOwned, when set, is called for a message sent visible at once to
	// a partition this process owns: the engine hands the messages it
	// delivers itself over in memory and sends them hidden, so such a
	// message comes from a sender that decided before this process owned
	// the partition (a client call racing the engine's start), and only a
	// poll finds it (engine.Engine.PollPartition).
	PollOwned func(partition int)
	// Logger receives the warnings of failed wakes. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock that coalescing reads. Default time.Now.
	Now func() time.Time
}

// Stats count what a Backend did with the wakes it was asked for.
type Stats struct {
	Sent      int64 // wake messages sent
	Coalesced int64 // wakes not sent: one already sent covers them
	Failed    int64 // wake sends that failed (logged)
}

// Backend is a backend.Backend that sends wakes alongside control
// messages (see the package comment). Everything else goes to the wrapped
// backend unchanged.
type Backend struct {
	backend.Backend
	owned     func(int) bool
	pollOwned func(int)
	log       *slog.Logger
	now       func() time.Time

	mu            sync.Mutex
	nextImmediate time.Time          // no immediate wake before then
	sentDue       map[int64]struct{} // due seconds (Unix) of delayed wakes sent
	prunedAt      int64              // the second (Unix) sentDue was last pruned in
	stats         Stats
}

// New returns be decorated with wakes.
func New(be backend.Backend, opts Options) *Backend {
	b := &Backend{Backend: be, owned: opts.Owned, pollOwned: opts.PollOwned, log: opts.Logger, now: opts.Now, sentDue: map[int64]struct{}{}}
	if b.owned == nil {
		b.owned = func(int) bool { return false }
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.now == nil {
		b.now = time.Now
	}
	return b
}

// Stats returns a snapshot of the counters.
func (b *Backend) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// SendControl sends msg as the wrapped backend does, then a wake if no
// running worker may see it (see the package comment). A failed wake does
// not fail the call.
func (b *Backend) SendControl(ctx context.Context, msg backend.Message, delay time.Duration) (backend.Receipt, error) {
	r, err := b.Backend.SendControl(ctx, msg, delay)
	if err != nil {
		return r, err
	}
	delay = max(delay, 0)
	p := b.PartitionOf(msg.Target.InstanceID)
	switch {
	case delay > 0 && dueLater(msg.Event):
		b.wake(ctx, reasonOf(msg.Event.Type), delay)
	case !b.owned(p):
		b.wake(ctx, reasonOf(msg.Event.Type), delay)
	case delay == 0 && b.pollOwned != nil:
		b.pollOwned(p)
	}
	return r, nil
}

// dueLater reports whether ev is work due when its message becomes
// visible: a timer, or an entity signal scheduled for later ("op@{time}").
// Other messages sent hidden to an owned partition are copies of work
// handed over in memory, kept for crash recovery.
func dueLater(ev history.Event) bool {
	if ev.Type == history.TimerFired {
		return true
	}
	_, scheduled := history.ParseEntityScheduledRequestEventName(ev.Name)
	return ev.Type == history.EventRaised && scheduled
}

// reasonOf names the work a control message of type t announces.
func reasonOf(t history.EventType) string {
	switch t {
	case history.TimerFired:
		return backend.WakeTimer
	case history.ExecutionStarted:
		return backend.WakeStart
	}
	return backend.WakeEvent
}

// wake sends a wake visible after delay unless one already sent covers
// it.
func (b *Backend) wake(ctx context.Context, reason string, delay time.Duration) {
	now := b.now()
	b.mu.Lock()
	immediate := false
	var key int64
	if delay == 0 {
		if !now.Before(b.nextImmediate) {
			immediate = true
			b.nextImmediate = now.Add(immediateGap)
		} else {
			// Too soon after the last immediate wake, which may have been
			// taken before this message was sent: one trailing wake at the
			// end of the gap covers every message of the rest of it.
			delay = b.nextImmediate.Sub(now)
		}
	}
	if !immediate {
		key = dueSecond(now.Add(delay))
		if _, ok := b.sentDue[key]; ok {
			b.stats.Coalesced++
			b.mu.Unlock()
			return
		}
		b.sentDue[key] = struct{}{}
		// Forget the seconds gone by, once per second: a new key is never
		// in the past, so a past one only takes room.
		if sec := now.Unix(); sec > b.prunedAt {
			b.prunedAt = sec
			for k := range b.sentDue {
				if k < sec {
					delete(b.sentDue, k)
				}
			}
		}
	}
	b.mu.Unlock()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	_, err := b.Backend.SendWake(sctx, reason, delay)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.stats.Sent++
		return
	}
	// Let the next message try again instead of counting on this wake.
	b.stats.Failed++
	if immediate {
		b.nextImmediate = time.Time{}
	} else {
		delete(b.sentDue, key)
	}
	b.log.Warn("could not send a wake message; an app scaled to zero may not start for this work until other work wakes it",
		"hub", b.HubName(), "reason", reason, "delay", delay, "err", err)
}

// dueSecond is the whole second (Unix) at or after t: queue visibility has
// whole seconds.
func dueSecond(t time.Time) int64 {
	return int64(math.Ceil(float64(t.UnixNano()) / float64(time.Second)))
}
