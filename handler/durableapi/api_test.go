package durableapi

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestCheckStatusResponse(t *testing.T) {
	api := New(nil, Options{BasePath: "/api/durabletask", HubName: "MyHub"})
	u, _ := url.Parse("https://example.azurewebsites.net/api/orchestrators/Orchestrator?code=k%2B1")
	req := &handler.Request{Method: "POST", URL: u, Query: u.Query()}
	resp := api.CheckStatusResponse(req, "abc 1")
	if resp.StatusCode != 202 || resp.Header.Get("Retry-After") != "10" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	var links map[string]string
	if err := json.Unmarshal(resp.Body, &links); err != nil {
		t.Fatal(err)
	}
	inst := "https://example.azurewebsites.net/api/durabletask/instances/abc%201"
	q := "taskHub=MyHub&connection=Storage&code=k%2B1"
	want := map[string]string{
		"id":                    "abc 1",
		"statusQueryGetUri":     inst + "?" + q,
		"sendEventPostUri":      inst + "/raiseEvent/{eventName}?" + q,
		"terminatePostUri":      inst + "/terminate?reason={text}&" + q,
		"rewindPostUri":         inst + "/rewind?reason={text}&" + q,
		"purgeHistoryDeleteUri": inst + "?" + q,
		"restartPostUri":        inst + "/restart?" + q,
		"suspendPostUri":        inst + "/suspend?reason={text}&" + q,
		"resumePostUri":         inst + "/resume?reason={text}&" + q,
	}
	for k, v := range want {
		if links[k] != v {
			t.Errorf("%s = %q, want %q", k, links[k], v)
		}
	}
	if len(links) != len(want) {
		t.Errorf("payload has %d fields, want %d: %v", len(links), len(want), links)
	}
	if resp.Header.Get("Location") != want["statusQueryGetUri"] {
		t.Errorf("Location = %q", resp.Header.Get("Location"))
	}
}

func TestStatusPayload(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	tests := []struct {
		name      string
		st        client.Status
		showInput bool
		want      string
	}{
		{
			name:      "completed with JSON output",
			st:        client.Status{Name: "O", InstanceID: "i", Status: history.StatusCompleted, Input: `{"a":1}`, Output: `["x"]`, CreatedTime: created, LastUpdatedTime: created},
			showInput: true,
			want:      `{"name":"O","instanceId":"i","runtimeStatus":"Completed","input":{"a":1},"customStatus":null,"output":["x"],"createdTime":"2026-01-02T03:04:05Z","lastUpdatedTime":"2026-01-02T03:04:05Z"}`,
		},
		{
			name: "failed output is text, input hidden",
			st:   client.Status{Name: "O", InstanceID: "i", Status: history.StatusFailed, Input: `1`, Output: `TaskFailedError: boom`, CreatedTime: created, LastUpdatedTime: created},
			want: `{"name":"O","instanceId":"i","runtimeStatus":"Failed","input":null,"customStatus":null,"output":"TaskFailedError: boom","createdTime":"2026-01-02T03:04:05Z","lastUpdatedTime":"2026-01-02T03:04:05Z"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(NewStatusPayload(tc.st, tc.showInput))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

func TestHistoryEntriesFoldSchedulingAndFraming(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(tp history.EventType, f func(*history.Event)) history.Event {
		e := history.NewEvent(tp, t0)
		if f != nil {
			f(&e)
		}
		return e
	}
	events := []history.Event{
		ev(history.OrchestratorStarted, nil),
		ev(history.ExecutionStarted, func(e *history.Event) { e.Name = "O"; e.Input = `"in"` }),
		ev(history.TaskScheduled, func(e *history.Event) { e.EventID = 0; e.Name = "Hello"; e.Input = `"Tokyo"` }),
		ev(history.OrchestratorCompleted, nil),
		ev(history.OrchestratorStarted, nil),
		ev(history.TaskCompleted, func(e *history.Event) { e.TaskScheduledID = 0; e.Result = `"Hello Tokyo!"` }),
		ev(history.SubOrchestrationInstanceCreated, func(e *history.Event) { e.EventID = 1; e.Name = "Child"; e.InstanceID = "kid" }),
		ev(history.SubOrchestrationInstanceCompleted, func(e *history.Event) { e.TaskScheduledID = 1; e.Result = `1` }),
		ev(history.ExecutionCompleted, func(e *history.Event) {
			e.EventID = 2
			e.Status = history.StatusCompleted
			e.Result = `["Hello Tokyo!"]`
		}),
		ev(history.OrchestratorCompleted, nil),
	}
	entries, err := HistoryEntries(events, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, string(e))
	}
	want := []string{
		`{"EventType":"ExecutionStarted","FunctionName":"O","Input":"in","Timestamp":"2026-01-01T00:00:00Z"}`,
		`{"EventType":"TaskCompleted","FunctionName":"Hello","Input":"Tokyo","ScheduledTime":"2026-01-01T00:00:00Z","TaskScheduledId":0,"Timestamp":"2026-01-01T00:00:00Z"}`,
		`{"EventType":"SubOrchestrationInstanceCompleted","FunctionName":"Child","Input":null,"InstanceId":"kid","ScheduledTime":"2026-01-01T00:00:00Z","TaskScheduledId":1,"Timestamp":"2026-01-01T00:00:00Z"}`,
		`{"EventType":"ExecutionCompleted","OrchestrationStatus":"Completed","Timestamp":"2026-01-01T00:00:00Z"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBoolParam(t *testing.T) {
	q := url.Values{"a": {"TRUE"}, "b": {"false"}, "c": {"yes"}}
	for _, tc := range []struct {
		name string
		def  bool
		want bool
	}{{"a", false, true}, {"b", true, false}, {"c", true, true}, {"c", false, false}, {"missing", true, true}} {
		if got := boolParam(q, tc.name, tc.def); got != tc.want {
			t.Errorf("%s (default %v) = %v, want %v", tc.name, tc.def, got, tc.want)
		}
	}
}
