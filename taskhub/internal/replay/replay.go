// Package replay is the engine's side of the replay core in taskhub/durable:
// what taskhub/engine and taskhub/durable/replaytest need to run
// orchestrators and activities, kept out of durable's public API.
//
// taskhub/durable implements it: its unexported executor satisfies
// Executor, and it installs the lookups and conversions below when it is
// initialised (Install). Any *durable.Registry a caller holds therefore
// comes with an installed implementation.
package replay

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Executor replays one orchestration execution against its history and
// runs it forward on new events. It is not safe for concurrent use; the
// engine drives one Executor from one goroutine at a time.
type Executor interface {
	// SetLogger sets the logger behind the orchestrator's Context.Logger.
	SetLogger(l *slog.Logger)
	// Replay applies committed history events (IsReplaying is true while
	// their effects run). It returns a *durable.NonDeterminismError if the
	// code disagrees with the history; the executor then holds a failed
	// completion.
	Replay(events []history.Event) error
	// Run applies new events (not yet in history) and returns the actions
	// the orchestrator produced that history does not record yet, in order.
	// The returned actions are considered recorded from now on: the caller
	// must append the new events, then the actions, then one
	// OrchestratorCompleted event to history (or discard the executor).
	Run(events []history.Event) ([]history.Event, error)
	// Step runs one episode: it applies an OrchestratorStarted event stamped
	// clock() and then events (new, not yet in history), and returns the
	// whole episode as history records it: OrchestratorStarted, events, the
	// actions the orchestrator produced, and a closing OrchestratorCompleted
	// stamped clock() once the code has run; and, separately, the actions
	// alone. From then on the episode counts as recorded: the caller
	// appends it to history as returned, or discards the executor.
	Step(clock func() time.Time, events []history.Event) (episode, actions []history.Event, err error)
	// Fail makes the next Run end the execution as Failed with fd once it
	// has applied its events, like a termination: whatever the code does in
	// that Run is void. It has no effect on an execution that has already
	// completed.
	Fail(fd history.FailureDetails)
	// Close unwinds a parked orchestrator coroutine. The executor is
	// unusable afterwards. It is safe to call more than once.
	Close()
	// Done reports whether the orchestration has produced its completion.
	Done() bool
	// Completion returns the completion action (ExecutionCompleted or
	// ContinueAsNew), or nil while the orchestration is still running. A
	// ContinueAsNew carries the next execution's input in Result and its
	// version in Version.
	Completion() *history.Event
	// CarryOver returns the events a ContinueAsNew completion hands to the
	// next execution (unconsumed external events, when asked for).
	CarryOver() []history.Event
	// CustomStatus returns the custom status the code set (JSON, "" = none).
	CustomStatus() string
	// Suspended reports whether the instance is suspended.
	Suspended() bool
	// TaskState reports the state of task id.
	TaskState(id int32) TaskState
}

// TaskState says how the recorded history stands for one task id.
type TaskState int

// Task states, as seen by the engine when a response arrives.
const (
	// TaskUnknown: history does not record the task's scheduling (yet); a
	// response for it is out of order.
	TaskUnknown TaskState = iota
	// TaskAwaiting: scheduled and recorded, waiting for its response.
	TaskAwaiting
	// TaskResolved: the task already has its response (or was canceled);
	// another is a duplicate.
	TaskResolved
)

// Orchestrator is orchestrator code as the engine holds it: it returns a
// fresh executor of that code for an instance.
type Orchestrator func(instanceID string) Executor

// NewExecutor returns an executor that will run o for the given instance.
func NewExecutor(o Orchestrator, instanceID string) Executor { return o(instanceID) }

// ActivityFunc is the untyped form of an activity that the engine runs: it
// takes and returns JSON text ("" for null).
type ActivityFunc func(ctx context.Context, input string) (string, error)

// Hooks is what taskhub/durable installs: the parts of this package that
// need durable's unexported types. A Registry argument is a
// *durable.Registry; it is typed any because this package cannot import
// durable (durable imports it).
type Hooks struct {
	// Orchestrator returns the orchestrator registered in reg under name.
	Orchestrator func(reg any, name string) (Orchestrator, bool)
	// Activity returns the activity registered in reg under name.
	Activity func(reg any, name string) (ActivityFunc, bool)
	// Entity returns the entity registered in reg under name (any case).
	Entity func(reg any, name string) (EntityFunc, bool)
	// Failing returns an orchestrator whose code fails with err at once.
	Failing func(err error) Orchestrator
	// FailureFromError converts an error of user code into failure details.
	FailureFromError func(err error) *history.FailureDetails
	// EventsAwaited returns the names of the external events ex's
	// orchestrator waits for, sorted (nil for an executor of another kind).
	EventsAwaited func(ex Executor) []string
}

var hooks Hooks

// Install is called by taskhub/durable when it is initialised.
func Install(h Hooks) { hooks = h }

// installed returns the hooks, failing loudly if durable never installed
// them (impossible for a caller holding a *durable.Registry).
func installed() *Hooks {
	if hooks.Orchestrator == nil {
		panic("replay: taskhub/durable has not installed its replay core")
	}
	return &hooks
}

// LookupOrchestrator returns the orchestrator registered in reg (a
// *durable.Registry) under name.
func LookupOrchestrator(reg any, name string) (Orchestrator, bool) {
	return installed().Orchestrator(reg, name)
}

// LookupActivity returns the activity registered in reg (a
// *durable.Registry) under name.
func LookupActivity(reg any, name string) (ActivityFunc, bool) {
	return installed().Activity(reg, name)
}

// Failing returns an orchestrator whose code fails with err as soon as it
// starts, so that the instance fails with err recorded as its failure.
func Failing(err error) Orchestrator { return installed().Failing(err) }

// FailureFromError converts an error returned by user code (activity or
// orchestrator) into failure details, as recorded in history.
func FailureFromError(err error) *history.FailureDetails {
	return installed().FailureFromError(err)
}

// EventsAwaited returns the names of the external events the orchestrator
// behind ex is waiting for, sorted, as they were named in the waits. The
// test harness (taskhub/durable/durabletest) names them when an
// orchestration can never finish.
func EventsAwaited(ex Executor) []string {
	if h := installed(); h.EventsAwaited != nil {
		return h.EventsAwaited(ex)
	}
	return nil
}

// ActivityInfo describes the activity call an activity function is
// serving. durable.ActivityInfo is the same struct, converted on the way
// out of the context.
type ActivityInfo struct {
	Name        string
	InstanceID  string // the orchestration that called it
	ExecutionID string
	TaskID      int32
	Deadline    time.Time // of a call made WithTimeout; zero: none
}

type activityInfoKey struct{}

// WithActivityInfo returns a context carrying info, for the activity code
// to read with durable.ActivityInfoFrom.
func WithActivityInfo(ctx context.Context, info ActivityInfo) context.Context {
	return context.WithValue(ctx, activityInfoKey{}, info)
}

// ActivityInfoFrom returns the activity call details carried by ctx.
func ActivityInfoFrom(ctx context.Context) (ActivityInfo, bool) {
	info, ok := ctx.Value(activityInfoKey{}).(ActivityInfo)
	return info, ok
}

// DeadlineTag is the TaskScheduled tag that carries the deadline of an
// activity called WithTimeout: the time its attempt's timer fires, in
// FormatDeadline's form. The worker runs the activity under a context with
// that deadline, and does not run it once the deadline has passed.
const DeadlineTag = "durable.deadline"

// FormatDeadline renders a deadline for DeadlineTag: UTC, RFC 3339 with
// the storage precision of history times.
func FormatDeadline(t time.Time) string {
	return history.StorageTime(t).Format(time.RFC3339Nano)
}

// Deadline returns the deadline a TaskScheduled event's tags carry (ok
// false when there is none), or an error naming the malformed tag.
func Deadline(tags map[string]string) (deadline time.Time, ok bool, err error) {
	s, ok := tags[DeadlineTag]
	if !ok {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("replay: tag %s = %q is not an RFC 3339 time: %w", DeadlineTag, s, err)
	}
	return t, true, nil
}

// ActivityDeadline applies the deadline rules shared by the engine's
// worker and the test harness to an activity call ev (a TaskScheduled of
// instance instanceID) about to run at now: it returns the call's deadline
// (has is false for a call without one) or, when the call must not run,
// the failure to record instead: a malformed deadline tag, or a deadline
// that has already passed (the orchestration has stopped waiting, or is
// about to; running it would only produce a result nobody uses).
func ActivityDeadline(ev history.Event, instanceID string, now time.Time) (deadline time.Time, has bool, refuse *history.FailureDetails) {
	deadline, has, err := Deadline(ev.Tags)
	switch {
	case err != nil:
		return time.Time{}, false, &history.FailureDetails{ErrorType: "InvalidWorkItem", IsNonRetriable: true,
			ErrorMessage: fmt.Sprintf("activity %q (task %d) of instance %q: %v", ev.Name, ev.EventID, instanceID, err)}
	case has && !now.Before(deadline):
		return deadline, true, deadlineFailure(ev, deadline, "was not started: its deadline passed before a worker took it", nil)
	}
	return deadline, has, nil
}

// CancelledAtDeadline is the failure recorded for an activity that failed
// (with cause) after its context reached the call's deadline: most likely
// the cancellation ended it; either way the orchestration counts the
// attempt as timed out.
func CancelledAtDeadline(ev history.Event, deadline time.Time, cause *history.FailureDetails) *history.FailureDetails {
	return deadlineFailure(ev, deadline, "was cancelled at its deadline", cause)
}

// deadlineFailure is the failure of an activity stopped by the deadline of
// a call made WithTimeout: of type TimeoutError, which the orchestrator
// reports as the call's *durable.TimeoutError.
// It carries the deadline as the property DeadlineTag, which tells it from
// a failure of the activity's own code that happens to have the same type.
func deadlineFailure(ev history.Event, deadline time.Time, what string, cause *history.FailureDetails) *history.FailureDetails {
	return &history.FailureDetails{ErrorType: "TimeoutError", InnerFailure: cause,
		ErrorMessage: fmt.Sprintf("activity %q (task %d) %s (%s)", ev.Name, ev.EventID, what, FormatDeadline(deadline)),
		Properties:   map[string]any{DeadlineTag: FormatDeadline(deadline)}}
}

// IsDeadlineFailure reports whether fd is the failure a worker records for
// an activity stopped by its call's deadline (ActivityDeadline,
// CancelledAtDeadline).
func IsDeadlineFailure(fd *history.FailureDetails) bool {
	if fd == nil || fd.ErrorType != "TimeoutError" {
		return false
	}
	_, ok := fd.Properties[DeadlineTag].(string)
	return ok
}

// ParentNotice is the event, stamped at, that tells a parent how its child
// ended with completion c (ExecutionCompleted): SubOrchestrationInstance-
// Completed with the output, or SubOrchestrationInstanceFailed with the
// failure (for a child that ended otherwise than Completed or Failed, a
// failure naming its status).
func ParentNotice(p *history.ParentInstance, c history.Event, at time.Time) history.Event {
	if c.Status == history.StatusCompleted {
		ev := history.NewEvent(history.SubOrchestrationInstanceCompleted, at)
		ev.TaskScheduledID, ev.Result = p.TaskScheduleID, c.Result
		return ev
	}
	ev := history.NewEvent(history.SubOrchestrationInstanceFailed, at)
	ev.TaskScheduledID = p.TaskScheduleID
	fd := c.Failure
	if fd == nil {
		fd = &history.FailureDetails{ErrorType: c.Status.String(), ErrorMessage: "the sub-orchestration was " + c.Status.String() + ": " + c.Result}
	}
	ev.Reason, ev.Failure = fd.ErrorMessage, fd
	return ev
}

// Abbrev shortens JSON text s for messages ("" is null), as AbbrevText does.
func Abbrev(s string) string {
	if s == "" {
		return "null"
	}
	return AbbrevText(s)
}

// AbbrevText shortens s to at most 120 bytes for messages, without
// splitting a UTF-8 sequence, marking a cut with "…".
func AbbrevText(s string) string {
	const limit = 120
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
