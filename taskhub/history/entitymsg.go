package history

// Durable entity messages and scheduler state, in the JSON that Durable Task
// writes. Sources (read for facts, at these commits):
//
//   - DTFx: Azure/durabletask@5217032961abf45846f462732a5e2813316e3747,
//     src/DurableTask.Core/Entities/EventFormat/{RequestMessage,ResponseMessage,
//     ReleaseMessage,EntityMessageEventNames}.cs, StateFormat/{SchedulerState,
//     EntityStatus,MessageSorter}.cs, TaskEntityDispatcher.cs,
//     ClientEntityHelpers.cs, Common/Entities.cs.
//   - Durable Functions extension (in-process entities):
//     Azure/azure-functions-durable-extension@a7c6d6944041b48267ed8409bb8ec8144ab9bab9,
//     src/WebJobs.Extensions.DurableTask/EntityScheduler/*.cs.
//
// Both serialize with Newtonsoft.Json and TypeNameHandling.None; DTFx says its
// message format "is kept json-deserialization-compatible with the original
// format" of the extension. The only differences: the extension's scheduler
// state has an "exists" flag (DTFx derives existence from "state" being
// present) and its status may carry "currentOperation"; DTFx responses add
// "failureDetails". We write the DTFx form plus "exists", which DTFx ignores
// on reading, so both readers see the same entity.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The EventRaised names of entity messages (EntityMessageEventNames.cs).
// A response to a call or lock request is raised on the caller under the
// request's ID (see EntityResponseEventName).
const (
	// EntityRequestEventName names an operation or lock request to an entity.
	EntityRequestEventName = "op"
	// EntityReleaseEventName names a lock release sent to an entity.
	EntityReleaseEventName = "release"
	// EntityContinueEventName names the message an entity sends itself to
	// resume work it left queued (its Input is null).
	EntityContinueEventName = "continue"
	// LockAcquisitionCompleted is the Result of the response that tells an
	// orchestration its whole lock set is held (ResponseMessage.cs).
	LockAcquisitionCompleted = "Lock Acquisition Completed"
)

// EntityScheduledRequestEventName returns the event name of a request to be
// delivered at due: "op@" and the time in .NET's round-trip format "o"
// (seven fractional digits, "Z"). Durable Task Azure Storage reads the time
// back from the name to make the queue message invisible until then
// (Common/Entities.cs IsDelayedEntityMessage); the sender puts the due time
// capped to the backend's maximum delay in the name, the original in "due".
func EntityScheduledRequestEventName(due time.Time) string {
	return EntityRequestEventName + "@" + due.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// EntityResponseEventName returns the event name of the response to the
// request with ID requestID (Guid.ToString(): lowercase, hyphenated).
func EntityResponseEventName(requestID string) string { return strings.ToLower(requestID) }

// EntityMessageKind classifies an EventRaised name received by an entity.
type EntityMessageKind int

// The kinds of messages an entity receives.
const (
	EntityMessageUnknown  EntityMessageKind = iota // not an entity message
	EntityMessageRequest                           // "op" or "op@{due}"
	EntityMessageRelease                           // "release"
	EntityMessageContinue                          // "continue"
)

// ClassifyEntityEvent returns what kind of message an event raised on an
// entity with this name is. Like Durable Task, any name starting with "op" is
// a request.
func ClassifyEntityEvent(name string) EntityMessageKind {
	switch {
	case strings.HasPrefix(name, EntityRequestEventName):
		return EntityMessageRequest
	case name == EntityReleaseEventName:
		return EntityMessageRelease
	case name == EntityContinueEventName:
		return EntityMessageContinue
	}
	return EntityMessageUnknown
}

// ParseEntityScheduledRequestEventName returns the delivery time in a
// scheduled request's event name ("op@{time}"), and false for any other name.
func ParseEntityScheduledRequestEventName(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, EntityRequestEventName+"@")
	if !ok {
		return time.Time{}, false
	}
	t, err := parseNetTime(rest)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// EntityRequest is a request to an entity: an operation (a one-way signal or
// a call whose caller waits for a response) or, with a LockSet, a lock
// request of a critical section (RequestMessage.cs). Input is JSON text, ""
// for none.
type EntityRequest struct {
	Operation         string     // "op"; "" (null) for a lock request
	Signal            bool       // "signal": one-way, no response
	Input             string     // "input": the operation input as JSON text; "" for none
	ID                string     // "id": the request's GUID, also the response's event name
	ParentInstanceID  string     // "parent": the caller (orchestration or entity); "" for a client
	ParentExecutionID string     // "parentExecution": the calling orchestration's execution
	Due               time.Time  // "due": when a scheduled signal is to run; zero for now
	Timestamp         time.Time  // "Timestamp": the sender's label for ordering and deduplication
	Predecessor       time.Time  // "Predecessor": the sender's previous label to this entity; zero if none
	LockSet           []EntityID // "lockset": sorted, distinct entities to lock; nil if not a lock request
	Position          int        // "pos": index into LockSet of the entity this lock request is at

	// Seq and PredSeq are our own members ("seq", "predSeq"; Durable Task
	// ignores them): an orchestration numbers the requests it sends, so
	// that an entity applies each once and in the order sent, even when a
	// crash makes the orchestration send them again (see EntityRequestSeq);
	// an entity numbers its unscheduled signals to entities (see
	// SentState), so that they are applied in the order sent.
	Seq     int64 // "seq": this request's number; 0 = not numbered
	PredSeq int64 // "predSeq": the number of the sender's previous numbered request to the same entity (an orchestration: in the same execution); 0 = none

	// Fields carried as they are (distributed tracing).
	ParentTraceContext json.RawMessage // "parentTraceContext"
	CreateTrace        bool            // "createTrace"
	RequestTime        json.RawMessage // "requestTime": a .NET DateTimeOffset
}

// IsLockRequest reports whether r asks for locks rather than an operation.
func (r *EntityRequest) IsLockRequest() bool { return r.LockSet != nil }

// entityTraceJSON is Durable Task's DistributedTraceContext as a request
// message carries it (Newtonsoft, member names as declared).
type entityTraceJSON struct {
	TraceParent string  `json:"TraceParent"`
	TraceState  *string `json:"TraceState"`
}

// TraceContext returns the W3C trace context the request carries
// ("parentTraceContext"): nil when it carries none (absent or null), an
// error when the member is not a trace context.
func (r *EntityRequest) TraceContext() (*TraceContext, error) {
	if len(r.ParentTraceContext) == 0 || string(r.ParentTraceContext) == "null" {
		return nil, nil
	}
	var w entityTraceJSON
	if err := json.Unmarshal(r.ParentTraceContext, &w); err != nil {
		return nil, fmt.Errorf("history: entity request %s: parentTraceContext: %w", r.ID, err)
	}
	if w.TraceParent == "" {
		return nil, fmt.Errorf("history: entity request %s: parentTraceContext has no TraceParent", r.ID)
	}
	return &TraceContext{TraceParent: w.TraceParent, TraceState: deref(w.TraceState)}, nil
}

// SetTraceContext makes the request carry trace context c (nil: none), as
// Durable Task writes it; a trace state longer than MaxTraceStateLength is
// dropped, as Durable Task's setter drops it.
func (r *EntityRequest) SetTraceContext(c *TraceContext) error {
	if c == nil {
		r.ParentTraceContext = nil
		return nil
	}
	w := entityTraceJSON{TraceParent: c.TraceParent}
	if c.TraceState != "" && len(c.TraceState) <= MaxTraceStateLength {
		w.TraceState = &c.TraceState
	}
	b, err := marshalJSON(w)
	if err != nil {
		return fmt.Errorf("history: entity request %s: parentTraceContext: %w", r.ID, err)
	}
	r.ParentTraceContext = b
	return nil
}

// entityRequestJSON is RequestMessage's member order and names. Newtonsoft
// writes "op", "id", "Timestamp", "Predecessor", "IsLockRequest" and
// "createTrace" always (no EmitDefaultValue=false) and the others only when
// they are not their default.
type entityRequestJSON struct {
	Operation          *string         `json:"op"`
	Signal             bool            `json:"signal,omitempty"`
	Input              *string         `json:"input,omitempty"`
	ID                 *string         `json:"id"`
	Parent             string          `json:"parent,omitempty"`
	ParentExecution    string          `json:"parentExecution,omitempty"`
	Due                *netTime        `json:"due,omitempty"`
	Timestamp          netTime         `json:"Timestamp"`
	Predecessor        netTime         `json:"Predecessor"`
	LockSet            []EntityID      `json:"lockset,omitempty"`
	Position           int             `json:"pos,omitempty"`
	IsLockRequest      bool            `json:"IsLockRequest"`
	ParentTraceContext json.RawMessage `json:"parentTraceContext,omitempty"`
	CreateTrace        bool            `json:"createTrace"`
	RequestTime        json.RawMessage `json:"requestTime,omitempty"`
	Seq                int64           `json:"seq,omitempty"`
	PredSeq            int64           `json:"predSeq,omitempty"`
}

// MarshalJSON writes r as Durable Task's RequestMessage.
func (r EntityRequest) MarshalJSON() ([]byte, error) {
	w := entityRequestJSON{
		Signal: r.Signal, Parent: r.ParentInstanceID, ParentExecution: r.ParentExecutionID,
		Timestamp: netTime(r.Timestamp), Predecessor: netTime(r.Predecessor),
		LockSet: r.LockSet, Position: r.Position, IsLockRequest: r.LockSet != nil,
		ParentTraceContext: r.ParentTraceContext, CreateTrace: r.CreateTrace, RequestTime: r.RequestTime,
		Seq: r.Seq, PredSeq: r.PredSeq,
	}
	if r.Operation != "" {
		w.Operation = &r.Operation
	}
	if r.Input != "" {
		w.Input = &r.Input
	}
	id := r.ID
	w.ID = &id
	if !r.Due.IsZero() {
		d := netTime(r.Due)
		w.Due = &d
	}
	return marshalJSON(w)
}

// UnmarshalJSON reads a RequestMessage of Durable Task or of the Durable
// Functions extension. Only "id" is required (it is Required there too);
// absent fields take their defaults, unknown fields are ignored, and
// "IsLockRequest" is derived from "lockset" as Durable Task does.
func (r *EntityRequest) UnmarshalJSON(b []byte) error {
	var w entityRequestJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("history: entity request message: %w", err)
	}
	if w.ID == nil || *w.ID == "" {
		return fmt.Errorf("history: entity request message has no \"id\"")
	}
	*r = EntityRequest{
		Operation: deref(w.Operation), Signal: w.Signal, Input: deref(w.Input), ID: *w.ID,
		ParentInstanceID: w.Parent, ParentExecutionID: w.ParentExecution,
		Timestamp: time.Time(w.Timestamp), Predecessor: time.Time(w.Predecessor),
		LockSet: w.LockSet, Position: w.Position,
		ParentTraceContext: w.ParentTraceContext, CreateTrace: w.CreateTrace, RequestTime: w.RequestTime,
		Seq: w.Seq, PredSeq: w.PredSeq,
	}
	if w.Due != nil {
		r.Due = time.Time(*w.Due)
	}
	return nil
}

// EntityResponse is an entity's answer to a call or lock request, raised on
// the caller under EntityResponseEventName(request ID) (ResponseMessage.cs).
// Result is JSON text ("" for null); a failed operation has ErrorMessage
// ("exceptionType": DTFx puts "entity dispatch failed" or the error message
// there, the extension the exception type with the serialized exception in
// Result) and, from DTFx, Failure.
type EntityResponse struct {
	Result       string          // "result"
	ErrorMessage string          // "exceptionType"
	Failure      *FailureDetails // "failureDetails"
}

// IsError reports whether the response reports a failed operation.
func (r *EntityResponse) IsError() bool { return r.ErrorMessage != "" || r.Failure != nil }

type entityResponseJSON struct {
	Result        *string      `json:"result"`
	ExceptionType string       `json:"exceptionType,omitempty"`
	Failure       *failureJSON `json:"failureDetails,omitempty"`
}

// failureJSON is DurableTask.Core.FailureDetails as Newtonsoft writes it: no
// DataContract, so every public property under its own name, nulls included.
type failureJSON struct {
	ErrorType      string         `json:"ErrorType"`
	ErrorMessage   string         `json:"ErrorMessage"`
	StackTrace     *string        `json:"StackTrace"`
	InnerFailure   *failureJSON   `json:"InnerFailure"`
	IsNonRetriable bool           `json:"IsNonRetriable"`
	Properties     map[string]any `json:"Properties"`
}

func toFailureJSON(f *FailureDetails) *failureJSON {
	if f == nil {
		return nil
	}
	w := &failureJSON{ErrorType: f.ErrorType, ErrorMessage: f.ErrorMessage, InnerFailure: toFailureJSON(f.InnerFailure),
		IsNonRetriable: f.IsNonRetriable, Properties: f.Properties}
	if f.StackTrace != "" {
		w.StackTrace = &f.StackTrace
	}
	return w
}

func fromFailureJSON(w *failureJSON) *FailureDetails {
	if w == nil {
		return nil
	}
	return &FailureDetails{ErrorType: w.ErrorType, ErrorMessage: w.ErrorMessage, StackTrace: deref(w.StackTrace),
		InnerFailure: fromFailureJSON(w.InnerFailure), IsNonRetriable: w.IsNonRetriable, Properties: w.Properties}
}

// MarshalJSON writes r as Durable Task's ResponseMessage.
func (r EntityResponse) MarshalJSON() ([]byte, error) {
	w := entityResponseJSON{ExceptionType: r.ErrorMessage, Failure: toFailureJSON(r.Failure)}
	if r.Result != "" {
		w.Result = &r.Result
	}
	return marshalJSON(w)
}

// UnmarshalJSON reads a ResponseMessage; every field may be absent.
func (r *EntityResponse) UnmarshalJSON(b []byte) error {
	var w entityResponseJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("history: entity response message: %w", err)
	}
	*r = EntityResponse{Result: deref(w.Result), ErrorMessage: w.ExceptionType, Failure: fromFailureJSON(w.Failure)}
	return nil
}

// EntityRelease releases the lock an orchestration holds on an entity at the
// end of its critical section (ReleaseMessage.cs). ID is the lock request's
// ID; storage cleaning sends "fix-orphaned-lock" (ClientEntityHelpers.cs).
type EntityRelease struct {
	ParentInstanceID string // "parent": the lock holder
	ID               string // "id"
}

type entityReleaseJSON struct {
	Parent *string `json:"parent"`
	ID     *string `json:"id"`
}

// MarshalJSON writes r as Durable Task's ReleaseMessage (both members always,
// null when empty).
func (r EntityRelease) MarshalJSON() ([]byte, error) {
	return marshalJSON(entityReleaseJSON{Parent: nonEmpty(r.ParentInstanceID), ID: nonEmpty(r.ID)})
}

// UnmarshalJSON reads a ReleaseMessage; absent members are empty.
func (r *EntityRelease) UnmarshalJSON(b []byte) error {
	var w entityReleaseJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("history: entity release message: %w", err)
	}
	*r = EntityRelease{ParentInstanceID: deref(w.Parent), ID: deref(w.ID)}
	return nil
}

// EntitySchedulerState is what an entity keeps between batches: Durable
// Task runs an entity as an orchestration that starts a new execution after
// every batch, with this state, serialized, as the new ExecutionStarted's
// Input (so the Instances row's Input column holds it) (SchedulerState.cs,
// TaskEntityDispatcher.cs). State is the entity's state as JSON text; the
// entity exists when State is not "".
type EntitySchedulerState struct {
	State     string          // "state"
	Queue     []EntityRequest // "queue": requests waiting (for the lock to be released, or the next batch)
	LockedBy  string          // "lockedBy": the orchestration holding the lock
	Suspended bool            // "suspended": work is left for a "continue" message
	Sorter    MessageSorter   // "sorter"
	// Applied is our own addition ("applied", written only when not
	// empty; Durable Task ignores it): the IDs of requests the entity has
	// taken in (applied, or queued behind a lock) that are not numbered
	// (see Senders) and whose copies may still be delivered (a client's
	// request until its queue copy is confirmed deleted, an entity's for a
	// while), with the time each was taken in, so that a second copy is
	// dropped instead of applied twice.
	Applied map[string]time.Time
	// LockID is our own addition ("lockId"): the ID of the lock request
	// that holds the lock, so that a late copy of an earlier critical
	// section's release does not release a newer lock of the same holder.
	LockID string
	// Senders is our own addition ("senders"): per sending orchestration
	// execution, the last numbered request applied (see EntityRequest.Seq),
	// keyed by SenderKey. An entity sender has one record for all its
	// executions (SenderKey with no execution ID): an entity starts a new
	// execution with every batch.
	Senders map[string]SenderRecord
	// Sent is our own addition ("sent"): how this entity numbers the
	// signals it sends to entities, so that a receiver applies them in the
	// order sent. It is committed with the batch that sent them.
	Sent SentState
}

// SentState is how an entity numbers the signals it sends to other
// entities (see EntityRequest.Seq): one counter over all targets (Last),
// so that a target's next number is always higher than any it had before,
// even after its entry in To was forgotten, and per target the number and
// time of the last signal sent to it (the next one's PredSeq and
// Predecessor).
type SentState struct {
	Last int64                 // "last": the number of the last numbered signal sent, to any entity
	To   map[string]SentRecord // "to": by target instance ID
}

// SentRecord is the last numbered signal an entity sent to one target.
type SentRecord struct {
	Seq int64
	At  time.Time
}

type sentRecordJSON struct {
	Seq int64   `json:"seq"`
	At  netTime `json:"at"`
}

// MarshalJSON writes the record with its time as Durable Task writes times.
func (r SentRecord) MarshalJSON() ([]byte, error) {
	return marshalJSON(sentRecordJSON{Seq: r.Seq, At: netTime(r.At)})
}

// UnmarshalJSON reads a record.
func (r *SentRecord) UnmarshalJSON(b []byte) error {
	var w sentRecordJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("history: entity sent record: %w", err)
	}
	*r = SentRecord{Seq: w.Seq, At: time.Time(w.At)}
	return nil
}

type sentStateJSON struct {
	Last int64                 `json:"last"`
	To   map[string]SentRecord `json:"to,omitempty"`
}

// SenderRecord is what an entity remembers of one sending orchestration
// execution: the number of the last request it took in in order, the
// requests it took in ahead of a predecessor that never came in time
// (number → predecessor's number), and when it last heard from it.
type SenderRecord struct {
	Last  int64
	Ahead map[int64]int64
	Seen  time.Time
}

// SenderKey returns the key of a sender's record: the sending instance
// and its execution.
func SenderKey(instanceID, executionID string) string { return instanceID + "|" + executionID }

// RequestSenderKey returns the key of the record of r's sender: its
// instance and execution for an orchestration, its instance alone for an
// entity (whose every batch is a new execution).
func RequestSenderKey(r *EntityRequest) string {
	if IsEntityInstanceID(r.ParentInstanceID) {
		return SenderKey(r.ParentInstanceID, "")
	}
	return SenderKey(r.ParentInstanceID, r.ParentExecutionID)
}

type senderRecordJSON struct {
	Last  int64           `json:"last"`
	Ahead map[int64]int64 `json:"ahead,omitempty"`
	Seen  netTime         `json:"seen"`
}

// MarshalJSON writes the record with its time as Durable Task writes times.
func (r SenderRecord) MarshalJSON() ([]byte, error) {
	return marshalJSON(senderRecordJSON{Last: r.Last, Ahead: r.Ahead, Seen: netTime(r.Seen)})
}

// UnmarshalJSON reads a record.
func (r *SenderRecord) UnmarshalJSON(b []byte) error {
	var w senderRecordJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("history: entity sender record: %w", err)
	}
	*r = SenderRecord{Last: w.Last, Ahead: w.Ahead, Seen: time.Time(w.Seen)}
	return nil
}

// Exists reports whether the entity has state.
func (s *EntitySchedulerState) Exists() bool { return s.State != "" }

// IsEmpty reports whether the entity has no state, no queued request and no
// lock holder, so that its storage may be removed.
func (s *EntitySchedulerState) IsEmpty() bool {
	return !s.Exists() && len(s.Queue) == 0 && s.LockedBy == ""
}

// Status returns the entity status Durable Task keeps in the Instances
// row's CustomStatus column for queries without reading the state.
func (s *EntitySchedulerState) Status() EntityStatus {
	return EntityStatus{EntityExists: s.Exists(), QueueSize: len(s.Queue), LockedBy: s.LockedBy}
}

type schedulerStateJSON struct {
	Exists    bool                    `json:"exists,omitempty"`
	State     *string                 `json:"state,omitempty"`
	Queue     []EntityRequest         `json:"queue,omitempty"`
	LockedBy  string                  `json:"lockedBy,omitempty"`
	Suspended bool                    `json:"suspended,omitempty"`
	Sorter    *MessageSorter          `json:"sorter,omitempty"`
	Applied   map[string]netTime      `json:"applied,omitempty"`
	LockID    string                  `json:"lockId,omitempty"`
	Senders   map[string]SenderRecord `json:"senders,omitempty"`
	Sent      *sentStateJSON          `json:"sent,omitempty"`
}

// MarshalJSON writes s as Durable Task's SchedulerState, with the Durable
// Functions extension's "exists" flag first (as the extension orders it)
// when the entity has state. The sorter is always written: Durable Task's
// is never null, so an empty one is {}.
func (s EntitySchedulerState) MarshalJSON() ([]byte, error) {
	w := schedulerStateJSON{Exists: s.Exists(), Queue: s.Queue, LockedBy: s.LockedBy, Suspended: s.Suspended, Sorter: &s.Sorter,
		LockID: s.LockID, Senders: s.Senders}
	if s.Sent.Last != 0 || len(s.Sent.To) > 0 {
		w.Sent = &sentStateJSON{Last: s.Sent.Last, To: s.Sent.To}
	}
	if s.State != "" {
		w.State = &s.State
	}
	if len(w.Queue) == 0 {
		w.Queue = nil
	}
	if len(s.Applied) > 0 {
		w.Applied = make(map[string]netTime, len(s.Applied))
		for id, t := range s.Applied {
			w.Applied[id] = netTime(t)
		}
	}
	return marshalJSON(w)
}

// UnmarshalJSON reads a scheduler state of Durable Task or of the Durable
// Functions extension; every member may be absent. An extension state with
// "exists":true but no "state" (an entity whose state serialized to nothing)
// reads as the state "null".
func (s *EntitySchedulerState) UnmarshalJSON(b []byte) error {
	var w schedulerStateJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("history: entity scheduler state: %w", err)
	}
	*s = EntitySchedulerState{State: deref(w.State), Queue: w.Queue, LockedBy: w.LockedBy, Suspended: w.Suspended,
		LockID: w.LockID, Senders: w.Senders}
	if w.Exists && s.State == "" {
		s.State = "null"
	}
	if w.Sent != nil {
		s.Sent = SentState{Last: w.Sent.Last, To: w.Sent.To}
	}
	if w.Sorter != nil {
		s.Sorter = *w.Sorter
	}
	if len(w.Applied) > 0 {
		s.Applied = make(map[string]time.Time, len(w.Applied))
		for id, t := range w.Applied {
			s.Applied[id] = time.Time(t)
		}
	}
	return nil
}

// MessageSorter is the per-sender ordering and deduplication record an
// entity keeps in its scheduler state (MessageSorter.cs). Map keys are
// instance IDs; ReceiveBuffer.Buffered is keyed by the request's Timestamp
// as written in JSON.
type MessageSorter struct {
	LastSentToInstance   map[string]time.Time     // "LastSentToInstance"
	ReceivedFromInstance map[string]ReceiveBuffer // "ReceivedFromInstance"
	ReceiveHorizon       time.Time                // "ReceiveHorizon"; zero is omitted
	SendHorizon          time.Time                // "SendHorizon"; zero is omitted
}

// ReceiveBuffer is what an entity remembers of one sender (MessageSorter.cs).
type ReceiveBuffer struct {
	Last        time.Time                // "Last": the last request delivered; zero if none
	ExecutionID string                   // "ExecutionId": the sender's execution of Last
	Buffered    map[string]EntityRequest // "Buffered": requests waiting for a predecessor
}

type messageSorterJSON struct {
	LastSentToInstance   map[string]netTime       `json:"LastSentToInstance,omitempty"`
	ReceivedFromInstance map[string]ReceiveBuffer `json:"ReceivedFromInstance,omitempty"`
	ReceiveHorizon       *netTime                 `json:"ReceiveHorizon,omitempty"`
	SendHorizon          *netTime                 `json:"SendHorizon,omitempty"`
}

// MarshalJSON writes m as Durable Task's MessageSorter.
func (m MessageSorter) MarshalJSON() ([]byte, error) {
	w := messageSorterJSON{ReceivedFromInstance: m.ReceivedFromInstance,
		ReceiveHorizon: nonZeroTime(m.ReceiveHorizon), SendHorizon: nonZeroTime(m.SendHorizon)}
	if len(m.LastSentToInstance) > 0 {
		w.LastSentToInstance = make(map[string]netTime, len(m.LastSentToInstance))
		for k, v := range m.LastSentToInstance {
			w.LastSentToInstance[k] = netTime(v)
		}
	}
	return marshalJSON(w)
}

// UnmarshalJSON reads a MessageSorter; every member may be absent.
func (m *MessageSorter) UnmarshalJSON(b []byte) error {
	var w messageSorterJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("history: entity message sorter: %w", err)
	}
	*m = MessageSorter{ReceivedFromInstance: w.ReceivedFromInstance}
	if w.LastSentToInstance != nil {
		m.LastSentToInstance = make(map[string]time.Time, len(w.LastSentToInstance))
		for k, v := range w.LastSentToInstance {
			m.LastSentToInstance[k] = time.Time(v)
		}
	}
	if w.ReceiveHorizon != nil {
		m.ReceiveHorizon = time.Time(*w.ReceiveHorizon)
	}
	if w.SendHorizon != nil {
		m.SendHorizon = time.Time(*w.SendHorizon)
	}
	return nil
}

type receiveBufferJSON struct {
	Last        netTime                  `json:"Last"`
	ExecutionID string                   `json:"ExecutionId,omitempty"`
	Buffered    map[string]EntityRequest `json:"Buffered,omitempty"`
}

// MarshalJSON writes b as Durable Task's MessageSorter.ReceiveBuffer.
func (b ReceiveBuffer) MarshalJSON() ([]byte, error) {
	return marshalJSON(receiveBufferJSON{Last: netTime(b.Last), ExecutionID: b.ExecutionID, Buffered: b.Buffered})
}

// UnmarshalJSON reads a ReceiveBuffer; every member may be absent.
func (b *ReceiveBuffer) UnmarshalJSON(data []byte) error {
	var w receiveBufferJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("history: entity receive buffer: %w", err)
	}
	*b = ReceiveBuffer{Last: time.Time(w.Last), ExecutionID: w.ExecutionID, Buffered: w.Buffered}
	return nil
}

// EntityStatus is the summary Durable Task writes as an entity's custom
// status (the Instances row's CustomStatus column) after every batch, so
// that queries and storage cleaning need not read the state (EntityStatus.cs;
// written in TaskEntityDispatcher.cs). Every member is omitted when default:
// an empty, unlocked entity's status is {}.
type EntityStatus struct {
	EntityExists bool   `json:"entityExists,omitempty"`
	QueueSize    int    `json:"queueSize,omitempty"`
	LockedBy     string `json:"lockedBy,omitempty"`
	// CurrentOperation is written only by the Durable Functions extension;
	// it is kept as it is.
	CurrentOperation json.RawMessage `json:"currentOperation,omitempty"`
}

// MarshalJSON writes s as Durable Task's EntityStatus, without HTML
// escaping (as Newtonsoft writes it).
func (s EntityStatus) MarshalJSON() ([]byte, error) {
	type plain EntityStatus // without this method
	return marshalJSON(plain(s))
}

// Encode returns the custom status text of s. (json.Marshal would escape
// '<', '>' and '&', which Durable Task does not.)
func (s EntityStatus) Encode() (string, error) {
	b, err := marshalJSON(s)
	return string(b), err
}

// ParseEntityStatus reads an entity's custom status.
func ParseEntityStatus(customStatus string) (EntityStatus, error) {
	var s EntityStatus
	if err := json.Unmarshal([]byte(customStatus), &s); err != nil {
		return EntityStatus{}, fmt.Errorf("history: entity status %.80q: %w", customStatus, err)
	}
	return s, nil
}

// Encode returns the text of s for an ExecutionStarted Input, as Durable
// Task writes it (without json.Marshal's HTML escaping).
func (s EntitySchedulerState) Encode() (string, error) {
	b, err := marshalJSON(s)
	if err != nil {
		return "", fmt.Errorf("history: entity scheduler state: %w", err)
	}
	return string(b), nil
}

// ParseEntitySchedulerState reads the scheduler state an entity's
// ExecutionStarted Input (the Instances row's Input) holds. The empty input
// (null) is the state of an entity that has not run yet.
func ParseEntitySchedulerState(input string) (EntitySchedulerState, error) {
	var s EntitySchedulerState
	if input == "" || input == "null" {
		return s, nil
	}
	if err := json.Unmarshal([]byte(input), &s); err != nil {
		return EntitySchedulerState{}, err
	}
	return s, nil
}

// NewEntityRequestEvent returns the EventRaised that delivers r to an
// entity: named "op", or "op@{due}" for a scheduled request, with r's JSON as
// Input. An engine that caps the delay may rename it with
// EntityScheduledRequestEventName; "due" keeps the original time.
func NewEntityRequestEvent(r EntityRequest, ts time.Time) (Event, error) {
	name := EntityRequestEventName
	if !r.Due.IsZero() {
		name = EntityScheduledRequestEventName(r.Due)
	}
	return newEntityEvent(name, r, ts)
}

// NewEntityResponseEvent returns the EventRaised that answers the request
// with ID requestID on its caller.
func NewEntityResponseEvent(requestID string, r EntityResponse, ts time.Time) (Event, error) {
	return newEntityEvent(EntityResponseEventName(requestID), r, ts)
}

// NewEntityReleaseEvent returns the EventRaised that releases a lock.
func NewEntityReleaseEvent(r EntityRelease, ts time.Time) (Event, error) {
	return newEntityEvent(EntityReleaseEventName, r, ts)
}

// NewEntityContinueEvent returns the EventRaised with which an entity
// resumes its queued work; its Input is null.
func NewEntityContinueEvent(ts time.Time) Event {
	e := NewEvent(EventRaised, ts)
	e.Name = EntityContinueEventName
	return e
}

func newEntityEvent(name string, v any, ts time.Time) (Event, error) {
	b, err := marshalJSON(v)
	if err != nil {
		return Event{}, fmt.Errorf("history: entity message %q: %w", name, err)
	}
	e := NewEvent(EventRaised, ts)
	e.Name, e.Input = name, string(b)
	return e, nil
}

// DecodeEntityRequest returns the request an "op" EventRaised carries.
func DecodeEntityRequest(e Event) (EntityRequest, error) {
	var r EntityRequest
	if err := decodeEntityEvent(e, EntityMessageRequest, &r); err != nil {
		return EntityRequest{}, err
	}
	return r, nil
}

// DecodeEntityRelease returns the release a "release" EventRaised carries.
func DecodeEntityRelease(e Event) (EntityRelease, error) {
	var r EntityRelease
	if err := decodeEntityEvent(e, EntityMessageRelease, &r); err != nil {
		return EntityRelease{}, err
	}
	return r, nil
}

// DecodeEntityResponse returns the response an EventRaised raised on a
// caller under a request ID carries.
func DecodeEntityResponse(e Event) (EntityResponse, error) {
	var r EntityResponse
	if err := decodeEntityEvent(e, EntityMessageUnknown, &r); err != nil {
		return EntityResponse{}, err
	}
	return r, nil
}

func decodeEntityEvent(e Event, want EntityMessageKind, v any) error {
	if e.Type != EventRaised {
		return fmt.Errorf("history: entity message %q is a %s event, not EventRaised", e.Name, e.Type)
	}
	if got := ClassifyEntityEvent(e.Name); got != want {
		return fmt.Errorf("history: event name %q does not name this kind of entity message", e.Name)
	}
	if e.Input == "" || e.Input == "null" {
		return fmt.Errorf("history: entity message %q has no content", e.Name)
	}
	if err := json.Unmarshal([]byte(e.Input), v); err != nil {
		return fmt.Errorf("history: entity message %q: %w", e.Name, err)
	}
	return nil
}

// netTime is a .NET DateTime as Newtonsoft.Json writes it by default
// (IsoDateFormat, RoundtripKind): a UTC time as "2006-01-02T15:04:05.fffffffZ"
// with trailing fractional zeros dropped, and DateTime.MinValue (the zero
// time, of unspecified kind) as "0001-01-01T00:00:00".
type netTime time.Time

func (t netTime) MarshalJSON() ([]byte, error) {
	return marshalJSON(formatNetTime(time.Time(t)))
}

func (t *netTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a time must be a JSON string: %w", err)
	}
	v, err := parseNetTime(s)
	if err != nil {
		return err
	}
	*t = netTime(v)
	return nil
}

func formatNetTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00"
	}
	return StorageTime(t).Format("2006-01-02T15:04:05.9999999Z")
}

// parseNetTime reads an ISO 8601 time with or without a zone (none is
// taken as UTC, as Durable Task's times are) and any fractional digits.
func parseNetTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return StorageTime(t), nil
		}
	}
	return time.Time{}, fmt.Errorf("history: %q is not an ISO 8601 time", s)
}

// marshalJSON is json.Marshal without HTML escaping: Newtonsoft writes '<',
// '>' and '&' as they are, and so must we for the JSON to be the same text.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func nonZeroTime(t time.Time) *netTime {
	if t.IsZero() {
		return nil
	}
	n := netTime(t)
	return &n
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
