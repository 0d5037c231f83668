package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// versioned is an orchestrator named "Versioned" that counts every run of
// its code (first runs and replays) in ran, waits for the event "Go", and
// returns its version.
func versioned(ran *atomic.Int32) *durable.Orchestrator[any, string] {
	return durable.NewOrchestrator("Versioned", func(ctx *durable.Context, _ any) (string, error) {
		ran.Add(1)
		if _, err := durable.WaitForExternalEvent[string](ctx, "Go").Await(); err != nil {
			return "", err
		}
		return "ran version " + ctx.Version(), nil
	})
}

// versionWorker runs one engine with the given versioning on storage st,
// as its own process (backend view and worker ID), and returns it with its
// client, whose default version is the engine's version.
func versionWorker(t *testing.T, st *memory.Storage, worker, version string, match engine.VersionMatch, failure engine.VersionFailure, ran *atomic.Int32, log ...*slog.Logger) (*engine.Engine, *client.Client) {
	t.Helper()
	var logger *slog.Logger
	if len(log) > 0 {
		logger = log[0]
	}
	be, err := st.Open(memory.Options{HubName: "VersionHub"})
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{t: t, name: be.HubName()}
	eng, c := h.start(engine.Options{Backend: be, WorkerID: worker, MessageVisibility: 2 * time.Second, Logger: logger,
		Version: version, VersionMatch: match, VersionFailure: failure}, versioned(ran))
	c.SetDefaultVersion(version)
	return eng, c
}

func stopEngine(t *testing.T, eng *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := eng.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// storedRunning waits until the Instances row of id in storage says Running.
func storedRunning(t *testing.T, st *memory.Storage, id string) {
	t.Helper()
	be, err := st.Open(memory.Options{HubName: "VersionHub"})
	if err != nil {
		t.Fatal(err)
	}
	until(t, "instance "+id+" to be stored as Running", func() bool {
		row, err := be.GetInstance(context.Background(), id, false)
		return err == nil && row.Status == history.StatusRunning
	})
}

// countingHandler counts log records whose message starts with prefix.
type countingHandler struct {
	prefix string
	n      atomic.Int32
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.n.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// until polls cond until it holds or 30 s pass.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVersionReject: a Strict worker of version 2 with the Reject strategy
// runs no code of version-1 instances: a new start, an instance with
// history, or the restart of an instance it has cached; their messages stay in the queue, come back (more than
// once, so with a backoff rather than parked) and are run by a version-1
// worker on the same hub.
func TestVersionReject(t *testing.T) {
	st := memory.NewStorage(memory.StorageOptions{})
	var ran1, ran2 atomic.Int32
	ctx := context.Background()

	// Version 1 starts instance "old" and runs it up to its wait.
	eng1, c1 := versionWorker(t, st, "v1-a", "1", engine.MatchStrict, engine.FailureReject, &ran1)
	if _, err := c1.StartNew(ctx, "Versioned", client.StartOptions{InstanceID: "old"}); err != nil {
		t.Fatal(err)
	}
	storedRunning(t, st, "old")
	stopEngine(t, eng1)

	// Version 2, strict: a new instance "fresh" explicitly at version 1, and
	// an event for "old".
	rejectLogs := &countingHandler{prefix: "not running an instance of another orchestration version"}
	eng2, c2 := versionWorker(t, st, "v2", "2", engine.MatchStrict, engine.FailureReject, &ran2, slog.New(rejectLogs))
	// "again" runs here at version 2 and stays cached when it finishes; its
	// restart at version 1 is refused like any other start.
	if _, err := c2.StartNew(ctx, "Versioned", client.StartOptions{InstanceID: "again"}); err != nil {
		t.Fatal(err)
	}
	if err := c2.RaiseEvent(ctx, "again", "Go", `"now"`); err != nil {
		t.Fatal(err)
	}
	if s := wait(t, c2, "again"); s.Status != history.StatusCompleted || s.Output != `"ran version 2"` {
		t.Fatalf("instance again at version 2: %s %s", s.Status, s.Output)
	}
	ranOwn := ran2.Load()
	if _, err := c2.StartNew(ctx, "Versioned", client.StartOptions{InstanceID: "again", Version: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.StartNew(ctx, "Versioned", client.StartOptions{InstanceID: "fresh", Version: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := c2.RaiseEvent(ctx, "old", "Go", `"now"`); err != nil {
		t.Fatal(err)
	}
	// Each message is rejected at least twice: it came back after its delay.
	until(t, "repeated rejections", func() bool { return eng2.Stats().VersionRejections >= 6 })
	be, _ := st.Open(memory.Options{HubName: "VersionHub"})
	queued := 0
	for p := range be.PartitionCount() {
		queued += be.Len(be.ControlQueueName(p))
	}
	for id, want := range map[string]history.OrchestrationStatus{"fresh": history.StatusPending, "again": history.StatusPending, "old": history.StatusRunning} {
		s, err := c2.GetStatus(ctx, id, false)
		if err != nil || s.Status != want || s.Version != "1" {
			t.Errorf("instance %s under the version-2 worker: %s, version %q (%v); want %s at version 1", id, s.Status, s.Version, err, want)
		}
	}
	if n := ran2.Load() - ranOwn; n != 0 {
		t.Errorf("the version-2 worker ran version-1 code %d times", n)
	}
	if queued != 3 {
		t.Errorf("%d control messages queued under the version-2 worker, want 3 (two starts and the event)", queued)
	}
	rejections := eng2.Stats().VersionRejections
	if n := rejectLogs.n.Load(); n != 3 {
		t.Errorf("%d rejection log lines for 3 instances and %d rejected deliveries, want one per instance", n, rejections)
	}
	if p := eng2.Stats().PoisonMessages; p != 0 {
		t.Errorf("%d messages parked as poison", p)
	}
	stopEngine(t, eng2)

	// A version-1 worker picks both up.
	_, c3 := versionWorker(t, st, "v1-b", "1", engine.MatchStrict, engine.FailureReject, &ran1)
	for _, id := range []string{"fresh", "again"} {
		until(t, id+" to wait", func() bool {
			s, err := c3.GetStatus(ctx, id, false)
			return err == nil && s.Status == history.StatusRunning
		})
		if err := c3.RaiseEvent(ctx, id, "Go", `"now"`); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"old", "fresh", "again"} {
		s := wait(t, c3, id)
		if s.Status != history.StatusCompleted || s.Output != `"ran version 1"` {
			t.Errorf("instance %s: %s %s", id, s.Status, s.Output)
		}
	}
	if n := ran2.Load() - ranOwn; n != 0 {
		t.Errorf("the version-2 worker ran version-1 code %d times", n)
	}
	t.Logf("%d rejected deliveries under the version-2 worker", rejections)
}

// TestVersionFail: a Strict worker of version 2 with the Fail strategy
// fails version-1 instances, new or with history, with a VersionMismatch
// failure naming both versions, without running their code (a termination
// still terminates); its own version runs.
func TestVersionFail(t *testing.T) {
	st := memory.NewStorage(memory.StorageOptions{})
	var ran1, ran2 atomic.Int32
	ctx := context.Background()
	eng1, c1 := versionWorker(t, st, "v1", "1", engine.MatchNone, engine.FailureReject, &ran1)
	for _, id := range []string{"old", "doomed"} {
		if _, err := c1.StartNew(ctx, "Versioned", client.StartOptions{InstanceID: id}); err != nil {
			t.Fatal(err)
		}
		storedRunning(t, st, id)
	}
	stopEngine(t, eng1)

	_, c2 := versionWorker(t, st, "v2", "2", engine.MatchStrict, engine.FailureFail, &ran2)
	// The typed client's form of an explicit version.
	if _, err := client.Start(ctx, c2, versioned(&ran2), nil, client.WithInstanceID("fresh"), client.WithVersion("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.StartNew(ctx, "Versioned", client.StartOptions{InstanceID: "current"}); err != nil {
		t.Fatal(err)
	}
	if err := c2.RaiseEvent(ctx, "old", "Go", `"now"`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"old", "fresh"} {
		s := wait(t, c2, id)
		if s.Status != history.StatusFailed || !strings.HasPrefix(s.Output, "VersionMismatch: ") ||
			!strings.Contains(s.Output, `version "1"`) || !strings.Contains(s.Output, `version "2"`) {
			t.Errorf("instance %s: %s %q; want Failed with a VersionMismatch naming versions 1 and 2", id, s.Status, s.Output)
		}
		h, err := c2.GetHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		last := h[len(h)-2] // before the closing OrchestratorCompleted
		if last.Type != history.ExecutionCompleted || last.Failure == nil || last.Failure.ErrorType != "VersionMismatch" || !last.Failure.IsNonRetriable {
			t.Errorf("instance %s ends its history with %+v", id, last)
		}
	}
	// A termination is honoured rather than turned into the mismatch.
	if err := c2.Terminate(ctx, "doomed", "retired"); err != nil {
		t.Fatal(err)
	}
	if s := wait(t, c2, "doomed"); s.Status != history.StatusTerminated || !strings.Contains(s.Output, "retired") {
		t.Errorf("instance doomed: %s %q, want Terminated with the reason", s.Status, s.Output)
	}
	if err := c2.RaiseEvent(ctx, "current", "Go", `"now"`); err != nil {
		t.Fatal(err)
	}
	if s := wait(t, c2, "current"); s.Status != history.StatusCompleted || s.Output != `"ran version 2"` {
		t.Errorf("instance current: %s %s", s.Status, s.Output)
	}
	// Version 2's code ran only for "current" (its first run, then its replay
	// or resume when the event came); never for the version-1 instances.
	if n := ran2.Load(); n < 1 || n > 2 {
		t.Errorf("the version-2 worker ran orchestrator code %d times, want 1 or 2 (instance current only)", n)
	}
}

var vChild = durable.NewOrchestrator("VChild", func(ctx *durable.Context, _ any) (string, error) {
	return ctx.Version(), nil
})

// vParent continues as new once, then calls VChild three times: inheriting
// its version, at version 0.5, and at version 2.0 (newer than the worker);
// it returns its own version, the two children's, and the third's failure
// type.
var vParent = durable.NewOrchestrator("VParent", func(ctx *durable.Context, gen int) ([]string, error) {
	if gen == 0 {
		return nil, ctx.ContinueAsNew(1)
	}
	a, err := vChild.Call(ctx, nil, durable.WithInstanceID(ctx.InstanceID()+"-inherit")).Await()
	if err != nil {
		return nil, err
	}
	b, err := vChild.Call(ctx, nil, durable.WithInstanceID(ctx.InstanceID()+"-older"), durable.WithVersion("0.5")).Await()
	if err != nil {
		return nil, err
	}
	_, err = vChild.Call(ctx, nil, durable.WithInstanceID(ctx.InstanceID()+"-newer"), durable.WithVersion("2.0")).Await()
	var tf *durable.TaskFailedError
	if !errors.As(err, &tf) {
		return nil, fmt.Errorf("the newer child did not fail: %v", err)
	}
	return []string{ctx.Version(), a, b, tf.Failure.ErrorType}, nil
})

// TestVersionInherited: ContinueAsNew keeps the instance's version, a
// sub-orchestration inherits it unless WithVersion names another (recorded
// in SubOrchestrationInstanceCreated.Version, the child's
// ExecutionStarted.Version and Instances row, and its parent link), and a
// child of a version the worker refuses fails its start (FailureFail).
func TestVersionInherited(t *testing.T) {
	be, err := memory.New(memory.Options{HubName: "VersionHub"})
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{t: t, name: be.HubName()}
	_, c := h.start(engine.Options{Backend: be, Version: "1.0", VersionMatch: engine.MatchCurrentOrOlder, VersionFailure: engine.FailureFail}, vParent, vChild)
	c.SetDefaultVersion("1.0")
	ctx := context.Background()
	id, err := c.StartNew(ctx, "VParent", client.StartOptions{InstanceID: "p", Input: 0, Version: "0.9"})
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, c, id)
	if st.Status != history.StatusCompleted || st.Output != `["0.9","0.9","0.5","VersionMismatch"]` || st.Version != "0.9" {
		t.Fatalf("parent: %s %s, version %q", st.Status, st.Output, st.Version)
	}
	ph, err := c.GetHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]string{}
	for _, ev := range ph {
		switch ev.Type {
		case history.ExecutionStarted:
			if ev.Version != "0.9" || ev.Input != "1" {
				t.Errorf("parent's ExecutionStarted after ContinueAsNew: version %q, input %s", ev.Version, ev.Input)
			}
		case history.SubOrchestrationInstanceCreated:
			created[ev.InstanceID] = ev.Version
		}
	}
	want := map[string]string{"p-inherit": "0.9", "p-older": "0.5", "p-newer": "2.0"}
	for child, v := range want {
		if created[child] != v {
			t.Errorf("SubOrchestrationInstanceCreated for %s has version %q, want %q", child, created[child], v)
		}
		ch, err := c.GetHistory(ctx, child)
		if err != nil || len(ch) == 0 {
			t.Fatalf("history of %s: %v", child, err)
		}
		var start *history.Event
		for i := range ch {
			if ch[i].Type == history.ExecutionStarted {
				start = &ch[i]
			}
		}
		if start == nil || start.Version != v || start.Parent == nil || start.Parent.Version != "0.9" || start.Parent.Instance.InstanceID != "p" {
			t.Errorf("ExecutionStarted of %s: %+v; want version %q and parent p at 0.9", child, start, v)
		}
		// The child's final row may follow its notice to the parent.
		var row backend.InstanceState
		until(t, "the final Instances row of "+child, func() bool {
			row, err = be.GetInstance(ctx, child, false)
			return err == nil && row.Status.IsTerminal()
		})
		if row.Version != v {
			t.Errorf("Instances row of %s: version %q, want %q", child, row.Version, v)
		}
		if child == "p-newer" && (row.Status != history.StatusFailed || !strings.Contains(row.Output, "VersionMismatch")) {
			t.Errorf("the newer child: %s %q", row.Status, row.Output)
		}
	}
}
