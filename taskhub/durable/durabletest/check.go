package durabletest

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// DeterminismError reports orchestrator code that does not reproduce the
// history it produced. Use errors.As to inspect it.
type DeterminismError struct {
	// InstanceID, Orchestrator and ExecutionID identify the execution.
	InstanceID   string
	Orchestrator string
	ExecutionID  string
	// Position is the index in the execution's history of the event
	// concerned.
	Position int
	// Recorded describes what history records there; Produced what the
	// code did instead.
	Recorded string
	Produced string
	// FromScratch is true when the difference showed only when the whole
	// history was replayed at once (IsReplaying true, as after a restart),
	// not when the code was re-run on the same events episode by episode.
	FromScratch bool
	// Err is the replay core's *durable.NonDeterminismError, if it found
	// the difference.
	Err error
}

// Error implements error.
func (e *DeterminismError) Error() string {
	how := "re-run on the same events"
	if e.FromScratch {
		how = "replayed from scratch (IsReplaying true, as after a restart)"
	}
	return fmt.Sprintf("durabletest: orchestrator %q (instance %q, execution %s) is not deterministic at history[%d]: "+
		"history records %s, but %s the code produced %s", e.Orchestrator, e.InstanceID, e.ExecutionID, e.Position, e.Recorded, how, e.Produced)
}

// Unwrap returns the replay core's error, if any.
func (e *DeterminismError) Unwrap() error { return e.Err }

// Check checks the history of one execution, in the shape Run produces it
// and the engine writes it (Instance.History, Execution.History), against
// the orchestrator registered in reg under the name its ExecutionStarted
// event records. Activities are not run: the code gets the recorded
// results, timer firings and events.
//
// The history is checked twice. First the code is re-run on the recorded
// events episode by episode, and each episode's actions must be exactly
// the recorded ones (kind, sequence number, name, input, target instance,
// fire time, output, failure): this catches time.Now, random numbers, map
// order and anything else that makes a second run differ. Then the whole
// history is replayed at once, as after a restart, and the replay core's
// own check must pass: this catches code that branches on IsReplaying.
//
// It returns nil, a *DeterminismError, or an error saying why the history
// cannot be checked. Run makes this check on every history it produced;
// call Check to test new code against histories of older code.
func Check(reg *durable.Registry, events []history.Event) error {
	if reg == nil {
		return errors.New("durabletest: Check needs a registry")
	}
	lookup := func(name string) (replay.Orchestrator, bool) { return replay.LookupOrchestrator(reg, name) }
	return checkExecution(lookup, events, func(what string, f func()) error { return guardFor(time.Minute, what, f) })
}

// checkAll checks every history the run produced.
func (r *runner) checkAll() error {
	for _, in := range r.all {
		for _, x := range in.rec.Executions {
			if len(x.History) == 0 {
				continue
			}
			if err := checkExecution(r.tr.lookupOrchestrator, x.History, r.guard); err != nil {
				return err
			}
		}
	}
	return nil
}

// recorded is one episode of a history.
type recorded struct {
	inputs    []history.Event // OrchestratorStarted and the events applied
	actions   []history.Event
	actionPos []int // positions of the actions in the history
	end       int   // position of the closing OrchestratorCompleted (or len)
}

func checkExecution(lookup func(string) (replay.Orchestrator, bool), events []history.Event, guard func(string, func()) error) error {
	var start *history.Event
	for i := range events {
		if events[i].Type == history.ExecutionStarted {
			start = &events[i]
			break
		}
	}
	if start == nil {
		return errors.New("durabletest: Check: the history has no ExecutionStarted event")
	}
	code, ok := lookup(start.Name)
	if !ok {
		code = replay.Failing(&notRegisteredError{kind: "orchestrator", name: start.Name})
	}
	episodes, err := splitEpisodes(events)
	if err != nil {
		return err
	}
	id := start.Instance.InstanceID
	diverge := func(pos int, rec, prod string, scratch bool, err error) error {
		return &DeterminismError{InstanceID: id, Orchestrator: start.Name, ExecutionID: start.Instance.ExecutionID,
			Position: pos, Recorded: rec, Produced: prod, FromScratch: scratch, Err: err}
	}
	what := fmt.Sprintf("orchestrator %q (instance %q, determinism check)", start.Name, id)

	// Re-run, episode by episode.
	ex := replay.NewExecutor(code, id)
	ex.SetLogger(slog.New(slog.DiscardHandler))
	var checkErr error
	if err := guard(what, func() {
		defer ex.Close()
		for _, ep := range episodes {
			actions, err := ex.Run(ep.inputs)
			if err != nil {
				checkErr = diverge(ep.end, "the episode's events", "an error", false, err)
				return
			}
			for j := 0; j < len(actions) || j < len(ep.actions); j++ {
				switch {
				case j >= len(ep.actions):
					checkErr = diverge(ep.end, "no further action in this episode", describe(actions[j]), false, nil)
				case j >= len(actions):
					checkErr = diverge(ep.actionPos[j], describe(ep.actions[j]), "no further action in this episode", false, nil)
				case keyOf(actions[j]) != keyOf(ep.actions[j]):
					checkErr = diverge(ep.actionPos[j], describe(ep.actions[j]), describe(actions[j]), false, nil)
				}
				if checkErr != nil {
					return
				}
			}
		}
	}); err != nil {
		return err
	}
	if checkErr != nil {
		return checkErr
	}

	// Replay from scratch.
	ex = replay.NewExecutor(code, id)
	ex.SetLogger(slog.New(slog.DiscardHandler))
	if err := guard(what, func() {
		defer ex.Close()
		if err := ex.Replay(events); err != nil {
			var nd *durable.NonDeterminismError
			if errors.As(err, &nd) {
				checkErr = diverge(nd.Position, nd.Recorded, nd.Produced, true, err)
			} else {
				checkErr = fmt.Errorf("durabletest: Check: replay: %w", err)
			}
			return
		}
		extra, err := ex.Run(nil)
		if err != nil {
			checkErr = fmt.Errorf("durabletest: Check: replay: %w", err)
			return
		}
		if len(extra) > 0 {
			checkErr = diverge(len(events), "nothing more", describe(extra[0]), true, nil)
		}
	}); err != nil {
		return err
	}
	return checkErr
}

// splitEpisodes cuts a history into its episodes.
func splitEpisodes(events []history.Event) ([]recorded, error) {
	var out []recorded
	var cur *recorded
	for i, ev := range events {
		switch {
		case ev.Type == history.OrchestratorStarted:
			if cur != nil {
				cur.end = i
				out = append(out, *cur)
			}
			cur = &recorded{inputs: []history.Event{ev}}
		case cur == nil:
			return nil, fmt.Errorf("durabletest: Check: history[%d] (%s) comes before any OrchestratorStarted event", i, ev.Type)
		case ev.Type == history.OrchestratorCompleted:
			cur.end = i
			out = append(out, *cur)
			cur = nil
		case isAction(ev.Type):
			cur.actions = append(cur.actions, ev)
			cur.actionPos = append(cur.actionPos, i)
		default:
			if len(cur.actions) > 0 {
				return nil, fmt.Errorf("durabletest: Check: history[%d] (%s) follows the actions of its episode; events come first", i, ev.Type)
			}
			cur.inputs = append(cur.inputs, ev)
		}
	}
	if cur != nil {
		cur.end = len(events)
		out = append(out, *cur)
	}
	return out, nil
}

// isAction reports whether events of type t are produced by orchestrator
// code (rather than applied to it).
func isAction(t history.EventType) bool {
	switch t {
	case history.TaskScheduled, history.TimerCreated, history.SubOrchestrationInstanceCreated, history.EventSent,
		history.ExecutionCompleted, history.ContinueAsNew:
		return true
	}
	return false
}

// actionKey is what a re-run must reproduce of an action. Stack traces are
// left out: they name goroutines.
type actionKey struct {
	Type       history.EventType
	EventID    int32
	Timestamp  time.Time
	Name       string
	Version    string
	Input      string
	InstanceID string
	FireAt     time.Time
	Result     string
	Status     history.OrchestrationStatus
	Failure    string
	NonRetry   bool
}

func keyOf(e history.Event) actionKey {
	k := actionKey{Type: e.Type, EventID: e.EventID, Timestamp: e.Timestamp, Name: e.Name, Version: e.Version, Input: e.Input,
		InstanceID: e.InstanceID, FireAt: e.FireAt, Result: e.Result, Status: e.Status}
	if e.Type == history.ContinueAsNew {
		// The next execution's version: storage does not keep it in this
		// event (Durable Task's ContinueAsNewEvent has no such member).
		k.Version = ""
	}
	for f := e.Failure; f != nil; f = f.InnerFailure {
		k.Failure += "[" + f.String() + "]"
		k.NonRetry = k.NonRetry || f.IsNonRetriable
	}
	return k
}

// describe describes an action for messages.
func describe(a history.Event) string {
	switch a.Type {
	case history.TaskScheduled, history.SubOrchestrationInstanceCreated:
		s := fmt.Sprintf("%s %q (task %d) with input %s", a.Type, a.Name, a.EventID, replay.Abbrev(a.Input))
		if a.InstanceID != "" {
			s += fmt.Sprintf(" for instance %q", a.InstanceID)
		}
		return s
	case history.TimerCreated:
		return fmt.Sprintf("TimerCreated (task %d) due at %s", a.EventID, a.FireAt.Format(time.RFC3339Nano))
	case history.EventSent:
		return fmt.Sprintf("EventSent %q (task %d) to %q with input %s", a.Name, a.EventID, a.InstanceID, replay.Abbrev(a.Input))
	case history.ContinueAsNew:
		return "ContinueAsNew with input " + replay.Abbrev(a.Result)
	case history.ExecutionCompleted:
		switch a.Status {
		case history.StatusCompleted:
			return "ExecutionCompleted (Completed) with output " + replay.Abbrev(a.Result)
		case history.StatusFailed:
			return fmt.Sprintf("ExecutionCompleted (Failed: %s)", replay.AbbrevText(a.Failure.String()))
		default:
			return fmt.Sprintf("ExecutionCompleted (%s)", a.Status)
		}
	}
	return fmt.Sprintf("%s (event %d)", a.Type, a.EventID)
}
