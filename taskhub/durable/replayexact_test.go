package durable

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// sighting is one value the orchestrator saw, with the time it saw it at.
type sighting struct {
	Step  string
	Time  time.Time // compared with ==: location and monotonic reading count
	GUID  string
	Value string
}

// sightings collects what the exactOrch code sees in one run; tests reset
// it before each executor they drive (one executor runs at a time).
var sightings []sighting

// exactOrch observes everything an orchestrator can: its input, time,
// GUIDs, an activity result, an activity failure, a timer and an event.
var exactOrch = NewOrchestrator("Exact", func(ctx *Context, _ any) (string, error) {
	see := func(step, value string) {
		sightings = append(sightings, sighting{step, ctx.CurrentTime(), ctx.NewGUID(), value})
	}
	var in json.RawMessage
	if err := ctx.Input(&in); err != nil {
		return "", err
	}
	see("input", string(in))
	r, err := hello.Call(ctx, "Tokyo").Await()
	if err != nil {
		return "", err
	}
	see("activity", r)
	_, err = CallActivity[string](ctx, "Boom", nil).Await()
	var tf *TaskFailedError
	if !errors.As(err, &tf) {
		return "", fmt.Errorf("Boom: %v", err)
	}
	fd, err := json.Marshal(tf.Failure) // every field, the inner failure's too
	if err != nil {
		return "", err
	}
	see("failure", string(fd))
	// A fire time finer than storage keeps: the timer still agrees.
	if _, err := ctx.CreateTimer(ctx.CurrentTime().Add(90*time.Second + 123*time.Nanosecond)).Await(); err != nil {
		return "", err
	}
	see("timer", "")
	ev, err := WaitForExternalEvent[json.RawMessage](ctx, "Go").Await()
	if err != nil {
		return "", err
	}
	see("event", string(ev))
	return ctx.NewGUID(), nil
})

// stored returns ev as storage gives it back: every time at storage
// precision (history.StorageTime), everything else unchanged.
func stored(evs []history.Event) []history.Event {
	out := make([]history.Event, len(evs))
	for i, ev := range evs {
		ev.Timestamp = history.StorageTime(ev.Timestamp)
		ev.FireAt = history.StorageTime(ev.FireAt)
		if ev.ScheduledStartTime != nil {
			st := history.StorageTime(*ev.ScheduledStartTime)
			ev.ScheduledStartTime = &st
		}
		out[i] = ev
	}
	return out
}

// TestReplayIsExactAfterStorageRoundTrip runs an orchestration on events
// whose times are finer than storage keeps and in another location (what a
// careless engine would hand over in memory), then replays the history as
// storage returns it, from every episode boundary: the code must see the
// same values, and the first run's actions must already be what storage
// will return.
func TestReplayIsExactAfterStorageRoundTrip(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	base := time.Date(2024, 3, 4, 14, 6, 7, 123456789, jst)
	raw := func(evs []history.Event, at time.Time) []history.Event {
		for i := range evs {
			evs[i].Timestamp = at // undo NewEvent's truncation and UTC
		}
		return evs
	}
	at := []time.Time{base, base.Add(time.Second + 11), base.Add(2*time.Second + 22), base.Add(92*time.Second + 33), base.Add(100*time.Second + 44)}
	boom := history.FailureDetails{ErrorType: "BoomError", ErrorMessage: "boom: ü", StackTrace: "main.boom()\n\tboom.go:1",
		InnerFailure: &history.FailureDetails{ErrorType: "Inner", ErrorMessage: "cause"}, IsNonRetriable: true}
	episodes := [][]history.Event{
		raw(start(at[0], "Exact", `{"n":12345678901234567890,"s":"é\u2028"}`), at[0]),
		raw(ep(at[1], evCompleted(0, `"Hello Tokyo!"`)), at[1]),
		raw(ep(at[2], evFailed(1, boom)), at[2]),
		raw(ep(at[3], evFired(2, at[2].Add(90*time.Second+123))), at[3]),
		raw(ep(at[4], evRaised("Go", `{"ok":true,"v":[1,2.50]}`)), at[4]),
	}
	fn := fnOf(t, exactOrch)

	// The first run, one cached executor, the way the engine runs it.
	sightings = nil
	first := newExecutor(fn, "inst1")
	t.Cleanup(first.Close)
	var hist []history.Event
	var bounds []int
	var firstActions [][]history.Event
	for i, e := range episodes {
		bounds = append(bounds, len(hist))
		actions, err := first.Run(e)
		if err != nil {
			t.Fatalf("episode %d: %v", i, err)
		}
		firstActions = append(firstActions, actions)
		hist = append(append(append(hist, e...), actions...), history.NewEvent(history.OrchestratorCompleted, e[0].Timestamp))
		// What the executor records needs no rounding by storage.
		if got, want := keysOf(actions), keysOf(stored(actions)); !reflect.DeepEqual(got, want) {
			t.Errorf("episode %d: actions %v change in storage: %v", i, got, want)
		}
	}
	if !first.Done() {
		t.Fatalf("the first run did not complete; actions %v", describeActions(firstActions[len(firstActions)-1]))
	}
	seen := sightings
	if len(seen) != 5 {
		t.Fatalf("first run saw %d steps: %+v", len(seen), seen)
	}
	// Each step saw the OrchestratorStarted time of its episode as storage
	// keeps it, and the values the events carry.
	boomJSON, err := json.Marshal(boom)
	if err != nil {
		t.Fatal(err)
	}
	wantValues := []string{`{"n":12345678901234567890,"s":"é\u2028"}`, "Hello Tokyo!", string(boomJSON), "", `{"ok":true,"v":[1,2.50]}`}
	for i, s := range seen {
		if want := history.StorageTime(at[i]); s.Time != want {
			t.Errorf("step %s: CurrentTime %#v, want the stored OrchestratorStarted time %#v", s.Step, s.Time, want)
		}
		if s.Value != wantValues[i] {
			t.Errorf("step %s: saw %q, want %q", s.Step, s.Value, wantValues[i])
		}
	}

	// Replays of the stored history, cut at every episode boundary and run
	// on from there with the raw episodes, see exactly the same.
	for cut := 0; cut <= len(episodes); cut++ {
		sightings = nil
		ex := newExecutor(fn, "inst1")
		prefix := len(hist)
		if cut < len(episodes) {
			prefix = bounds[cut]
		}
		if err := ex.Replay(stored(hist[:prefix])); err != nil {
			ex.Close()
			t.Fatalf("cut %d: replay: %v", cut, err)
		}
		for i := cut; i < len(episodes); i++ {
			actions, err := ex.Run(episodes[i])
			if err != nil {
				ex.Close()
				t.Fatalf("cut %d, episode %d: %v", cut, i, err)
			}
			if got, want := keysOf(actions), keysOf(firstActions[i]); !reflect.DeepEqual(got, want) {
				t.Errorf("cut %d, episode %d: actions\n  %v\nthe first run produced\n  %v", cut, i, describeActions(actions), describeActions(firstActions[i]))
			}
		}
		if !reflect.DeepEqual(sightings, seen) {
			t.Errorf("cut %d: the code saw\n  %+v\nthe first run saw\n  %+v", cut, sightings, seen)
		}
		if c := ex.Completion(); c == nil || c.Result != first.Completion().Result {
			t.Errorf("cut %d: completion %+v, first run %+v", cut, c, first.Completion())
		}
		ex.Close()
	}
}
