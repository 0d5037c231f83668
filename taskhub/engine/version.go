package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// Orchestration versioning, as Durable Functions has it (host.json
// defaultVersion, versionMatchStrategy, versionFailureStrategy): every
// instance carries the version it was started with (ExecutionStarted.Version
// and the Instances Version column), and an engine runs an episode only for
// instances whose version its VersionMatch accepts. The check is made before
// any orchestrator code runs for the instance: before a loaded history is
// replayed, and before a new execution starts.

// VersionMatch says which instance versions an engine runs.
type VersionMatch int

const (
	// MatchNone runs instances of any version.
	MatchNone VersionMatch = iota
	// MatchStrict runs only instances whose version equals the engine's
	// Version exactly (as Durable Task compares them: ordinal string
	// equality).
	MatchStrict
	// MatchCurrentOrOlder runs instances whose version is at most the
	// engine's Version (see CompareVersions).
	MatchCurrentOrOlder
)

// String returns the strategy's name as host.json spells it.
func (m VersionMatch) String() string {
	switch m {
	case MatchNone:
		return "None"
	case MatchStrict:
		return "Strict"
	case MatchCurrentOrOlder:
		return "CurrentOrOlder"
	}
	return fmt.Sprintf("VersionMatch(%d)", int(m))
}

// ParseVersionMatch parses a match strategy name (None, Strict,
// CurrentOrOlder; case-insensitive).
func ParseVersionMatch(s string) (VersionMatch, error) {
	for _, m := range []VersionMatch{MatchNone, MatchStrict, MatchCurrentOrOlder} {
		if strings.EqualFold(strings.TrimSpace(s), m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w: %q is not a version match strategy (want None, Strict or CurrentOrOlder)", ErrInvalidVersioning, s)
}

// VersionFailure says what an engine does with an instance whose version
// its VersionMatch refuses.
type VersionFailure int

const (
	// FailureReject leaves the instance as it is: its messages go back to
	// their queue (with a growing delay) for a worker whose version matches.
	FailureReject VersionFailure = iota
	// FailureFail fails the instance with a VersionMismatch failure.
	FailureFail
)

// String returns the strategy's name as host.json spells it.
func (f VersionFailure) String() string {
	switch f {
	case FailureReject:
		return "Reject"
	case FailureFail:
		return "Fail"
	}
	return fmt.Sprintf("VersionFailure(%d)", int(f))
}

// ParseVersionFailure parses a failure strategy name (Reject, Fail;
// case-insensitive).
func ParseVersionFailure(s string) (VersionFailure, error) {
	for _, f := range []VersionFailure{FailureReject, FailureFail} {
		if strings.EqualFold(strings.TrimSpace(s), f.String()) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: %q is not a version failure strategy (want Reject or Fail)", ErrInvalidVersioning, s)
}

// ErrInvalidVersioning reports a versioning setting that cannot be parsed.
var ErrInvalidVersioning = errors.New("invalid versioning setting")

// CompareVersions compares orchestration versions a and b the way Durable
// Task does (VersioningSettings.CompareVersions) and returns -1, 0 or +1:
// empty (or blank) versions are equal and older than any other; when both
// parse as a .NET System.Version (two to four dot-separated non-negative
// integers, missing components lower than 0, so "1.0" < "1.0.0") they are
// compared component by component; otherwise they are compared as strings,
// ignoring case. A lone number such as "1" is not a System.Version, so "10"
// sorts before "9", as in Durable Task.
func CompareVersions(a, b string) int {
	ea, eb := strings.TrimSpace(a) == "", strings.TrimSpace(b) == ""
	switch {
	case ea && eb:
		return 0
	case ea:
		return -1
	case eb:
		return 1
	}
	if va, ok := parseDotNetVersion(a); ok {
		if vb, ok := parseDotNetVersion(b); ok {
			for i := range va {
				if va[i] != vb[i] {
					if va[i] < vb[i] {
						return -1
					}
					return 1
				}
			}
			return 0
		}
	}
	return strings.Compare(strings.ToUpper(a), strings.ToUpper(b))
}

// parseDotNetVersion parses s as System.Version.TryParse does for plain
// version strings: 2 to 4 components of decimal digits fitting an int32;
// absent components are -1.
func parseDotNetVersion(s string) ([4]int64, bool) {
	v := [4]int64{-1, -1, -1, -1}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 4 {
		return v, false
	}
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return v, false
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

// VersionMismatchError is the failure of an instance whose version the
// engine's VersionMatch refuses, under FailureFail. Its ErrorType is
// "VersionMismatch", as in Durable Task.
type VersionMismatchError struct {
	InstanceVersion string
	WorkerVersion   string
	Match           VersionMatch
}

// ErrVersionMismatch matches every *VersionMismatchError with errors.Is.
var ErrVersionMismatch = errors.New("orchestration version mismatch")

// Error implements error.
func (e *VersionMismatchError) Error() string {
	rule := "equal to"
	if e.Match == MatchCurrentOrOlder {
		rule = "at most"
	}
	return fmt.Sprintf("the orchestration's version %q does not match this worker's version %q (strategy %s: the instance version must be %s the worker's)",
		e.InstanceVersion, e.WorkerVersion, e.Match, rule)
}

// ErrorType implements the durable ErrorType convention.
func (e *VersionMismatchError) ErrorType() string { return "VersionMismatch" }

// Is reports whether target is ErrVersionMismatch.
func (e *VersionMismatchError) Is(target error) bool { return target == ErrVersionMismatch }

// checkVersion returns the mismatch when the engine must not run an
// instance of version v, nil when it may.
func (e *Engine) checkVersion(v string) *VersionMismatchError {
	bad := false
	switch e.opts.VersionMatch {
	case MatchStrict:
		bad = v != e.opts.Version
	case MatchCurrentOrOlder:
		bad = CompareVersions(v, e.opts.Version) > 0
	}
	if !bad {
		return nil
	}
	return &VersionMismatchError{InstanceVersion: v, WorkerVersion: e.opts.Version, Match: e.opts.VersionMatch}
}

// versionToRun returns the version of the execution a batch may run: the
// running execution's; else that of a start in the batch; else the
// finished execution's (a rewind runs it again). ok is false when the
// instance has no execution and the batch starts none.
func versionToRun(inst *instance, batch []*inbound) (v string, ok bool) {
	if inst.start != nil && !inst.terminal {
		return inst.start.Version, true
	}
	for _, in := range batch {
		if !in.internal() && in.msg.Event.Type == history.ExecutionStarted {
			return in.msg.Event.Version, true
		}
	}
	if inst.start != nil {
		// A finished execution: a rewind would run its code again.
		return inst.start.Version, true
	}
	return "", false
}

// rejectVersion applies FailureReject to a batch whose execution the
// engine's VersionMatch refuses: nothing of the instance changes, every
// message goes back to its queue after a growing delay (never parked as
// poison for this reason), and the instance is not cached. It reports
// whether it rejected the batch.
func (e *Engine) rejectVersion(ctx context.Context, inst *instance, batch []*inbound) bool {
	if e.opts.VersionMatch == MatchNone || e.opts.VersionFailure != FailureReject {
		return false
	}
	v, ok := versionToRun(inst, batch)
	if !ok {
		return false
	}
	mm := e.checkVersion(v)
	if mm == nil {
		return false
	}
	var delay time.Duration
	n := int64(0)
	for _, in := range batch {
		if !in.internal() {
			delay = max(delay, e.poisonBackoff(in.dequeueCount))
			n++
		}
	}
	e.noteRejected(inst.id, mm, delay)
	e.count(func(s *Stats) { s.VersionRejections += n })
	if inst.unrun && !inst.terminal {
		// The row of an unrun execution follows its history here too (no
		// code runs for that): a crash between the deferral's history and
		// row writes must not leave the row on the old execution.
		if err := e.writeRow(ctx, inst, nil, ""); err != nil {
			e.log.Debug("could not check the Instances row of an unrun execution", "instance", inst.id, "err", err)
		}
	}
	for _, in := range batch {
		// The dequeue count grows with each delivery, and with it the delay
		// (up to MessageVisibility): no hot loop, and no parking.
		e.retryLater(ctx, in, e.poisonBackoff(in.dequeueCount))
	}
	if !inst.terminal {
		// Nothing of the refused execution may stay cached: its code never
		// ran here, so there is no executor to answer for it.
		inst.forget()
	}
	return true
}

// rejects returns the mismatch when the engine's VersionMatch refuses
// version v under FailureReject (the new execution of a ContinueAsNew must
// then wait for another worker), nil otherwise.
func (e *Engine) rejects(v string) *VersionMismatchError {
	if e.opts.VersionFailure != FailureReject {
		return nil
	}
	return e.checkVersion(v)
}

// deferContinuation handles a ContinueAsNew whose new execution (already
// inst.start) has a version this worker rejects: the old execution still
// ends as ContinuedAsNew, but none of the new one's code runs here. Its
// history is its ExecutionStarted alone (returned, to replace the old
// history from row 0 in the checkpoint), its Instances row Pending at the
// new version, and two kinds of control messages bring it back: the start
// itself, hidden for the rejection backoff, which comes back (rejected
// again, with a growing delay) until a worker whose version matches runs
// the first episode (see unrunStart); and the events the ContinueAsNew
// carries over (KeepUnprocessedEvents), sent to the new execution. Like
// every message of a checkpoint they are sent before history records the
// execution, so a crash in between leaves only messages of an execution
// that never was: the old execution's episode runs again from its inputs
// and sends its own; the stray start is dropped (it names no current
// execution), and a stray carried event is a copy of one sent again,
// recognised by its sender's timestamp and data.
func (e *Engine) deferContinuation(inst *instance, cp *checkpoint, carry []history.Event, mm *VersionMismatchError) []history.Event {
	start := *inst.start
	inst.unrun = true
	self := history.OrchestrationInstance{InstanceID: inst.id, ExecutionID: start.Instance.ExecutionID}
	cp.control = append(cp.control, controlSend{msg: backend.Message{Event: start, Target: self, Sender: self}, at: now().Add(e.poisonBackoff(1))})
	for _, ev := range carry {
		cp.control = append(cp.control, controlSend{msg: backend.Message{Event: ev, Target: self, Sender: self}})
	}
	e.log.Info("continued as new at a version this worker does not run; the new execution waits for a worker whose version matches",
		"instance", inst.id, "execution", start.Instance.ExecutionID, "instanceVersion", mm.InstanceVersion,
		"workerVersion", mm.WorkerVersion, "versionMatch", mm.Match.String())
	return []history.Event{start}
}

// maxRejectedLogged bounds the set of instances whose rejection was logged.
const maxRejectedLogged = 10000

// noteRejected logs the first rejection of an instance (per version), not
// every delivery.
func (e *Engine) noteRejected(id string, mm *VersionMismatchError, delay time.Duration) {
	e.mu.Lock()
	if e.rejected == nil || len(e.rejected) >= maxRejectedLogged {
		e.rejected = map[string]string{}
	}
	seen := e.rejected[id] == mm.InstanceVersion
	e.rejected[id] = mm.InstanceVersion
	e.mu.Unlock()
	if seen {
		return
	}
	e.log.Warn("not running an instance of another orchestration version here; its messages come back later for a matching worker",
		"instance", id, "instanceVersion", mm.InstanceVersion, "workerVersion", mm.WorkerVersion,
		"versionMatch", mm.Match.String(), "retryIn", delay)
}

// versionFailedExecutor stands in for the orchestrator of an instance
// whose version the engine refuses under FailureFail: it runs no user
// code, reads history only to know the state of its tasks, and ends the
// execution as Failed (VersionMismatch) in its first episode, recorded
// like any completion.
type versionFailedExecutor struct {
	failure    history.FailureDetails
	nextID     int32
	scheduled  map[int32]bool
	resolved   map[int32]bool
	completion *history.Event
	log        *slog.Logger
}

var _ replay.Executor = (*versionFailedExecutor)(nil)

func newVersionFailedExecutor(mm *VersionMismatchError) *versionFailedExecutor {
	return &versionFailedExecutor{
		failure:   history.FailureDetails{ErrorType: mm.ErrorType(), ErrorMessage: mm.Error(), IsNonRetriable: true},
		scheduled: map[int32]bool{}, resolved: map[int32]bool{},
	}
}

// SetLogger implements replay.Executor.
func (x *versionFailedExecutor) SetLogger(l *slog.Logger) { x.log = l }

// Replay notes the tasks history records; no code runs.
func (x *versionFailedExecutor) Replay(events []history.Event) error {
	for _, ev := range events {
		x.note(ev)
	}
	return nil
}

func (x *versionFailedExecutor) note(ev history.Event) {
	switch ev.Type {
	case history.TaskScheduled, history.TimerCreated, history.SubOrchestrationInstanceCreated, history.EventSent:
		x.scheduled[ev.EventID] = true
		x.nextID = max(x.nextID, ev.EventID+1)
	case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
		x.resolved[ev.TaskScheduledID] = true
	case history.TimerFired:
		x.resolved[ev.TimerID] = true
	}
}

// Run applies events and ends the execution: as Terminated if they
// terminate it, else as Failed.
func (x *versionFailedExecutor) Run(events []history.Event) ([]history.Event, error) {
	at := time.Time{}
	var terminated *history.Event
	for i, ev := range events {
		x.note(ev)
		switch ev.Type {
		case history.OrchestratorStarted:
			at = ev.Timestamp
		case history.ExecutionTerminated:
			if terminated == nil {
				terminated = &events[i]
			}
		}
	}
	if x.completion != nil {
		return nil, nil
	}
	if at.IsZero() {
		at = now()
	}
	c := history.NewEvent(history.ExecutionCompleted, history.StorageTime(at))
	c.EventID = x.nextID
	x.nextID++
	if terminated != nil {
		// A termination is honoured as with any instance.
		c.Status, c.Result = history.StatusTerminated, terminated.Input
	} else {
		c.Status = history.StatusFailed
		fd := x.failure
		c.Failure = &fd
	}
	x.completion = &c
	return []history.Event{c}, nil
}

// Step runs one episode: OrchestratorStarted, events, the failure, and
// OrchestratorCompleted.
func (x *versionFailedExecutor) Step(clock func() time.Time, events []history.Event) (episode, actions []history.Event, err error) {
	episode = append([]history.Event{history.NewEvent(history.OrchestratorStarted, clock())}, events...)
	actions, err = x.Run(episode)
	episode = append(episode, actions...)
	episode = append(episode, history.NewEvent(history.OrchestratorCompleted, clock()))
	return episode, actions, err
}

// Fail implements replay.Executor: the execution fails anyway.
func (x *versionFailedExecutor) Fail(history.FailureDetails) {}

// Close implements replay.Executor: there is no coroutine.
func (x *versionFailedExecutor) Close() {}

// Done implements replay.Executor.
func (x *versionFailedExecutor) Done() bool { return x.completion != nil }

// Completion implements replay.Executor.
func (x *versionFailedExecutor) Completion() *history.Event { return x.completion }

// CarryOver implements replay.Executor: nothing continues as new.
func (x *versionFailedExecutor) CarryOver() []history.Event { return nil }

// CustomStatus implements replay.Executor.
func (x *versionFailedExecutor) CustomStatus() string { return "" }

// Suspended implements replay.Executor: a suspended instance fails too, at
// its next message.
func (x *versionFailedExecutor) Suspended() bool { return false }

// TaskState implements replay.Executor from the recorded history.
func (x *versionFailedExecutor) TaskState(id int32) replay.TaskState {
	switch {
	case x.resolved[id] || x.completion != nil && x.scheduled[id]:
		return replay.TaskResolved
	case x.scheduled[id]:
		return replay.TaskAwaiting
	}
	return replay.TaskUnknown
}
