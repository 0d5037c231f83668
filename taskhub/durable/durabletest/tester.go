package durabletest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// ErrAlreadyRun is returned by a second Run of the same Tester: a Tester
// holds one run's mocks, callbacks and virtual clock. Make a new one.
var ErrAlreadyRun = errors.New("durabletest: this Tester has already run; make a new one for another run")

// Tester runs one orchestration in process, on the real replay core, with
// a virtual clock and no storage. Build it with New, add mocks and
// scheduled callbacks, then call Run (or RunByName) once.
//
// A Tester is driven from one goroutine: its methods may be called before
// Run and, during Run, from callbacks registered with After (which run on
// Run's goroutine). Orchestrator code, activities and mocks run one at a
// time, never concurrently with each other or with callbacks (on helper
// goroutines, so that code blocking for longer than BlockTimeout cannot
// hang the run); they must not call the Tester's methods.
type Tester struct {
	defs  *durable.Registry // real code
	mocks *durable.Registry // mock code, looked up first
	errs  []error           // setup errors, returned by Run

	activityMocks     map[string]*ActivityMock
	orchestratorMocks map[string]*Mock

	early []scheduled // callbacks registered before Run, relative to the start
	run   *runner     // the run, once started
}

type scheduled struct {
	after time.Duration
	fn    func()
	what  string
}

// New returns a Tester whose orchestrations can call the given
// definitions: activities and orchestrators (as sub-orchestrations) run
// for real, in process, unless mocked. The orchestrator given to Run need
// not be among them. A registration error (two definitions of one name)
// is returned by Run.
func New(defs ...durable.Definition) *Tester {
	tr := &Tester{
		defs:              durable.NewRegistry(),
		mocks:             durable.NewRegistry(),
		activityMocks:     map[string]*ActivityMock{},
		orchestratorMocks: map[string]*Mock{},
	}
	for _, d := range defs {
		if d == nil {
			tr.errs = append(tr.errs, errors.New("durabletest: New was given a nil definition"))
			continue
		}
		if err := tr.defs.Add(d); err != nil {
			tr.errs = append(tr.errs, fmt.Errorf("durabletest: New: %w", err))
		}
	}
	return tr
}

// Mock counts the calls of a mocked activity or sub-orchestrator and keeps
// their inputs. Its methods are safe for concurrent use.
type Mock struct {
	name   string
	mu     sync.Mutex
	inputs []string
}

// Name returns the mocked function's name.
func (m *Mock) Name() string { return m.name }

// Calls returns how many times the mock was called: activity executions
// (each retry attempt counts), or sub-orchestration instances started.
func (m *Mock) Calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.inputs)
}

// Inputs returns the JSON input of each call, in call order ("" for none).
func (m *Mock) Inputs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.inputs...)
}

func (m *Mock) called(input string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inputs = append(m.inputs, input)
}

// ActivityMock is a Mock of an activity, which can take virtual time.
type ActivityMock struct {
	Mock
	delay time.Duration
}

// Takes makes each call of the mocked activity take d of virtual time: its
// result reaches the orchestration d after it was scheduled, so timers and
// timeouts due earlier fire first. It returns m.
func (m *ActivityMock) Takes(d time.Duration) *ActivityMock {
	m.delay = d
	return m
}

// OnActivity replaces the activity a with fn for this Tester's run. fn
// gets a's typed input and returns its typed output; an error it returns
// fails the call exactly as an error of the real activity would (the
// orchestrator gets a *durable.TaskFailedError with the failure details
// the engine records for it).
func OnActivity[In, Out any](tr *Tester, a *durable.Activity[In, Out], fn func(ctx context.Context, input In) (Out, error)) *ActivityMock {
	if a == nil || fn == nil {
		tr.errs = append(tr.errs, errors.New("durabletest: OnActivity needs an activity definition and a function"))
		return &ActivityMock{}
	}
	return tr.mockActivity(durable.NewActivity(a.Name(), fn))
}

// OnActivityName replaces the activity registered (or not) under name with
// fn, for names only known at run time. fn gets the input as JSON (nil for
// none); its result is encoded as JSON (a json.RawMessage is used as is).
func OnActivityName(tr *Tester, name string, fn func(ctx context.Context, input json.RawMessage) (any, error)) *ActivityMock {
	if fn == nil {
		tr.errs = append(tr.errs, fmt.Errorf("durabletest: OnActivityName(%q) needs a function", name))
		return &ActivityMock{}
	}
	return tr.mockActivity(durable.NewActivity(name, fn))
}

func (tr *Tester) mockActivity(def durable.Definition) *ActivityMock {
	m := &ActivityMock{Mock: Mock{name: def.Name()}}
	if tr.run != nil {
		tr.fail(fmt.Errorf("durabletest: activity %q mocked during the run; mock before Run", def.Name()))
		return m
	}
	if err := tr.mocks.Add(def); err != nil {
		tr.errs = append(tr.errs, fmt.Errorf("durabletest: mock: %w", err))
		return m
	}
	tr.activityMocks[def.Name()] = m
	return m
}

// OnOrchestrator replaces the orchestrator o, when called as a
// sub-orchestration, with fn. fn is orchestrator code: it runs on the
// replay core as the child instance, with its own history, and must be
// deterministic (the determinism check replays it). The simplest mock just
// returns a value or an error; it may also use ctx (timers, activities).
func OnOrchestrator[In, Out any](tr *Tester, o *durable.Orchestrator[In, Out], fn func(ctx *durable.Context, input In) (Out, error)) *Mock {
	if o == nil || fn == nil {
		tr.errs = append(tr.errs, errors.New("durabletest: OnOrchestrator needs an orchestrator definition and a function"))
		return &Mock{}
	}
	return tr.mockOrchestrator(durable.NewOrchestrator(o.Name(), fn))
}

// OnOrchestratorName replaces the orchestrator registered (or not) under
// name, when called as a sub-orchestration, with fn (see OnOrchestrator),
// for names only known at run time. fn gets the input as JSON (nil for
// none); its result is encoded as JSON.
func OnOrchestratorName(tr *Tester, name string, fn func(ctx *durable.Context, input json.RawMessage) (any, error)) *Mock {
	if fn == nil {
		tr.errs = append(tr.errs, fmt.Errorf("durabletest: OnOrchestratorName(%q) needs a function", name))
		return &Mock{}
	}
	return tr.mockOrchestrator(durable.NewOrchestrator(name, fn))
}

func (tr *Tester) mockOrchestrator(def durable.Definition) *Mock {
	m := &Mock{name: def.Name()}
	if tr.run != nil {
		tr.fail(fmt.Errorf("durabletest: orchestrator %q mocked during the run; mock before Run", def.Name()))
		return m
	}
	if err := tr.mocks.Add(def); err != nil {
		tr.errs = append(tr.errs, fmt.Errorf("durabletest: mock: %w", err))
		return m
	}
	tr.orchestratorMocks[def.Name()] = m
	return m
}

// After calls fn once d of virtual time has passed: counted from the start
// when called before Run, from the current virtual time when called by
// another callback. fn runs on Run's goroutine, between episodes; it may
// call RaiseEvent, Terminate, Suspend, Resume, After, CustomStatus and Now.
// A panic in fn ends the run with an error.
func (tr *Tester) After(d time.Duration, fn func()) {
	tr.after(d, fn, fmt.Sprintf("the callback registered with After(%v)", d))
}

func (tr *Tester) after(d time.Duration, fn func(), what string) {
	if d < 0 {
		d = 0
	}
	if tr.run == nil {
		tr.early = append(tr.early, scheduled{after: d, fn: fn, what: what})
		return
	}
	tr.run.schedule(tr.run.now.Add(d), item{fn: fn, what: what})
}

// RaiseEvent raises the external event name with payload (encoded as
// JSON; a json.RawMessage is used as is; nil means no payload) to the
// orchestration under test: at the current virtual time inside a
// callback, or right after the start when called before Run.
func (tr *Tester) RaiseEvent(name string, payload any) { tr.RaiseEventAfter(0, name, payload) }

// RaiseEventAfter raises the external event name with payload to the
// orchestration under test once d of virtual time has passed (see After).
func (tr *Tester) RaiseEventAfter(d time.Duration, name string, payload any) {
	tr.raise(d, "", name, payload)
}

// RaiseEventTo raises the external event name with payload to the
// instance instanceID of the run (a sub-orchestration, for instance), at
// the current virtual time (right after the start before Run). An
// instance that does not exist when the event is due ends the run with an
// error.
func (tr *Tester) RaiseEventTo(instanceID, name string, payload any) {
	tr.raise(0, instanceID, name, payload)
}

func (tr *Tester) raise(d time.Duration, instanceID, name string, payload any) {
	what := fmt.Sprintf("RaiseEvent(%q)", name)
	data, err := encodePayload(payload)
	if err != nil {
		tr.fail(fmt.Errorf("durabletest: %s: the payload: %w", what, err))
		return
	}
	if name == "" {
		tr.fail(errors.New("durabletest: RaiseEvent: the event name is empty"))
		return
	}
	tr.after(d, func() {
		ev := history.NewEvent(history.EventRaised, tr.run.now)
		ev.Name, ev.Input = name, data
		tr.run.send(instanceID, ev, what)
	}, what)
}

// Terminate terminates the orchestration under test with reason (its
// output, as JSON text), at the current virtual time (right after the
// start before Run).
func (tr *Tester) Terminate(reason string) {
	tr.sendNow("Terminate", history.ExecutionTerminated, func(ev *history.Event) { ev.Input = jsonString(reason) })
}

// Suspend suspends the orchestration under test: events and results that
// arrive are held until Resume. At the current virtual time (right after
// the start before Run).
func (tr *Tester) Suspend(reason string) {
	tr.sendNow("Suspend", history.ExecutionSuspended, func(ev *history.Event) { ev.Reason = reason })
}

// Resume resumes the suspended orchestration under test, at the current
// virtual time (right after the start before Run).
func (tr *Tester) Resume(reason string) {
	tr.sendNow("Resume", history.ExecutionResumed, func(ev *history.Event) { ev.Reason = reason })
}

// sendNow sends the orchestration under test an event of type typ, filled
// by fill, at the current virtual time (right after the start before Run).
func (tr *Tester) sendNow(what string, typ history.EventType, fill func(*history.Event)) {
	tr.after(0, func() {
		ev := history.NewEvent(typ, tr.run.now)
		fill(&ev)
		tr.run.send("", ev, what)
	}, what)
}

// Now returns the virtual time during the run (the zero time before it).
func (tr *Tester) Now() time.Time {
	if tr.run == nil {
		return time.Time{}
	}
	return tr.run.now
}

// CustomStatus returns the custom status (JSON, "" for none) that the
// orchestration under test has set so far, for callbacks to check progress.
func (tr *Tester) CustomStatus() string {
	if tr.run == nil || tr.run.root == nil {
		return ""
	}
	return tr.run.root.customStatus()
}

// fail records an error that ends the run (or, before it, makes Run fail).
func (tr *Tester) fail(err error) {
	if tr.run != nil {
		tr.run.fail(err)
		return
	}
	tr.errs = append(tr.errs, err)
}

// lookup returns the code run under name: a mock, else the real one.
func (tr *Tester) lookupOrchestrator(name string) (replay.Orchestrator, bool) {
	if o, ok := replay.LookupOrchestrator(tr.mocks, name); ok {
		return o, true
	}
	return replay.LookupOrchestrator(tr.defs, name)
}

// RunOption tunes a run.
type RunOption func(*runConfig)

type runConfig struct {
	start        time.Time
	instanceID   string
	version      string
	noCheck      bool
	stopAfter    time.Duration
	maxEpisodes  int
	blockTimeout time.Duration
	logger       *slog.Logger
}

// DefaultStartTime is the virtual time a run starts at unless StartAt says
// otherwise: fixed, so that CurrentTime, NewGUID and default
// sub-orchestration IDs are the same in every run.
var DefaultStartTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultInstanceID is the instance ID of the orchestration under test
// unless InstanceID says otherwise.
const DefaultInstanceID = "test-instance"

// StartAt starts the virtual clock at t (stored, like every time in
// history, in UTC at 100 ns precision).
func StartAt(t time.Time) RunOption { return func(c *runConfig) { c.start = history.StorageTime(t) } }

// InstanceID sets the instance ID of the orchestration under test.
func InstanceID(id string) RunOption { return func(c *runConfig) { c.instanceID = id } }

// Version sets the orchestration version of the instance under test, as
// the engine records it: in ExecutionStarted.Version, kept by ContinueAsNew
// (unless durable.WithNewVersion names another) and passed to
// sub-orchestrations that name no version of their own. The harness runs
// every version: it has no version match strategy.
func Version(v string) RunOption { return func(c *runConfig) { c.version = v } }

// SkipDeterminismCheck turns off the determinism check that Run otherwise
// makes on every history it produced (see Check).
func SkipDeterminismCheck() RunOption { return func(c *runConfig) { c.noCheck = true } }

// StopAfter ends the run when the virtual clock would pass start+d (an
// eternal orchestration, say): Run then returns the instance as it stands,
// with a *NotFinishedError.
func StopAfter(d time.Duration) RunOption { return func(c *runConfig) { c.stopAfter = d } }

// MaxEpisodes bounds the episodes (orchestrator runs between waits) of all
// instances together (default 10,000): an orchestration that goes past it,
// such as one that continues as new forever without waiting, ends with a
// *NotFinishedError.
func MaxEpisodes(n int) RunOption { return func(c *runConfig) { c.maxEpisodes = n } }

// BlockTimeout bounds the real time that one piece of user code (an
// episode of orchestrator code, one activity) may take before control
// returns (default 1 minute; 0 or less means no bound). Orchestrator code
// that blocks outside the durable API (a channel, a lock, time.Sleep) ends
// the run with a *BlockedError instead of hanging the test.
func BlockTimeout(d time.Duration) RunOption { return func(c *runConfig) { c.blockTimeout = d } }

// Logger sets the logger behind Context.Logger of the orchestrations
// (default: discard).
func Logger(l *slog.Logger) RunOption { return func(c *runConfig) { c.logger = l } }

// encodePayload encodes an event payload or input: nil is "" (none).
func encodePayload(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if string(b) == "null" {
		return "", nil
	}
	return string(b), nil
}

// jsonString is s as a JSON string, "" for none (as the client records a
// termination reason).
func jsonString(s string) string {
	if s == "" {
		return ""
	}
	b, _ := json.Marshal(s)
	return string(b)
}
