package engine_test

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// exactInput drives exactOrch: generation 0 continues as new at once, so
// generation 1 sees an input handed over in memory on its first run.
type exactInput struct {
	Gen     int    `json:"gen"`
	Payload string `json:"payload"`
}

// exactSight is everything exactOrch observes before it waits.
type exactSight struct {
	Time     time.Time               `json:"time"`
	GUIDs    []string                `json:"guids"`
	Input    json.RawMessage         `json:"input"`
	Greeting string                  `json:"greeting"`
	Failure  *durable.FailureDetails `json:"failure"`
}

// exactOutput is what exactOrch returns after the event.
type exactOutput struct {
	Before          json.RawMessage `json:"before"` // the sight, as the code computed it again
	BeforeReplaying bool            `json:"beforeReplaying"`
	AfterTime       time.Time       `json:"afterTime"`
	AfterGUIDs      []string        `json:"afterGuids"`
	Event           json.RawMessage `json:"event"`
}

var exactOrch = durable.NewOrchestrator("ExactReplay", func(ctx *durable.Context, in exactInput) (exactOutput, error) {
	var out exactOutput
	if in.Gen == 0 {
		return out, ctx.ContinueAsNew(exactInput{Gen: 1, Payload: in.Payload})
	}
	var s exactSight
	if err := ctx.Input(&s.Input); err != nil {
		return out, err
	}
	var err error
	if s.Greeting, err = greet.Call(ctx, in.Payload).Await(); err != nil {
		return out, err
	}
	var tf *durable.TaskFailedError
	if _, err := greet.Call(ctx, "").Await(); !errors.As(err, &tf) {
		return out, fmt.Errorf("greeting nobody: %v", err)
	}
	s.Failure = &tf.Failure
	s.Time = ctx.CurrentTime()
	s.GUIDs = []string{ctx.NewGUID(), ctx.NewGUID(), ctx.NewGUID()}
	if err := ctx.SetCustomStatus(s); err != nil {
		return out, err
	}
	if out.Before, err = json.Marshal(s); err != nil {
		return out, err
	}
	out.BeforeReplaying = ctx.IsReplaying()
	if out.Event, err = durable.WaitForExternalEvent[json.RawMessage](ctx, "Go").Await(); err != nil {
		return out, err
	}
	out.AfterTime = ctx.CurrentTime()
	out.AfterGUIDs = []string{ctx.NewGUID(), ctx.NewGUID()}
	return out, nil
})

// TestReplayIsExactAcrossReload records time, GUIDs, the input, an
// activity result and an activity failure (both handed over in memory) on
// the first run, stops that engine, and lets a fresh one replay the
// instance from storage: the code sees byte-for-byte the same values, and
// CurrentTime is the OrchestratorStarted timestamp history holds.
func TestReplayIsExactAcrossReload(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	e1, c1 := h.start(engine.Options{}, exactOrch, greet)
	id := start(t, c1, "ExactReplay", exactInput{Payload: "Zoë ✓"})

	// The first run publishes what it saw as custom status, then waits.
	deadline := time.Now().Add(30 * time.Second)
	var firstRun string
	for {
		st, err := c1.GetStatus(ctx, id, false)
		if err == nil && st.CustomStatus != "" {
			firstRun = st.CustomStatus
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no custom status: %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := e1.Stop(stopCtx); err != nil {
		t.Fatalf("stop the first engine: %v", err)
	}

	// A fresh engine on the same hub knows nothing but storage.
	e2, c2 := h.start(engine.Options{}, exactOrch, greet)
	const event = `{"s":"\u00e9","v":[1,2.50,1e3]}`
	if err := c2.RaiseEvent(ctx, id, "Go", event); err != nil {
		t.Fatal(err)
	}
	st := wait(t, c2, id)
	if st.Status != history.StatusCompleted {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	var out exactOutput
	if err := json.Unmarshal([]byte(st.Output), &out); err != nil {
		t.Fatalf("output %s: %v", st.Output, err)
	}
	if e2.Stats().Episodes == 0 || !out.BeforeReplaying {
		t.Fatalf("the second engine did not replay the first run (episodes %d, replaying %v)", e2.Stats().Episodes, out.BeforeReplaying)
	}
	// The heart of it: the replay saw exactly what the first run saw.
	if string(out.Before) != firstRun {
		t.Errorf("after the reload the code saw\n  %s\non its first run\n  %s", out.Before, firstRun)
	}
	if string(out.Event) != event {
		t.Errorf("event data %s, raised %s", out.Event, event)
	}

	var sight exactSight
	if err := json.Unmarshal([]byte(firstRun), &sight); err != nil {
		t.Fatal(err)
	}
	events, err := c2.GetHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// CurrentTime is the stored OrchestratorStarted of the episode that
	// delivered the response (or event) the code had just awaited.
	startedBefore := func(typ history.EventType) time.Time {
		var at time.Time
		for _, ev := range events {
			switch ev.Type {
			case history.OrchestratorStarted:
				at = ev.Timestamp
			case typ:
				return at
			}
		}
		t.Fatalf("no %s in history", typ)
		return at
	}
	failedAt, raisedAt := startedBefore(history.TaskFailed), startedBefore(history.EventRaised)
	if sight.Time != failedAt || out.AfterTime != raisedAt {
		t.Errorf("CurrentTime before/after the event %#v / %#v; history's OrchestratorStarted %#v / %#v",
			sight.Time, out.AfterTime, failedAt, raisedAt)
	}
	// The GUIDs are durabletask-dotnet's for those stored times.
	want := []string{dotnetGUID(id, failedAt, 0), dotnetGUID(id, failedAt, 1), dotnetGUID(id, failedAt, 2)}
	if fmt.Sprint(sight.GUIDs) != fmt.Sprint(want) {
		t.Errorf("GUIDs %v, want %v", sight.GUIDs, want)
	}
	if want := []string{dotnetGUID(id, raisedAt, 3), dotnetGUID(id, raisedAt, 4)}; fmt.Sprint(out.AfterGUIDs) != fmt.Sprint(want) {
		t.Errorf("GUIDs after the event %v, want %v", out.AfterGUIDs, want)
	}
	// The input (from ContinueAsNew, in memory at first) is the stored one.
	if events[1].Type != history.ExecutionStarted || events[1].Input != string(sight.Input) || string(sight.Input) != `{"gen":1,"payload":"Zoë ✓"}` {
		t.Errorf("first run saw input %s; history starts with %s %q", sight.Input, events[1].Type, events[1].Input)
	}
	if sight.Greeting != "Hi Zoë ✓" || sight.Failure == nil || sight.Failure.ErrorMessage != "no name given" {
		t.Errorf("activity outcomes seen: %q, %+v", sight.Greeting, sight.Failure)
	}
}

// dotnetGUID is the deterministic GUID .NET Durable Functions makes: a
// version-5 UUID in namespace 9e952958-5e33-4daf-827f-2fa12937b875 over
// "{instance}_{UTC time, 7 fractional digits}_{counter}".
func dotnetGUID(instance string, at time.Time, counter int) string {
	ns := [16]byte{0x9e, 0x95, 0x29, 0x58, 0x5e, 0x33, 0x4d, 0xaf, 0x82, 0x7f, 0x2f, 0xa1, 0x29, 0x37, 0xb8, 0x75}
	h := sha1.New()
	h.Write(ns[:])
	fmt.Fprintf(h, "%s_%s_%d", instance, at.UTC().Format("2006-01-02T15:04:05.0000000Z"), counter)
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
