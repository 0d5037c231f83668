package durableapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// runningHub holds the instance "busy" (Running) whose history has a
// finished activity, a finished sub-orchestration, a timer that has not
// fired and an activity still under way.
type runningHub struct{ emptyHub }

func (runningHub) LoadHistory(_ context.Context, id string) (backend.History, error) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(tp history.EventType, ms int, f func(*history.Event)) history.Event {
		e := history.NewEvent(tp, at(ms))
		if f != nil {
			f(&e)
		}
		return e
	}
	return backend.History{InstanceID: id, Events: []history.Event{
		ev(history.OrchestratorStarted, 0, nil),
		ev(history.ExecutionStarted, 0, func(e *history.Event) { e.Name = "O"; e.Input = `"in"` }),
		ev(history.TaskScheduled, 1, func(e *history.Event) { e.EventID = 0; e.Name = "Hello"; e.Input = `"Tokyo"` }),
		ev(history.OrchestratorCompleted, 1, nil),
		ev(history.OrchestratorStarted, 5, nil),
		ev(history.TaskCompleted, 5, func(e *history.Event) { e.TaskScheduledID = 0; e.Result = `"Hello Tokyo!"` }),
		ev(history.SubOrchestrationInstanceCreated, 6, func(e *history.Event) { e.EventID = 1; e.Name = "Child"; e.InstanceID = "kid" }),
		ev(history.OrchestratorCompleted, 6, nil),
		ev(history.OrchestratorStarted, 9, nil),
		ev(history.SubOrchestrationInstanceCompleted, 9, func(e *history.Event) { e.TaskScheduledID = 1; e.Result = `1` }),
		ev(history.TimerCreated, 10, func(e *history.Event) { e.EventID = 2; e.FireAt = at(60_000) }),
		ev(history.TaskScheduled, 10, func(e *history.Event) { e.EventID = 3; e.Name = "Slow"; e.Input = `{"n":2}` }),
		ev(history.OrchestratorCompleted, 10, nil),
	}}, nil
}

// TestShowScheduled asks the status route for the busy instance's history
// with and without showScheduled: by default the scheduling events are
// folded into their completions (so the running activity appears nowhere),
// as Durable Functions does; with showScheduled=true they stay, in history
// order, in Durable Functions' shape, and the timer's TimerCreated carries
// its EventId.
func TestShowScheduled(t *testing.T) {
	api := New(client.New(runningHub{}, catalog{}, nil), Options{BasePath: "/api/durabletask", HubName: "H"})
	started := `{"EventType":"ExecutionStarted","FunctionName":"O","Input":"in","Timestamp":"2026-01-01T00:00:00Z"}`
	hello := `{"EventType":"TaskCompleted","FunctionName":"Hello","Input":"Tokyo","Result":"Hello Tokyo!","ScheduledTime":"2026-01-01T00:00:00.001Z","TaskScheduledId":0,"Timestamp":"2026-01-01T00:00:00.005Z"}`
	child := `{"EventType":"SubOrchestrationInstanceCompleted","FunctionName":"Child","Input":null,"InstanceId":"kid","Result":1,"ScheduledTime":"2026-01-01T00:00:00.006Z","TaskScheduledId":1,"Timestamp":"2026-01-01T00:00:00.009Z"}`
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"default", "showHistory=true&showHistoryOutput=true", []string{
			started, hello, child,
			`{"EventType":"TimerCreated","FireAt":"2026-01-01T00:01:00Z","Timestamp":"2026-01-01T00:00:00.01Z"}`,
		}},
		{"showScheduled=false", "showHistory=true&showHistoryOutput=true&showScheduled=false", []string{
			started, hello, child,
			`{"EventType":"TimerCreated","FireAt":"2026-01-01T00:01:00Z","Timestamp":"2026-01-01T00:00:00.01Z"}`,
		}},
		{"showScheduled", "showHistory=true&showHistoryOutput=true&showScheduled=true", []string{
			started,
			`{"EventId":0,"EventType":"TaskScheduled","Input":"Tokyo","Name":"Hello","Timestamp":"2026-01-01T00:00:00.001Z"}`,
			hello,
			`{"EventId":1,"EventType":"SubOrchestrationInstanceCreated","Input":null,"InstanceId":"kid","Name":"Child","Timestamp":"2026-01-01T00:00:00.006Z"}`,
			child,
			`{"EventId":2,"EventType":"TimerCreated","FireAt":"2026-01-01T00:01:00Z","Timestamp":"2026-01-01T00:00:00.01Z"}`,
			`{"EventId":3,"EventType":"TaskScheduled","Input":{"n":2},"Name":"Slow","Timestamp":"2026-01-01T00:00:00.01Z"}`,
		}},
		{"showScheduled without inputs", "showHistory=true&showScheduled=true&showInput=false", []string{
			`{"EventType":"ExecutionStarted","FunctionName":"O","Timestamp":"2026-01-01T00:00:00Z"}`,
			`{"EventId":0,"EventType":"TaskScheduled","Name":"Hello","Timestamp":"2026-01-01T00:00:00.001Z"}`,
			`{"EventType":"TaskCompleted","FunctionName":"Hello","ScheduledTime":"2026-01-01T00:00:00.001Z","TaskScheduledId":0,"Timestamp":"2026-01-01T00:00:00.005Z"}`,
			`{"EventId":1,"EventType":"SubOrchestrationInstanceCreated","InstanceId":"kid","Name":"Child","Timestamp":"2026-01-01T00:00:00.006Z"}`,
			`{"EventType":"SubOrchestrationInstanceCompleted","FunctionName":"Child","InstanceId":"kid","ScheduledTime":"2026-01-01T00:00:00.006Z","TaskScheduledId":1,"Timestamp":"2026-01-01T00:00:00.009Z"}`,
			`{"EventId":2,"EventType":"TimerCreated","FireAt":"2026-01-01T00:01:00Z","Timestamp":"2026-01-01T00:00:00.01Z"}`,
			`{"EventId":3,"EventType":"TaskScheduled","Name":"Slow","Timestamp":"2026-01-01T00:00:00.01Z"}`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := api.Handle(context.Background(), pathRequest(t, http.MethodGet, "/api/durabletask/instances/busy?"+tc.query, false))
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
			}
			var p StatusPayload
			if err := json.Unmarshal(resp.Body, &p); err != nil {
				t.Fatalf("%v: %s", err, resp.Body)
			}
			var got []string
			for _, e := range p.HistoryEvents {
				got = append(got, string(e))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
