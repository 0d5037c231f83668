package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// codeRuns counts the runs (first runs and replays) of orchestrator code
// by the version the code saw and the worker that ran it.
type codeRuns struct {
	mu sync.Mutex
	n  map[string]int // "worker/version"
}

func (r *codeRuns) add(worker, version string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[worker+"/"+version]++
}

// String lists the counts.
func (r *codeRuns) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.n)
}

func (r *codeRuns) get(worker, version string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[worker+"/"+version]
}

// upgrader is an eternal orchestration that upgrades itself: at version 1
// it waits for the event "Upgrade" and continues as new at version 2,
// carrying over events it has not consumed; at version 2 it waits for
// "Go" and "Late" and returns its version, input and the events' data. Every run of
// its code is counted in runs under worker.
func upgrader(worker string, runs *codeRuns) *durable.Orchestrator[string, string] {
	return durable.NewOrchestrator("Upgrader", func(ctx *durable.Context, in string) (string, error) {
		runs.add(worker, ctx.Version())
		if ctx.Version() == "1" {
			if _, err := durable.WaitForExternalEvent[string](ctx, "Upgrade").Await(); err != nil {
				return "", err
			}
			return "", ctx.ContinueAsNew(in+" upgraded", durable.WithNewVersion("2"), durable.KeepUnprocessedEvents())
		}
		got, err := durable.WaitForExternalEvent[string](ctx, "Go").Await()
		if err != nil {
			return "", err
		}
		late, err := durable.WaitForExternalEvent[string](ctx, "Late").Await()
		if err != nil {
			return "", err
		}
		return "version " + ctx.Version() + ": " + in + ", " + got + ", " + late, nil
	})
}

// canWorker runs one engine of the given version and versioning on storage
// st, as its own process, with the upgrader; its client's default version
// is 1, the version instances start at. wrap, if given, wraps the
// engine's view of storage.
func canWorker(t *testing.T, st *memory.Storage, worker, version string, match engine.VersionMatch, failure engine.VersionFailure, runs *codeRuns, wrap ...func(backend.Backend) backend.Backend) (*engine.Engine, *client.Client, *memory.Backend) {
	t.Helper()
	be, err := st.Open(memory.Options{HubName: "CANVersionHub"})
	if err != nil {
		t.Fatal(err)
	}
	var view backend.Backend = be
	for _, w := range wrap {
		view = w(view)
	}
	h := &hub{t: t, name: be.HubName()}
	eng, c := h.start(engine.Options{Backend: view, WorkerID: worker, MessageVisibility: 2 * time.Second,
		Version: version, VersionMatch: match, VersionFailure: failure}, upgrader(worker, runs))
	c.SetDefaultVersion("1")
	return eng, c, be
}

// storedHistory reads an instance's current execution from storage.
func storedHistory(t *testing.T, be *memory.Backend, id string) backend.History {
	t.Helper()
	h, err := be.LoadHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkExecution checks, on the memory backend, what the invariant
// checker checks on Azure Storage for one finished instance: its history
// is one execution with exactly one ExecutionStarted (at version) and one
// ExecutionCompleted, every raised event recorded once, the Instances row
// says what history says (execution, status, output, version), and every
// queue of the hub drains.
func checkExecution(t *testing.T, be *memory.Backend, id, version string, status history.OrchestrationStatus) backend.History {
	t.Helper()
	h := storedHistory(t, be, id)
	var start, done *history.Event
	starts, dones := 0, 0
	raised := map[string]int{}
	for i := range h.Events {
		switch ev := &h.Events[i]; ev.Type {
		case history.ExecutionStarted:
			start, starts = ev, starts+1
		case history.ExecutionCompleted, history.ContinueAsNew:
			done, dones = ev, dones+1
		case history.EventRaised:
			raised[ev.Name+" "+ev.Input]++
		}
	}
	if starts != 1 || dones != 1 {
		t.Fatalf("instance %s: %d ExecutionStarted and %d completions in its history, want one each", id, starts, dones)
	}
	for ev, n := range raised {
		if n != 1 {
			t.Errorf("instance %s: event %s recorded %d times", id, ev, n)
		}
	}
	if start.Instance.ExecutionID != h.ExecutionID || start.Version != version || done.Status != status {
		t.Errorf("instance %s: execution %s (history %s) at version %q ended %s; want version %q, %s",
			id, start.Instance.ExecutionID, h.ExecutionID, start.Version, done.Status, version, status)
	}
	var row backend.InstanceState
	until(t, "the final Instances row of "+id, func() bool {
		var err error
		row, err = be.GetInstance(context.Background(), id, true)
		return err == nil && row.Status.IsTerminal()
	})
	output := done.Result
	if done.Failure != nil {
		output = done.Failure.String()
	}
	if row.ExecutionID != h.ExecutionID || row.Status != done.Status || row.Output != output || row.Version != start.Version ||
		row.Input != start.Input || row.HistoryPosition != len(h.Events) {
		t.Errorf("instance %s: Instances row (execution %s, %s %q, version %q, input %s, position %d) disagrees with history (%s, %s %q, version %q, input %s, %d events)",
			id, row.ExecutionID, row.Status, row.Output, row.Version, row.Input, row.HistoryPosition,
			h.ExecutionID, done.Status, output, start.Version, start.Input, len(h.Events))
	}
	until(t, "the hub's queues to drain", func() bool { return queued(be) == 0 })
	return h
}

// queued counts the messages, visible or hidden, in the hub's queues.
func queued(be *memory.Backend) int {
	n := be.Len(be.WorkItemQueueName())
	for p := range be.PartitionCount() {
		n += be.Len(be.ControlQueueName(p))
	}
	return n
}

// raisedInHistory waits until the current execution of id has recorded
// the event name.
func raisedInHistory(t *testing.T, be *memory.Backend, id, name string) {
	t.Helper()
	until(t, "event "+name+" in the history of "+id, func() bool {
		for _, ev := range storedHistory(t, be, id).Events {
			if ev.Type == history.EventRaised && ev.Name == name {
				return true
			}
		}
		return false
	})
}

// TestContinueAsNewNewVersionAccepted: a worker whose version match
// accepts the new version runs the new execution at once: ctx.Version()
// says 2, ExecutionStarted.Version and the Instances Version column too
// (while it runs and when it is done), and the event sent before the
// upgrade is carried over.
func TestContinueAsNewNewVersionAccepted(t *testing.T) {
	st := memory.NewStorage(memory.StorageOptions{})
	var runs codeRuns
	_, c, be := canWorker(t, st, "w", "2", engine.MatchCurrentOrOlder, engine.FailureReject, &runs)
	ctx := context.Background()
	id, first := startAndUpgrade(t, c, be, `"go"`)
	var running client.Status
	until(t, "the upgraded execution to run", func() bool {
		var err error
		running, err = c.GetStatus(ctx, id, false)
		return err == nil && running.ExecutionID != first && running.Status == history.StatusRunning
	})
	if running.Version != "2" {
		t.Errorf("the upgraded execution runs at version %q, want 2", running.Version)
	}
	if err := c.RaiseEvent(ctx, id, "Late", `"late"`); err != nil {
		t.Fatal(err)
	}
	s := wait(t, c, id)
	if s.Status != history.StatusCompleted || s.Output != `"version 2: state upgraded, go, late"` || s.Version != "2" {
		t.Fatalf("after the upgrade: %s %s at version %q", s.Status, s.Output, s.Version)
	}
	h := checkExecution(t, be, id, "2", history.StatusCompleted)
	if h.ExecutionID == first {
		t.Errorf("the upgraded execution kept the first one's ID %s", first)
	}
	if runs.get("w", "1") == 0 || runs.get("w", "2") == 0 {
		t.Errorf("code runs %v, want runs at versions 1 and 2", &runs)
	}
}

// TestContinueAsNewNewVersionFail: a version-1 worker that fails other
// versions ends the old execution as ContinuedAsNew and fails the new one
// at its start with VersionMismatch, recorded in the new execution's
// history and row (at version 2), without running version-2 code.
func TestContinueAsNewNewVersionFail(t *testing.T) {
	st := memory.NewStorage(memory.StorageOptions{})
	var runs codeRuns
	_, c, be := canWorker(t, st, "v1", "1", engine.MatchStrict, engine.FailureFail, &runs)
	ctx := context.Background()
	id, err := c.StartNew(ctx, "Upgrader", client.StartOptions{InstanceID: "eternal", Input: "state"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, id, "Upgrade", `"now"`); err != nil {
		t.Fatal(err)
	}
	s := wait(t, c, id)
	if s.Status != history.StatusFailed || !strings.HasPrefix(s.Output, "VersionMismatch: ") ||
		!strings.Contains(s.Output, `version "2" does not match this worker's version "1"`) || s.Version != "2" {
		t.Fatalf("after the upgrade: %s %q at version %q; want Failed with VersionMismatch at version 2", s.Status, s.Output, s.Version)
	}
	h := checkExecution(t, be, id, "2", history.StatusFailed)
	for _, ev := range h.Events {
		if ev.Type == history.ExecutionCompleted && (ev.Failure == nil || ev.Failure.ErrorType != "VersionMismatch" || !ev.Failure.IsNonRetriable) {
			t.Errorf("the new execution's completion: %+v", ev)
		}
		if ev.Type == history.ExecutionStarted && ev.Input != `"state upgraded"` {
			t.Errorf("the new execution's input %s", ev.Input)
		}
	}
	if n := runs.get("v1", "2"); n != 0 {
		t.Errorf("version-2 code ran %d times on the version-1 worker", n)
	}
}

// TestContinueAsNewNewVersionReject: a version-1 worker that rejects other
// versions completes the old execution as ContinuedAsNew but leaves the
// new one unrun (its history is its ExecutionStarted at version 2, its row
// Pending at version 2), and gives its messages back with a backoff; a
// version-2 worker on the same hub then runs it once, with the event the
// upgrade carried over and one raised meanwhile. Nothing is duplicated and
// no version-2 code runs on the version-1 worker.
func TestContinueAsNewNewVersionReject(t *testing.T) {
	st := memory.NewStorage(memory.StorageOptions{})
	var runs codeRuns
	ctx := context.Background()
	eng1, c1, be := canWorker(t, st, "v1", "1", engine.MatchStrict, engine.FailureReject, &runs)
	// "Go" reaches the version-1 execution, which does not consume it: the
	// upgrade carries it over.
	id, first := startAndUpgrade(t, c1, be, `"carried"`)
	var h backend.History
	until(t, "the unrun execution in history", func() bool {
		h = storedHistory(t, be, id)
		return h.ExecutionID != first
	})
	if len(h.Events) != 1 || h.Events[0].Type != history.ExecutionStarted || h.Events[0].Version != "2" ||
		h.Events[0].Input != `"state upgraded"` || h.Events[0].Instance.ExecutionID != h.ExecutionID {
		t.Fatalf("the new execution's history: %+v; want its ExecutionStarted alone, at version 2", h.Events)
	}
	unrun := h.ExecutionID
	s, err := c1.GetStatus(ctx, id, true)
	if err != nil || s.Status != history.StatusPending || s.Version != "2" || s.ExecutionID != unrun || s.Input != `"state upgraded"` {
		t.Fatalf("status of the unrun execution: %+v (%v); want Pending at version 2", s, err)
	}
	// An event raised now waits with the execution, for version 2.
	if err := c1.RaiseEvent(ctx, id, "Late", `"late"`); err != nil {
		t.Fatal(err)
	}
	// The start, the carried "Go" and "Late" each come back and are
	// rejected again: at least 5 rejections, none parked.
	until(t, "repeated rejections", func() bool { return eng1.Stats().VersionRejections >= 5 })
	if n := queued(be); n != 3 {
		t.Errorf("%d messages queued under the version-1 worker, want 3 (the start, the carried event, the late one)", n)
	}
	if p := eng1.Stats().PoisonMessages; p != 0 {
		t.Errorf("%d messages parked as poison", p)
	}
	if h := storedHistory(t, be, id); h.ExecutionID != unrun || len(h.Events) != 1 {
		t.Errorf("the version-1 worker changed the unrun execution: %s, %d events", h.ExecutionID, len(h.Events))
	}
	if n := runs.get("v1", "2"); n != 0 {
		t.Fatalf("version-2 code ran %d times on the version-1 worker", n)
	}
	stopEngine(t, eng1)

	_, c2, _ := canWorker(t, st, "v2", "2", engine.MatchStrict, engine.FailureReject, &runs)
	s = wait(t, c2, id)
	if s.Status != history.StatusCompleted || s.Output != `"version 2: state upgraded, carried, late"` || s.Version != "2" {
		t.Fatalf("on the version-2 worker: %s %s at version %q", s.Status, s.Output, s.Version)
	}
	h = checkExecution(t, be, id, "2", history.StatusCompleted)
	if h.ExecutionID != unrun {
		t.Errorf("the version-2 worker ran execution %s, not the unrun %s", h.ExecutionID, unrun)
	}
	late := 0
	for _, ev := range h.Events {
		if ev.Type == history.EventRaised && ev.Name == "Late" {
			late++
		}
	}
	if late != 1 {
		t.Errorf("the late event is in the new execution's history %d times, want once", late)
	}
	if runs.get("v1", "2") != 0 || runs.get("v2", "1") != 0 || runs.get("v2", "2") == 0 {
		t.Errorf("code runs %v: want version 1 on v1 only, version 2 on v2 only", &runs)
	}
}

// lostRow fails the first Instances-row write of a version-2 execution, as
// a crash between a checkpoint's history append and its row write leaves
// it: history holds the new execution, the row the old one.
type lostRow struct {
	backend.Backend
	mu   sync.Mutex
	lost int
}

func (l *lostRow) MergeInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	l.mu.Lock()
	lose := st.Version == "2" && l.lost == 0
	if lose {
		l.lost++
	}
	l.mu.Unlock()
	if lose {
		return "", errInjected
	}
	return l.Backend.MergeInstance(ctx, st)
}

// TestContinueAsNewNewVersionRowRepaired: when the row write of a
// rejected continuation is lost, the version-1 worker still brings the
// row in line with history (the unrun execution, Pending at version 2)
// while it keeps rejecting the execution, without running its code.
func TestContinueAsNewNewVersionRowRepaired(t *testing.T) {
	st := memory.NewStorage(memory.StorageOptions{})
	var runs codeRuns
	ctx := context.Background()
	lost := &lostRow{}
	eng1, c1, be := canWorker(t, st, "v1", "1", engine.MatchStrict, engine.FailureReject, &runs,
		func(b backend.Backend) backend.Backend { lost.Backend = b; return lost })
	id, err := c1.StartNew(ctx, "Upgrader", client.StartOptions{InstanceID: "eternal", Input: "state"})
	if err != nil {
		t.Fatal(err)
	}
	storedRunning := func() backend.InstanceState {
		row, err := be.GetInstance(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		return row
	}
	until(t, "the first execution to run", func() bool { return storedRunning().Status == history.StatusRunning })
	first := storedRunning().ExecutionID
	if err := c1.RaiseEvent(ctx, id, "Upgrade", `"now"`); err != nil {
		t.Fatal(err)
	}
	var unrun string
	until(t, "the unrun execution in history", func() bool {
		h := storedHistory(t, be, id)
		unrun = h.ExecutionID
		return unrun != first && len(h.Events) == 1
	})
	until(t, "the row to follow history", func() bool {
		row := storedRunning()
		return row.ExecutionID == unrun && row.Status == history.StatusPending && row.Version == "2"
	})
	lost.mu.Lock()
	n := lost.lost
	lost.mu.Unlock()
	if n != 1 {
		t.Errorf("%d row writes lost, want the one injected", n)
	}
	if runs.get("v1", "2") != 0 || eng1.Stats().PoisonMessages != 0 {
		t.Errorf("code runs %v, %d parked messages", &runs, eng1.Stats().PoisonMessages)
	}
}

// lostAppend fails the history append of the first unrun execution, after
// its checkpoint has sent its messages: what a crash between the two
// steps leaves behind (messages of an execution history never records).
type lostAppend struct {
	backend.Backend
	mu   sync.Mutex
	lost int
}

func (l *lostAppend) AppendHistory(ctx context.Context, id, exec string, from int, events []history.Event, etag string) (string, error) {
	l.mu.Lock()
	lose := from == 0 && len(events) == 1 && events[0].Version == "2" && l.lost == 0
	if lose {
		l.lost++
	}
	l.mu.Unlock()
	if lose {
		return "", errInjected
	}
	return l.Backend.AppendHistory(ctx, id, exec, from, events, etag)
}

// TestContinueAsNewNewVersionStrayMessages: when the checkpoint that
// leaves a new execution unrun sends its start and carried event but
// fails to record the execution, the old execution's episode runs again
// and leaves another execution unrun; the stray start and the stray copy
// of the carried event are given back and consumed without a trace, the
// version-2 worker then runs the recorded execution once, and nothing is
// duplicated.
func TestContinueAsNewNewVersionStrayMessages(t *testing.T) {
	st := memory.NewStorage(memory.StorageOptions{})
	var runs codeRuns
	ctx := context.Background()
	lost := &lostAppend{}
	eng1, c1, be := canWorker(t, st, "v1", "1", engine.MatchStrict, engine.FailureReject, &runs,
		func(b backend.Backend) backend.Backend { lost.Backend = b; return lost })
	id, first := startAndUpgrade(t, c1, be, `"carried"`)
	var unrun string
	until(t, "the unrun execution in history", func() bool {
		h := storedHistory(t, be, id)
		unrun = h.ExecutionID
		return unrun != first && len(h.Events) == 1
	})
	lost.mu.Lock()
	n := lost.lost
	lost.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d appends lost, want the one injected", n)
	}
	if err := c1.RaiseEvent(ctx, id, "Late", `"late"`); err != nil {
		t.Fatal(err)
	}
	// The queues hold the start and carried "Go" of the recorded execution
	// and "Late", rejected by this worker until a version-2 one runs them,
	// and perhaps still the failed attempt's start and its copy of "Go":
	// given back to their queue when the attempt was abandoned (not held
	// until the worker stops), they are dropped on arrival or, when they
	// arrive for the recorded execution's instance first, rejected with it.
	until(t, "the messages of both attempts", func() bool { n := queued(be); return n >= 3 && n <= 5 })
	stopEngine(t, eng1)

	_, c2, _ := canWorker(t, st, "v2", "2", engine.MatchStrict, engine.FailureReject, &runs)
	s := wait(t, c2, id)
	if s.Status != history.StatusCompleted || s.Output != `"version 2: state upgraded, carried, late"` || s.Version != "2" {
		t.Fatalf("on the version-2 worker: %s %s at version %q", s.Status, s.Output, s.Version)
	}
	if h := checkExecution(t, be, id, "2", history.StatusCompleted); h.ExecutionID != unrun {
		t.Errorf("the version-2 worker ran execution %s, not the recorded %s", h.ExecutionID, unrun)
	}
	if runs.get("v1", "2") != 0 || runs.get("v2", "1") != 0 {
		t.Errorf("code runs %v: want version 1 on v1 only, version 2 on v2 only", &runs)
	}
	until(t, "the queues drained", func() bool { return queued(be) == 0 })
}

// startAndUpgrade starts the eternal Upgrader, raises "Go" with payload,
// waits until the first execution has recorded it, and raises "Upgrade",
// which makes that execution continue as new at version 2. It returns the
// instance ID and the first execution's ID.
func startAndUpgrade(t *testing.T, c *client.Client, be *memory.Backend, payload string) (id, first string) {
	t.Helper()
	ctx := context.Background()
	id, err := c.StartNew(ctx, "Upgrader", client.StartOptions{InstanceID: "eternal", Input: "state"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, id, "Go", payload); err != nil {
		t.Fatal(err)
	}
	raisedInHistory(t, be, id, "Go")
	first = storedHistory(t, be, id).ExecutionID
	if err := c.RaiseEvent(ctx, id, "Upgrade", `"now"`); err != nil {
		t.Fatal(err)
	}
	return id, first
}
