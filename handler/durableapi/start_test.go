package durableapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
)

// startHub records the Instances rows a start writes.
type startHub struct {
	emptyHub
	mu   sync.Mutex
	rows []backend.InstanceState
}

func (h *startHub) CreateInstance(_ context.Context, st backend.InstanceState) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rows = append(h.rows, st)
	return "e", nil
}

func TestHandleStart(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		body   string
		status int
		code   string // error code, or "" for a start
		input  string // the input written
	}{
		{name: "JSON body is the input", params: map[string]string{"functionName": "O"}, body: "{\"city\": \"Tokyo\"}\n",
			status: 202, input: `{"city": "Tokyo"}`},
		{name: "empty body is null", params: map[string]string{"functionName": "O"}, status: 202, input: ""},
		{name: "not JSON", params: map[string]string{"functionName": "O"}, body: "Tokyo",
			status: 400, code: CodeBadInput},
		{name: "unknown orchestrator", params: map[string]string{"functionName": "Nope"},
			status: 404, code: CodeNoOrchestrator},
		{name: "no name in the route", params: map[string]string{}, status: 400, code: CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hub := &startHub{}
			api := New(client.New(hub, catalog{}, nil), Options{BasePath: "/api/durabletask", HubName: "H"})
			u, _ := url.Parse("http://localhost:7071/api/orchestrators/x?code=k")
			req := &handler.Request{Method: http.MethodPost, URL: u, Query: u.Query(), Header: http.Header{},
				Params: tc.params, Body: []byte(tc.body)}
			resp := api.HandleStart(context.Background(), req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, resp.Body)
			}
			if tc.code != "" {
				var e handler.ErrorBody
				if err := json.Unmarshal(resp.Body, &e); err != nil || e.Error.Code != tc.code {
					t.Fatalf("error %s, want code %s", resp.Body, tc.code)
				}
				if len(hub.rows) != 0 {
					t.Fatalf("a refused start wrote %+v", hub.rows)
				}
				return
			}
			if len(hub.rows) != 1 || hub.rows[0].Name != "O" || hub.rows[0].Input != tc.input {
				t.Fatalf("rows %+v, want one of O with input %q", hub.rows, tc.input)
			}
			var links ManagementURLs
			if err := json.Unmarshal(resp.Body, &links); err != nil {
				t.Fatal(err)
			}
			want := "http://localhost:7071/api/durabletask/instances/" + hub.rows[0].InstanceID + "?taskHub=H&connection=Storage&code=k"
			if links.ID != hub.rows[0].InstanceID || links.StatusQueryGetURI != want || resp.Header.Get("Location") != want {
				t.Fatalf("links %+v, Location %q: want ID %q and status URL %s", links, resp.Header.Get("Location"), hub.rows[0].InstanceID, want)
			}
			if !strings.Contains(links.SendEventPostURI, "/instances/"+hub.rows[0].InstanceID+"/raiseEvent/") {
				t.Fatalf("sendEventPostUri %q", links.SendEventPostURI)
			}
		})
	}
}
