package durable

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

var hello = NewActivity("Hello", func(_ context.Context, city string) (string, error) {
	return "Hello " + city + "!", nil
})

var helloSequence = NewOrchestrator("HelloSequence", func(ctx *Context, _ any) ([]string, error) {
	var out []string
	for _, city := range []string{"Tokyo", "Seattle", "London"} {
		s, err := hello.Call(ctx, city).Await()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

func startedEvents(at time.Time, name, input string) []history.Event {
	os := history.NewEvent(history.OrchestratorStarted, at)
	es := history.NewEvent(history.ExecutionStarted, at)
	es.Name = name
	es.Input = input
	es.Instance = history.OrchestrationInstance{InstanceID: "inst1", ExecutionID: "exec1"}
	return []history.Event{os, es}
}

func completed(at time.Time, id int32, result string) []history.Event {
	tc := history.NewEvent(history.TaskCompleted, at)
	tc.TaskScheduledID = id
	tc.Result = result
	return []history.Event{history.NewEvent(history.OrchestratorStarted, at), tc}
}

func failed(at time.Time, id int32, msg string) []history.Event {
	tf := history.NewEvent(history.TaskFailed, at)
	tf.TaskScheduledID = id
	tf.Reason = msg
	tf.Failure = &history.FailureDetails{ErrorType: "ActivityError", ErrorMessage: msg}
	return []history.Event{history.NewEvent(history.OrchestratorStarted, at), tf}
}

func fnOf(t *testing.T, d Definition) orchestratorFunc {
	t.Helper()
	r := NewRegistry()
	if err := r.Add(d); err != nil {
		t.Fatal(err)
	}
	fn, ok := r.orchestrator(d.Name())
	if !ok {
		t.Fatalf("%s not registered", d.Name())
	}
	return fn
}

// runEpisodes drives an executor like the engine does and returns the full
// history it would have written.
func runEpisodes(t *testing.T, ex *executor, episodes ...[]history.Event) []history.Event {
	t.Helper()
	var h []history.Event
	for _, ep := range episodes {
		actions, err := ex.Run(ep)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		h = append(h, ep...)
		h = append(h, actions...)
		h = append(h, history.NewEvent(history.OrchestratorCompleted, ep[0].Timestamp))
	}
	return h
}

func TestHelloSequenceEpisodes(t *testing.T) {
	ex := newExecutor(fnOf(t, helloSequence), "inst1")
	defer ex.Close()

	actions, err := ex.Run(startedEvents(t0, "HelloSequence", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id    int32
		input string
	}{{0, `"Tokyo"`}}
	if len(actions) != 1 || actions[0].Type != history.TaskScheduled || actions[0].Name != "Hello" ||
		actions[0].EventID != want[0].id || actions[0].Input != want[0].input {
		t.Fatalf("episode 1 actions = %+v", actions)
	}
	for i, city := range []string{"Tokyo", "Seattle"} {
		actions, err = ex.Run(completed(t0.Add(time.Second), int32(i), `"Hello `+city+`!"`))
		if err != nil {
			t.Fatal(err)
		}
		if len(actions) != 1 || actions[0].EventID != int32(i+1) || actions[0].Type != history.TaskScheduled {
			t.Fatalf("episode %d actions = %+v", i+2, actions)
		}
	}
	actions, err = ex.Run(completed(t0.Add(2*time.Second), 2, `"Hello London!"`))
	if err != nil {
		t.Fatal(err)
	}
	if len(actions) != 1 || actions[0].Type != history.ExecutionCompleted || actions[0].EventID != 3 {
		t.Fatalf("final actions = %+v", actions)
	}
	if got, want := actions[0].Result, `["Hello Tokyo!","Hello Seattle!","Hello London!"]`; got != want {
		t.Fatalf("output = %s, want %s", got, want)
	}
	if actions[0].Status != history.StatusCompleted || !ex.Done() {
		t.Fatalf("status = %v done = %v", actions[0].Status, ex.Done())
	}
}

func TestReplayMatchesCachedRun(t *testing.T) {
	// Record a history with a cached executor, then replay it from scratch at
	// every episode boundary: the fresh executor must produce the same next
	// actions as the cached one did.
	fn := fnOf(t, helloSequence)
	episodes := [][]history.Event{
		startedEvents(t0, "HelloSequence", ""),
		completed(t0.Add(time.Second), 0, `"Hello Tokyo!"`),
		completed(t0.Add(2*time.Second), 1, `"Hello Seattle!"`),
		completed(t0.Add(3*time.Second), 2, `"Hello London!"`),
	}
	cached := newExecutor(fn, "inst1")
	defer cached.Close()
	full := runEpisodes(t, cached, episodes...)

	for cut := 1; cut < len(episodes); cut++ {
		past := runEpisodes(t, newClosedAfter(t, fn), episodes[:cut]...)
		fresh := newExecutor(fn, "inst1")
		if err := fresh.Replay(past); err != nil {
			t.Fatalf("cut %d: replay: %v", cut, err)
		}
		actions, err := fresh.Run(episodes[cut])
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		next := full[len(past)+len(episodes[cut])]
		if len(actions) != 1 || actions[0].EventID != next.EventID || actions[0].Type != next.Type || actions[0].Result != next.Result {
			t.Fatalf("cut %d: fresh actions %+v, cached recorded %+v", cut, actions, next)
		}
		fresh.Close()
	}

	// A completed history replays to a completed executor with nothing new.
	done := newExecutor(fn, "inst1")
	defer done.Close()
	if err := done.Replay(full); err != nil {
		t.Fatal(err)
	}
	if !done.Done() {
		t.Fatal("replayed executor is not done")
	}
	actions, err := done.Run(nil)
	if err != nil || len(actions) != 0 {
		t.Fatalf("after full replay: actions %+v err %v", actions, err)
	}
}

// newClosedAfter returns an executor whose coroutine is closed by the test cleanup.
func newClosedAfter(t *testing.T, fn orchestratorFunc) *executor {
	ex := newExecutor(fn, "inst1")
	t.Cleanup(ex.Close)
	return ex
}

func TestIsReplayingAndCurrentTime(t *testing.T) {
	type seen struct {
		replaying bool
		now       time.Time
	}
	var log []seen
	orch := NewOrchestrator("Clock", func(ctx *Context, _ any) (int, error) {
		for i := 0; i < 2; i++ {
			log = append(log, seen{ctx.IsReplaying(), ctx.CurrentTime()})
			if _, err := hello.Call(ctx, "x").Await(); err != nil {
				return 0, err
			}
		}
		log = append(log, seen{ctx.IsReplaying(), ctx.CurrentTime()})
		return 1, nil
	})
	fn := fnOf(t, orch)
	past := runEpisodes(t, newClosedAfter(t, fn),
		startedEvents(t0, "Clock", ""),
		completed(t0.Add(time.Minute), 0, `"a"`))
	log = nil
	ex := newExecutor(fn, "inst1")
	defer ex.Close()
	if err := ex.Replay(past); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Run(completed(t0.Add(2*time.Minute), 1, `"b"`)); err != nil {
		t.Fatal(err)
	}
	want := []seen{{true, t0}, {true, t0.Add(time.Minute)}, {false, t0.Add(2 * time.Minute)}}
	if len(log) != len(want) {
		t.Fatalf("log = %+v", log)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Errorf("step %d: got %+v want %+v", i, log[i], want[i])
		}
	}
}

func TestNonDeterminism(t *testing.T) {
	recorded := runEpisodes(t, newClosedAfter(t, fnOf(t, helloSequence)),
		startedEvents(t0, "HelloSequence", ""),
		completed(t0, 0, `"Hello Tokyo!"`))

	tests := []struct {
		name     string
		orch     Definition
		wantPos  int
		wantText []string
	}{
		{
			name: "other activity name",
			orch: NewOrchestrator("HelloSequence", func(ctx *Context, _ any) (string, error) {
				return CallActivity[string](ctx, "Goodbye", "Tokyo").Await()
			}),
			wantPos:  2,
			wantText: []string{"history position 2", `TaskScheduled "Hello" (task 0)`, `TaskScheduled "Goodbye" (task 0)`},
		},
		{
			name: "missing call",
			orch: NewOrchestrator("HelloSequence", func(ctx *Context, _ any) (string, error) {
				return "no calls", nil
			}),
			wantPos:  2,
			wantText: []string{"history position 2", `TaskScheduled "Hello" (task 0)`, "produced ExecutionCompleted (Completed)"},
		},
		{
			name: "second call missing",
			orch: NewOrchestrator("HelloSequence", func(ctx *Context, _ any) (string, error) {
				return hello.Call(ctx, "Tokyo").Await()
			}),
			wantPos:  6,
			wantText: []string{"history position 6", `TaskScheduled "Hello" (task 1)`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := newExecutor(fnOf(t, tc.orch), "inst1")
			defer ex.Close()
			err := ex.Replay(recorded)
			var nd *NonDeterminismError
			if !errors.As(err, &nd) {
				t.Fatalf("err = %v, want NonDeterminismError", err)
			}
			if nd.Position != tc.wantPos {
				t.Errorf("position = %d, want %d", nd.Position, tc.wantPos)
			}
			for _, s := range tc.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err.Error(), s)
				}
			}
			actions, _ := ex.Run(completed(t0, 1, `"x"`))
			if len(actions) != 1 || actions[0].Type != history.ExecutionCompleted || actions[0].Status != history.StatusFailed {
				t.Fatalf("actions after non-determinism = %+v", actions)
			}
			if actions[0].Failure == nil || actions[0].Failure.ErrorType != "NonDeterminismError" {
				t.Fatalf("failure = %+v", actions[0].Failure)
			}
		})
	}
}

func TestActivityFailureSurfacesAsTaskFailedError(t *testing.T) {
	var got *TaskFailedError
	orch := NewOrchestrator("F", func(ctx *Context, _ any) (string, error) {
		_, err := hello.Call(ctx, "x").Await()
		if !errors.As(err, &got) {
			return "", errors.New("not a TaskFailedError")
		}
		return "", err // fail the orchestration with it
	})
	ex := newExecutor(fnOf(t, orch), "inst1")
	defer ex.Close()
	runEpisodes(t, ex, startedEvents(t0, "F", ""))
	actions, err := ex.Run(failed(t0, 0, "boom"))
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.TaskName != "Hello" || got.TaskID != 0 || got.Failure.ErrorMessage != "boom" {
		t.Fatalf("TaskFailedError = %+v", got)
	}
	c := actions[len(actions)-1]
	if c.Status != history.StatusFailed || c.Failure.ErrorType != "TaskFailedError" ||
		!strings.Contains(c.Failure.ErrorMessage, `activity "Hello" (task 0) failed: ActivityError: boom`) {
		t.Fatalf("completion = %+v failure %+v", c, c.Failure)
	}
	if c.Failure.InnerFailure == nil || c.Failure.InnerFailure.ErrorMessage != "boom" {
		t.Fatalf("inner failure = %+v", c.Failure.InnerFailure)
	}
}

func TestPanicFailsOrchestration(t *testing.T) {
	orch := NewOrchestrator("P", func(ctx *Context, _ any) (int, error) {
		var m map[string]int
		m["x"] = 1 // nil map write panics
		return 0, nil
	})
	ex := newExecutor(fnOf(t, orch), "inst1")
	defer ex.Close()
	actions, err := ex.Run(startedEvents(t0, "P", ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(actions) != 1 || actions[0].Status != history.StatusFailed || actions[0].Failure.ErrorType != "panic" ||
		!strings.Contains(actions[0].Failure.ErrorMessage, "nil map") || actions[0].Failure.StackTrace == "" {
		t.Fatalf("actions = %+v failure %+v", actions, actions[0].Failure)
	}
}

func TestRecoverCannotSwallowUnwinding(t *testing.T) {
	recovered := "not run"
	orch := NewOrchestrator("R", func(ctx *Context, _ any) (string, error) {
		defer func() {
			if r := recover(); r != nil {
				recovered = "swallowed"
			} else {
				recovered = "nothing to recover"
			}
		}()
		return hello.Call(ctx, "x").Await()
	})
	ex := newExecutor(fnOf(t, orch), "inst1")
	if _, err := ex.Run(startedEvents(t0, "R", "")); err != nil {
		t.Fatal(err)
	}
	ex.Close()
	if recovered != "nothing to recover" {
		t.Fatalf("deferred recover saw: %s", recovered)
	}
	if ex.Done() {
		t.Fatal("unwinding must not complete the orchestration")
	}
}

func TestTypeMismatches(t *testing.T) {
	t.Run("result does not fit", func(t *testing.T) {
		var resErr *ResultError
		orch := NewOrchestrator("M", func(ctx *Context, _ any) (int, error) {
			n, err := CallActivity[int](ctx, "Hello", "x").Await()
			errors.As(err, &resErr)
			return n, err
		})
		ex := newExecutor(fnOf(t, orch), "inst1")
		defer ex.Close()
		runEpisodes(t, ex, startedEvents(t0, "M", ""))
		actions, _ := ex.Run(completed(t0, 0, `"Hello x!"`))
		if resErr == nil || resErr.Type != "int" || !strings.Contains(resErr.Error(), `activity "Hello"`) {
			t.Fatalf("ResultError = %v", resErr)
		}
		if actions[0].Status != history.StatusFailed || actions[0].Failure.ErrorType != "ResultError" {
			t.Fatalf("completion = %+v", actions[0])
		}
	})
	t.Run("input does not fit", func(t *testing.T) {
		orch := NewOrchestrator("I", func(ctx *Context, n int) (int, error) { return n, nil })
		ex := newExecutor(fnOf(t, orch), "inst1")
		defer ex.Close()
		actions, _ := ex.Run(startedEvents(t0, "I", `"not a number"`))
		f := actions[0].Failure
		if actions[0].Status != history.StatusFailed || f.ErrorType != "InputError" ||
			!strings.Contains(f.ErrorMessage, `orchestrator "I": input does not fit type int`) {
			t.Fatalf("completion = %+v failure %+v", actions[0], f)
		}
	})
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	if err := r.Add(helloSequence, hello); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(hello); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	act, ok := r.activity("Hello")
	if !ok {
		t.Fatal("activity missing")
	}
	out, err := act(context.Background(), `"Tokyo"`)
	if err != nil || out != `"Hello Tokyo!"` {
		t.Fatalf("activity = %q, %v", out, err)
	}
	if _, err := act(context.Background(), `42`); err == nil || !strings.Contains(err.Error(), `activity "Hello": input does not fit type string`) {
		t.Fatalf("bad input error = %v", err)
	}
	if names := r.OrchestratorNames(); len(names) != 1 || names[0] != "HelloSequence" {
		t.Fatalf("names = %v", names)
	}
}
