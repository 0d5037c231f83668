package orchestrator_test

import (
	"context"
	"slices"
	"testing"

	hello "github.com/go-durable/durablefunctions/Hello"
	orchestrator "github.com/go-durable/durablefunctions/Orchestrator"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// The sample with its real Hello activity, in process, without storage.
func TestOrchestrator(t *testing.T) {
	tr := durabletest.New(hello.Activity)
	res := durabletest.MustRun(t, tr, orchestrator.Orchestrator, nil)
	want := []string{"Hello Tokyo!", "Hello Seattle!", "Hello London!"}
	if !slices.Equal(res.Output, want) {
		t.Errorf("output %q, want %q", res.Output, want)
	}
}

// The sample with Hello mocked: the orchestrator passes each city to the
// activity, in order, and returns what the activity returned; the history
// records the three calls and their results, as the engine writes them.
func TestOrchestratorWithHelloMocked(t *testing.T) {
	tr := durabletest.New(hello.Activity)
	mock := durabletest.OnActivity(tr, hello.Activity, func(_ context.Context, city string) (string, error) {
		return "Hi " + city, nil
	})
	res := durabletest.MustRun(t, tr, orchestrator.Orchestrator, nil)

	if want := []string{"Hi Tokyo", "Hi Seattle", "Hi London"}; !slices.Equal(res.Output, want) {
		t.Errorf("output %q, want %q", res.Output, want)
	}
	if want := []string{`"Tokyo"`, `"Seattle"`, `"London"`}; !slices.Equal(mock.Inputs(), want) {
		t.Errorf("Hello was called with %v, want %v", mock.Inputs(), want)
	}
	var scheduled, completed []string
	for _, ev := range res.History {
		switch ev.Type {
		case history.TaskScheduled:
			if ev.Name != "Hello" || ev.EventID != int32(len(scheduled)) {
				t.Errorf("TaskScheduled %q with EventID %d, want \"Hello\" %d", ev.Name, ev.EventID, len(scheduled))
			}
			scheduled = append(scheduled, ev.Input)
		case history.TaskCompleted:
			if ev.TaskScheduledID != int32(len(completed)) {
				t.Errorf("TaskCompleted for task %d, want %d", ev.TaskScheduledID, len(completed))
			}
			completed = append(completed, ev.Result)
		}
	}
	if want := []string{`"Tokyo"`, `"Seattle"`, `"London"`}; !slices.Equal(scheduled, want) {
		t.Errorf("history schedules %v, want %v", scheduled, want)
	}
	if want := []string{`"Hi Tokyo"`, `"Hi Seattle"`, `"Hi London"`}; !slices.Equal(completed, want) {
		t.Errorf("history records results %v, want %v", completed, want)
	}
	if last := res.History[len(res.History)-2]; last.Type != history.ExecutionCompleted || last.Result != `["Hi Tokyo","Hi Seattle","Hi London"]` {
		t.Errorf("the history ends with %s %s", last.Type, last.Result)
	}
}
