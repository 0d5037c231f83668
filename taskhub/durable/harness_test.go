package durable

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Helpers shared by the feature tests: event constructors, an engine-like
// driver that records the history it would write, and action comparison.

// ep builds one episode: an OrchestratorStarted at `at` followed by evs,
// all stamped with `at`.
func ep(at time.Time, evs ...history.Event) []history.Event {
	out := []history.Event{history.NewEvent(history.OrchestratorStarted, at)}
	for _, e := range evs {
		e.Timestamp = at.UTC()
		out = append(out, e)
	}
	return out
}

// start is the first episode of instance inst1 / execution exec1.
func start(at time.Time, name, input string) []history.Event {
	return startedEvents(at, name, input)
}

func evCompleted(id int32, result string) history.Event {
	e := history.NewEvent(history.TaskCompleted, time.Time{})
	e.TaskScheduledID, e.Result = id, result
	return e
}

func evFailed(id int32, fd history.FailureDetails) history.Event {
	e := history.NewEvent(history.TaskFailed, time.Time{})
	e.TaskScheduledID, e.Reason, e.Failure = id, fd.ErrorMessage, &fd
	return e
}

func evFired(id int32, fireAt time.Time) history.Event {
	e := history.NewEvent(history.TimerFired, time.Time{})
	e.TimerID, e.FireAt = id, fireAt.UTC()
	return e
}

func evRaised(name, input string) history.Event {
	e := history.NewEvent(history.EventRaised, time.Time{})
	e.Name, e.Input = name, input
	return e
}

func evSubCompleted(id int32, result string) history.Event {
	e := history.NewEvent(history.SubOrchestrationInstanceCompleted, time.Time{})
	e.TaskScheduledID, e.Result = id, result
	return e
}

func evSubFailed(id int32, fd history.FailureDetails) history.Event {
	e := history.NewEvent(history.SubOrchestrationInstanceFailed, time.Time{})
	e.TaskScheduledID, e.Reason, e.Failure = id, fd.ErrorMessage, &fd
	return e
}

func evTerminated(reason string) history.Event {
	e := history.NewEvent(history.ExecutionTerminated, time.Time{})
	e.Input = reason
	return e
}

func evSuspended() history.Event { return history.NewEvent(history.ExecutionSuspended, time.Time{}) }
func evResumed() history.Event   { return history.NewEvent(history.ExecutionResumed, time.Time{}) }

// driver runs an executor the way the engine does and records the history.
type driver struct {
	t    *testing.T
	ex   *executor
	hist []history.Event
}

func newDriver(t *testing.T, d Definition) *driver {
	t.Helper()
	ex := newExecutor(fnOf(t, d), "inst1")
	t.Cleanup(ex.Close)
	return &driver{t: t, ex: ex}
}

// run applies one episode and returns the new actions; errors are fatal.
func (d *driver) run(episode []history.Event) []history.Event {
	d.t.Helper()
	actions, err := d.ex.Run(episode)
	if err != nil {
		d.t.Fatalf("run: %v", err)
	}
	d.hist = append(d.hist, episode...)
	d.hist = append(d.hist, actions...)
	d.hist = append(d.hist, history.NewEvent(history.OrchestratorCompleted, episode[0].Timestamp))
	return actions
}

// act is the expected shape of one action. Zero fields are not checked,
// except Type and ID which always are.
type act struct {
	Type       history.EventType
	ID         int32
	Name       string
	Input      string
	InstanceID string
	FireAt     time.Time
	Result     string
	Status     history.OrchestrationStatus
}

func (a act) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s#%d", a.Type, a.ID)
	if a.Name != "" {
		fmt.Fprintf(&b, " name=%q", a.Name)
	}
	if a.Input != "" {
		fmt.Fprintf(&b, " input=%s", a.Input)
	}
	if a.InstanceID != "" {
		fmt.Fprintf(&b, " instance=%q", a.InstanceID)
	}
	if !a.FireAt.IsZero() {
		fmt.Fprintf(&b, " fireAt=%s", a.FireAt.Format(time.RFC3339Nano))
	}
	if a.Result != "" {
		fmt.Fprintf(&b, " result=%s", a.Result)
	}
	if a.Type.EndsExecution() {
		fmt.Fprintf(&b, " status=%s", a.Status)
	}
	return b.String()
}

func scheduled(id int32, name, input string) act {
	return act{Type: history.TaskScheduled, ID: id, Name: name, Input: input}
}

func timerAt(id int32, fireAt time.Time) act {
	return act{Type: history.TimerCreated, ID: id, FireAt: fireAt}
}

func subCreated(id int32, name, input, instanceID string) act {
	return act{Type: history.SubOrchestrationInstanceCreated, ID: id, Name: name, Input: input, InstanceID: instanceID}
}

func completedWith(id int32, result string) act {
	return act{Type: history.ExecutionCompleted, ID: id, Result: result, Status: history.StatusCompleted}
}

// expectActions checks that got has exactly the wanted actions, in order.
func expectActions(t *testing.T, label string, got []history.Event, want ...act) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		g, w := got[i], want[i]
		ok = g.Type == w.Type && g.EventID == w.ID &&
			(w.Name == "" || g.Name == w.Name) &&
			(w.Input == "" || g.Input == w.Input) &&
			(w.InstanceID == "" || g.InstanceID == w.InstanceID) &&
			(w.FireAt.IsZero() || g.FireAt.Equal(w.FireAt)) &&
			(w.Result == "" || g.Result == w.Result) &&
			(!w.Type.EndsExecution() || g.Status == w.Status)
	}
	if !ok {
		t.Fatalf("%s: actions\n  got  %v\n  want %v", label, describeActions(got), want)
	}
}

func describeActions(evs []history.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		s := act{Type: e.Type, ID: e.EventID, Name: e.Name, Input: e.Input, InstanceID: e.InstanceID,
			FireAt: e.FireAt, Result: e.Result, Status: e.Status}.String()
		if e.Failure != nil {
			s += fmt.Sprintf(" failure=%q", e.Failure.String())
		}
		out = append(out, s)
	}
	return out
}

// actionKey is everything about an action that must be reproduced exactly
// by a replaying executor.
type actionKey struct {
	Type       history.EventType
	EventID    int32
	Timestamp  time.Time
	Name       string
	Input      string
	InstanceID string
	FireAt     time.Time
	Result     string
	Status     history.OrchestrationStatus
	Failure    string
	NonRetry   bool
}

func keyOf(e history.Event) actionKey {
	k := actionKey{Type: e.Type, EventID: e.EventID, Timestamp: e.Timestamp, Name: e.Name, Input: e.Input,
		InstanceID: e.InstanceID, FireAt: e.FireAt, Result: e.Result, Status: e.Status}
	if e.Failure != nil {
		k.Failure = e.Failure.String()
		k.NonRetry = e.Failure.IsNonRetriable
	}
	return k
}

func keysOf(evs []history.Event) []actionKey {
	out := make([]actionKey, 0, len(evs))
	for _, e := range evs {
		out = append(out, keyOf(e))
	}
	return out
}

// assertReplayDeterministic records a history by running the episodes on
// one cached executor, then, at every episode boundary, replays the
// recorded prefix with a fresh executor and checks that the next episode
// makes it produce exactly the actions the cached executor produced (and
// leaves it in the same observable state). It returns the cached
// executor's final completion.
func assertReplayDeterministic(t *testing.T, d Definition, episodes ...[]history.Event) *history.Event {
	t.Helper()
	fn := fnOf(t, d)
	cached := newExecutor(fn, "inst1")
	t.Cleanup(cached.Close)
	type state struct {
		done      bool
		suspended bool
		status    string
		carry     []actionKey
	}
	stateOf := func(ex *executor) state {
		return state{ex.Done(), ex.Suspended(), ex.CustomStatus(), keysOf(ex.CarryOver())}
	}
	var hist []history.Event
	var bounds []int // bounds[i] = len(hist) before episode i
	var recorded [][]history.Event
	var states []state
	for i, e := range episodes {
		bounds = append(bounds, len(hist))
		actions, err := cached.Run(e)
		if err != nil {
			t.Fatalf("cached run of episode %d: %v", i, err)
		}
		recorded = append(recorded, actions)
		states = append(states, stateOf(cached))
		hist = append(hist, e...)
		hist = append(hist, actions...)
		hist = append(hist, history.NewEvent(history.OrchestratorCompleted, e[0].Timestamp))
	}
	for cut := 1; cut < len(episodes); cut++ {
		fresh := newExecutor(fn, "inst1")
		if err := fresh.Replay(hist[:bounds[cut]]); err != nil {
			fresh.Close()
			t.Fatalf("cut %d: replay: %v", cut, err)
		}
		if got, want := fresh.position, bounds[cut]; got != want {
			t.Errorf("cut %d: position after replay = %d, want %d", cut, got, want)
		}
		actions, err := fresh.Run(episodes[cut])
		if err != nil {
			fresh.Close()
			t.Fatalf("cut %d: run: %v", cut, err)
		}
		if got, want := keysOf(actions), keysOf(recorded[cut]); !reflect.DeepEqual(got, want) {
			t.Errorf("cut %d: replaying executor produced\n  %v\nthe original produced\n  %v",
				cut, describeActions(actions), describeActions(recorded[cut]))
		}
		if got, want := stateOf(fresh), states[cut]; !reflect.DeepEqual(got, want) {
			t.Errorf("cut %d: state after replay+run = %+v, original %+v", cut, got, want)
		}
		fresh.Close()
	}
	// The whole history replays without new actions, to the same state.
	full := newExecutor(fn, "inst1")
	defer full.Close()
	if err := full.Replay(hist); err != nil {
		t.Fatalf("full replay: %v", err)
	}
	if actions, err := full.Run(nil); err != nil || len(actions) != 0 {
		t.Fatalf("after full replay: actions %v, err %v", describeActions(actions), err)
	}
	if got, want := stateOf(full), states[len(states)-1]; !reflect.DeepEqual(got, want) {
		t.Errorf("state after full replay = %+v, original %+v", got, want)
	}
	return cached.Completion()
}
