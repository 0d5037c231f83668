package apiclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// RuntimeStatus is the runtime status of an orchestration instance, as
// the API spells it ("Running", "Completed", ...).
type RuntimeStatus string

// The runtime statuses of Durable Functions.
const (
	StatusPending        RuntimeStatus = "Pending"
	StatusRunning        RuntimeStatus = "Running"
	StatusCompleted      RuntimeStatus = "Completed"
	StatusContinuedAsNew RuntimeStatus = "ContinuedAsNew"
	StatusFailed         RuntimeStatus = "Failed"
	StatusCanceled       RuntimeStatus = "Canceled"
	StatusTerminated     RuntimeStatus = "Terminated"
	StatusSuspended      RuntimeStatus = "Suspended"
)

// IsTerminal reports whether an instance in status s has finished for
// good: Completed, Failed, Canceled or Terminated.
func (s RuntimeStatus) IsTerminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCanceled, StatusTerminated:
		return true
	}
	return false
}

// ManagementURLs are the links of a check-status response (the body of a
// start or restart): the instance ID and the URLs that manage it. The
// terminate, rewind, suspend and resume URLs contain the literal
// placeholder {text} for the reason and the send-event URL {eventName}.
type ManagementURLs struct {
	ID                    string `json:"id"`
	StatusQueryGetURI     string `json:"statusQueryGetUri"`
	SendEventPostURI      string `json:"sendEventPostUri"`
	TerminatePostURI      string `json:"terminatePostUri"`
	RewindPostURI         string `json:"rewindPostUri"`
	PurgeHistoryDeleteURI string `json:"purgeHistoryDeleteUri"`
	RestartPostURI        string `json:"restartPostUri"`
	SuspendPostURI        string `json:"suspendPostUri"`
	ResumePostURI         string `json:"resumePostUri"`
}

// Status is the status of an orchestration instance.
type Status struct {
	// Name is the orchestrator function's name.
	Name string
	// InstanceID identifies the instance.
	InstanceID string
	// RuntimeStatus is where the instance is in its life.
	RuntimeStatus RuntimeStatus
	// Input, CustomStatus and Output are JSON; "null" when absent (and
	// Input when hidden with ShowInput(false)). The output of a failed
	// instance is the failure message and of a terminated one the reason,
	// each as a JSON string.
	Input, CustomStatus, Output json.RawMessage
	// CreatedTime and LastUpdatedTime are UTC with second precision (zero
	// when the API sent none).
	CreatedTime, LastUpdatedTime time.Time
	// History is the instance's history, only with [ShowHistory].
	History []HistoryEvent
}

// DecodeInput unmarshals the instance's input into v.
func (s *Status) DecodeInput(v any) error { return decodeRaw("input", s.Input, v) }

// DecodeOutput unmarshals the instance's output into v.
func (s *Status) DecodeOutput(v any) error { return decodeRaw("output", s.Output, v) }

// DecodeCustomStatus unmarshals the instance's custom status into v.
func (s *Status) DecodeCustomStatus(v any) error {
	return decodeRaw("custom status", s.CustomStatus, v)
}

func decodeRaw(what string, raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("null")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("apiclient: decode %s: %w", what, err)
	}
	return nil
}

// statusJSON is the wire form of Status.
type statusJSON struct {
	Name            string            `json:"name"`
	InstanceID      string            `json:"instanceId"`
	RuntimeStatus   RuntimeStatus     `json:"runtimeStatus"`
	Input           json.RawMessage   `json:"input"`
	CustomStatus    json.RawMessage   `json:"customStatus"`
	Output          json.RawMessage   `json:"output"`
	CreatedTime     string            `json:"createdTime"`
	LastUpdatedTime string            `json:"lastUpdatedTime"`
	HistoryEvents   []json.RawMessage `json:"historyEvents,omitempty"`
}

// UnmarshalJSON reads the API's status payload.
func (s *Status) UnmarshalJSON(b []byte) error {
	var w statusJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	created, err := parseTime("createdTime", w.CreatedTime)
	if err != nil {
		return err
	}
	updated, err := parseTime("lastUpdatedTime", w.LastUpdatedTime)
	if err != nil {
		return err
	}
	*s = Status{
		Name: w.Name, InstanceID: w.InstanceID, RuntimeStatus: w.RuntimeStatus,
		Input: orNull(w.Input), CustomStatus: orNull(w.CustomStatus), Output: orNull(w.Output),
		CreatedTime: created, LastUpdatedTime: updated,
	}
	if w.HistoryEvents != nil {
		s.History = make([]HistoryEvent, len(w.HistoryEvents))
		for i, raw := range w.HistoryEvents {
			if err := s.History[i].UnmarshalJSON(raw); err != nil {
				return fmt.Errorf("historyEvents[%d]: %w", i, err)
			}
		}
	}
	return nil
}

// MarshalJSON writes the API's status payload.
func (s Status) MarshalJSON() ([]byte, error) {
	w := statusJSON{
		Name: s.Name, InstanceID: s.InstanceID, RuntimeStatus: s.RuntimeStatus,
		Input: orNull(s.Input), CustomStatus: orNull(s.CustomStatus), Output: orNull(s.Output),
		CreatedTime: formatTime(s.CreatedTime), LastUpdatedTime: formatTime(s.LastUpdatedTime),
	}
	for _, h := range s.History {
		w.HistoryEvents = append(w.HistoryEvents, orNull(h.Raw))
	}
	return json.Marshal(w)
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// parseTime reads an API time: RFC 3339 (with or without fractional
// seconds), or "" for none.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// Durable Functions' own format has no zone when it is UTC-less;
		// accept it as UTC.
		if t2, err2 := time.Parse("2006-01-02T15:04:05.9999999", s); err2 == nil {
			return t2.UTC(), nil
		}
		return time.Time{}, fmt.Errorf("%s %q is not an RFC 3339 time", field, s)
	}
	return t.UTC(), nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// HistoryEvent is one entry of an instance's history (status with
// [ShowHistory]). The API emits PascalCase objects whose fields depend on
// EventType; the common ones are decoded here and Raw keeps the whole
// entry.
type HistoryEvent struct {
	// EventType is e.g. "ExecutionStarted", "TaskCompleted", "EventRaised",
	// "TimerFired", "ExecutionSuspended", "ExecutionCompleted".
	EventType string
	// Timestamp is when the event was recorded.
	Timestamp time.Time
	// FunctionName is the orchestrator (ExecutionStarted), activity or
	// sub-orchestrator (completion events) the entry is about.
	FunctionName string
	// Name is the event name of EventRaised and EventSent.
	Name string
	// Input is the input of the function or the event data (hidden with
	// ShowInput(false)); Result the result (only with ShowHistoryOutput).
	Input, Result json.RawMessage
	// Reason and Details describe failures, suspensions and resumptions.
	Reason, Details string
	// OrchestrationStatus is the final status of ExecutionCompleted.
	OrchestrationStatus string
	// ScheduledTime is when a task was scheduled, FireAt when a timer
	// fires.
	ScheduledTime, FireAt time.Time
	// FailureDetails is the structured failure, if any.
	FailureDetails json.RawMessage
	// EventID is the sequence number of a scheduling event (TaskScheduled,
	// SubOrchestrationInstanceCreated, TimerCreated: only with
	// ShowScheduled); TaskScheduledID (completions) and TimerID
	// (TimerFired) name the EventID they answer. Each is -1 when absent.
	EventID, TaskScheduledID, TimerID int32
	// InstanceID is the child of a sub-orchestration.
	InstanceID string
	// Raw is the whole entry as the API sent it.
	Raw json.RawMessage
}

// UnmarshalJSON reads one history entry.
func (h *HistoryEvent) UnmarshalJSON(b []byte) error {
	var w struct {
		EventType           string          `json:"EventType"`
		Timestamp           string          `json:"Timestamp"`
		FunctionName        string          `json:"FunctionName"`
		Name                string          `json:"Name"`
		Input               json.RawMessage `json:"Input"`
		Result              json.RawMessage `json:"Result"`
		Reason              json.RawMessage `json:"Reason"`
		Details             json.RawMessage `json:"Details"`
		OrchestrationStatus string          `json:"OrchestrationStatus"`
		ScheduledTime       string          `json:"ScheduledTime"`
		FireAt              string          `json:"FireAt"`
		FailureDetails      json.RawMessage `json:"FailureDetails"`
		EventID             *int32          `json:"EventId"`
		TaskScheduledID     *int32          `json:"TaskScheduledId"`
		TimerID             *int32          `json:"TimerId"`
		InstanceID          string          `json:"InstanceId"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ev := HistoryEvent{
		EventType: w.EventType, FunctionName: w.FunctionName, Name: w.Name,
		Input: w.Input, Result: w.Result, OrchestrationStatus: w.OrchestrationStatus,
		Reason: text(w.Reason), Details: text(w.Details),
		FailureDetails: w.FailureDetails, Raw: append(json.RawMessage(nil), b...),
		EventID: orMinus1(w.EventID), TaskScheduledID: orMinus1(w.TaskScheduledID), TimerID: orMinus1(w.TimerID),
		InstanceID: w.InstanceID,
	}
	var err error
	if ev.Timestamp, err = parseTime("Timestamp", w.Timestamp); err != nil {
		return err
	}
	if ev.ScheduledTime, err = parseTime("ScheduledTime", w.ScheduledTime); err != nil {
		return err
	}
	if ev.FireAt, err = parseTime("FireAt", w.FireAt); err != nil {
		return err
	}
	*h = ev
	return nil
}

func orMinus1(p *int32) int32 {
	if p == nil {
		return -1
	}
	return *p
}

// MarshalJSON writes the entry as the API sent it.
func (h HistoryEvent) MarshalJSON() ([]byte, error) { return orNull(h.Raw), nil }

// text renders a JSON value that is usually a string (Reason, Details) as
// text: the string itself, "" for null, other JSON as is.
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	t := strings.TrimSpace(string(raw))
	if t == "null" {
		return ""
	}
	return t
}

// Filter selects instances for [Client.List], [Client.ListPage] and
// [Client.PurgeBy]. The zero Filter matches every instance (a bulk purge
// needs CreatedFrom).
type Filter struct {
	// CreatedFrom and CreatedTo bound the creation time (inclusive); zero
	// means unbounded.
	CreatedFrom, CreatedTo time.Time
	// RuntimeStatus keeps only instances in one of these statuses; empty
	// means any.
	RuntimeStatus []RuntimeStatus
	// InstanceIDPrefix keeps only instances whose ID starts with it.
	InstanceIDPrefix string
	// PageSize is the number of instances per page (top), 1 to 1000; 0
	// leaves it to the server (100). Listing only.
	PageSize int
	// HideInput leaves the inputs out of the listed statuses
	// (showInput=false). Listing only.
	HideInput bool
}
