package durableapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// idHub records the instance IDs the API reads and creates. "run%41" is
// running; "lost" cannot be written, and after a failed write not read
// either.
type idHub struct {
	emptyHub
	mu      sync.Mutex
	read    []string
	created []string
	failed  bool
}

func (h *idHub) GetInstance(ctx context.Context, id string, withInput bool) (backend.InstanceState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.read = append(h.read, id)
	switch {
	case id == "run%41":
		return backend.InstanceState{InstanceID: id, Name: "O", Status: history.StatusRunning}, nil
	case id == "lost" && h.failed:
		return backend.InstanceState{}, errors.New("connection reset by peer")
	}
	return h.emptyHub.GetInstance(ctx, id, withInput)
}

func (h *idHub) CreateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st.InstanceID == "lost" {
		h.failed = true
		return "", errors.New("context deadline exceeded")
	}
	h.created = append(h.created, st.InstanceID)
	return "e", nil
}

// pathRequest builds a request as the handler hands it to the API.
// Standalone, target is the request target as sent: the request carries it
// escaped, with the router's decoded catch-all. Under the host's invocation
// protocol (viaHost), target is the path as the host holds it, decoded once
// already: it is the route parameter, sent on as it is.
func pathRequest(t *testing.T, method, target string, viaHost bool) *handler.Request {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	u := &url.URL{Scheme: "http", Host: "localhost:7071", Path: path, RawQuery: query}
	req := &handler.Request{Method: method, URL: u, Query: q, Header: http.Header{}, Params: map[string]string{}}
	rest := strings.TrimPrefix(path, "/api/durabletask/")
	if viaHost {
		req.Params["path"] = rest
		return req
	}
	req.EscapedPath = path
	if p, err := url.PathUnescape(rest); err == nil {
		req.Params["path"] = p
		u.Path, u.RawPath = "/api/durabletask/"+p, path
	}
	return req
}

func TestPathSegmentsDecodedOnce(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		viaHost bool
		status  int
		code    string // error code, or "" for success
		mention string // in the error message, or the ID of a start
		created string // the instance ID written, if any
		links   string // prefix of statusQueryGetUri
	}{
		{name: "escaped percent starts pct%41, not pctA", method: "POST", target: "/api/durabletask/orchestrators/O/pct%2541",
			status: 202, mention: "pct%41", created: "pct%41", links: "http://localhost:7071/api/durabletask/instances/pct%2541?"},
		{name: "under the host: its decoded value as it is", method: "POST", target: "/api/durabletask/orchestrators/O/pct%41", viaHost: true,
			status: 202, mention: "pct%41", created: "pct%41", links: "http://localhost:7071/api/durabletask/instances/pct%2541?"},
		{name: "escaped slash stays in the ID and is refused", method: "POST", target: "/api/durabletask/orchestrators/O/a%2Fb",
			status: 400, code: CodeBadInstanceID, mention: `'/'`},
		{name: "escaped slash in a status query", method: "GET", target: "/api/durabletask/instances/a%2Fb",
			status: 400, code: CodeBadInstanceID, mention: `'/'`},
		{name: "escaped slash does not split an operation", method: "POST", target: "/api/durabletask/instances/a%2Fterminate",
			status: 405, code: "MethodNotAllowed", mention: "GET or DELETE"},
		{name: "under the host an escaped slash arrives undecoded: taken as text", method: "POST", target: "/api/durabletask/orchestrators/O/a%2Fb", viaHost: true,
			status: 202, mention: "a%2Fb", created: "a%2Fb", links: "http://localhost:7071/api/durabletask/instances/a%252Fb?"},
		{name: "not UTF-8: 400 naming it", method: "GET", target: "/api/durabletask/instances/%FF",
			status: 400, code: CodeBadInstanceID, mention: "not valid UTF-8"},
		{name: "not UTF-8 in a start", method: "POST", target: "/api/durabletask/orchestrators/O/x%C3%28",
			status: 400, code: CodeBadInstanceID, mention: "byte 0xc3 at position 1"},
		{name: "not UTF-8 in an event name", method: "POST", target: "/api/durabletask/instances/run%2541/raiseEvent/%FE",
			status: 400, code: CodeBadInput, mention: "event name"},
		{name: "not UTF-8 in an orchestrator name", method: "POST", target: "/api/durabletask/orchestrators/%FE",
			status: 400, code: CodeBadInput, mention: "orchestrator name"},
		{name: "not UTF-8 in a query value", method: "POST", target: "/api/durabletask/instances/run%2541/terminate?reason=%FF",
			status: 400, code: CodeBadRequest, mention: "reason"},
		{name: "bad escape", method: "GET", target: "/api/durabletask/instances/%zz",
			status: 400, code: CodeBadRequest, mention: "percent-encoded"},
		{name: "lost row write with storage gone: 503, outcome unknown", method: "POST", target: "/api/durabletask/orchestrators/O/lost",
			status: 503, code: CodeOutcomeUnknown, mention: `instance "lost"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hub := &idHub{}
			api := New(client.New(hub, catalog{}, nil), Options{BasePath: "/api/durabletask", HubName: "H"})
			resp := api.Handle(context.Background(), pathRequest(t, tc.method, tc.target, tc.viaHost))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, resp.Body)
			}
			if tc.code != "" {
				var e handler.ErrorBody
				if err := json.Unmarshal(resp.Body, &e); err != nil || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.mention) {
					t.Fatalf("error %s: want code %s mentioning %q", resp.Body, tc.code, tc.mention)
				}
			}
			if tc.created != "" {
				var links ManagementURLs
				if err := json.Unmarshal(resp.Body, &links); err != nil {
					t.Fatal(err)
				}
				if links.ID != tc.mention || !strings.HasPrefix(links.StatusQueryGetURI, tc.links) {
					t.Errorf("links %+v: want ID %q and status URL under %s", links, tc.mention, tc.links)
				}
			}
			if got := strings.Join(hub.created, ","); got != tc.created {
				t.Errorf("created %q, want %q", got, tc.created)
			}
		})
	}
}

// The links of a check-status answer decode back to the ID through either
// mode, and the 202 Location of a running instance is built from the ID.
func TestLinksRoundTrip(t *testing.T) {
	for _, id := range []string{"pct%41", "a b", "a%2Fb", "é+ü", "x;y,z", "100%"} {
		hub := &idHub{}
		api := New(client.New(hub, catalog{}, nil), Options{BasePath: "/api/durabletask", HubName: "H"})
		u, _ := url.Parse("http://localhost:7071/api/orchestrators/O?code=k")
		links := api.ManagementURLsFor(&handler.Request{URL: u, Query: u.Query()}, id)
		status, err := url.Parse(links.StatusQueryGetURI)
		if err != nil {
			t.Fatal(err)
		}
		// Standalone: the escaped path as sent.
		api.Handle(context.Background(), pathRequest(t, "GET", status.RequestURI(), false))
		// Under the host: Kestrel decodes the path once, keeping %2F.
		decoded, err := url.PathUnescape(strings.ReplaceAll(status.EscapedPath(), "%2F", "%252F"))
		if err != nil {
			t.Fatal(err)
		}
		api.Handle(context.Background(), pathRequest(t, "GET", decoded+"?"+status.RawQuery, true))
		if got := strings.Join(hub.read, "|"); got != id+"|"+id {
			t.Errorf("%q: the status link reads %q", id, got)
		}
	}

	hub := &idHub{}
	api := New(client.New(hub, catalog{}, nil), Options{BasePath: "/api/durabletask", HubName: "H"})
	resp := api.Handle(context.Background(), pathRequest(t, "GET", "/api/durabletask/instances/run%41?code=k", true))
	if want := "http://localhost:7071/api/durabletask/instances/run%2541?code=k"; resp.StatusCode != 202 || resp.Header.Get("Location") != want {
		t.Fatalf("running status: %d Location %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// Without any known host the links are relative to the server, never
// "http:///".
func TestLinksWithoutHost(t *testing.T) {
	api := New(nil, Options{BasePath: "/api/durabletask", HubName: "H"})
	u, _ := url.Parse("http:///api/orchestrators/O")
	links := api.ManagementURLsFor(&handler.Request{URL: u, Query: u.Query()}, "x")
	if links.StatusQueryGetURI != "/api/durabletask/instances/x?taskHub=H&connection=Storage" {
		t.Fatalf("links %+v", links)
	}
}
