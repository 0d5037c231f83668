package durabletest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Instance is what one orchestration instance of a run did: the
// orchestration under test, or one of its sub-orchestrations.
type Instance struct {
	// ID is the instance ID; Name the orchestrator's name; Version the
	// version from its ExecutionStarted event (the last execution's, as
	// the Instances row has it, when a ContinueAsNew changed it).
	ID      string
	Name    string
	Version string
	// Status is the runtime status when the run ended: Completed, Failed
	// or Terminated, or Running, Suspended or Pending if it had not
	// finished (see NotFinishedError).
	Status history.OrchestrationStatus
	// RawOutput is the output as JSON ("" for none): the result when
	// Completed, the reason when Terminated.
	RawOutput string
	// Failure is the failure recorded when Failed, as the engine records
	// it (an orchestrator's error; a re-raised *durable.TaskFailedError
	// has the task's failure as InnerFailure).
	Failure *durable.FailureDetails
	// RawCustomStatus is the last custom status set (JSON, "" for none).
	RawCustomStatus string
	// History is the history of the last execution, in Durable Task order
	// and in the shape the engine writes it.
	History []history.Event
	// Executions lists every execution of the instance in order: more
	// than one when it continued as new.
	Executions []*Execution
	// Children are the sub-orchestration instances it started, in order.
	Children []*Instance
	// Started is the virtual time the instance started; Finished when it
	// finished (zero if it did not); Elapsed the virtual time in between
	// (up to the end of the run if it did not finish).
	Started, Finished time.Time
	Elapsed           time.Duration
}

// Execution is one execution of an instance.
type Execution struct {
	// ExecutionID identifies it; Input is its input (JSON); Version its
	// orchestration version (ExecutionStarted.Version).
	ExecutionID string
	Input       string
	Version     string
	// Status is ContinuedAsNew for executions that continued as new,
	// otherwise as Instance.Status.
	Status history.OrchestrationStatus
	// RawOutput is its output (for ContinuedAsNew, the next input);
	// Failure its failure; RawCustomStatus its last custom status.
	RawOutput       string
	Failure         *durable.FailureDetails
	RawCustomStatus string
	// History is the execution's history.
	History []history.Event
	// Started and Finished are virtual times (Finished zero if running).
	Started, Finished time.Time
}

// Err returns nil if the instance completed, a *FailedError if it failed
// or was terminated, and a *NotFinishedError if it had not finished when
// the run ended.
func (i *Instance) Err() error {
	switch i.Status {
	case history.StatusCompleted:
		return nil
	case history.StatusFailed, history.StatusTerminated:
		return &FailedError{InstanceID: i.ID, Name: i.Name, Status: i.Status, Failure: i.Failure, Output: i.RawOutput}
	}
	return &NotFinishedError{InstanceID: i.ID, Name: i.Name, Status: i.Status, Reason: "the run ended before it finished"}
}

// Child returns the sub-orchestration instance with the given ID started
// by i or by one of its descendants, or nil.
func (i *Instance) Child(id string) *Instance {
	for _, c := range i.Children {
		if c.ID == id {
			return c
		}
		if d := c.Child(id); d != nil {
			return d
		}
	}
	return nil
}

// Output decodes the output of a completed instance into T.
func Output[T any](i *Instance) (T, error) {
	var out T
	if i.Status != history.StatusCompleted {
		return out, fmt.Errorf("durabletest: instance %q has no output: it is %s", i.ID, i.Status)
	}
	if err := decode(i.RawOutput, &out); err != nil {
		return out, fmt.Errorf("durabletest: the output of instance %q does not fit type %T: %w", i.ID, out, err)
	}
	return out, nil
}

// CustomStatus decodes the last custom status of the instance into T (the
// zero T when none was set).
func CustomStatus[T any](i *Instance) (T, error) {
	var out T
	if err := decode(i.RawCustomStatus, &out); err != nil {
		return out, fmt.Errorf("durabletest: the custom status of instance %q does not fit type %T: %w", i.ID, out, err)
	}
	return out, nil
}

func decode(text string, v any) error {
	if text == "" {
		return nil
	}
	return json.Unmarshal([]byte(text), v)
}

// Result is the outcome of Run: the instance under test, with its output
// decoded into the orchestrator's output type when it completed.
type Result[Out any] struct {
	*Instance
	// Output is the typed output (the zero Out unless Status is Completed).
	Output Out
}

// FailedError reports an orchestration that failed or was terminated. Run
// returns it for the orchestration under test; Instance.Err for any.
type FailedError struct {
	InstanceID string
	Name       string
	// Status is Failed or Terminated.
	Status history.OrchestrationStatus
	// Failure is the recorded failure when Failed.
	Failure *durable.FailureDetails
	// Output is the recorded output: the reason (JSON) when Terminated.
	Output string
}

// Error implements error.
func (e *FailedError) Error() string {
	if e.Status == history.StatusTerminated {
		return fmt.Sprintf("durabletest: orchestration %q (instance %q) was terminated: %s", e.Name, e.InstanceID, orNone(e.Output))
	}
	return fmt.Sprintf("durabletest: orchestration %q (instance %q) failed: %s", e.Name, e.InstanceID, e.Failure.String())
}

// NotFinishedError reports an orchestration that had not finished when the
// run ended: it waits for something nothing will provide, or a limit of
// the run (StopAfter, MaxEpisodes) was reached.
type NotFinishedError struct {
	InstanceID string
	Name       string
	// Status is the instance's status then (Running, Suspended, Pending).
	Status history.OrchestrationStatus
	// Reason says why the run ended.
	Reason string
	// At is the virtual time the run ended; Elapsed the virtual time
	// since the start.
	At      time.Time
	Elapsed time.Duration
	// Waiting describes what the instance waits for, such as
	// `external event "Approval"` or `timer (task 3) due at ...`.
	Waiting []string
}

// Error implements error.
func (e *NotFinishedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "durabletest: orchestration %q (instance %q) did not finish: %s", e.Name, e.InstanceID, e.Reason)
	if !e.At.IsZero() {
		fmt.Fprintf(&b, " (virtual time %s, %v after the start)", e.At.Format(time.RFC3339Nano), e.Elapsed)
	}
	if len(e.Waiting) > 0 {
		b.WriteString("; it waits for ")
		b.WriteString(strings.Join(e.Waiting, ", "))
	}
	return b.String()
}

// BlockedError reports user code that kept control longer than the run's
// BlockTimeout, in real time: orchestrator code blocking outside the
// durable API, or an activity that does not return. The run is abandoned
// (the blocked goroutine is left behind).
type BlockedError struct {
	// What names the code, e.g. `orchestrator "Approve" (instance "i")`.
	What    string
	Timeout time.Duration
}

// Error implements error.
func (e *BlockedError) Error() string {
	return fmt.Sprintf("durabletest: %s has not returned control after %v of real time: it blocks outside the durable API "+
		"(a channel, a lock, time.Sleep, I/O without a deadline?)", e.What, e.Timeout)
}

// PanicError reports a panic in code the run calls outside the replay core
// (a callback registered with After). Panics in orchestrator code fail the
// orchestration, and panics in activities fail the call, as in the engine.
type PanicError struct {
	What  string
	Value any
	Stack string
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("durabletest: %s panicked: %v", e.What, e.Value)
}

func orNone(s string) string {
	if s == "" {
		return "(no reason)"
	}
	return s
}

// ErrEntityNotRegistered is wrapped by the error of a run in which a
// message goes to an entity whose name is not among the entities given to
// New: the run stops there, since the engine would keep the message for
// code that this app does not have.
var ErrEntityNotRegistered = errors.New("durabletest: message to an entity that is not given to New")
