package replaytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// ErrBadExport is wrapped by the errors Check returns for an export it
// cannot replay: not a status response, saved without showHistory=true or
// showHistoryOutput=true, or missing fields this app's management API adds
// (TaskScheduledId, TimerId). Such an error says nothing about the code.
var ErrBadExport = errors.New("replaytest: unusable export")

// export is a parsed status response with its history.
type export struct {
	name       string
	instanceID string
	status     history.OrchestrationStatus
	hasStatus  bool
	output     string // top-level output, JSON text ("" = null)
	hasOutput  bool

	entries []*entry
	start   *entry // the ExecutionStarted entry

	byTask        map[int32]*entry // first response entry per TaskScheduledId
	fired         map[int32]*entry // first TimerFired entry per TimerId
	timersCreated []*entry         // TimerCreated entries, in order
	completion    *entry           // the ExecutionCompleted or ContinueAsNew entry
	episodeTimes  []time.Time      // known episode start times, sorted
}

// entry is one element of historyEvents.
type entry struct {
	index    int
	typeName string
	typ      history.EventType
	known    bool // typeName is a Durable Task event type
	ts       time.Time

	name      string // FunctionName, or Name for EventRaised
	hasName   bool
	input     string // JSON text, "" = null
	hasInput  bool
	result    string // JSON text, "" = null
	hasResult bool
	taskID    int32 // TaskScheduledId, or TimerId for TimerFired
	hasTaskID bool
	scheduled time.Time // ScheduledTime, zero when absent
	fireAt    time.Time
	reason    string
	details   string
	failure   *history.FailureDetails
	status    history.OrchestrationStatus
	hasStatus bool
}

func (e *entry) String() string { return fmt.Sprintf("historyEvents[%d] (%s)", e.index, e.typeName) }

func badExport(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadExport, fmt.Sprintf(format, args...))
}

// parseExport parses a status response saved with showHistory=true.
func parseExport(data []byte) (*export, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %w", ErrBadExport, err)
	}
	x := &export{byTask: map[int32]*entry{}, fired: map[int32]*entry{}}
	if err := optString(top, "", "name", &x.name); err != nil {
		return nil, err
	}
	if err := optString(top, "", "instanceId", &x.instanceID); err != nil {
		return nil, err
	}
	var status string
	if err := optString(top, "", "runtimeStatus", &status); err != nil {
		return nil, err
	}
	if status != "" {
		s, err := history.ParseStatus(status)
		if err != nil {
			return nil, fmt.Errorf("%w: runtimeStatus: %w", ErrBadExport, err)
		}
		x.status, x.hasStatus = s, true
	}
	if raw, ok := top["output"]; ok {
		x.output, x.hasOutput = jsonText(raw), true
	}
	raw, ok := top["historyEvents"]
	if !ok {
		return nil, badExport("the export has no historyEvents: save it with ?showHistory=true&showHistoryOutput=true")
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%w: historyEvents: %w", ErrBadExport, err)
	}
	for i, item := range items {
		e, err := parseEntry(i, item)
		if err != nil {
			return nil, err
		}
		x.entries = append(x.entries, e)
	}
	if err := x.index(); err != nil {
		return nil, err
	}
	return x, nil
}

// index validates the entries and builds the lookup tables.
func (x *export) index() error {
	var times []time.Time
	for _, e := range x.entries {
		if !e.known {
			continue
		}
		switch e.typ {
		case history.ExecutionStarted:
			if x.start != nil {
				continue
			}
			if !e.hasInput {
				return badExport("%s has no Input: save the export with showInput=true (the default)", e)
			}
			x.start = e
			if x.name == "" {
				x.name = e.name
			}
		case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
			if !e.hasTaskID {
				return badExport("%s has no TaskScheduledId: replay needs an export from this app's management API", e)
			}
			if (e.typ == history.TaskCompleted || e.typ == history.SubOrchestrationInstanceCompleted) && !e.hasResult {
				return badExport("%s has no Result: save the export with showHistoryOutput=true", e)
			}
			if _, dup := x.byTask[e.taskID]; !dup {
				x.byTask[e.taskID] = e
			}
			if !e.scheduled.IsZero() {
				times = append(times, e.scheduled)
			}
		case history.TimerFired:
			if !e.hasTaskID {
				return badExport("%s has no TimerId: replay needs an export from this app's management API", e)
			}
			if _, dup := x.fired[e.taskID]; !dup {
				x.fired[e.taskID] = e
			}
		case history.TimerCreated:
			x.timersCreated = append(x.timersCreated, e)
			times = append(times, e.ts)
		case history.ExecutionCompleted, history.ContinueAsNew:
			if x.completion == nil {
				x.completion = e
				times = append(times, e.ts)
			}
		}
	}
	if x.start == nil {
		return badExport("historyEvents has no ExecutionStarted entry (the instance has not started, or the history was purged)")
	}
	if x.name == "" {
		return badExport("the export names no orchestrator")
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for _, t := range times {
		if n := len(x.episodeTimes); n == 0 || !x.episodeTimes[n-1].Equal(t) {
			x.episodeTimes = append(x.episodeTimes, t)
		}
	}
	return nil
}

// episodeTimeFrom returns the earliest known episode start time at or after
// t, or t if none is known.
func (x *export) episodeTimeFrom(t time.Time) time.Time {
	i := sort.Search(len(x.episodeTimes), func(i int) bool { return !x.episodeTimes[i].Before(t) })
	if i < len(x.episodeTimes) {
		return x.episodeTimes[i]
	}
	return t
}

func parseEntry(i int, m map[string]json.RawMessage) (*entry, error) {
	e := &entry{index: i}
	prefix := fmt.Sprintf("historyEvents[%d].", i)
	where := func(field string) string { return prefix + field }
	if err := optString(m, prefix, "EventType", &e.typeName); err != nil {
		return nil, err
	}
	if e.typeName == "" {
		return nil, badExport("historyEvents[%d] has no EventType", i)
	}
	if t, err := history.ParseEventType(e.typeName); err == nil {
		e.typ, e.known = t, true
	}
	var err error
	if e.ts, err = optTime(m, "Timestamp", where); err != nil {
		return nil, err
	}
	if e.scheduled, err = optTime(m, "ScheduledTime", where); err != nil {
		return nil, err
	}
	if e.fireAt, err = optTime(m, "FireAt", where); err != nil {
		return nil, err
	}
	nameField := "FunctionName"
	if e.typ == history.EventRaised || e.typ == history.EventSent {
		nameField = "Name"
	}
	if raw, ok := m[nameField]; ok {
		if err := json.Unmarshal(raw, &e.name); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadExport, where(nameField), err)
		}
		e.hasName = true
	}
	if raw, ok := m["Input"]; ok {
		e.input, e.hasInput = jsonText(raw), true
	}
	if raw, ok := m["Result"]; ok {
		e.result, e.hasResult = jsonText(raw), true
	}
	idField := "TaskScheduledId"
	if e.typ == history.TimerFired {
		idField = "TimerId"
	}
	if raw, ok := m[idField]; ok {
		if err := json.Unmarshal(raw, &e.taskID); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadExport, where(idField), err)
		}
		e.hasTaskID = true
	}
	if err := optString(m, prefix, "Reason", &e.reason); err != nil {
		return nil, err
	}
	if err := optString(m, prefix, "Details", &e.details); err != nil {
		return nil, err
	}
	if raw, ok := m["FailureDetails"]; ok && !isNull(raw) {
		e.failure = new(history.FailureDetails)
		if err := json.Unmarshal(raw, e.failure); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadExport, where("FailureDetails"), err)
		}
	}
	var status string
	if err := optString(m, prefix, "OrchestrationStatus", &status); err != nil {
		return nil, err
	}
	if status != "" {
		if e.status, err = history.ParseStatus(status); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadExport, where("OrchestrationStatus"), err)
		}
		e.hasStatus = true
	}
	if e.typ == history.ContinueAsNew && !e.hasStatus {
		e.status, e.hasStatus = history.StatusContinuedAsNew, true
	}
	return e, nil
}

// optString decodes the string field key of m, if present, into dst;
// prefix locates m in errors.
func optString(m map[string]json.RawMessage, prefix, key string, dst *string) error {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%w: %s%s: %w", ErrBadExport, prefix, key, err)
	}
	return nil
}

func optTime(m map[string]json.RawMessage, key string, where func(string) string) (time.Time, error) {
	var s string
	if err := optString(m, where(""), key, &s); err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %w", ErrBadExport, where(key), err)
	}
	return t.UTC(), nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// jsonText turns an exported JSON value back into stored JSON text
// (compact, as the runtime writes it), where "" means null.
func jsonText(raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return strings.TrimSpace(string(raw))
	}
	return b.String()
}
