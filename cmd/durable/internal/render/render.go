// Package render draws the durable command's tables and timelines as
// plain text, with optional ANSI colour.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-durable/durablefunctions/handler/durableapi/apiclient"
)

// Style colours text; the zero Style leaves it plain.
type Style struct {
	// Color turns ANSI colours on.
	Color bool
}

const (
	red    = "31"
	green  = "32"
	yellow = "33"
	blue   = "34"
	faint  = "2"
)

func (s Style) paint(code, text string) string {
	if !s.Color || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// Status renders a runtime status, coloured by outcome.
func (s Style) Status(st string) string {
	switch apiclient.RuntimeStatus(st) {
	case apiclient.StatusCompleted:
		return s.paint(green, st)
	case apiclient.StatusFailed, apiclient.StatusTerminated, apiclient.StatusCanceled:
		return s.paint(red, st)
	case apiclient.StatusSuspended:
		return s.paint(yellow, st)
	case apiclient.StatusRunning, apiclient.StatusPending:
		return s.paint(blue, st)
	}
	return st
}

// Table writes rows under header with columns padded to their widest cell
// (two spaces apart; lines carry no trailing spaces). Cells may carry ANSI
// colour: widths count only the visible characters.
func Table(w io.Writer, header []string, rows [][]string) error {
	widths := make([]int, len(header))
	all := append([][]string{header}, rows...)
	for _, r := range all {
		for i, c := range r {
			if i < len(widths) && visibleLen(c) > widths[i] {
				widths[i] = visibleLen(c)
			}
		}
	}
	var b strings.Builder
	for _, r := range all {
		var line strings.Builder
		for i, c := range r {
			if i >= len(widths) {
				break
			}
			line.WriteString(c)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-visibleLen(c)+2))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// visibleLen is the number of runes of s outside ANSI escape sequences.
func visibleLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			if j := strings.IndexByte(s[i:], 'm'); j >= 0 {
				i += j + 1
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return n
}

// Time renders an instance time in UTC, "-" for none.
func Time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// InstanceRows are the rows of the instance list table: ID, name,
// status, created, updated.
func InstanceRows(s Style, list []*apiclient.Status) [][]string {
	rows := make([][]string, 0, len(list))
	for _, st := range list {
		rows = append(rows, []string{st.InstanceID, st.Name, s.Status(string(st.RuntimeStatus)), Time(st.CreatedTime), Time(st.LastUpdatedTime)})
	}
	return rows
}

// InstanceHeader is the header of the instance list table.
var InstanceHeader = []string{"ID", "NAME", "STATUS", "CREATED", "UPDATED"}

// maxValue bounds the JSON values shown in a timeline or status summary.
const maxValue = 80

// Value renders JSON compactly on one line, shortened to about maxValue
// characters; "" for absent.
func Value(raw json.RawMessage) string {
	t := strings.TrimSpace(string(raw))
	if t == "" {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(t)); err == nil {
		t = b.String()
	}
	return Shorten(t, maxValue)
}

// Shorten cuts s to at most n runes, ending in "..." when cut, and puts
// line breaks on one line.
func Shorten(s string, n int) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\r", " ")), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// Summary writes the status part of `durable show`.
func Summary(w io.Writer, s Style, st *apiclient.Status) error {
	lines := [][2]string{
		{"Instance", st.InstanceID},
		{"Name", st.Name},
		{"Status", s.Status(string(st.RuntimeStatus))},
		{"Created", Time(st.CreatedTime)},
		{"Updated", Time(st.LastUpdatedTime)},
		{"Input", Value(st.Input)},
		{"Output", Value(st.Output)},
	}
	if v := Value(st.CustomStatus); v != "" && v != "null" {
		lines = append(lines, [2]string{"Custom", v})
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%-9s %s\n", l[0], l[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Step is one line of a timeline.
type Step struct {
	// Start and End bound the step; End is zero for a moment (an event)
	// or a step still under way.
	Start, End time.Time
	// Kind is "activity", "orchestration", "timer", "event", "started",
	// "completed", "suspended", ... and Name the function or event name.
	Kind, Name string
	// Result is the result or the failure text; Failed marks a failure.
	Result string
	Failed bool
	// Running marks a step with no end yet.
	Running bool
}

// Steps turns a status history (the API's historyEvents) into timeline
// steps in order of their start: one per activity, sub-orchestration,
// timer and raised event, plus the start, end, suspensions and
// termination of the instance. With the scheduling events in the history
// (showScheduled=true), a call that has no completion yet is a step too:
// running, or, once the instance ended, one that never finished.
func Steps(events []apiclient.HistoryEvent) []Step {
	var steps []Step
	timers := map[time.Time]int{} // FireAt → index of the TimerCreated step waiting for it
	open := map[int32]Step{}      // EventId → the call scheduled and not answered yet
	var openIDs []int32           // open's keys in history order
	ended := false
	for _, ev := range events {
		switch ev.EventType {
		case "TaskScheduled", "SubOrchestrationInstanceCreated":
			if ev.EventID < 0 {
				continue
			}
			kind := "activity"
			if ev.EventType == "SubOrchestrationInstanceCreated" {
				kind = "orchestration"
			}
			if _, seen := open[ev.EventID]; !seen {
				openIDs = append(openIDs, ev.EventID)
			}
			open[ev.EventID] = Step{Start: ev.Timestamp, Kind: kind, Name: ev.Name, Running: true}
			continue
		case "TaskCompleted", "TaskFailed", "SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed":
			delete(open, ev.TaskScheduledID)
		case "ExecutionCompleted", "ExecutionTerminated", "ContinueAsNew":
			ended = true
		}
		switch ev.EventType {
		case "ExecutionStarted":
			steps = append(steps, Step{Start: ev.Timestamp, Kind: "started", Name: ev.FunctionName, Result: inputText(ev.Input)})
		case "TaskCompleted", "TaskFailed", "SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed":
			kind := "activity"
			if strings.HasPrefix(ev.EventType, "SubOrchestration") {
				kind = "orchestration"
			}
			start := ev.ScheduledTime
			if start.IsZero() {
				start = ev.Timestamp
			}
			st := Step{Start: start, End: ev.Timestamp, Kind: kind, Name: ev.FunctionName, Result: Value(ev.Result)}
			if strings.HasSuffix(ev.EventType, "Failed") {
				st.Failed, st.Result = true, failureText(ev)
			}
			steps = append(steps, st)
		case "TimerCreated":
			timers[ev.FireAt.UTC()] = len(steps)
			steps = append(steps, Step{Start: ev.Timestamp, Kind: "timer", Name: "until " + ev.FireAt.UTC().Format("15:04:05.000"), Running: true})
		case "TimerFired":
			if i, ok := timers[ev.FireAt.UTC()]; ok {
				steps[i].End, steps[i].Running, steps[i].Result = ev.Timestamp, false, "fired"
				delete(timers, ev.FireAt.UTC())
			} else {
				steps = append(steps, Step{Start: ev.Timestamp, End: ev.Timestamp, Kind: "timer", Name: "until " + ev.FireAt.UTC().Format("15:04:05.000"), Result: "fired"})
			}
		case "EventRaised":
			steps = append(steps, Step{Start: ev.Timestamp, Kind: "event", Name: ev.Name, Result: Value(ev.Input)})
		case "EventSent":
			steps = append(steps, Step{Start: ev.Timestamp, Kind: "event sent", Name: ev.Name, Result: Value(ev.Input)})
		case "ExecutionSuspended", "ExecutionResumed":
			steps = append(steps, Step{Start: ev.Timestamp, Kind: strings.ToLower(strings.TrimPrefix(ev.EventType, "Execution")), Result: ev.Reason})
		case "ExecutionTerminated":
			steps = append(steps, Step{Start: ev.Timestamp, Kind: "terminated", Result: Value(ev.Input), Failed: true})
		case "ExecutionCompleted":
			st := Step{Start: ev.Timestamp, Kind: "completed", Name: ev.OrchestrationStatus, Result: Value(ev.Result)}
			if ev.OrchestrationStatus == string(apiclient.StatusFailed) {
				st.Kind, st.Failed = "failed", true
				st.Result = failureText(ev)
			}
			steps = append(steps, st)
		case "ContinueAsNew":
			steps = append(steps, Step{Start: ev.Timestamp, Kind: "continued as new", Result: Value(ev.Result)})
		}
	}
	for _, id := range openIDs {
		st, ok := open[id]
		if !ok {
			continue
		}
		if ended {
			st.Running, st.Result = false, "never finished"
		}
		// In order of start: after the last step that started no later.
		i := len(steps)
		for i > 0 && steps[i-1].Start.After(st.Start) {
			i--
		}
		steps = slices.Insert(steps, i, st)
	}
	return steps
}

func inputText(raw json.RawMessage) string {
	if v := Value(raw); v != "" {
		return "input " + v
	}
	return ""
}

// failureText is the failure of a failed task or execution: its
// FailureDetails' type and message, else Reason, else the result.
func failureText(ev apiclient.HistoryEvent) string {
	var fd struct {
		ErrorType    string `json:"ErrorType"`
		ErrorMessage string `json:"ErrorMessage"`
	}
	if len(ev.FailureDetails) > 0 && json.Unmarshal(ev.FailureDetails, &fd) == nil && (fd.ErrorType != "" || fd.ErrorMessage != "") {
		return Shorten(strings.TrimPrefix(fd.ErrorType+": "+fd.ErrorMessage, ": "), maxValue)
	}
	if ev.Reason != "" {
		return Shorten(ev.Reason, maxValue)
	}
	return Value(ev.Result)
}

// TimelineHeader is the header of the timeline table.
var TimelineHeader = []string{"START", "END", "DURATION", "KIND", "NAME", "RESULT"}

// TimelineRows renders steps as table rows; times are UTC with
// milliseconds.
func TimelineRows(s Style, steps []Step) [][]string {
	rows := make([][]string, 0, len(steps))
	for _, st := range steps {
		end, dur := "", ""
		switch {
		case st.Running:
			end, dur = "...", "running"
		case !st.End.IsZero():
			end, dur = clock(st.End), Duration(st.End.Sub(st.Start))
		}
		result := st.Result
		if st.Failed {
			result = s.paint(red, "failed: "+result)
			if st.Kind == "terminated" || st.Kind == "failed" {
				result = s.paint(red, st.Result)
			}
		}
		rows = append(rows, []string{clock(st.Start), end, dur, st.Kind, st.Name, result})
	}
	return rows
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// Duration renders d briefly: "850ms", "2.35s", "3m04s", "2h01m".
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + Duration(-d)
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// Timeline writes the timeline of a history.
func Timeline(w io.Writer, s Style, events []apiclient.HistoryEvent) error {
	steps := Steps(events)
	if len(steps) == 0 {
		_, err := io.WriteString(w, "(no history)\n")
		return err
	}
	return Table(w, TimelineHeader, TimelineRows(s, steps))
}
