package replaytest

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotRegistered is wrapped by the error Check returns when the registry
// has no orchestrator under the export's name.
var ErrNotRegistered = errors.New("replaytest: orchestrator not registered")

// Kind classifies a divergence.
type Kind int

// The kinds of divergence Check reports.
const (
	// CallMismatch: at this sequence number history records one call and
	// the code made another (a different activity or sub-orchestrator name,
	// or a different kind of call, such as a timer instead of an activity).
	CallMismatch Kind = iota + 1
	// InputMismatch: the code made the same call as history records, with
	// a different input, so it would be handed the result recorded for
	// another input.
	InputMismatch
	// MissingCall: history records a call or timer (through its result, or
	// a TimerCreated entry) that the code has not made by the point where
	// history records it: the code dropped it, makes it later, or returned
	// or started waiting for something else first.
	MissingCall
	// OutcomeMismatch: history records the orchestration's completion and
	// the code has not completed at that point, completed with another
	// status, or returned another output.
	OutcomeMismatch
	// Unstable: the code disagrees with itself. Replayed from scratch (as
	// after a host restart) against the history its forward run produced,
	// it made other calls or returned another output. Typical causes are
	// branching on Context.IsReplaying, map iteration order, time.Now or
	// random numbers. Err holds the *durable.NonDeterminismError when the
	// executor detected it.
	Unstable
)

var kindNames = [...]string{"", "call mismatch", "input mismatch", "missing call", "outcome mismatch", "unstable"}

// String returns a short description of the kind, e.g. "call mismatch".
func (k Kind) String() string {
	if k <= 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// DivergenceError describes the first point where the orchestrator code
// does not do what the exported history records. Use errors.As to inspect
// it.
type DivergenceError struct {
	// Kind classifies the divergence.
	Kind Kind
	// Orchestrator and InstanceID identify the replayed export.
	Orchestrator string
	InstanceID   string
	// TaskID is the sequence number of the call or timer concerned (the
	// TaskScheduledId or TimerId of the export), or -1 when the divergence
	// is not about a numbered action (a completion, or a TimerCreated entry
	// whose number the export does not give).
	TaskID int32
	// Entry is the index in historyEvents of the entry concerned, or -1.
	Entry int
	// Recorded describes what history records, e.g.
	// `TaskScheduled "Hello" (task 1) with input "Seattle"`.
	Recorded string
	// Produced describes what the code did instead, e.g.
	// `TimerCreated (task 1, fire at 2026-11-26T10:10:00Z)` or
	// `nothing for task 2 (the orchestrator had already returned ...)`.
	Produced string
	// Err is the underlying error reported by the executor, if any (a
	// *durable.NonDeterminismError for Unstable), or nil.
	Err error
}

// Error implements error.
func (e *DivergenceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replaytest: orchestrator %q (instance %q) ", e.Orchestrator, e.InstanceID)
	var at []string
	if e.TaskID >= 0 {
		at = append(at, fmt.Sprintf("task %d", e.TaskID))
	}
	if e.Entry >= 0 {
		at = append(at, fmt.Sprintf("historyEvents[%d]", e.Entry))
	}
	where := ""
	if len(at) > 0 {
		where = " at " + strings.Join(at, ", ")
	}
	if e.Kind == Unstable {
		fmt.Fprintf(&b, "is not deterministic%s: run forward it produced %s, but replayed from scratch (as after a restart) it produced %s",
			where, e.Recorded, e.Produced)
	} else {
		fmt.Fprintf(&b, "diverges from its history%s (%s): history records %s, but the code produced %s",
			where, e.Kind, e.Recorded, e.Produced)
	}
	return b.String()
}

// Unwrap returns the executor's error, if any.
func (e *DivergenceError) Unwrap() error { return e.Err }
