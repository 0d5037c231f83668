// Package backend defines the storage contract that the task hub engine runs
// on: queues of Durable Task messages, the fenced history store and the
// instance status store. The Azure Storage implementation lives in package
// azurestorage; tests may wrap it to inject faults.
package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Sentinel errors returned by every Backend implementation. Implementations
// wrap them with context; callers test with errors.Is.
var (
	// ErrNotFound: the instance, message or row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: an optimistic-concurrency check failed (ETag mismatch,
	// sentinel already created, pop receipt no longer valid).
	ErrConflict = errors.New("conflict")
	// ErrExists: an insert found the row already present.
	ErrExists = errors.New("already exists")
	// ErrUnavailable: the task hub cannot be used yet (storage is not
	// reachable, or the engine is still starting). Worth retrying.
	ErrUnavailable = errors.New("task hub unavailable")
	// ErrHubInUse: another app processes the task hub (it holds the hub's
	// app lease or live partition leases). Not worth retrying at once.
	ErrHubInUse = errors.New("task hub in use by another app")
	// ErrLayoutMismatch: the stored task hub does not match the
	// configuration (its partition count differs).
	ErrLayoutMismatch = errors.New("task hub layout does not match the configuration")
)

// UnavailableError says why the task hub cannot be used yet and when to ask
// again. It matches ErrUnavailable and its Cause with errors.Is.
type UnavailableError struct {
	Hub        string
	Reason     string        // what is being waited for, e.g. "storage is not reachable"
	RetryAfter time.Duration // when the next attempt is due; 0 = unknown
	Cause      error         // the last failure, if any
}

// Error implements error.
func (e *UnavailableError) Error() string {
	msg := "task hub " + e.Hub + " is not ready: " + e.Reason
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns ErrUnavailable and the cause.
func (e *UnavailableError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrUnavailable}
	}
	return []error{ErrUnavailable, e.Cause}
}

// HubInUseError names the app (or worker) that holds a task hub this app
// was refused. It matches ErrHubInUse with errors.Is.
type HubInUseError struct {
	Hub string
	// Lease is what is held, e.g. "the app lease on blob container xyz-applease".
	Lease string
	// Holder names the holder as far as storage tells: an app name, a lease
	// ID, a worker ID.
	Holder string
	// App is this app's name ("" = unnamed).
	App string
}

// Error implements error.
func (e *HubInUseError) Error() string {
	return fmt.Sprintf("task hub %s is in use by another app: %s is held by %s, and this app is %s; "+
		"only one app may process a task hub (give this app its own hub, or the same app name as the holder)",
		e.Hub, e.Lease, e.Holder, appLabel(e.App))
}

// Unwrap returns ErrHubInUse.
func (e *HubInUseError) Unwrap() error { return ErrHubInUse }

func appLabel(app string) string {
	if app == "" {
		return "unnamed (app name \"\")"
	}
	return fmt.Sprintf("%q", app)
}

// Message is one Durable Task message: an event addressed to an orchestration
// instance (control queue) or to an activity worker (work-item queue).
type Message struct {
	// Event is the payload: ExecutionStarted, TaskScheduled, TaskCompleted, ...
	Event history.Event
	// Target is the orchestration the message belongs to. ExecutionID may be
	// empty for management messages (raise event, terminate) meaning "current".
	Target history.OrchestrationInstance
	// Sender is the orchestration that sent the message; empty for clients.
	Sender history.OrchestrationInstance
	// Episode is the sender's episode number, when known (0 = unknown).
	Episode int
	// ActivityID is a GUID identifying the message for tracing.
	ActivityID string
	// SequenceNumber orders messages from one sender; a tie-breaker only.
	SequenceNumber int64
	// OrchestrationTags are the orchestration's tags (work items only).
	OrchestrationTags map[string]string
}

// Wake reasons: what kind of work a wake message announces
// (WakeMessage.Reason).
const (
	WakeTimer = "timer" // a timer falls due
	WakeStart = "start" // an orchestration (or sub-orchestration) start
	WakeEvent = "event" // any other control message: event, terminate, entity signal, result...
	// WakeWatchdog: a worker holding work may have died; its messages and
	// partitions are free again (see wake.Watchdog).
	WakeWatchdog = "watchdog"
)

// WakeMessage is the text of a wake message, as JSON, e.g.
// {"hub":"TestHubName","dueTime":"2026-01-02T03:04:05Z","reason":"timer"}.
// It is informational: whoever receives a wake only polls the task hub.
type WakeMessage struct {
	Hub     string    `json:"hub"`
	DueTime time.Time `json:"dueTime"`
	Reason  string    `json:"reason"`
}

// Receipt identifies a stored queue message so that it can be deleted or its
// visibility changed. PopReceipt changes on every visibility update.
type Receipt struct {
	Queue      string
	MessageID  string
	PopReceipt string
	// NextVisible is when the message becomes visible to other consumers.
	NextVisible time.Time
}

// Received is a message taken from a queue.
type Received struct {
	Message      Message
	Receipt      Receipt
	DequeueCount int64
	InsertedAt   time.Time
	// Body is the message text as stored (for a large message, the wrapper
	// naming its blob), so that the message can be parked as it was.
	Body string
}

// Undecodable is a queue message that could not be decoded (not a Durable
// Task message, an unknown event type, a large message whose blob is
// missing). The backend leaves it in its queue, hidden for the visibility of
// the receive like any other message: the caller decides whether to retry
// it later (SetVisibility) or to give up and park it (ParkPoison).
type Undecodable struct {
	Receipt      Receipt
	DequeueCount int64
	InsertedAt   time.Time
	// Body is the message text as stored.
	Body string
	// Target is the instance the message names, as far as it could be
	// recovered from the undecodable text (empty when nothing could).
	Target history.OrchestrationInstance
	// EventType is the event type the message names, "" when unknown.
	EventType string
	// Reason says what is wrong with the message.
	Reason error
}

// Poison is a queue message to park (see Backend.ParkPoison).
type Poison struct {
	Receipt Receipt
	// Body is the message text as received (Received.Body, Undecodable.Body).
	Body         string
	DequeueCount int64
	InsertedAt   time.Time // zero = unknown
	Reason       string
}

// History is the committed history of an instance's current execution.
type History struct {
	InstanceID  string
	ExecutionID string
	Events      []history.Event
	// ETag is the sentinel row's ETag; empty when the instance has no history.
	ETag string
}

// InstanceState is the Instances-table row of an instance.
type InstanceState struct {
	InstanceID         string
	Name               string
	Version            string
	ExecutionID        string
	Input              string // JSON, "" = null
	Output             string // JSON, failure text or termination reason, "" = null
	CustomStatus       string // JSON, "" = null
	CreatedTime        time.Time
	LastUpdatedTime    time.Time
	CompletedTime      time.Time // zero = not completed
	Status             history.OrchestrationStatus
	ScheduledStartTime time.Time // zero = none
	Generation         int32
	Tags               map[string]string
	// HistoryPosition is the number of history rows of the execution that
	// the row was computed from (0 = unknown, e.g. a client's Pending row).
	// It fences row updates: a row is never replaced by one computed from
	// less history.
	HistoryPosition int
	// ETag of the row as read or last written; used for fenced updates.
	ETag string
}

// InstanceQuery filters instances for listing.
type InstanceQuery struct {
	Statuses         []history.OrchestrationStatus // empty = all
	CreatedFrom      time.Time                     // zero = unbounded
	CreatedTo        time.Time                     // zero = unbounded
	InstanceIDPrefix string
	PageSize         int32  // 0 = backend default
	Continuation     string // from a previous page
	WithInput        bool
	// ExcludeEntities leaves out durable entities (instance IDs starting
	// with '@'), as Durable Task's OrchestrationQuery.ExcludeEntities does.
	ExcludeEntities bool
}

// PartitionLease is one row of the partition-ownership table.
type PartitionLease struct {
	Partition    int
	QueueName    string
	CurrentOwner string
	NextOwner    string
	OwnedSince   time.Time
	LastRenewal  time.Time
	ExpiresAt    time.Time
	IsDraining   bool
	ETag         string
}

// VisibleWakes says when, from now, to poll for a message sent with delay
// whose receipt is r, so that a poller finds it as soon as it is visible.
// Queues report NextVisible in whole seconds, truncated, so the message
// shows at some time in the second after it: the first wake comes at
// NextVisible (a poller whose backoff restarts small then finds the
// message soon), the second when it is surely visible (for a poller whose
// least interval is long). Without NextVisible both derive from delay,
// which visibility rounds up to whole seconds.
func VisibleWakes(r Receipt, delay time.Duration) [2]time.Duration {
	const margin = 20 * time.Millisecond
	if r.NextVisible.IsZero() {
		d := delay.Truncate(time.Second)
		if d < delay {
			d += time.Second
		}
		return [2]time.Duration{d + margin, d + time.Second + margin}
	}
	at := time.Until(r.NextVisible)
	return [2]time.Duration{at + margin, at + time.Second + margin}
}

// Backend is the storage contract of the task hub. All methods are safe for
// concurrent use.
type Backend interface {
	// HubName returns the task hub name as configured.
	HubName() string
	// PartitionCount returns the number of control queues.
	PartitionCount() int
	// PartitionOf returns the control-queue index that instanceID routes to.
	PartitionOf(instanceID string) int

	// CreateTaskHub creates every queue and table of the hub if missing and
	// seeds the partition table. It is idempotent. It fails with an error
	// wrapping ErrLayoutMismatch, and creates nothing, when the hub exists
	// with another partition count.
	CreateTaskHub(ctx context.Context) error
	// DeleteTaskHub removes every queue, table and container of the hub;
	// the hub's other methods then fail with an error wrapping ErrNotFound.
	// Deleting a hub that does not exist is not an error.
	DeleteTaskHub(ctx context.Context) error

	// SendControl puts msg on the control queue of msg.Target.InstanceID.
	// The message stays invisible for delay. Delays and visibilities are
	// whole seconds (rounded up), at most 7 days. The message gets a new
	// ActivityID and SequenceNumber; the receipt lets the sender delete or
	// re-hide it without receiving it.
	SendControl(ctx context.Context, msg Message, delay time.Duration) (Receipt, error)
	// ReceiveControl takes up to max (at most 32) visible messages from
	// control queue partition, hiding them for visibility (at least 1 s),
	// each with a new pop receipt. Messages that cannot be decoded
	// are hidden too and returned as undecodable, with their dequeue count;
	// they stay in the queue until the caller deletes or parks them.
	ReceiveControl(ctx context.Context, partition, max int, visibility time.Duration) ([]Received, []Undecodable, error)
	// SendWake puts a wake message (a WakeMessage whose DueTime is now
	// plus delay) on the hub's wake queue, "{lowercase hub}-wake", invisible
	// for delay (whole seconds, rounded up, at most 7 days). A queueTrigger
	// function on that queue makes the Functions host start a worker when
	// the message becomes visible; nothing in the task hub reads the queue.
	// The receipt lets the sender re-hide (SetVisibility) or delete
	// (DeleteMessage) the wake without receiving it. It fails with an error
	// wrapping ErrNotFound when the hub does not exist.
	SendWake(ctx context.Context, reason string, delay time.Duration) (Receipt, error)
	// SendWorkItem puts an activity message on the work-item queue.
	SendWorkItem(ctx context.Context, msg Message, delay time.Duration) (Receipt, error)
	// ReceiveWorkItems takes up to max visible activity messages, like
	// ReceiveControl.
	ReceiveWorkItems(ctx context.Context, max int, visibility time.Duration) ([]Received, []Undecodable, error)
	// ControlQueueLength returns the approximate number of messages in
	// control queue partition, hidden ones (being processed, or delayed
	// such as timers) included, as Azure Queues' approximate message count
	// reports it: it may lag behind recent sends and deletes. One storage
	// call; metrics read it on export only.
	ControlQueueLength(ctx context.Context, partition int) (int64, error)
	// WorkItemQueueLength is ControlQueueLength for the work-item queue.
	WorkItemQueueLength(ctx context.Context) (int64, error)
	// DeleteMessage removes a message. A message already gone is not an
	// error; a stale receipt (the message was received or re-hidden since)
	// is ErrConflict, and the message stays.
	DeleteMessage(ctx context.Context, r Receipt) error
	// SetVisibility hides the message for d from now (0 makes it visible at
	// once) and returns the new receipt. ErrNotFound or ErrConflict when the
	// message is gone or the receipt is stale.
	SetVisibility(ctx context.Context, r Receipt, d time.Duration) (Receipt, error)
	// ParkPoison records a message that cannot be processed, with why, and
	// then deletes it from its queue, so that nothing is lost and the queue
	// keeps moving. Parking a message again is not an error.
	ParkPoison(ctx context.Context, p Poison) error

	// LoadHistory reads the current execution's history of an instance. An
	// instance without history returns an empty History and no error.
	LoadHistory(ctx context.Context, instanceID string) (History, error)
	// AppendHistory writes events at positions from, from+1, ... of
	// execution executionID, fenced by etag: etag "" means "no history may
	// exist yet" (sentinel insert). It returns the new sentinel ETag, or an
	// error wrapping ErrConflict when another writer got there first. When
	// from is 0 and history exists for another execution, the rows are
	// overwritten (ContinueAsNew, restart) as long as etag matches.
	AppendHistory(ctx context.Context, instanceID, executionID string, from int, events []history.Event, etag string) (string, error)

	// GetInstance reads an instance's status row (ErrNotFound if none).
	GetInstance(ctx context.Context, instanceID string, withInput bool) (InstanceState, error)
	// CreateInstance inserts a status row; ErrExists if present. Returns the ETag.
	CreateInstance(ctx context.Context, st InstanceState) (string, error)
	// UpdateInstance replaces a status row if its ETag still equals st.ETag
	// ("" = unconditional upsert); ErrConflict otherwise (a row that is gone
	// matches ErrNotFound too). Returns the new ETag.
	// Columns the backend does not model are dropped: this is the write of a
	// client start, which owns the whole row.
	UpdateInstance(ctx context.Context, st InstanceState) (string, error)
	// MergeInstance updates a status row if its ETag still equals st.ETag
	// ("" = unconditional upsert); ErrConflict otherwise, as UpdateInstance.
	// Returns the new ETag. Unlike UpdateInstance it keeps the columns the
	// backend does not model (written by other tools); every modelled column
	// is set from st, empty values included, except that a zero time
	// (CreatedTime, LastUpdatedTime, CompletedTime, ScheduledStartTime) may
	// leave an older one stored (a Table merge cannot store a null date).
	// CompletedTime is only meaningful for a finished status: reads return
	// it zero while the status is not final.
	MergeInstance(ctx context.Context, st InstanceState) (string, error)
	// QueryInstances lists instance rows matching q, one page at a time (at
	// most PageSize rows, possibly fewer, even none, before the last page);
	// the returned continuation is "" on the last page. A continuation the
	// backend did not hand out is an error.
	QueryInstances(ctx context.Context, q InstanceQuery) ([]InstanceState, string, error)
	// PurgeInstance deletes an instance's status row and history rows;
	// ErrNotFound when it has neither.
	PurgeInstance(ctx context.Context, instanceID string) error

	// ReadPartitions returns every row of the partition-ownership table.
	ReadPartitions(ctx context.Context) ([]PartitionLease, error)
	// WritePartition replaces one ownership row if its ETag still matches,
	// returning the updated lease with its new ETag (ErrConflict otherwise).
	WritePartition(ctx context.Context, lease PartitionLease) (PartitionLease, error)

	// AcquireAppLease takes the task hub for this app before any partition
	// work, as Durable Task's app lease does: workers of the same app share
	// the lease, and a lease held by another app refuses it with an error
	// wrapping ErrHubInUse (a *HubInUseError naming the holder). Other
	// errors are storage failures worth retrying.
	AcquireAppLease(ctx context.Context) error
	// RenewAppLease extends the app lease taken by AcquireAppLease. An error
	// wrapping ErrHubInUse means it was lost to another app; other errors
	// are storage failures (the lease may still be ours).
	RenewAppLease(ctx context.Context) error
	// CheckPartitionLeases reports, with an error wrapping ErrHubInUse,
	// live partition leases held by workers of another app (as far as
	// storage tells): this app must not process the hub until they are
	// released or expire.
	CheckPartitionLeases(ctx context.Context) error
}
