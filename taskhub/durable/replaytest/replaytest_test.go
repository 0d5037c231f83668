package replaytest_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/replaytest"
)

// divergence is what a test expects of a *replaytest.DivergenceError.
type divergence struct {
	kind     replaytest.Kind
	task     int32
	entry    int
	contains []string // substrings of Error()
}

func TestCheck(t *testing.T) {
	isReplayingDependent := durable.NewOrchestrator("HelloCities", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Tokyo", "Seattle", "London"} {
			activity := "Hello"
			if city == "Seattle" && ctx.IsReplaying() {
				activity = "Greet" // a classic mistake: code that differs on replay
			}
			s, err := durable.CallActivity[string](ctx, activity, city).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})
	shouting := durable.NewOrchestrator("HelloCities", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Tokyo", "Seattle", "London"} {
			s, err := hello.Call(ctx, city).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, strings.ToUpper(s))
		}
		return out, nil
	})

	outputDiffersOnReplay := durable.NewOrchestrator("HelloCities", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Tokyo", "Seattle", "London"} {
			s, err := hello.Call(ctx, city).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		if ctx.IsReplaying() {
			out = out[:1]
		}
		return out, nil
	})
	extraCallOnReplay := durable.NewOrchestrator("HelloCities", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Tokyo", "Seattle", "London"} {
			t := hello.Call(ctx, city)
			if city == "London" && ctx.IsReplaying() {
				durable.CallActivity[string](ctx, "Audit", city)
			}
			s, err := t.Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})

	tests := []struct {
		name string
		file string
		code durable.Definition
		opts []replaytest.Option
		want *divergence // nil: the replay must pass
		// wantND: the divergence wraps the executor's NonDeterminismError.
		wantND bool
	}{
		{name: "unchanged code", file: "hello_completed.json", code: helloV1},
		{
			name: "renamed activity",
			file: "hello_completed.json",
			code: cities(greet("Greet", "Tokyo"), greet("Greet", "Seattle"), greet("Greet", "London")),
			want: &divergence{replaytest.CallMismatch, 0, 1, []string{
				`orchestrator "HelloCities" (instance "hello-1") diverges from its history at task 0, historyEvents[1] (call mismatch)`,
				`history records TaskScheduled "Hello" (task 0) with input "Tokyo", but the code produced TaskScheduled "Greet" (task 0) with input "Tokyo"`,
			}},
		},
		{
			name: "reordered calls",
			file: "hello_completed.json",
			code: cities(greet("Hello", "Seattle"), greet("Hello", "Tokyo"), greet("Hello", "London")),
			want: &divergence{replaytest.InputMismatch, 0, 1, []string{
				`history records TaskScheduled "Hello" (task 0) with input "Tokyo", but the code produced TaskScheduled "Hello" (task 0) with input "Seattle"`,
			}},
		},
		{
			// Names alone (what the runtime checks) cannot see this reorder:
			// the code gets Tokyo's greeting for Seattle, and the same output.
			name: "reordered calls, inputs ignored",
			file: "hello_completed.json",
			code: cities(greet("Hello", "Seattle"), greet("Hello", "Tokyo"), greet("Hello", "London")),
			opts: []replaytest.Option{replaytest.IgnoreInputs()},
		},
		{
			name: "dropped the last call",
			file: "hello_completed.json",
			code: cities(greet("Hello", "Tokyo"), greet("Hello", "Seattle")),
			want: &divergence{replaytest.MissingCall, 2, 3, []string{
				`history records TaskScheduled "Hello" (task 2) with input "London", but the code produced ExecutionCompleted (Completed) with output ["Hello Tokyo!","Hello Seattle!"]`,
			}},
		},
		{
			name: "dropped a middle call",
			file: "hello_completed.json",
			code: cities(greet("Hello", "Tokyo"), greet("Hello", "London")),
			want: &divergence{replaytest.InputMismatch, 1, 2, []string{
				`history records TaskScheduled "Hello" (task 1) with input "Seattle", but the code produced TaskScheduled "Hello" (task 1) with input "London"`,
			}},
		},
		{
			name: "dropped a middle call, inputs ignored",
			file: "hello_completed.json",
			code: cities(greet("Hello", "Tokyo"), greet("Hello", "London")),
			opts: []replaytest.Option{replaytest.IgnoreInputs()},
			want: &divergence{replaytest.MissingCall, 2, 3, []string{
				`history records TaskScheduled "Hello" (task 2) with input "London", but the code produced ExecutionCompleted (Completed)`,
			}},
		},
		{
			name: "added a call before the others",
			file: "hello_completed.json",
			code: cities(greet("Prepare", "trip"), greet("Hello", "Tokyo"), greet("Hello", "Seattle"), greet("Hello", "London")),
			want: &divergence{replaytest.CallMismatch, 0, 1, []string{
				`history records TaskScheduled "Hello" (task 0) with input "Tokyo", but the code produced TaskScheduled "Prepare" (task 0) with input "trip"`,
			}},
		},
		{
			name: "replaced an activity with a timer",
			file: "hello_completed.json",
			code: cities(greet("Hello", "Tokyo"), sleep(5*60e9), greet("Hello", "London")),
			want: &divergence{replaytest.CallMismatch, 1, 2, []string{
				`history records TaskScheduled "Hello" (task 1) with input "Seattle", but the code produced TimerCreated (task 1, fire at 2026-11-26T10:05:00.125Z)`,
			}},
		},
		{
			name: "added a call after the recorded ones, instance completed",
			file: "hello_completed.json",
			code: cities(greet("Hello", "Tokyo"), greet("Hello", "Seattle"), greet("Hello", "London"), greet("Hello", "Paris")),
			want: &divergence{replaytest.OutcomeMismatch, -1, 4, []string{
				`history records ExecutionCompleted (Completed) with output ["Hello Tokyo!","Hello Seattle!","Hello London!"], but the code produced no completion (the orchestrator made tasks 0-3 and is waiting for TaskScheduled "Hello" (task 3) with input "Paris")`,
			}},
		},
		{
			name: "different output",
			file: "hello_completed.json",
			code: shouting,
			want: &divergence{replaytest.OutcomeMismatch, -1, 4, []string{
				`history records ExecutionCompleted (Completed) with output ["Hello Tokyo!","Hello Seattle!","Hello London!"], but the code produced ExecutionCompleted (Completed) with output ["HELLO TOKYO!","HELLO SEATTLE!","HELLO LONDON!"]`,
			}},
		},
		{name: "different output, output ignored", file: "hello_completed.json", code: shouting, opts: []replaytest.Option{replaytest.IgnoreOutput()}},
		{
			name: "code that differs when replaying",
			file: "hello_completed.json",
			code: isReplayingDependent,
			want: &divergence{replaytest.Unstable, 1, 2, []string{
				`is not deterministic at task 1, historyEvents[2]: run forward it produced TaskScheduled "Hello" (task 1), but replayed from scratch (as after a restart) it produced TaskScheduled "Greet" (task 1)`,
			}},
			wantND: true,
		},
		{
			name: "output that differs when replaying",
			file: "hello_completed.json",
			code: outputDiffersOnReplay,
			want: &divergence{replaytest.Unstable, -1, 4, []string{
				`is not deterministic at historyEvents[4]: run forward it produced ExecutionCompleted (Completed) with output ["Hello Tokyo!","Hello Seattle!","Hello London!"], but replayed from scratch (as after a restart) it produced ExecutionCompleted (Completed) with output ["Hello Tokyo!"]`,
			}},
		},
		{
			name: "a call made only when replaying",
			file: "hello_running.json",
			code: extraCallOnReplay,
			want: &divergence{replaytest.Unstable, 3, -1, []string{
				`is not deterministic at task 3: run forward it produced nothing for task 3, but replayed from scratch (as after a restart) it produced TaskScheduled "Audit" (task 3) with input "London"`,
			}},
		},

		{name: "running instance, unchanged code", file: "hello_running.json", code: helloV1},
		{
			name: "running instance, a call added after the recorded ones",
			file: "hello_running.json",
			code: cities(greet("Hello", "Tokyo"), greet("Hello", "Seattle"), greet("Hello", "London"), greet("Hello", "Paris")),
		},
		{
			// A call history has no result for yet is not checked: London
			// was running when the export was taken, under any name.
			name: "running instance, the running call renamed",
			file: "hello_running.json",
			code: cities(greet("Hello", "Tokyo"), greet("Hello", "Seattle"), greet("Greet", "London")),
		},
		{
			name: "running instance, a recorded call renamed",
			file: "hello_running.json",
			code: cities(greet("Hello", "Tokyo"), greet("Greet", "Seattle"), greet("Hello", "London")),
			want: &divergence{replaytest.CallMismatch, 1, 2, []string{`TaskScheduled "Greet" (task 1)`}},
		},
		{
			name: "running instance, code returns early",
			file: "hello_running.json",
			code: cities(greet("Hello", "Tokyo")),
			want: &divergence{replaytest.MissingCall, 1, 2, []string{
				`history records TaskScheduled "Hello" (task 1) with input "Seattle", but the code produced ExecutionCompleted (Completed) with output ["Hello Tokyo!"]`,
			}},
		},

		{name: "terminated instance", file: "hello_terminated.json", code: helloV1},
		{name: "terminated instance, a call added", file: "hello_terminated.json", code: cities(greet("Hello", "Tokyo"), greet("Hello", "Paris"), greet("Hello", "London"))},

		{name: "timer and external event", file: "approval.json", code: approvalV1},
		{
			name: "timer and external event, event renamed",
			file: "approval.json",
			code: approval("Approval", true),
			want: &divergence{replaytest.MissingCall, 3, 8, []string{
				`history records TaskScheduled "Hello" (task 3) with input "approver", but the code produced nothing for task 3 (the orchestrator made tasks 0-2 and is waiting for TimerCreated (task 2, fire at 2026-11-26T11:10:00.135Z))`,
			}},
		},
		{
			name: "timer and external event, timer removed",
			file: "approval.json",
			code: approval("Approve", false),
			want: &divergence{replaytest.MissingCall, -1, 4, []string{
				`history records TimerCreated (fire at 2026-11-26T11:10:00.135Z), but the code produced only 1 timer(s) by then (the orchestrator had already returned: ExecutionCompleted (Completed) with output "Hello Tokyo! (approval timed out)")`,
			}},
		},

		{name: "failed activity handled", file: "checkout_declined.json", code: checkout(true, nil)},
		{
			name: "failed activity no longer handled",
			file: "checkout_declined.json",
			code: checkout(false, nil),
			want: &divergence{replaytest.MissingCall, 1, 2, []string{
				`history records TaskScheduled "Notify" (task 1) with input "payment failed: card declined", but the code produced ExecutionCompleted (Failed: TaskFailedError: activity "Charge" (task 0) failed: Error: card declined)`,
			}},
		},
		{name: "failed orchestration, unchanged code", file: "checkout_failed.json", code: checkout(false, nil)},
		{
			name: "failed orchestration, failure now handled",
			file: "checkout_failed.json",
			code: checkout(true, nil),
			want: &divergence{replaytest.OutcomeMismatch, -1, 2, []string{
				`history records ExecutionCompleted (Failed: TaskFailedError: activity "Charge" (task 0) failed: Error: card declined), but the code produced no completion (the orchestrator made tasks 0-1 and is waiting for TaskScheduled "Notify" (task 1) with input "payment failed: card declined")`,
			}},
		},

		{name: "sub-orchestration", file: "suborchestration.json", code: trip(false)},
		{
			name: "sub-orchestration called as an activity",
			file: "suborchestration.json",
			code: trip(true),
			want: &divergence{replaytest.CallMismatch, 0, 1, []string{
				`history records SubOrchestrationInstanceCreated "HelloCities" (task 0) with input null, but the code produced TaskScheduled "HelloCities" (task 0) with input null`,
			}},
		},

		{name: "retried activity", file: "retry.json", code: retrying(3)},
		{
			name: "retry policy removed",
			file: "retry.json",
			code: retrying(1),
			want: &divergence{replaytest.MissingCall, 1, 3, []string{
				`history records TimerCreated (task 1, fire at 2026-11-26T10:01:00.21Z), but the code produced ExecutionCompleted (Failed: TaskFailedError: activity "Flaky" (task 0) failed: Error: service unavailable)`,
			}},
		},

		{name: "fan-out with GUIDs and CurrentTime, batched and skewed", file: "batch.json", code: batch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry(t, tc.code)
			err := replaytest.CheckFile(reg, filepath.Join("testdata", tc.file), tc.opts...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want no divergence, got: %v", err)
				}
				return
			}
			var d *replaytest.DivergenceError
			if !errors.As(err, &d) {
				t.Fatalf("want a *DivergenceError, got: %v", err)
			}
			t.Log(err)
			if d.Kind != tc.want.kind || d.TaskID != tc.want.task || d.Entry != tc.want.entry {
				t.Errorf("kind %v, task %d, entry %d; want %v, %d, %d", d.Kind, d.TaskID, d.Entry, tc.want.kind, tc.want.task, tc.want.entry)
			}
			for _, s := range tc.want.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message lacks %q:\n%v", s, err)
				}
			}
			var nd *durable.NonDeterminismError
			if errors.As(err, &nd) != tc.wantND {
				t.Errorf("wraps a NonDeterminismError: %v, want %v (Err: %#v)", !tc.wantND, tc.wantND, d.Err)
			}
		})
	}
}

// TestFailedActivityReachesTheCode checks that a recorded TaskFailed is
// handed to the code with its failure details.
func TestFailedActivityReachesTheCode(t *testing.T) {
	var seen durable.FailureDetails
	reg := registry(t, checkout(true, &seen))
	if err := replaytest.CheckFile(reg, "testdata/checkout_declined.json"); err != nil {
		t.Fatal(err)
	}
	if seen.ErrorType != "Error" || seen.ErrorMessage != "card declined" {
		t.Fatalf("the code saw failure %+v", seen)
	}
}

func TestCheckFiles(t *testing.T) {
	replaytest.CheckFiles(t, registry(t, helloV1), "testdata/hello_*.json")
}

func TestUnusableExports(t *testing.T) {
	completed, err := os.ReadFile("testdata/hello_completed.json")
	if err != nil {
		t.Fatal(err)
	}
	// edit returns the export with f applied to its decoded form.
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(completed, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	entries := func(m map[string]any) []any { return m["historyEvents"].([]any) }
	tests := []struct {
		name    string
		data    []byte
		wantErr error
		want    string
	}{
		{"not JSON", []byte("<html>"), replaytest.ErrBadExport, "not a JSON object"},
		{"no history", edit(func(m map[string]any) { delete(m, "historyEvents") }), replaytest.ErrBadExport, "showHistory=true"},
		{"no results", edit(func(m map[string]any) {
			delete(entries(m)[1].(map[string]any), "Result")
		}), replaytest.ErrBadExport, "historyEvents[1] (TaskCompleted) has no Result: save the export with showHistoryOutput=true"},
		{"no TaskScheduledId", edit(func(m map[string]any) {
			delete(entries(m)[2].(map[string]any), "TaskScheduledId")
		}), replaytest.ErrBadExport, "historyEvents[2] (TaskCompleted) has no TaskScheduledId"},
		{"no start", edit(func(m map[string]any) { m["historyEvents"] = entries(m)[1:] }), replaytest.ErrBadExport, "no ExecutionStarted"},
		{"unknown orchestrator", edit(func(m map[string]any) { m["name"] = "Other" }), replaytest.ErrNotRegistered, `"Other" (registered: [HelloCities])`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := replaytest.Check(registry(t, helloV1), tc.data)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %v containing %q", err, tc.wantErr, tc.want)
			}
			var d *replaytest.DivergenceError
			if errors.As(err, &d) {
				t.Fatalf("an unusable export is not a divergence: %v", err)
			}
		})
	}
}
