// Package history defines the Durable Task history events that make up an
// orchestration's durable record, with the exact type names and numbers that
// the Durable Task Framework uses on the wire and in storage.
//
// The package is pure data: it knows nothing about storage or replay.
package history

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// EventType is the Durable Task history event type. The numeric values are
// wire-significant: they are written as numbers in queue messages and as
// names in tables.
type EventType int

// The Durable Task event types, in their wire order.
const (
	ExecutionStarted                  EventType = 0
	ExecutionCompleted                EventType = 1
	ExecutionFailed                   EventType = 2
	ExecutionTerminated               EventType = 3
	TaskScheduled                     EventType = 4
	TaskCompleted                     EventType = 5
	TaskFailed                        EventType = 6
	SubOrchestrationInstanceCreated   EventType = 7
	SubOrchestrationInstanceCompleted EventType = 8
	SubOrchestrationInstanceFailed    EventType = 9
	TimerCreated                      EventType = 10
	TimerFired                        EventType = 11
	OrchestratorStarted               EventType = 12
	OrchestratorCompleted             EventType = 13
	EventSent                         EventType = 14
	EventRaised                       EventType = 15
	ContinueAsNew                     EventType = 16
	GenericEvent                      EventType = 17
	HistoryState                      EventType = 18
	ExecutionSuspended                EventType = 19
	ExecutionResumed                  EventType = 20
	ExecutionRewound                  EventType = 21
)

var eventTypeNames = [...]string{
	"ExecutionStarted", "ExecutionCompleted", "ExecutionFailed", "ExecutionTerminated",
	"TaskScheduled", "TaskCompleted", "TaskFailed", "SubOrchestrationInstanceCreated",
	"SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed", "TimerCreated",
	"TimerFired", "OrchestratorStarted", "OrchestratorCompleted", "EventSent", "EventRaised",
	"ContinueAsNew", "GenericEvent", "HistoryState", "ExecutionSuspended", "ExecutionResumed",
	"ExecutionRewound",
}

// eventClassNames are the Durable Task .NET class names (without namespace)
// used in the `$type` of queue messages.
var eventClassNames = [...]string{
	"ExecutionStartedEvent", "ExecutionCompletedEvent", "ExecutionFailedEvent", "ExecutionTerminatedEvent",
	"TaskScheduledEvent", "TaskCompletedEvent", "TaskFailedEvent", "SubOrchestrationInstanceCreatedEvent",
	"SubOrchestrationInstanceCompletedEvent", "SubOrchestrationInstanceFailedEvent", "TimerCreatedEvent",
	"TimerFiredEvent", "OrchestratorStartedEvent", "OrchestratorCompletedEvent", "EventSentEvent", "EventRaisedEvent",
	"ContinueAsNewEvent", "GenericEvent", "HistoryStateEvent", "ExecutionSuspendedEvent", "ExecutionResumedEvent",
	"ExecutionRewoundEvent",
}

// Valid reports whether t is one of the defined event types.
func (t EventType) Valid() bool { return t >= 0 && int(t) < len(eventTypeNames) }

// String returns the Durable Task name of the event type, e.g. "TaskScheduled".
func (t EventType) String() string {
	if !t.Valid() {
		return fmt.Sprintf("EventType(%d)", int(t))
	}
	return eventTypeNames[t]
}

// ClassName returns the Durable Task .NET class name, e.g. "TaskScheduledEvent".
func (t EventType) ClassName() string {
	if !t.Valid() {
		return ""
	}
	return eventClassNames[t]
}

// ParseEventType maps a Durable Task event type name to its value.
func ParseEventType(name string) (EventType, error) {
	for i, n := range eventTypeNames {
		if n == name {
			return EventType(i), nil
		}
	}
	return 0, fmt.Errorf("history: unknown event type name %q", name)
}

// EventTypeFromClassName maps a .NET class name (without namespace) to its event type.
func EventTypeFromClassName(name string) (EventType, error) {
	for i, n := range eventClassNames {
		if n == name {
			return EventType(i), nil
		}
	}
	return 0, fmt.Errorf("history: unknown event class %q", name)
}

// OrchestrationStatus is the runtime status of an orchestration instance,
// with the Durable Task numbering.
type OrchestrationStatus int

// The Durable Task runtime statuses.
const (
	StatusRunning        OrchestrationStatus = 0
	StatusCompleted      OrchestrationStatus = 1
	StatusContinuedAsNew OrchestrationStatus = 2
	StatusFailed         OrchestrationStatus = 3
	StatusCanceled       OrchestrationStatus = 4
	StatusTerminated     OrchestrationStatus = 5
	StatusPending        OrchestrationStatus = 6
	StatusSuspended      OrchestrationStatus = 7
)

var statusNames = [...]string{"Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending", "Suspended"}

// String returns the Durable Task name of the status, e.g. "Completed".
func (s OrchestrationStatus) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("OrchestrationStatus(%d)", int(s))
	}
	return statusNames[s]
}

// ParseStatus maps a runtime status name (case-insensitive) to its value.
func ParseStatus(name string) (OrchestrationStatus, error) {
	for i, n := range statusNames {
		if equalFoldASCII(n, name) {
			return OrchestrationStatus(i), nil
		}
	}
	return 0, fmt.Errorf("history: unknown runtime status %q", name)
}

// IsTerminal reports whether an instance in this status will not run again
// without outside intervention (restart, rewind).
func (s OrchestrationStatus) IsTerminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCanceled, StatusTerminated:
		return true
	}
	return false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// EndsExecution reports whether an event of this type closes an execution
// (ExecutionCompleted, or ContinueAsNew which starts the next one).
func (t EventType) EndsExecution() bool { return t == ExecutionCompleted || t == ContinueAsNew }

// NewID returns a random 32-hex-digit ID, the format Durable Task uses for
// instance and execution IDs.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// OrchestrationInstance identifies one execution of an orchestration instance.
type OrchestrationInstance struct {
	InstanceID  string
	ExecutionID string
}

// ParentInstance links a sub-orchestration to the orchestration that started it.
type ParentInstance struct {
	Name           string
	Version        string
	TaskScheduleID int32 // Durable Task spells this TaskScheduleId
	Instance       OrchestrationInstance
}

// FailureDetails describes why an activity, sub-orchestration or
// orchestration failed, with the Durable Task field set.
type FailureDetails struct {
	ErrorType      string
	ErrorMessage   string
	StackTrace     string
	InnerFailure   *FailureDetails
	IsNonRetriable bool
	Properties     map[string]any
}

// String renders the failure the way Durable Task stores it in the
// Instances table Output column: "ErrorType: ErrorMessage".
func (f *FailureDetails) String() string {
	if f == nil {
		return ""
	}
	return f.ErrorType + ": " + f.ErrorMessage
}

// Event is one Durable Task history event. It is a union: which fields are
// meaningful depends on Type (see the Durable Task event classes). Payload
// fields (Input, Result, Data) hold JSON text; the empty string means null.
type Event struct {
	Type      EventType
	EventID   int32 // the action's sequence number for scheduling events, else -1
	IsPlayed  bool
	Timestamp time.Time

	// ExecutionStarted
	Instance           OrchestrationInstance
	Parent             *ParentInstance
	Tags               map[string]string
	ScheduledStartTime *time.Time
	Generation         *int32
	// GenerateNewTrace asks for a new trace for the execution (Durable
	// Task's ContinueAsNewTraceBehavior.StartNewTrace); kept as read.
	GenerateNewTrace bool

	// ParentTraceContext is the W3C trace context the event carries
	// (ExecutionStarted, TaskScheduled, EventRaised, ExecutionRewound),
	// nil when none. It is data to this package: who makes spans of it is
	// the engine's business.
	ParentTraceContext *TraceContext
	// ClientSpanID is the span ID (16 hex digits) of the client span of a
	// sub-orchestration call (SubOrchestrationInstanceCreated); the child's
	// ExecutionStarted names it as its parent.
	ClientSpanID string

	// Shared by several types.
	Name string // orchestration, activity, sub-orchestration or event name
	// Version: for a ContinueAsNew action, the version of the execution it
	// starts (Durable Task's OrchestrationCompleteOrchestratorAction.NewVersion,
	// resolved: the current version when none is named). Durable Task's
	// ContinueAsNewEvent has no such member, so storage does not keep it;
	// the new ExecutionStarted.Version does.
	Version    string
	Input      string // JSON input; for ExecutionTerminated the reason
	Result     string // JSON result (TaskCompleted, SubOrchestrationInstanceCompleted, ExecutionCompleted, ContinueAsNew)
	InstanceID string // SubOrchestrationInstanceCreated / EventSent / ExecutionRewound target

	// ExecutionCompleted / ContinueAsNew
	Status OrchestrationStatus

	// Responses
	TaskScheduledID int32 // TaskCompleted, TaskFailed, SubOrchestrationInstance{Completed,Failed}
	Reason          string
	Details         string
	Failure         *FailureDetails

	// Timers
	FireAt  time.Time
	TimerID int32

	// GenericEvent
	Data string
}

// TagFireAndForget is the tag of an orchestration started by a parent that
// awaits no completion (Durable Task's OrchestrationTags.FireAndForget): no
// SubOrchestrationInstanceCompleted goes back to the parent.
const TagFireAndForget = "FireAndForget"

// TraceContext is Durable Task's DistributedTraceContext: a W3C trace
// context, plus, on an ExecutionStarted, the span the execution made for
// itself, so that every episode (in any process) continues that span.
type TraceContext struct {
	// TraceParent is the whole W3C traceparent, flags included:
	// 00-{trace ID}-{parent span ID}-{flags}.
	TraceParent string
	// TraceState is the W3C tracestate, "" when none. Durable Task drops a
	// trace state longer than MaxTraceStateLength.
	TraceState string
	// ID is the execution span's W3C ID (a traceparent naming it), SpanID
	// its span ID and ActivityStartTime its start; empty until the
	// execution's first episode sets them.
	ID                string
	SpanID            string
	ActivityStartTime *time.Time
}

// MaxTraceStateLength is the longest trace state Durable Task keeps.
const MaxTraceStateLength = 513

// Clone returns a copy of c that shares nothing with it (nil for nil).
func (c *TraceContext) Clone() *TraceContext {
	if c == nil {
		return nil
	}
	out := *c
	if c.ActivityStartTime != nil {
		t := *c.ActivityStartTime
		out.ActivityStartTime = &t
	}
	return &out
}

// TimePrecision is the resolution of every time Durable Task storage keeps:
// one .NET tick. Table storage holds an Edm.DateTime as a tick count, and
// queue messages carry times with seven fractional digits.
const TimePrecision = 100 * time.Nanosecond

// StorageTime returns t exactly as storage gives it back: in UTC, truncated
// (not rounded, as .NET truncates) to whole ticks, without a monotonic clock
// reading. The zero time stays zero.
//
// Every time an orchestrator can observe must pass through StorageTime when
// it is created, so that the first run sees the same value that every
// replay reads from history.
func StorageTime(t time.Time) time.Time {
	// Truncate counts from the zero time, 0001-01-01, which is also the
	// .NET tick epoch, so the ticks line up for any date.
	return t.UTC().Truncate(TimePrecision)
}

// NewEvent returns an event of the given type with EventID -1 and the given
// timestamp, at storage precision (see StorageTime).
func NewEvent(t EventType, ts time.Time) Event {
	return Event{Type: t, EventID: -1, Timestamp: StorageTime(ts)}
}
