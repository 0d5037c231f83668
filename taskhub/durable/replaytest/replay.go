package replaytest

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// checker replays one export against one orchestrator.
type checker struct {
	x   *export
	fn  replay.Orchestrator
	cfg config
}

// check runs the forward replay until its episode times are settled, then
// replays the result from scratch.
func (c *checker) check() error {
	pins := map[int]time.Time{}
	// Every rerun pins at least one more episode, so this terminates; the
	// bound only guards against surprises.
	for attempt := 0; ; attempt++ {
		f := c.newForward(pins)
		err := f.run()
		f.ex.Close()
		if len(f.newPins) > 0 && attempt <= len(c.x.entries)+1 {
			for k, t := range f.newPins {
				pins[k] = t
			}
			continue
		}
		if err != nil {
			return err
		}
		return c.fromScratch(f)
	}
}

// forward drives an executor through the export one recorded event at a
// time, as a cached executor would run in the engine, and compares each
// action of the code with what the export records.
type forward struct {
	*checker
	ex      replay.Executor
	pins    map[int]time.Time // settled episode start times, by trigger entry
	newPins map[int]time.Time // corrections found by this run
	prev    time.Time         // start time of the previous episode

	actions    map[int32]history.Event // the code's actions (not the completion), by id
	timers     []int32                 // the code's timer ids, in creation order
	completion *history.Event
	calls      int32 // number of ids the code has used

	episodes []episode
}

// episode is one Run: the events given and the actions returned.
type episode struct {
	trigger int // index of the entry that caused it
	events  []history.Event
	actions []history.Event
}

func (c *checker) newForward(pins map[int]time.Time) *forward {
	ex := replay.NewExecutor(c.fn, c.x.instanceID)
	ex.SetLogger(slog.New(slog.DiscardHandler))
	return &forward{
		checker: c,
		ex:      ex,
		pins:    pins,
		newPins: map[int]time.Time{},
		actions: map[int32]history.Event{},
	}
}

func (f *forward) run() error {
	x := f.x
	start := history.NewEvent(history.ExecutionStarted, x.start.ts)
	start.Name = x.name
	start.Input = x.start.input
	start.Instance = history.OrchestrationInstance{InstanceID: x.instanceID}
	if err := f.episode(x.start.index, x.start.ts, start); err != nil {
		return err
	}
	timersSeen := 0
	for _, e := range x.entries[x.start.index+1:] {
		if !e.known {
			continue
		}
		switch e.typ {
		case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted,
			history.SubOrchestrationInstanceFailed, history.TimerFired:
			if _, made := f.actions[e.taskID]; !made {
				return f.diverge(MissingCall, e.taskID, e.index, recordedCall(e), f.nothingFor(e.taskID), nil)
			}
			lower := e.ts
			if e.typ == history.TimerFired && e.fireAt.After(lower) {
				lower = e.fireAt
			}
			if err := f.episode(e.index, lower, responseEvent(e)); err != nil {
				return err
			}
		case history.EventRaised, history.ExecutionTerminated, history.ExecutionSuspended, history.ExecutionResumed:
			if err := f.episode(e.index, e.ts, inputEvent(e)); err != nil {
				return err
			}
		case history.TimerCreated:
			// The timer was created by the episode of the entries before
			// this one, all of which the code has been given.
			timersSeen++
			if len(f.timers) < timersSeen {
				return f.diverge(MissingCall, -1, e.index, fmt.Sprintf("TimerCreated (fire at %s)", fmtTime(e.fireAt)),
					fmt.Sprintf("only %d timer(s) by then (%s)", len(f.timers), f.state()), nil)
			}
		case history.ExecutionCompleted, history.ContinueAsNew:
			return f.checkOutcome(e)
		}
	}
	if x.hasStatus && x.status.IsTerminal() {
		return f.checkOutcome(nil)
	}
	return nil
}

// episode runs the code on one recorded event, in an episode that starts
// no earlier than lower, and checks the actions it produces.
func (f *forward) episode(trigger int, lower time.Time, ev history.Event) error {
	t, ok := f.pins[trigger]
	if !ok {
		t = f.x.episodeTimeFrom(lower)
		if t.Before(f.prev) {
			t = f.prev
		}
	}
	f.prev = t
	events := []history.Event{history.NewEvent(history.OrchestratorStarted, t), ev}
	actions, err := f.ex.Run(events)
	if err != nil {
		return fmt.Errorf("replaytest: the executor failed on %s: %w", f.x.entries[trigger], err)
	}
	f.episodes = append(f.episodes, episode{trigger: trigger, events: events, actions: actions})
	for _, a := range actions {
		if err := f.checkAction(trigger, t, a); err != nil {
			return err
		}
	}
	return nil
}

// settle records that the episode of trigger, run at t, produced an action
// that history records as made at recorded: when the two differ, the next
// run uses the recorded time, so that CurrentTime, NewGUID and timer fire
// times match production.
func (f *forward) settle(trigger int, t, recorded time.Time) {
	if recorded.IsZero() || recorded.Equal(t) {
		return
	}
	if _, done := f.pins[trigger]; done {
		return
	}
	if _, done := f.newPins[trigger]; !done {
		f.newPins[trigger] = recorded
	}
}

// checkAction compares one action of the code with the export.
func (f *forward) checkAction(trigger int, t time.Time, a history.Event) error {
	id := a.EventID
	if id >= f.calls {
		f.calls = id + 1
	}
	x := f.x
	switch a.Type {
	case history.ExecutionCompleted, history.ContinueAsNew:
		c := a
		f.completion = &c
		if x.completion != nil {
			f.settle(trigger, t, x.completion.ts)
		}
		if r := x.byTask[id]; r != nil {
			return f.diverge(MissingCall, id, r.index, recordedCall(r), describeAction(a), nil)
		}
		if r := x.fired[id]; r != nil {
			return f.diverge(MissingCall, id, r.index, recordedCall(r), describeAction(a), nil)
		}
		return nil
	case history.TimerCreated:
		f.actions[id] = a
		f.timers = append(f.timers, id)
		if j := len(f.timers) - 1; j < len(x.timersCreated) {
			f.settle(trigger, t, x.timersCreated[j].ts)
		}
		if r := x.byTask[id]; r != nil {
			return f.diverge(CallMismatch, id, r.index, recordedCall(r), describeAction(a), nil)
		}
		return nil
	case history.TaskScheduled, history.SubOrchestrationInstanceCreated:
		f.actions[id] = a
		if r := x.fired[id]; r != nil {
			return f.diverge(CallMismatch, id, r.index, recordedCall(r), describeAction(a), nil)
		}
		r := x.byTask[id]
		if r == nil {
			return nil // a call history has no result for: new, or still running
		}
		f.settle(trigger, t, r.scheduled)
		if scheduledType(r.typ) != a.Type || (r.hasName && r.name != a.Name) {
			return f.diverge(CallMismatch, id, r.index, recordedCall(r), describeAction(a), nil)
		}
		if !f.cfg.ignoreInputs && r.hasInput && !sameJSON(r.input, a.Input) {
			return f.diverge(InputMismatch, id, r.index, recordedCall(r), describeAction(a), nil)
		}
		return nil
	default:
		f.actions[id] = a
		return nil
	}
}

// checkOutcome compares the code's completion with the recorded one (e),
// or with the export's runtime status when e is nil.
func (f *forward) checkOutcome(e *entry) error {
	x := f.x
	status, output, hasOutput, index := x.status, x.output, x.hasOutput, -1
	if e != nil {
		status, output, hasOutput, index = e.status, e.result, e.hasResult, e.index
		if !e.hasStatus {
			status = history.StatusCompleted
		}
		if !hasOutput && x.hasStatus && x.status == status {
			output, hasOutput = x.output, x.hasOutput
		}
	}
	recorded := describeOutcome(status, output, hasOutput, e)
	if f.completion == nil {
		return f.diverge(OutcomeMismatch, -1, index, recorded, "no completion ("+f.state()+")", nil)
	}
	got := f.completion.Status
	if f.completion.Type == history.ContinueAsNew {
		got = history.StatusContinuedAsNew
	}
	if got != status {
		return f.diverge(OutcomeMismatch, -1, index, recorded, describeAction(*f.completion), nil)
	}
	if status == history.StatusCompleted && hasOutput && !f.cfg.ignoreOutput && !sameJSON(output, f.completion.Result) {
		return f.diverge(OutcomeMismatch, -1, index, recorded, describeAction(*f.completion), nil)
	}
	return nil
}

func (f *forward) diverge(kind Kind, id int32, index int, recorded, produced string, err error) error {
	return &DivergenceError{
		Kind:         kind,
		Orchestrator: f.x.name,
		InstanceID:   f.x.instanceID,
		TaskID:       id,
		Entry:        index,
		Recorded:     recorded,
		Produced:     produced,
		Err:          err,
	}
}

// nothingFor describes the code not having made action id.
func (f *forward) nothingFor(id int32) string {
	return fmt.Sprintf("nothing for task %d (%s)", id, f.state())
}

// state describes where the code stands: returned, or waiting for what.
func (f *forward) state() string {
	if f.completion != nil {
		return "the orchestrator had already returned: " + describeAction(*f.completion)
	}
	var open []int32
	for id := range f.actions {
		if f.ex.TaskState(id) == replay.TaskAwaiting {
			open = append(open, id)
		}
	}
	sort.Slice(open, func(i, j int) bool { return open[i] < open[j] })
	made := "no calls"
	if f.calls > 0 {
		made = fmt.Sprintf("tasks 0-%d", f.calls-1)
	}
	if len(open) == 0 {
		return fmt.Sprintf("the orchestrator made %s and is waiting with none of them open, e.g. for an external event", made)
	}
	const show = 3
	var parts []string
	for i, id := range open {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(open)-show))
			break
		}
		parts = append(parts, describeAction(f.actions[id]))
	}
	return fmt.Sprintf("the orchestrator made %s and is waiting for %s", made, strings.Join(parts, ", "))
}

// fromScratch replays the history the forward run produced with a fresh
// executor, as the engine does after a restart: IsReplaying is true, and
// the executor's own determinism check compares every recorded action.
func (c *checker) fromScratch(f *forward) error {
	type origin struct {
		entry int
		task  int32
	}
	var events []history.Event
	var origins []origin
	for _, ep := range f.episodes {
		for _, ev := range ep.events {
			events = append(events, ev)
			origins = append(origins, origin{ep.trigger, -1})
		}
		for _, a := range ep.actions {
			events = append(events, a)
			o := origin{ep.trigger, a.EventID}
			if a.Type.EndsExecution() {
				o.task = -1
				if c.x.completion != nil {
					o.entry = c.x.completion.index
				}
			} else if r := c.x.byTask[a.EventID]; r != nil {
				o.entry = r.index
			} else if r := c.x.fired[a.EventID]; r != nil {
				o.entry = r.index
			}
			origins = append(origins, o)
		}
		events = append(events, history.NewEvent(history.OrchestratorCompleted, ep.events[0].Timestamp))
		origins = append(origins, origin{ep.trigger, -1})
	}
	ex := replay.NewExecutor(c.fn, c.x.instanceID)
	ex.SetLogger(slog.New(slog.DiscardHandler))
	defer ex.Close()
	unstable := func(id int32, entry int, first, second string, err error) error {
		return &DivergenceError{Kind: Unstable, Orchestrator: c.x.name, InstanceID: c.x.instanceID,
			TaskID: id, Entry: entry, Recorded: first, Produced: second, Err: err}
	}
	if err := ex.Replay(events); err != nil {
		var nd *durable.NonDeterminismError
		if errors.As(err, &nd) && nd.Position >= 0 && nd.Position < len(origins) {
			o := origins[nd.Position]
			return unstable(o.task, o.entry, nd.Recorded, nd.Produced, err)
		}
		return fmt.Errorf("replaytest: replay from scratch: %w", err)
	}
	extra, err := ex.Run(nil)
	if err != nil {
		return fmt.Errorf("replaytest: replay from scratch: %w", err)
	}
	completionEntry := -1
	if c.x.completion != nil {
		completionEntry = c.x.completion.index
	}
	if len(extra) > 0 {
		a := extra[0]
		if a.Type.EndsExecution() {
			return unstable(-1, completionEntry, "no completion", describeAction(a), nil)
		}
		return unstable(a.EventID, -1, fmt.Sprintf("nothing for task %d", a.EventID), describeAction(a), nil)
	}
	if first, second := f.completion, ex.Completion(); first != nil && second != nil {
		if first.Type != second.Type || first.Status != second.Status || !sameJSON(first.Result, second.Result) {
			return unstable(-1, completionEntry, describeAction(*first), describeAction(*second), nil)
		}
	}
	return nil
}

// scheduledType is the scheduling event a response answers.
func scheduledType(t history.EventType) history.EventType {
	switch t {
	case history.TaskCompleted, history.TaskFailed:
		return history.TaskScheduled
	case history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
		return history.SubOrchestrationInstanceCreated
	case history.TimerFired:
		return history.TimerCreated
	}
	return t
}

// responseEvent rebuilds the history event of a response entry.
func responseEvent(e *entry) history.Event {
	ev := history.NewEvent(e.typ, e.ts)
	switch e.typ {
	case history.TimerFired:
		ev.TimerID, ev.FireAt = e.taskID, e.fireAt
	default:
		ev.TaskScheduledID = e.taskID
		ev.Result = e.result
		ev.Reason, ev.Details = e.reason, e.details
		if e.failure != nil {
			fd := *e.failure
			ev.Failure = &fd
		}
	}
	return ev
}

// inputEvent rebuilds the history event of an external event or a
// management operation.
func inputEvent(e *entry) history.Event {
	ev := history.NewEvent(e.typ, e.ts)
	ev.Name, ev.Input, ev.Reason = e.name, e.input, e.reason
	return ev
}

// recordedCall describes the call or timer that a response entry answers.
func recordedCall(e *entry) string {
	st := scheduledType(e.typ)
	if st == history.TimerCreated {
		return fmt.Sprintf("TimerCreated (task %d, fire at %s)", e.taskID, fmtTime(e.fireAt))
	}
	s := fmt.Sprintf("%s %q (task %d)", st, e.name, e.taskID)
	if !e.hasName {
		s = fmt.Sprintf("%s (task %d)", st, e.taskID)
	}
	if e.hasInput {
		s += " with input " + replay.Abbrev(e.input)
	}
	return s
}

// describeAction describes an action of the code.
func describeAction(a history.Event) string {
	switch a.Type {
	case history.TaskScheduled, history.SubOrchestrationInstanceCreated:
		return fmt.Sprintf("%s %q (task %d) with input %s", a.Type, a.Name, a.EventID, replay.Abbrev(a.Input))
	case history.TimerCreated:
		return fmt.Sprintf("TimerCreated (task %d, fire at %s)", a.EventID, fmtTime(a.FireAt))
	case history.EventSent:
		return fmt.Sprintf("EventSent %q (task %d) to %q", a.Name, a.EventID, a.InstanceID)
	case history.ContinueAsNew:
		return "ContinueAsNew with input " + replay.Abbrev(a.Result)
	case history.ExecutionCompleted:
		switch a.Status {
		case history.StatusCompleted:
			return "ExecutionCompleted (Completed) with output " + replay.Abbrev(a.Result)
		case history.StatusFailed:
			msg := ""
			if a.Failure != nil {
				msg = a.Failure.String()
			}
			return fmt.Sprintf("ExecutionCompleted (Failed: %s)", replay.AbbrevText(msg))
		default:
			return fmt.Sprintf("ExecutionCompleted (%s)", a.Status)
		}
	}
	return fmt.Sprintf("%s (task %d)", a.Type, a.EventID)
}

// describeOutcome describes a recorded completion.
func describeOutcome(status history.OrchestrationStatus, output string, hasOutput bool, e *entry) string {
	name := "runtimeStatus"
	if e != nil {
		name = e.typeName
	}
	switch {
	case status == history.StatusCompleted && hasOutput:
		return fmt.Sprintf("%s (Completed) with output %s", name, replay.Abbrev(output))
	case status == history.StatusFailed && e != nil && e.failure != nil:
		return fmt.Sprintf("%s (Failed: %s)", name, replay.AbbrevText(e.failure.String()))
	}
	return fmt.Sprintf("%s (%s)", name, status)
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
