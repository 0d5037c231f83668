package engine

import (
	"container/list"
	"sync/atomic"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// inbound is one event waiting to be applied to an instance.
type inbound struct {
	msg backend.Message
	// ack is the queue copy to delete once the event is durable in history
	// (or to release if it cannot be processed); nil when there is none.
	ack *held
	// dequeueCount is the queue copy's dequeue count when received; for an
	// activity result, that of its work item.
	dequeueCount int64
	fromQueue    bool
	// body and insertedAt describe the queue copy as received, to park it.
	body       string
	insertedAt time.Time
	// row is set on a start handed over by a client in this process: the
	// Instances row the client wrote, with its ETag.
	row *backend.InstanceState
	// local marks the result of an activity this process ran after handing
	// it over in memory (no work-item message exists for it).
	local bool
	// rowETag delivers the Instances-row ETag of a handed-over start whose
	// row the client is still writing (closed empty if the write failed).
	rowETag <-chan string
	// fresh marks a start whose client created the Instances row: no
	// earlier instance with the ID exists.
	fresh bool
	// recorded marks a start that history already records: that of an
	// unrun execution (see instance.unrun), which plan supplies itself. It
	// has no queue copy.
	recorded bool
	// flush marks an internal request to write a deferred Instances status.
	flush bool
	// seal marks an internal request to commit the instance's coalescing
	// window, whose latency budget is spent.
	seal bool
	// deferrals counts how often the event was put back as out of order.
	deferrals int
	// waitReason says why plan put the event back, when waiting may be in
	// vain (no such instance, a task it never scheduled): after
	// MaxDequeueCount tries the event is parked with this reason. Empty for
	// events that are merely early.
	waitReason string
	// waitFails says that giving up on the event fails its instance.
	waitFails bool
	// reloaded: the event was tried once more on a fresh load of history
	// before giving up on it.
	reloaded bool
	// retries counts in-memory retries of an activity result (see retryLater).
	retries int64
}

// activityResult reports whether the event is the result of an activity run
// by this process: it must never be given back in a way that runs the
// activity again.
func (in *inbound) activityResult() bool {
	return in.local || (in.ack != nil && in.ack.partition == workItems)
}

// internal reports whether the event is the engine's own request (flush,
// seal) rather than a message.
func (in *inbound) internal() bool { return in.flush || in.seal }

// wait records why the event is put back and whether waiting may be in vain.
func (in *inbound) wait(reason string, failsInstance bool) {
	in.waitReason, in.waitFails = reason, failsInstance
}

// instance is the in-memory state of one orchestration instance: its inbox,
// and, while cached, the parked executor and what we know of its storage.
type instance struct {
	id        string
	partition int

	// guarded by Engine.mu
	inbox  []*inbound
	active bool // a goroutine is processing the inbox
	elem   *list.Element

	// owned by the goroutine processing the instance
	loaded       bool
	ex           replay.Executor
	start        *history.Event // ExecutionStarted of the current execution
	executionID  string
	historyLen   int
	lastEvent    time.Time // timestamp of the last event in history
	etag         string
	terminal     bool
	row          *backend.InstanceState // last known Instances row, nil = unknown
	rowDirty     bool                   // the row's status lags behind history
	rowPending   <-chan string          // the client is still writing the row (see HandOffStart)
	flushPending bool
	rowFailures  int     // consecutive failed row writes, for backoff
	rowHeld      []*held // consumed messages kept until the final row is stored
	episodes     int
	failures     int            // consecutive abandoned episodes, for backoff
	reload       bool           // drop the cache before the next batch (an event did not fit it)
	completion   *history.Event // the recorded completion of a finished execution
	// unrun: the current execution's history is its ExecutionStarted alone.
	// A ContinueAsNew to a version this worker rejects leaves it so (see
	// deferContinuation): no code of it has run, and its first episode
	// runs on a worker whose version matches.
	unrun        bool
	customStatus string // as last set by the code
	// events identifies the inbound events of the current execution that
	// history records and that carry no task ID (raised events, terminate,
	// suspend, resume), so that a redelivered copy is recognised.
	events map[eventKey]bool

	// anchor is a control message of this instance that we hold (hidden and
	// renewed) while activities run in this process without work-item
	// messages: if the process dies, the anchor reappears and whoever gets
	// it re-runs the activities history shows as outstanding.
	anchor *held
	// outstanding are the recorded activity calls still awaiting a result.
	outstanding map[int32]history.Event
	// traced are the scheduling events (activity and sub-orchestration
	// calls, timers) of a traced execution whose spans are still open.
	traced map[int32]history.Event
	// tracedCalls maps the request IDs of the open entity calls among
	// traced to their EventSent's event ID: the response names the request.
	tracedCalls map[string]int32
	// tracedEarly are raised events that may answer entity calls history
	// has not recorded yet (see keepEarlyResponse), by name.
	tracedEarly map[string]history.Event
	// local are the outstanding calls running in this process.
	local map[int32]bool
	// window is the coalescing window: episodes decided but not committed
	// yet, whose activities run here (see Engine.openWindow).
	window *checkpoint
	// committing is the checkpoint being committed, for salvage.
	committing *checkpoint
	// timers are the receipts of timer messages this process sent for the
	// current execution and that have not fired yet, by timer ID, so that a
	// timer the code cancels (or leaves behind when it completes) is
	// deleted from the queue instead of waiting there until it is due.
	timers map[int32]backend.Receipt
	// entityLoaded is when this worker loaded the entity's state (zero:
	// not an entity, or not loaded); entityDone are the applied requests
	// whose queue copies are confirmed deleted. See processEntity.
	entityLoaded time.Time
	entityDone   entityConfirmations
	// status is the Instances row that committed history implies, for
	// status queries answered from memory; nil = ask storage.
	status atomic.Pointer[backend.InstanceState]
}

// closeExecutor unwinds the cached coroutine, if any.
func (inst *instance) closeExecutor() {
	if inst.ex != nil {
		inst.ex.Close()
		inst.ex = nil
	}
}

// forget drops everything cached about storage, forcing a reload. The
// anchor and the set of activities running here stay: they describe this
// process, not storage.
func (inst *instance) forget() {
	inst.closeExecutor()
	inst.loaded, inst.start, inst.executionID = false, nil, ""
	inst.historyLen, inst.etag, inst.terminal = 0, "", false
	inst.lastEvent, inst.rowFailures = time.Time{}, 0
	inst.events = nil
	inst.row, inst.rowDirty, inst.completion = nil, false, nil
	inst.unrun = false
	inst.entityLoaded = time.Time{}
	inst.outstanding, inst.traced, inst.tracedCalls, inst.tracedEarly = nil, nil, nil, nil
	inst.window, inst.committing = nil, nil
	inst.status.Store(nil)
}

// markLocal records that activity id runs in this process.
func (inst *instance) markLocal(id int32) {
	if inst.local == nil {
		inst.local = map[int32]bool{}
	}
	inst.local[id] = true
}

// lru orders idle cached instances by last use.
type lru struct{ l *list.List }

func newLRU() *lru { return &lru{l: list.New()} }

func (c *lru) touch(inst *instance) {
	if inst.elem != nil {
		c.l.MoveToBack(inst.elem)
		return
	}
	inst.elem = c.l.PushBack(inst)
}

func (c *lru) remove(inst *instance) {
	if inst.elem != nil {
		c.l.Remove(inst.elem)
		inst.elem = nil
	}
}

func (c *lru) len() int { return c.l.Len() }

func (c *lru) oldest() *instance {
	if f := c.l.Front(); f != nil {
		return f.Value.(*instance)
	}
	return nil
}

// startName returns the orchestrator name of the current execution.
func (inst *instance) startName() string {
	if inst.start != nil {
		return inst.start.Name
	}
	return ""
}

// fireAndForget reports whether start is a start whose parent awaits no
// completion (Durable Task's FireAndForget tag).
func fireAndForget(start *history.Event) bool {
	_, ok := start.Tags[history.TagFireAndForget]
	return ok
}

// parent returns the parent link of a sub-orchestration, or nil.
func (inst *instance) parent() *history.ParentInstance {
	if inst.start != nil {
		return inst.start.Parent
	}
	return nil
}

// eventKey identifies an inbound event by what its sender stamped on it:
// two distinct sends never share type, name, timestamp (100 ns) and data.
type eventKey struct {
	typ  history.EventType
	name string
	at   int64
	data string
}

// dedupable reports whether ev is an inbound event without a task ID.
func dedupable(ev history.Event) bool {
	switch ev.Type {
	case history.EventRaised, history.ExecutionTerminated, history.ExecutionSuspended, history.ExecutionResumed:
		return true
	case history.GenericEvent:
		return ev.Data != anchorData
	}
	return false
}

func keyOf(ev history.Event) eventKey {
	return eventKey{typ: ev.Type, name: ev.Name, at: history.StorageTime(ev.Timestamp).UnixNano(), data: ev.Input + "\x00" + ev.Data + "\x00" + ev.Reason}
}

// record notes an event of the current execution's history.
func (inst *instance) record(ev history.Event) {
	if !dedupable(ev) {
		return
	}
	if inst.events == nil {
		inst.events = map[eventKey]bool{}
	}
	inst.events[keyOf(ev)] = true
}

// recorded reports whether history already holds ev.
func (inst *instance) recorded(ev history.Event) bool {
	return dedupable(ev) && inst.events[keyOf(ev)]
}
