package durableapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// emptyHub is a backend with one finished instance ("done") and one running
// one ("busy"), that accepts every write. The fuzz test drives the router
// and parsers, not storage.
type emptyHub struct{ backend.Backend }

func (emptyHub) HubName() string                     { return "Fuzz" }
func (emptyHub) PartitionCount() int                 { return 4 }
func (emptyHub) PartitionOf(id string) int           { return len(id) % 4 }
func (emptyHub) CreateTaskHub(context.Context) error { return nil }
func (emptyHub) SendControl(context.Context, backend.Message, time.Duration) (backend.Receipt, error) {
	return backend.Receipt{MessageID: "m", PopReceipt: "p"}, nil
}
func (emptyHub) DeleteMessage(context.Context, backend.Receipt) error { return nil }
func (emptyHub) SetVisibility(_ context.Context, r backend.Receipt, _ time.Duration) (backend.Receipt, error) {
	return r, nil
}
func (emptyHub) LoadHistory(_ context.Context, id string) (backend.History, error) {
	return backend.History{InstanceID: id}, nil
}
func (emptyHub) GetInstance(_ context.Context, id string, _ bool) (backend.InstanceState, error) {
	switch id {
	case "done":
		return backend.InstanceState{InstanceID: id, Name: "O", Status: history.StatusCompleted, Output: `"x"`}, nil
	case "busy":
		return backend.InstanceState{InstanceID: id, Name: "O", Status: history.StatusRunning}, nil
	case "bad":
		return backend.InstanceState{InstanceID: id, Name: "O", Status: history.StatusFailed, Output: "E: m"}, nil
	}
	return backend.InstanceState{}, backend.ErrNotFound
}
func (emptyHub) CreateInstance(context.Context, backend.InstanceState) (string, error) {
	return "e", nil
}
func (emptyHub) UpdateInstance(context.Context, backend.InstanceState) (string, error) {
	return "e", nil
}
func (emptyHub) QueryInstances(_ context.Context, q backend.InstanceQuery) ([]backend.InstanceState, string, error) {
	if q.Continuation != "" && q.Continuation != "next" {
		return nil, "", &continuationError{q.Continuation}
	}
	return nil, "", nil
}
func (emptyHub) PurgeInstance(context.Context, string) error { return nil }

type continuationError struct{ token string }

func (e *continuationError) Error() string { return "bad continuation token " + e.token }

type catalog struct{}

func (catalog) OrchestratorNames() []string { return []string{"O"} }

func FuzzHandle(f *testing.F) {
	seeds := []struct{ method, path, query, body, ctype string }{
		{"POST", "orchestrators/O", "", `{"a":1}`, "application/json"},
		{"POST", "orchestrators/O/my id", "timeout=1&pollingInterval=0.5", "", ""},
		{"POST", "orchestrators/Nope", "", "", ""},
		{"GET", "instances/done", "showHistory=true&showInput=false", "", ""},
		{"GET", "instances/bad", "returnInternalServerErrorOnFailure=true", "", ""},
		{"GET", "instances", "runtimeStatus=Running,Completed&top=5&createdTimeFrom=2026-01-01", "", ""},
		{"DELETE", "instances", "createdTimeFrom=2026-01-01T00:00:00Z&runtimeStatus=Failed", "", ""},
		{"DELETE", "instances/done", "", "", ""},
		{"POST", "instances/busy/raiseEvent/Go", "", `true`, "application/json"},
		{"POST", "instances/busy/terminate", "reason=%00%ff", "", ""},
		{"POST", "instances/done/restart", "restartWithNewInstanceId=false", "", ""},
		{"POST", "instances/bad/rewind", "", "", ""},
		{"PATCH", "instances/%zz/../../x", "top=-1", "\x00", "text/plain"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.body, s.ctype)
	}
	api := New(client.New(emptyHub{}, catalog{}, nil), Options{BasePath: "/api/durabletask", HubName: "Fuzz"})
	f.Fuzz(func(t *testing.T, method, path, query, body, ctype string) {
		u := &url.URL{Scheme: "http", Host: "localhost:7071", Path: "/api/durabletask/" + path, RawQuery: query}
		q, _ := url.ParseQuery(query)
		h := http.Header{}
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		if strings.HasPrefix(query, "token") {
			h.Set("x-ms-continuation-token", query)
		}
		req := &handler.Request{Method: method, URL: u, Query: q, Header: h, Params: map[string]string{"path": path}, Body: []byte(body)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp := api.Handle(ctx, req)
		if resp == nil {
			t.Fatal("nil response")
		}
		if resp.StatusCode >= 500 && !(resp.StatusCode == http.StatusInternalServerError && isFailedStatus(resp.Body)) {
			t.Fatalf("%s %s?%s: %d %s", method, path, query, resp.StatusCode, resp.Body)
		}
		if resp.StatusCode >= 400 {
			var e handler.ErrorBody
			if err := json.Unmarshal(resp.Body, &e); err != nil && !isFailedStatus(resp.Body) {
				t.Fatalf("%d without a JSON error: %q", resp.StatusCode, resp.Body)
			}
		}
	})
}

// isFailedStatus recognises the deliberate 500 of a failed instance's
// status (returnInternalServerErrorOnFailure or the wait form).
func isFailedStatus(b []byte) bool {
	var st StatusPayload
	return json.Unmarshal(b, &st) == nil && st.RuntimeStatus == "Failed"
}
