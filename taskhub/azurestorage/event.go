package azurestorage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Member (and History column) names of the Durable Task event classes.
const (
	mOrchestrationInstance = "OrchestrationInstance"
	mEventType             = "EventType"
	mParentInstance        = "ParentInstance"
	mName                  = "Name"
	mVersion               = "Version"
	mInput                 = "Input"
	mTags                  = "Tags"
	mCorrelation           = "Correlation"
	mParentTraceContext    = "ParentTraceContext"
	mScheduledStartTime    = "ScheduledStartTime"
	mGeneration            = "Generation"
	mGenerateNewTrace      = "GenerateNewTrace"
	mOrchestrationStatus   = "OrchestrationStatus"
	mResult                = "Result"
	mFailureDetails        = "FailureDetails"
	mTaskScheduledID       = "TaskScheduledId"
	mReason                = "Reason"
	mDetails               = "Details"
	mInstanceID            = "InstanceId"
	mClientSpanID          = "ClientSpanId"
	mFireAt                = "FireAt"
	mTimerID               = "TimerId"
	mData                  = "Data"
	mState                 = "State"
	mParentExecutionID     = "ParentExecutionId"
	mEventID               = "EventId"
	mIsPlayed              = "IsPlayed"
	mTimestamp             = "Timestamp"
)

// eventMembers lists, per event type, the members of the Durable Task class
// in the order Newtonsoft writes them, without the base members EventId,
// IsPlayed and Timestamp that follow them. ExecutionFailed has no class in
// Durable Task; it is written with its base members only.
var eventMembers = [...][]string{
	history.ExecutionStarted: {mOrchestrationInstance, mEventType, mParentInstance, mName, mVersion, mInput, mTags,
		mCorrelation, mParentTraceContext, mScheduledStartTime, mGeneration, mGenerateNewTrace},
	history.ExecutionCompleted:                {mEventType, mOrchestrationStatus, mResult, mFailureDetails},
	history.ExecutionFailed:                   {mEventType},
	history.ExecutionTerminated:               {mEventType, mInput},
	history.TaskScheduled:                     {mEventType, mName, mVersion, mInput, mParentTraceContext, mTags},
	history.TaskCompleted:                     {mEventType, mTaskScheduledID, mResult},
	history.TaskFailed:                        {mEventType, mTaskScheduledID, mReason, mDetails, mFailureDetails},
	history.SubOrchestrationInstanceCreated:   {mEventType, mName, mVersion, mInstanceID, mInput, mClientSpanID, mTags},
	history.SubOrchestrationInstanceCompleted: {mEventType, mTaskScheduledID, mResult},
	history.SubOrchestrationInstanceFailed:    {mEventType, mTaskScheduledID, mReason, mDetails, mFailureDetails},
	history.TimerCreated:                      {mEventType, mFireAt},
	history.TimerFired:                        {mEventType, mTimerID, mFireAt},
	history.OrchestratorStarted:               {mEventType},
	history.OrchestratorCompleted:             {mEventType},
	history.EventSent:                         {mEventType, mInstanceID, mName, mInput},
	history.EventRaised:                       {mEventType, mName, mInput, mParentTraceContext},
	history.ContinueAsNew:                     {mEventType, mOrchestrationStatus, mResult, mFailureDetails},
	history.GenericEvent:                      {mEventType, mData},
	history.HistoryState:                      {mEventType, mState},
	history.ExecutionSuspended:                {mEventType, mReason},
	history.ExecutionResumed:                  {mEventType, mReason},
	history.ExecutionRewound:                  {mEventType, mReason, mParentExecutionID, mInstanceID, mParentTraceContext},
}

// .NET type names written as "$type" in queue messages.
const (
	typeMessageData      = "DurableTask.AzureStorage.MessageData"
	typeTaskMessage      = "DurableTask.Core.TaskMessage"
	typeInstance         = "DurableTask.Core.OrchestrationInstance"
	typeParentInstance   = "DurableTask.Core.ParentInstance"
	typeExecutionContext = "DurableTask.Core.OrchestrationExecutionContext"
	typeFailureDetails   = "DurableTask.Core.FailureDetails"
	typeTraceContext     = "DurableTask.Core.Tracing.DistributedTraceContext"
	eventTypePrefix      = "DurableTask.Core.History."
)

// typeName returns name for queue JSON (typed) and "" for table JSON.
func typeName(typed bool, name string) string {
	if typed {
		return name
	}
	return ""
}

// writeInstance writes an OrchestrationInstance; an empty ExecutionId is
// written as null ("the current execution").
func writeInstance(b *bytes.Buffer, inst history.OrchestrationInstance, typed bool) {
	o := beginObject(b, typeName(typed, typeInstance))
	o.str("InstanceId", inst.InstanceID)
	o.optStr("ExecutionId", inst.ExecutionID)
	o.end()
}

func writeParent(b *bytes.Buffer, p *history.ParentInstance, typed bool) {
	o := beginObject(b, typeName(typed, typeParentInstance))
	o.str("Name", p.Name)
	o.key(mOrchestrationInstance)
	writeInstance(b, p.Instance, typed)
	o.int("TaskScheduleId", int64(p.TaskScheduleID))
	o.str("Version", p.Version)
	o.end()
}

func writeFailure(b *bytes.Buffer, f *history.FailureDetails, typed bool) error {
	o := beginObject(b, typeName(typed, typeFailureDetails))
	o.str("ErrorType", f.ErrorType)
	o.str("ErrorMessage", f.ErrorMessage)
	o.optStr("StackTrace", f.StackTrace)
	if f.InnerFailure == nil {
		o.null("InnerFailure")
	} else {
		o.key("InnerFailure")
		if err := writeFailure(b, f.InnerFailure, typed); err != nil {
			return err
		}
	}
	o.bool("IsNonRetriable", f.IsNonRetriable)
	if len(f.Properties) == 0 {
		o.null("Properties")
	} else if err := o.anyValue("Properties", f.Properties); err != nil {
		return fmt.Errorf("azurestorage: FailureDetails.Properties: %w", err)
	}
	o.end()
	return nil
}

// writeTraceContext writes a DistributedTraceContext with its members in
// Durable Task's order; ActivityStartTime is a DateTimeOffset, written with
// its offset as Newtonsoft does.
func writeTraceContext(b *bytes.Buffer, c *history.TraceContext, typed bool) {
	o := beginObject(b, typeName(typed, typeTraceContext))
	o.str("TraceParent", c.TraceParent)
	if len(c.TraceState) > history.MaxTraceStateLength {
		o.null("TraceState") // Durable Task's setter drops it too
	} else {
		o.optStr("TraceState", c.TraceState)
	}
	o.optStr("Id", c.ID)
	o.optStr("SpanId", c.SpanID)
	if c.ActivityStartTime == nil {
		o.null("ActivityStartTime")
	} else {
		o.key("ActivityStartTime")
		b.WriteString(`"` + formatTimeOffset(*c.ActivityStartTime) + `"`)
	}
	o.end()
}

// formatTimeOffset renders a UTC time as Newtonsoft writes a DateTimeOffset.
func formatTimeOffset(t time.Time) string {
	return history.StorageTime(t).Format("2006-01-02T15:04:05.9999999") + "+00:00"
}

// nestedJSON renders a nested object for a History column: plain JSON
// without "$type", or the literal "null" as Durable Task writes for absent
// values.
func nestedJSON(absent bool, write func(*bytes.Buffer) error) (string, error) {
	if absent {
		return "null", nil
	}
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return "", err
	}
	return b.String(), nil
}

// writeQueueEvent writes ev as the Newtonsoft JSON of its Durable Task class.
func writeQueueEvent(b *bytes.Buffer, ev *history.Event) error {
	if !ev.Type.Valid() {
		return fmt.Errorf("azurestorage: cannot encode event of unknown type %d", int(ev.Type))
	}
	o := beginObject(b, eventTypePrefix+ev.Type.ClassName())
	for _, m := range eventMembers[ev.Type] {
		switch m {
		case mOrchestrationInstance:
			o.key(m)
			writeInstance(b, ev.Instance, true)
		case mEventType:
			o.int(m, int64(ev.Type))
		case mParentInstance:
			if ev.Parent == nil {
				o.null(m)
			} else {
				o.key(m)
				writeParent(b, ev.Parent, true)
			}
		case mName:
			o.str(m, ev.Name)
		case mVersion:
			o.str(m, ev.Version)
		case mInstanceID:
			o.str(m, ev.InstanceID)
		case mInput:
			o.optStr(m, ev.Input)
		case mResult:
			o.optStr(m, ev.Result)
		case mReason:
			o.optStr(m, ev.Reason)
		case mDetails:
			o.optStr(m, ev.Details)
		case mData:
			o.optStr(m, ev.Data)
		case mTags:
			o.stringMap(m, ev.Tags)
		case mScheduledStartTime:
			if ev.ScheduledStartTime == nil {
				o.null(m)
			} else {
				o.time(m, *ev.ScheduledStartTime)
			}
		case mGeneration:
			if ev.Generation == nil {
				o.null(m)
			} else {
				o.int(m, int64(*ev.Generation))
			}
		case mGenerateNewTrace:
			o.bool(m, ev.GenerateNewTrace)
		case mParentTraceContext:
			if ev.ParentTraceContext == nil {
				o.null(m)
			} else {
				o.key(m)
				writeTraceContext(b, ev.ParentTraceContext, true)
			}
		case mClientSpanID:
			o.optStr(m, ev.ClientSpanID)
		case mOrchestrationStatus:
			o.int(m, int64(ev.Status))
		case mFailureDetails:
			if ev.Failure == nil {
				o.null(m)
			} else {
				o.key(m)
				if err := writeFailure(b, ev.Failure, true); err != nil {
					return err
				}
			}
		case mTaskScheduledID:
			o.int(m, int64(ev.TaskScheduledID))
		case mTimerID:
			o.int(m, int64(ev.TimerID))
		case mFireAt:
			o.time(m, ev.FireAt)
		default: // Correlation, State, ParentExecutionId
			o.null(m)
		}
	}
	o.int(mEventID, int64(ev.EventID))
	o.bool(mIsPlayed, ev.IsPlayed)
	o.time(mTimestamp, ev.Timestamp)
	o.end()
	return nil
}

// eventEntity renders ev as a History row at position of executionID.
func eventEntity(pk string, position int, executionID string, ev *history.Event) (*entity, error) {
	if !ev.Type.Valid() {
		return nil, fmt.Errorf("azurestorage: cannot store event of unknown type %d", int(ev.Type))
	}
	e := &entity{pk: pk, rk: rowKey(position)}
	for _, m := range eventMembers[ev.Type] {
		switch m {
		case mOrchestrationInstance:
			s, _ := nestedJSON(false, func(b *bytes.Buffer) error { writeInstance(b, ev.Instance, false); return nil })
			e.str(m, s)
		case mEventType:
			e.str(m, ev.Type.String())
		case mParentInstance:
			s, _ := nestedJSON(ev.Parent == nil, func(b *bytes.Buffer) error { writeParent(b, ev.Parent, false); return nil })
			e.str(m, s)
		case mName:
			e.str(m, ev.Name)
		case mVersion:
			e.str(m, ev.Version)
		case mInstanceID:
			e.str(m, ev.InstanceID)
		case mInput:
			e.optStr(m, ev.Input)
		case mResult:
			e.optStr(m, ev.Result)
		case mReason:
			e.optStr(m, ev.Reason)
		case mDetails:
			e.optStr(m, ev.Details)
		case mData:
			e.optStr(m, ev.Data)
		case mTags:
			e.str(m, tagsJSON(ev.Tags))
		case mParentTraceContext:
			s, _ := nestedJSON(ev.ParentTraceContext == nil, func(b *bytes.Buffer) error {
				writeTraceContext(b, ev.ParentTraceContext, false)
				return nil
			})
			e.str(m, s)
		case mClientSpanID:
			if ev.ClientSpanID != "" {
				e.str(m, ev.ClientSpanID)
			}
		case mState:
			e.str(m, "null")
		case mScheduledStartTime:
			if ev.ScheduledStartTime != nil {
				e.time(m, *ev.ScheduledStartTime)
			}
		case mGeneration:
			if ev.Generation != nil {
				e.int32(m, *ev.Generation)
			}
		case mGenerateNewTrace:
			e.bool(m, ev.GenerateNewTrace)
		case mOrchestrationStatus:
			e.str(m, ev.Status.String())
		case mFailureDetails:
			s, err := nestedJSON(ev.Failure == nil, func(b *bytes.Buffer) error { return writeFailure(b, ev.Failure, false) })
			if err != nil {
				return nil, err
			}
			e.str(m, s)
		case mTaskScheduledID:
			e.int32(m, ev.TaskScheduledID)
		case mTimerID:
			e.int32(m, ev.TimerID)
		case mFireAt:
			e.time(m, ev.FireAt)
		}
		// Correlation and ParentExecutionId are null strings,
		// which the Table service does not store.
	}
	e.int32(mEventID, ev.EventID)
	e.bool(mIsPlayed, ev.IsPlayed)
	e.time("_"+mTimestamp, ev.Timestamp)
	e.str(colExecutionID, executionID)
	return e, nil
}

// tagsJSON renders a tag dictionary for a table column, "null" when empty.
func tagsJSON(m map[string]string) string {
	if len(m) == 0 {
		return "null"
	}
	var b bytes.Buffer
	writeStringMap(&b, m)
	return b.String()
}

// members is a decoded JSON object (a queue message object or a table row).
type members map[string]json.RawMessage

func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

// object decodes member k as an object. A string member holding JSON (as in
// History and Instances columns) is decoded too; absent, null and "null" give
// nil.
func (m members) object(k string) (members, error) {
	v := m[k]
	if isNull(v) {
		return nil, nil
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if s == "" || s == "null" {
			return nil, nil
		}
		v = json.RawMessage(s)
	}
	var out members
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object: %w", k, err)
	}
	return out, nil
}

// str decodes a string member; absent or null give "".
func (m members) str(k string) (string, error) {
	v := m[k]
	if isNull(v) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%s is not a string: %s", k, v)
	}
	return s, nil
}

// payload decodes a JSON payload carried as a string (Input, Result, Data).
// A payload written as a bare JSON value is accepted as its text.
func (m members) payload(k string) (string, error) {
	v := m[k]
	if isNull(v) {
		return "", nil
	}
	if v[0] != '"' {
		return string(v), nil
	}
	return m.str(k)
}

func (m members) int64(k string) (int64, error) {
	v := m[k]
	if isNull(v) {
		return 0, nil
	}
	text := string(v)
	if text[0] == '"' { // Edm.Int64 travels as a string
		if err := json.Unmarshal(v, &text); err != nil {
			return 0, fmt.Errorf("%s: %w", k, err)
		}
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(text, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, fmt.Errorf("%s is not an integer: %s", k, v)
		}
		n = int64(f)
	}
	return n, nil
}

func (m members) int32(k string) (int32, error) {
	n, err := m.int64(k)
	if err != nil {
		return 0, err
	}
	if n != int64(int32(n)) {
		return 0, fmt.Errorf("%s = %d overflows a 32-bit integer", k, n)
	}
	return int32(n), nil
}

func (m members) bool(k string) (bool, error) {
	v := m[k]
	if isNull(v) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return false, fmt.Errorf("%s is not a boolean: %s", k, v)
	}
	return b, nil
}

// time decodes an ISO 8601 date member; absent or null give the zero time.
func (m members) time(k string) (time.Time, error) {
	s, err := m.str(k)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", k, err)
	}
	return t, nil
}

// enum decodes an enum member written as a number or as a name.
func (m members) enum(k string, parse func(string) (int, error)) (int, bool, error) {
	v := m[k]
	if isNull(v) {
		return 0, false, nil
	}
	if v[0] == '"' {
		s, err := m.str(k)
		if err != nil {
			return 0, false, err
		}
		n, err := parse(s)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %w", k, err)
		}
		return n, true, nil
	}
	n, err := m.int32(k)
	return int(n), err == nil, err
}

func parseEventTypeName(s string) (int, error) {
	t, err := history.ParseEventType(s)
	return int(t), err
}

func parseStatusName(s string) (int, error) {
	st, err := history.ParseStatus(s)
	return int(st), err
}

// stringMap decodes a string dictionary (object or JSON in a string),
// ignoring a "$type" member; an empty dictionary gives nil. Non-string values
// are kept as their JSON text.
func (m members) stringMap(k string) (map[string]string, error) {
	obj, err := m.object(k)
	if err != nil || obj == nil {
		return nil, err
	}
	delete(obj, "$type")
	if len(obj) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(obj))
	for key := range obj {
		if out[key], err = obj.payload(key); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	return out, nil
}

func (m members) instance(k string) (history.OrchestrationInstance, error) {
	obj, err := m.object(k)
	if err != nil || obj == nil {
		return history.OrchestrationInstance{}, err
	}
	var inst history.OrchestrationInstance
	if inst.InstanceID, err = obj.str("InstanceId"); err != nil {
		return inst, fmt.Errorf("%s: %w", k, err)
	}
	if inst.ExecutionID, err = obj.str("ExecutionId"); err != nil {
		return inst, fmt.Errorf("%s: %w", k, err)
	}
	return inst, nil
}

func (m members) parent(k string) (*history.ParentInstance, error) {
	obj, err := m.object(k)
	if err != nil || obj == nil {
		return nil, err
	}
	p := &history.ParentInstance{}
	if p.Name, err = obj.str("Name"); err == nil {
		if p.Version, err = obj.str("Version"); err == nil {
			if p.TaskScheduleID, err = obj.int32("TaskScheduleId"); err == nil {
				p.Instance, err = obj.instance(mOrchestrationInstance)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	return p, nil
}

// traceContext decodes a DistributedTraceContext (an object in queue JSON,
// JSON in a string in a History column); absent or null give nil.
func (m members) traceContext(k string) (*history.TraceContext, error) {
	obj, err := m.object(k)
	if err != nil || obj == nil {
		return nil, err
	}
	c := &history.TraceContext{}
	if c.TraceParent, err = obj.str("TraceParent"); err == nil {
		if c.TraceState, err = obj.str("TraceState"); err == nil {
			if c.ID, err = obj.str("Id"); err == nil {
				if c.SpanID, err = obj.str("SpanId"); err == nil && !isNull(obj["ActivityStartTime"]) {
					var t time.Time
					if t, err = obj.time("ActivityStartTime"); err == nil {
						c.ActivityStartTime = &t
					}
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	if len(c.TraceState) > history.MaxTraceStateLength {
		c.TraceState = ""
	}
	return c, nil
}

func (m members) failure(k string) (*history.FailureDetails, error) {
	obj, err := m.object(k)
	if err != nil || obj == nil {
		return nil, err
	}
	f := &history.FailureDetails{}
	if f.ErrorType, err = obj.str("ErrorType"); err == nil {
		if f.ErrorMessage, err = obj.str("ErrorMessage"); err == nil {
			if f.StackTrace, err = obj.str("StackTrace"); err == nil {
				if f.IsNonRetriable, err = obj.bool("IsNonRetriable"); err == nil {
					f.InnerFailure, err = obj.failure("InnerFailure")
				}
			}
		}
	}
	if err == nil {
		var props members
		if props, err = obj.object("Properties"); err == nil && props != nil {
			delete(props, "$type")
			if len(props) > 0 {
				f.Properties = make(map[string]any, len(props))
				for key, v := range props {
					var val any
					if err = json.Unmarshal(v, &val); err != nil {
						break
					}
					f.Properties[key] = val
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	return f, nil
}

// eventTypeOf determines the event type of a queue event object: from its
// "$type" class name when that resolves (Durable Task deserializes by
// class), else from its EventType member.
func (m members) eventTypeOf() (history.EventType, error) {
	if class, err := m.str("$type"); err == nil && class != "" {
		class, _, _ = strings.Cut(class, ",") // drop an assembly name
		class = strings.TrimSpace(class)
		class = class[strings.LastIndexByte(class, '.')+1:]
		if t, err := history.EventTypeFromClassName(class); err == nil {
			return t, nil
		}
	}
	n, ok, err := m.enum(mEventType, parseEventTypeName)
	if err != nil {
		return 0, err
	}
	if !ok || !history.EventType(n).Valid() {
		return 0, fmt.Errorf("event has no known $type or EventType")
	}
	return history.EventType(n), nil
}

// decodeEvent fills an event of type t from its members. timestampKey is
// "Timestamp" in queue JSON and "_Timestamp" in History rows.
func (m members) decodeEvent(t history.EventType, timestampKey string) (history.Event, error) {
	ev := history.Event{Type: t, EventID: -1}
	var err error
	if _, ok := m[mEventID]; ok {
		if ev.EventID, err = m.int32(mEventID); err != nil {
			return ev, err
		}
	}
	if ev.IsPlayed, err = m.bool(mIsPlayed); err != nil {
		return ev, err
	}
	if ev.Timestamp, err = m.time(timestampKey); err != nil {
		return ev, err
	}
	for _, k := range eventMembers[t] {
		switch k {
		case mOrchestrationInstance:
			ev.Instance, err = m.instance(k)
		case mParentInstance:
			ev.Parent, err = m.parent(k)
		case mName:
			ev.Name, err = m.str(k)
		case mVersion:
			ev.Version, err = m.str(k)
		case mInstanceID:
			ev.InstanceID, err = m.str(k)
		case mInput:
			ev.Input, err = m.payload(k)
		case mResult:
			ev.Result, err = m.payload(k)
		case mData:
			ev.Data, err = m.payload(k)
		case mReason:
			ev.Reason, err = m.str(k)
		case mDetails:
			ev.Details, err = m.str(k)
		case mTags:
			ev.Tags, err = m.stringMap(k)
		case mScheduledStartTime:
			if !isNull(m[k]) {
				var st time.Time
				if st, err = m.time(k); err == nil {
					ev.ScheduledStartTime = &st
				}
			}
		case mGeneration:
			if !isNull(m[k]) {
				var g int32
				if g, err = m.int32(k); err == nil {
					ev.Generation = &g
				}
			}
		case mOrchestrationStatus:
			var n int
			n, _, err = m.enum(k, parseStatusName)
			ev.Status = history.OrchestrationStatus(n)
		case mFailureDetails:
			ev.Failure, err = m.failure(k)
		case mParentTraceContext:
			ev.ParentTraceContext, err = m.traceContext(k)
		case mClientSpanID:
			ev.ClientSpanID, err = m.str(k)
		case mGenerateNewTrace:
			ev.GenerateNewTrace, err = m.bool(k)
		case mTaskScheduledID:
			ev.TaskScheduledID, err = m.int32(k)
		case mTimerID:
			ev.TimerID, err = m.int32(k)
		case mFireAt:
			ev.FireAt, err = m.time(k)
		}
		if err != nil {
			return ev, fmt.Errorf("%s event: %w", t, err)
		}
	}
	return ev, nil
}
