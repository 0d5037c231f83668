package apiclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// The fake server answers with responses built by package durableapi
// itself (check-status payloads, status payloads, history entries, error
// bodies), so the client is tested against the server's real wire format.

const basePath = "/api/durabletask"

// reply builds the answer to one request.
type reply func(r *http.Request) *handler.Response

// recorded is a request as the fake server saw it.
type recorded struct {
	method, path string // path escaped, as sent
	query        url.Values
	header       http.Header
	body         string
}

// fakeAPI serves replies in order, one per request, and records the
// requests.
type fakeAPI struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	replies []reply
	reqs    []recorded
}

func newFakeAPI(t *testing.T, replies ...reply) *fakeAPI {
	f := &fakeAPI{t: t, replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, recorded{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.Query(), header: r.Header.Clone(), body: string(body)})
	f.mu.Unlock()
	if n >= len(f.replies) {
		f.t.Errorf("unexpected request %d: %s %s", n+1, r.Method, r.URL)
		w.WriteHeader(599)
		return
	}
	writeResponse(w, f.replies[n](r))
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func writeResponse(w http.ResponseWriter, resp *handler.Response) {
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusOK
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(resp.Body)
}

// asHandlerRequest converts a server request for the durableapi builders.
func asHandlerRequest(r *http.Request) *handler.Request {
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	return &handler.Request{Method: r.Method, URL: &u, Query: r.URL.Query(), Header: r.Header}
}

var api = durableapi.New(nil, durableapi.Options{BasePath: basePath, HubName: "TestHub"})

// checkStatus answers with the real 202 check-status response for id.
func checkStatus(id string) reply {
	return func(r *http.Request) *handler.Response { return api.CheckStatusResponse(asHandlerRequest(r), id) }
}

var (
	created = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	updated = created.Add(90 * time.Second)
)

func state(id string, s history.OrchestrationStatus, input, output string) client.Status {
	return client.Status{Name: "Echo", InstanceID: id, Status: s, Input: input, Output: output, CreatedTime: created.Add(400 * time.Millisecond), LastUpdatedTime: updated}
}

// status answers like GET instances/{id}: 202 with Location and
// Retry-After for unfinished instances, else 200.
func status(st client.Status, events ...history.Event) reply {
	return func(r *http.Request) *handler.Response {
		showInput := r.URL.Query().Get("showInput") != "false"
		p := durableapi.NewStatusPayload(st, showInput)
		if len(events) > 0 {
			var err error
			if p.HistoryEvents, err = durableapi.HistoryEntries(events, showInput, r.URL.Query().Get("showHistoryOutput") == "true"); err != nil {
				panic(err)
			}
		}
		resp := handler.JSON(http.StatusOK, p)
		if !st.Status.IsTerminal() {
			resp.StatusCode = http.StatusAccepted
			resp.Header.Set("Location", r.URL.String())
			resp.Header.Set("Retry-After", "5")
		}
		return resp
	}
}

func apiError(code int, errCode, msg string) reply {
	return func(*http.Request) *handler.Response { return handler.Error(code, errCode, msg) }
}

func raw(code int, body string, header ...string) reply {
	return func(*http.Request) *handler.Response {
		h := http.Header{}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return &handler.Response{StatusCode: code, Header: h, Body: []byte(body)}
	}
}

// want describes an expected request. A nil query means "no parameters";
// a nil body means "do not check".
type want struct {
	method, path string
	query        url.Values
	header       map[string]string
	body         *string
}

func body(s string) *string { return &s }

func checkRequests(t *testing.T, got []recorded, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[i]
		if g.method != w.method || g.path != w.path {
			t.Errorf("request %d: %s %s, want %s %s", i+1, g.method, g.path, w.method, w.path)
		}
		wq := w.query
		if wq == nil {
			wq = url.Values{}
		}
		if g.query.Encode() != wq.Encode() {
			t.Errorf("request %d: query %q, want %q", i+1, g.query.Encode(), wq.Encode())
		}
		for k, v := range w.header {
			if got := g.header.Get(k); got != v {
				t.Errorf("request %d: header %s = %q, want %q", i+1, k, got, v)
			}
		}
		if w.body != nil && g.body != *w.body {
			t.Errorf("request %d: body %q, want %q", i+1, g.body, *w.body)
		}
	}
}

// wantAPIError checks that err is an *APIError with the given status and
// code that matches sentinel.
func wantAPIError(t *testing.T, err error, code int, errCode string, sentinel error) {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want *APIError", err, err)
	}
	if ae.StatusCode != code || ae.Code != errCode {
		t.Fatalf("APIError %d %q, want %d %q (%v)", ae.StatusCode, ae.Code, code, errCode, err)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("errors.Is(%v, %v) = false", err, sentinel)
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestOperations(t *testing.T) {
	type result struct {
		v   any
		err error
	}
	from := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name    string
		base    string // base URL path and query; default basePath
		opts    []Option
		replies []reply
		call    func(ctx context.Context, c *Client) (any, error)
		want    []want
		check   func(t *testing.T, r result)
	}{
		{
			name:    "start with generated ID, key, hub and connection",
			opts:    []Option{WithKey("s3cret"), WithTaskHub("Hub1"), WithConnection("Conn1")},
			replies: []reply{checkStatus("0123456789abcdef0123456789abcdef")},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Start(ctx, "Echo", map[string]any{"a": 1, "s": "<x>"})
			},
			want: []want{{method: "POST", path: basePath + "/orchestrators/Echo",
				query:  url.Values{"taskHub": {"Hub1"}, "connection": {"Conn1"}},
				header: map[string]string{"x-functions-key": "s3cret", "Content-Type": "application/json", "Accept": "application/json"},
				body:   body(`{"a":1,"s":"\u003cx\u003e"}`)}},
			check: func(t *testing.T, r result) {
				links := r.v.(*ManagementURLs)
				if r.err != nil || links.ID != "0123456789abcdef0123456789abcdef" {
					t.Fatalf("Start = %+v, %v", links, r.err)
				}
				if !strings.HasSuffix(links.StatusQueryGetURI, basePath+"/instances/0123456789abcdef0123456789abcdef?taskHub=TestHub&connection=Storage") ||
					!strings.Contains(links.TerminatePostURI, "/terminate?reason={text}&") || links.SendEventPostURI == "" ||
					links.PurgeHistoryDeleteURI == "" || links.RestartPostURI == "" || links.SuspendPostURI == "" ||
					links.ResumePostURI == "" || links.RewindPostURI == "" {
					t.Fatalf("links %+v", links)
				}
			},
		},
		{
			name:    "start with explicit ID that needs escaping, no input, code from base URL",
			base:    basePath + "/?code=k%2B1",
			replies: []reply{checkStatus("abc 1?#")},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Start(ctx, "Waiter", nil, WithInstanceID("abc 1?#"))
			},
			want: []want{{method: "POST", path: basePath + "/orchestrators/Waiter/abc%201%3F%23",
				query: url.Values{"code": {"k+1"}}, body: body("")}},
			check: func(t *testing.T, r result) {
				if r.err != nil || r.v.(*ManagementURLs).ID != "abc 1?#" {
					t.Fatalf("Start = %+v, %v", r.v, r.err)
				}
			},
		},
		{
			name:    "start of a running ID is a conflict",
			replies: []reply{apiError(409, durableapi.CodeConflict, "instance x is still running")},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Start(ctx, "Waiter", "in", WithInstanceID("x"))
			},
			want: []want{{method: "POST", path: basePath + "/orchestrators/Waiter/x", body: body(`"in"`)}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 409, durableapi.CodeConflict, ErrConflict)
				if !strings.Contains(r.err.Error(), "instance x is still running") || !strings.Contains(r.err.Error(), "POST http://") {
					t.Fatalf("message %q", r.err)
				}
			},
		},
		{
			name:    "start of an unknown orchestrator is not found",
			replies: []reply{apiError(404, durableapi.CodeNoOrchestrator, `no orchestrator "Nope"`)},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Start(ctx, "Nope", nil) },
			want:    []want{{method: "POST", path: basePath + "/orchestrators/Nope"}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 404, durableapi.CodeNoOrchestrator, ErrNotFound)
			},
		},
		{
			name: "start with an input that is not JSON sends nothing",
			call: func(ctx context.Context, c *Client) (any, error) { return c.Start(ctx, "Echo", make(chan int)) },
			check: func(t *testing.T, r result) {
				if r.err == nil || !strings.Contains(r.err.Error(), "encode input") {
					t.Fatalf("err = %v", r.err)
				}
			},
		},
		{
			name:    "start answer without id",
			replies: []reply{raw(202, `{}`, "Content-Type", "application/json")},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Start(ctx, "Echo", 1) },
			want:    []want{{method: "POST", path: basePath + "/orchestrators/Echo"}},
			check: func(t *testing.T, r result) {
				if r.err == nil || !strings.Contains(r.err.Error(), "no instance id") {
					t.Fatalf("err = %v", r.err)
				}
			},
		},
		{
			name: "status with history, history output and without input",
			replies: []reply{status(state("i-1", history.StatusCompleted, `{"in":1}`, `["out"]`),
				history.Event{Type: history.ExecutionStarted, EventID: -1, Name: "Echo", Input: `{"in":1}`, Timestamp: created},
				history.Event{Type: history.TaskScheduled, EventID: 0, Name: "Hello", Input: `"Tokyo"`, Timestamp: created.Add(time.Second)},
				history.Event{Type: history.TaskCompleted, EventID: -1, TaskScheduledID: 0, Result: `"Hello Tokyo!"`, Timestamp: created.Add(2 * time.Second)},
				history.Event{Type: history.ExecutionSuspended, EventID: -1, Reason: "pause", Timestamp: created.Add(3 * time.Second)},
				history.Event{Type: history.ExecutionCompleted, EventID: -1, Status: history.StatusCompleted, Result: `["out"]`, Timestamp: updated},
			)},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Status(ctx, "i-1", ShowHistoryOutput(), ShowInput(false))
			},
			want: []want{{method: "GET", path: basePath + "/instances/i-1",
				query: url.Values{"showHistory": {"true"}, "showHistoryOutput": {"true"}, "showInput": {"false"}}}},
			check: func(t *testing.T, r result) {
				st := r.v.(*Status)
				if r.err != nil {
					t.Fatal(r.err)
				}
				if st.Name != "Echo" || st.InstanceID != "i-1" || st.RuntimeStatus != StatusCompleted ||
					string(st.Input) != "null" || string(st.Output) != `["out"]` || string(st.CustomStatus) != "null" ||
					!st.CreatedTime.Equal(created) || !st.LastUpdatedTime.Equal(updated) {
					t.Fatalf("status %+v", st)
				}
				var out []string
				if err := st.DecodeOutput(&out); err != nil || len(out) != 1 || out[0] != "out" {
					t.Fatalf("DecodeOutput = %v, %v", out, err)
				}
				var types []string
				for _, h := range st.History {
					types = append(types, h.EventType)
				}
				if strings.Join(types, ",") != "ExecutionStarted,TaskCompleted,ExecutionSuspended,ExecutionCompleted" {
					t.Fatalf("history types %v", types)
				}
				if h := st.History[1]; h.FunctionName != "Hello" || string(h.Result) != `"Hello Tokyo!"` || h.Input != nil ||
					!h.ScheduledTime.Equal(created.Add(time.Second)) || !h.Timestamp.Equal(created.Add(2*time.Second)) {
					t.Fatalf("TaskCompleted entry %+v", h)
				}
				if h := st.History[2]; h.Reason != "pause" {
					t.Fatalf("ExecutionSuspended entry %+v", h)
				}
				if h := st.History[3]; h.OrchestrationStatus != "Completed" || !strings.Contains(string(h.Raw), `"EventType":"ExecutionCompleted"`) {
					t.Fatalf("ExecutionCompleted entry %+v", h)
				}
			},
		},
		{
			name:    "status of a running instance (202)",
			replies: []reply{status(state("r", history.StatusRunning, `"x"`, ""))},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx, "r") },
			want:    []want{{method: "GET", path: basePath + "/instances/r"}},
			check: func(t *testing.T, r result) {
				st := r.v.(*Status)
				var in string
				if r.err != nil || st.RuntimeStatus != StatusRunning || st.RuntimeStatus.IsTerminal() || string(st.Output) != "null" ||
					st.DecodeInput(&in) != nil || in != "x" || st.History != nil {
					t.Fatalf("Status = %+v, %v", st, r.err)
				}
			},
		},
		{
			name:    "status of an unknown instance",
			replies: []reply{apiError(404, durableapi.CodeNotFound, "instance nope not found")},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx, "nope") },
			want:    []want{{method: "GET", path: basePath + "/instances/nope"}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 404, durableapi.CodeNotFound, ErrNotFound)
			},
		},
		{
			name:    "status without the key",
			replies: []reply{apiError(401, handler.CodeUnauthorized, "missing or wrong function key")},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx, "x") },
			want:    []want{{method: "GET", path: basePath + "/instances/x"}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 401, handler.CodeUnauthorized, ErrUnauthorized)
			},
		},
		{
			name:    "status body that is not a status",
			replies: []reply{raw(200, `<html>proxy</html>`)},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx, "x") },
			want:    []want{{method: "GET", path: basePath + "/instances/x"}},
			check: func(t *testing.T, r result) {
				var ae *APIError
				if r.err == nil || errors.As(r.err, &ae) || !strings.Contains(r.err.Error(), "not the expected JSON") {
					t.Fatalf("err = %v", r.err)
				}
			},
		},
		{
			name:    "gateway error with a text body",
			replies: []reply{raw(502, "  bad gateway from proxy\n")},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx, "x") },
			want:    []want{{method: "GET", path: basePath + "/instances/x"}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 502, "", nil)
				var ae *APIError
				errors.As(r.err, &ae)
				if ae.Message != "bad gateway from proxy" {
					t.Fatalf("message %q", ae.Message)
				}
				for _, s := range []error{ErrBadRequest, ErrUnauthorized, ErrNotFound, ErrConflict, ErrGone, ErrPreconditionFailed} {
					if errors.Is(r.err, s) {
						t.Fatalf("a 502 matches %v", s)
					}
				}
			},
		},
		{
			name:    "raise event",
			replies: []reply{raw(202, "")},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.RaiseEvent(ctx, "i 1", "Go", map[string]bool{"ok": true})
			},
			want: []want{{method: "POST", path: basePath + "/instances/i%201/raiseEvent/Go",
				header: map[string]string{"Content-Type": "application/json"}, body: body(`{"ok":true}`)}},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
			},
		},
		{
			name:    "raise event without data sends null",
			replies: []reply{raw(202, "")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.RaiseEvent(ctx, "i", "Go", nil) },
			want:    []want{{method: "POST", path: basePath + "/instances/i/raiseEvent/Go", body: body("null")}},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
			},
		},
		{
			name:    "raise event to a finished instance",
			replies: []reply{apiError(410, durableapi.CodeGone, "instance i has finished (Completed)")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.RaiseEvent(ctx, "i", "Go", 1) },
			want:    []want{{method: "POST", path: basePath + "/instances/i/raiseEvent/Go", body: body("1")}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 410, durableapi.CodeGone, ErrGone)
			},
		},
		{
			name:    "raise event with bad data",
			replies: []reply{apiError(400, durableapi.CodeBadInput, "the event data must be JSON")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.RaiseEvent(ctx, "i", "Go", 1) },
			want:    []want{{method: "POST", path: basePath + "/instances/i/raiseEvent/Go"}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 400, durableapi.CodeBadInput, ErrBadRequest)
			},
		},
		{
			name:    "terminate with a reason that needs escaping",
			replies: []reply{raw(202, "")},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.Terminate(ctx, "i", "because reasons & more #1")
			},
			want: []want{{method: "POST", path: basePath + "/instances/i/terminate",
				query: url.Values{"reason": {"because reasons & more #1"}}, body: body("")}},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
			},
		},
		{
			name:    "suspend",
			replies: []reply{raw(202, "")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Suspend(ctx, "i", "pause") },
			want:    []want{{method: "POST", path: basePath + "/instances/i/suspend", query: url.Values{"reason": {"pause"}}}},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
			},
		},
		{
			name:    "resume without a reason",
			replies: []reply{raw(202, "")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Resume(ctx, "i", "") },
			want:    []want{{method: "POST", path: basePath + "/instances/i/resume"}},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
			},
		},
		{
			name:    "resume of a finished instance",
			replies: []reply{apiError(410, durableapi.CodeGone, "finished")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Resume(ctx, "i", "go on") },
			want:    []want{{method: "POST", path: basePath + "/instances/i/resume", query: url.Values{"reason": {"go on"}}}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 410, durableapi.CodeGone, ErrGone)
			},
		},
		{
			name:    "rewind of an instance that has not failed",
			replies: []reply{apiError(412, durableapi.CodeNotFailed, "instance i has not failed")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Rewind(ctx, "i", "retry") },
			want:    []want{{method: "POST", path: basePath + "/instances/i/rewind", query: url.Values{"reason": {"retry"}}}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 412, durableapi.CodeNotFailed, ErrPreconditionFailed)
			},
		},
		{
			name:    "terminate of an unknown instance",
			replies: []reply{apiError(404, durableapi.CodeNotFound, "no instance")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Terminate(ctx, "i", "x") },
			want:    []want{{method: "POST", path: basePath + "/instances/i/terminate", query: url.Values{"reason": {"x"}}}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 404, durableapi.CodeNotFound, ErrNotFound)
			},
		},
		{
			name:    "restart under a new ID",
			replies: []reply{checkStatus("fedcba9876543210fedcba9876543210")},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Restart(ctx, "old", true) },
			want:    []want{{method: "POST", path: basePath + "/instances/old/restart", query: url.Values{"restartWithNewInstanceId": {"true"}}}},
			check: func(t *testing.T, r result) {
				if r.err != nil || r.v.(string) != "fedcba9876543210fedcba9876543210" {
					t.Fatalf("Restart = %v, %v", r.v, r.err)
				}
			},
		},
		{
			name:    "restart under the same ID",
			replies: []reply{checkStatus("old")},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Restart(ctx, "old", false) },
			want:    []want{{method: "POST", path: basePath + "/instances/old/restart", query: url.Values{"restartWithNewInstanceId": {"false"}}}},
			check: func(t *testing.T, r result) {
				if r.err != nil || r.v.(string) != "old" {
					t.Fatalf("Restart = %v, %v", r.v, r.err)
				}
			},
		},
		{
			name:    "purge one",
			replies: []reply{raw(200, `{"instancesDeleted":1}`)},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Purge(ctx, "i") },
			want:    []want{{method: "DELETE", path: basePath + "/instances/i"}},
			check: func(t *testing.T, r result) {
				if r.err != nil {
					t.Fatal(r.err)
				}
			},
		},
		{
			name:    "purge of an unknown instance",
			replies: []reply{apiError(404, durableapi.CodeNotFound, "no instance i")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Purge(ctx, "i") },
			want:    []want{{method: "DELETE", path: basePath + "/instances/i"}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 404, durableapi.CodeNotFound, ErrNotFound)
			},
		},
		{
			name:    "purge of a running instance",
			replies: []reply{apiError(409, durableapi.CodeConflict, "instance i is running")},
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Purge(ctx, "i") },
			want:    []want{{method: "DELETE", path: basePath + "/instances/i"}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 409, durableapi.CodeConflict, ErrConflict)
			},
		},
		{
			name:    "purge by filter",
			replies: []reply{raw(200, `{"instancesDeleted":3}`)},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.PurgeBy(ctx, Filter{CreatedFrom: from, CreatedTo: from.Add(time.Hour), InstanceIDPrefix: "job-",
					RuntimeStatus: []RuntimeStatus{StatusCompleted, StatusFailed}, PageSize: 7, HideInput: true})
			},
			want: []want{{method: "DELETE", path: basePath + "/instances", query: url.Values{
				"createdTimeFrom": {"2026-01-02T02:04:05.6Z"}, "createdTimeTo": {"2026-01-02T03:04:05.6Z"},
				"runtimeStatus": {"Completed,Failed"}, "instanceIdPrefix": {"job-"}}}},
			check: func(t *testing.T, r result) {
				if r.err != nil || r.v.(int) != 3 {
					t.Fatalf("PurgeBy = %v, %v", r.v, r.err)
				}
			},
		},
		{
			name:    "purge by filter that matches nothing",
			replies: []reply{apiError(404, durableapi.CodeNotFound, "no finished instance matches the filter")},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.PurgeBy(ctx, Filter{CreatedFrom: from}) },
			want:    []want{{method: "DELETE", path: basePath + "/instances", query: url.Values{"createdTimeFrom": {"2026-01-02T02:04:05.6Z"}}}},
			check: func(t *testing.T, r result) {
				if r.err != nil || r.v.(int) != 0 {
					t.Fatalf("PurgeBy = %v, %v", r.v, r.err)
				}
			},
		},
		{
			name:    "purge by filter at a wrong base URL",
			base:    "/api/elsewhere",
			replies: []reply{apiError(404, durableapi.CodeUnknownRoute, "no function route")},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.PurgeBy(ctx, Filter{CreatedFrom: from}) },
			want:    []want{{method: "DELETE", path: "/api/elsewhere/instances", query: url.Values{"createdTimeFrom": {"2026-01-02T02:04:05.6Z"}}}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 404, durableapi.CodeUnknownRoute, ErrNotFound)
			},
		},
		{
			name: "purge by filter without createdTimeFrom sends nothing",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.PurgeBy(ctx, Filter{RuntimeStatus: []RuntimeStatus{StatusCompleted}})
			},
			check: func(t *testing.T, r result) {
				if !errors.Is(r.err, ErrBadRequest) || !strings.Contains(r.err.Error(), "CreatedFrom") {
					t.Fatalf("err = %v", r.err)
				}
			},
		},
		{
			name:    "list page with every filter and a continuation token",
			replies: []reply{raw(200, `[]`, "x-ms-continuation-token", "next-2")},
			call: func(ctx context.Context, c *Client) (any, error) {
				page, next, err := c.ListPage(ctx, Filter{CreatedFrom: from, RuntimeStatus: []RuntimeStatus{StatusRunning, StatusPending},
					InstanceIDPrefix: "p", PageSize: 2, HideInput: true}, "tok-1")
				return []any{page, next}, err
			},
			want: []want{{method: "GET", path: basePath + "/instances", query: url.Values{
				"createdTimeFrom": {"2026-01-02T02:04:05.6Z"}, "runtimeStatus": {"Running,Pending"}, "instanceIdPrefix": {"p"},
				"top": {"2"}, "showInput": {"false"}}, header: map[string]string{"x-ms-continuation-token": "tok-1"}}},
			check: func(t *testing.T, r result) {
				v := r.v.([]any)
				if r.err != nil || len(v[0].([]*Status)) != 0 || v[1].(string) != "next-2" {
					t.Fatalf("ListPage = %v, %v", v, r.err)
				}
			},
		},
		{
			name:    "list with a bad filter",
			replies: []reply{apiError(400, durableapi.CodeBadRequest, `unknown status "Sleeping"`)},
			call: func(ctx context.Context, c *Client) (any, error) {
				_, _, err := c.ListPage(ctx, Filter{RuntimeStatus: []RuntimeStatus{"Sleeping"}}, "")
				return nil, err
			},
			want: []want{{method: "GET", path: basePath + "/instances", query: url.Values{"runtimeStatus": {"Sleeping"}},
				header: map[string]string{"x-ms-continuation-token": ""}}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 400, durableapi.CodeBadRequest, ErrBadRequest)
			},
		},
		{
			name: "start and wait: completed within the timeout",
			replies: []reply{
				raw(200, `["out"]`, "Content-Type", "application/json"),
				status(state("ignored", history.StatusCompleted, `1`, `["out"]`)),
			},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.StartAndWait(ctx, "Echo", 1, 1500*time.Millisecond, 250*time.Millisecond)
			},
			want: []want{
				{method: "POST", path: basePath + "/orchestrators/Echo/{id}", query: url.Values{"timeout": {"1.5"}, "pollingInterval": {"0.25"}}, body: body("1")},
				{method: "GET", path: basePath + "/instances/{id}"},
			},
			check: func(t *testing.T, r result) {
				if st := r.v.(*Status); r.err != nil || st.RuntimeStatus != StatusCompleted || string(st.Output) != `["out"]` {
					t.Fatalf("StartAndWait = %+v, %v", st, r.err)
				}
			},
		},
		{
			name: "start and wait: still running",
			replies: []reply{
				checkStatus("w-1"),
				status(state("w-1", history.StatusRunning, "", "")),
			},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.StartAndWait(ctx, "Waiter", nil, time.Second, 100*time.Millisecond, WithInstanceID("w-1"))
			},
			want: []want{
				{method: "POST", path: basePath + "/orchestrators/Waiter/w-1", query: url.Values{"timeout": {"1"}, "pollingInterval": {"0.1"}}},
				{method: "GET", path: basePath + "/instances/w-1"},
			},
			check: func(t *testing.T, r result) {
				st := r.v.(*Status)
				if !errors.Is(r.err, ErrStillRunning) || st == nil || st.InstanceID != "w-1" || st.RuntimeStatus != StatusRunning {
					t.Fatalf("StartAndWait = %+v, %v", st, r.err)
				}
			},
		},
		{
			name: "start and wait: failed (500 with the status)",
			replies: []reply{
				func(r *http.Request) *handler.Response {
					return handler.JSON(500, durableapi.NewStatusPayload(state("f", history.StatusFailed, "", "boom"), true))
				},
				status(state("f", history.StatusFailed, "", "boom")),
			},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.StartAndWait(ctx, "Flaky", nil, time.Second, time.Second, WithInstanceID("f"))
			},
			want: []want{
				{method: "POST", path: basePath + "/orchestrators/Flaky/f", query: url.Values{"timeout": {"1"}, "pollingInterval": {"1"}}},
				{method: "GET", path: basePath + "/instances/f"},
			},
			check: func(t *testing.T, r result) {
				st := r.v.(*Status)
				var msg string
				if r.err != nil || st.RuntimeStatus != StatusFailed || st.DecodeOutput(&msg) != nil || msg != "boom" {
					t.Fatalf("StartAndWait = %+v, %v", st, r.err)
				}
			},
		},
		{
			name:    "start and wait: internal error",
			replies: []reply{apiError(500, durableapi.CodeInternal, "storage error: down")},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.StartAndWait(ctx, "Echo", nil, time.Second, time.Second, WithInstanceID("e"))
			},
			want: []want{{method: "POST", path: basePath + "/orchestrators/Echo/e", query: url.Values{"timeout": {"1"}, "pollingInterval": {"1"}}}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 500, durableapi.CodeInternal, nil)
			},
		},
		{
			name:    "start and wait: conflict",
			replies: []reply{apiError(409, durableapi.CodeConflict, "running")},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.StartAndWait(ctx, "Echo", nil, time.Second, time.Second, WithInstanceID("e"))
			},
			want: []want{{method: "POST", path: basePath + "/orchestrators/Echo/e", query: url.Values{"timeout": {"1"}, "pollingInterval": {"1"}}}},
			check: func(t *testing.T, r result) {
				wantAPIError(t, r.err, 409, durableapi.CodeConflict, ErrConflict)
			},
		},
		{
			name: "start and wait needs positive durations",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.StartAndWait(ctx, "Echo", nil, 0, time.Second)
			},
			check: func(t *testing.T, r result) {
				if r.err == nil || !strings.Contains(r.err.Error(), "positive") {
					t.Fatalf("err = %v", r.err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, tc.replies...)
			base := tc.base
			if base == "" {
				base = basePath
			}
			c, err := New(f.srv.URL+base, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			v, err := tc.call(t.Context(), c)
			got := f.requests()
			// StartAndWait picks the ID: substitute it into the wanted paths.
			wants := slices.Clone(tc.want)
			if len(got) > 0 && len(wants) > 0 && strings.Contains(wants[0].path, "{id}") {
				id := got[0].path[strings.LastIndex(got[0].path, "/")+1:]
				if !hexID.MatchString(id) {
					t.Errorf("generated instance ID %q is not 32 hex digits", id)
				}
				for i := range wants {
					wants[i].path = strings.ReplaceAll(wants[i].path, "{id}", id)
				}
			}
			checkRequests(t, got, wants)
			tc.check(t, result{v, err})
		})
	}
}

// listServer mimics GET instances over a fixed set of instances with
// base64 offsets as continuation tokens, like the real API it omits the
// token on the last page.
type listServer struct {
	ids    []string
	mu     sync.Mutex
	tokens []string // continuation header of each request
	// breakAt, if > 0, makes the request with that 1-based number fail.
	breakAt int
	// stuck makes every page return the same token.
	stuck bool
}

func (l *listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.tokens = append(l.tokens, r.Header.Get("x-ms-continuation-token"))
	n := len(l.tokens)
	l.mu.Unlock()
	if r.Method != http.MethodGet || r.URL.Path != basePath+"/instances" {
		writeResponse(w, handler.Error(404, durableapi.CodeUnknownRoute, r.Method+" "+r.URL.Path))
		return
	}
	if n == l.breakAt {
		writeResponse(w, handler.Error(400, durableapi.CodeBadRequest, "header x-ms-continuation-token: bad token"))
		return
	}
	top, _ := strconv.Atoi(r.URL.Query().Get("top"))
	if top == 0 {
		top = 100
	}
	start := 0
	if tok := r.Header.Get("x-ms-continuation-token"); tok != "" {
		b, err := base64.StdEncoding.DecodeString(tok)
		if err != nil {
			writeResponse(w, handler.Error(400, durableapi.CodeBadRequest, "bad token"))
			return
		}
		start, _ = strconv.Atoi(string(b))
	}
	end := min(start+top, len(l.ids))
	page := []durableapi.StatusPayload{}
	for _, id := range l.ids[start:end] {
		page = append(page, durableapi.NewStatusPayload(state(id, history.StatusCompleted, `"in"`, `"out"`), r.URL.Query().Get("showInput") != "false"))
	}
	resp := handler.JSON(200, page)
	switch {
	case l.stuck:
		resp.Header.Set("x-ms-continuation-token", base64.StdEncoding.EncodeToString([]byte("0")))
	case end < len(l.ids):
		resp.Header.Set("x-ms-continuation-token", base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(end))))
	}
	writeResponse(w, resp)
}

func TestList(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	tok := func(n int) string { return base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(n))) }
	tests := []struct {
		name       string
		srv        *listServer
		filter     Filter
		stopAfter  int // break out of the loop after this many statuses (0 = never)
		wantIDs    []string
		wantTokens []string
		wantErr    string
	}{
		{name: "pages of two", srv: &listServer{ids: ids}, filter: Filter{PageSize: 2},
			wantIDs: ids, wantTokens: []string{"", tok(2), tok(4)}},
		{name: "pages that divide evenly", srv: &listServer{ids: ids[:4]}, filter: Filter{PageSize: 2},
			wantIDs: ids[:4], wantTokens: []string{"", tok(2)}},
		{name: "one page", srv: &listServer{ids: ids}, wantIDs: ids, wantTokens: []string{""}},
		{name: "nothing", srv: &listServer{}, wantTokens: []string{""}},
		{name: "break stops fetching", srv: &listServer{ids: ids}, filter: Filter{PageSize: 2}, stopAfter: 3,
			wantIDs: ids[:3], wantTokens: []string{"", tok(2)}},
		{name: "error on the second page", srv: &listServer{ids: ids, breakAt: 2}, filter: Filter{PageSize: 2},
			wantIDs: ids[:2], wantTokens: []string{"", tok(2)}, wantErr: "bad token"},
		{name: "a repeated token ends the listing", srv: &listServer{ids: ids, stuck: true}, filter: Filter{PageSize: 2},
			wantIDs: []string{"a", "b", "a", "b"}, wantTokens: []string{"", tok(0)}, wantErr: "again"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.srv)
			defer srv.Close()
			c, err := New(srv.URL + basePath + "/")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var gotErr error
			errs := 0
			for st, err := range c.List(t.Context(), tc.filter) {
				if err != nil {
					gotErr = err
					errs++
					if st != nil {
						t.Fatalf("status %+v with the error", st)
					}
					continue
				}
				if st.Name != "Echo" || st.RuntimeStatus != StatusCompleted {
					t.Fatalf("status %+v", st)
				}
				got = append(got, st.InstanceID)
				if len(got) == tc.stopAfter {
					break
				}
			}
			if !slices.Equal(got, tc.wantIDs) {
				t.Errorf("ids %v, want %v", got, tc.wantIDs)
			}
			if !slices.Equal(tc.srv.tokens, tc.wantTokens) {
				t.Errorf("continuation headers %q, want %q", tc.srv.tokens, tc.wantTokens)
			}
			switch {
			case tc.wantErr == "" && gotErr != nil:
				t.Errorf("error %v", gotErr)
			case tc.wantErr != "" && (gotErr == nil || !strings.Contains(gotErr.Error(), tc.wantErr)):
				t.Errorf("error %v, want one mentioning %q", gotErr, tc.wantErr)
			case errs > 1:
				t.Errorf("%d errors yielded", errs)
			}
		})
	}
}

func TestWaitForCompletion(t *testing.T) {
	running := state("w", history.StatusRunning, "", "")
	noRetryAfter := func(st client.Status) reply {
		return func(r *http.Request) *handler.Response {
			resp := status(st)(r)
			resp.Header.Del("Retry-After")
			return resp
		}
	}
	tests := []struct {
		name      string
		interval  time.Duration
		replies   []reply
		cancelAt  int // cancel the context at this wait (1-based; 0 = never)
		wantWaits []time.Duration
		wantState RuntimeStatus // of the returned status ("" = nil)
		wantErr   error
	}{
		{name: "fixed interval", interval: 10 * time.Millisecond,
			replies:   []reply{status(running), status(running), status(state("w", history.StatusCompleted, "", `"done"`))},
			wantWaits: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}, wantState: StatusCompleted},
		{name: "Retry-After, then the default", interval: 0,
			replies:   []reply{status(running), noRetryAfter(running), status(state("w", history.StatusTerminated, "", `"stop"`))},
			wantWaits: []time.Duration{5 * time.Second, DefaultPollInterval}, wantState: StatusTerminated},
		{name: "already failed", replies: []reply{status(state("w", history.StatusFailed, "", "boom"))}, wantState: StatusFailed},
		{name: "suspended and continued-as-new are not finished", interval: time.Millisecond,
			replies: []reply{status(state("w", history.StatusSuspended, "", "")), status(state("w", history.StatusContinuedAsNew, "", "")),
				status(state("w", history.StatusPending, "", "")), status(state("w", history.StatusCanceled, "", ""))},
			wantWaits: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}, wantState: StatusCanceled},
		{name: "unknown instance", replies: []reply{apiError(404, durableapi.CodeNotFound, "no instance w")}, wantErr: ErrNotFound},
		{name: "context ends", interval: time.Minute, replies: []reply{status(running)}, cancelAt: 1,
			wantWaits: []time.Duration{time.Minute}, wantState: StatusRunning, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, tc.replies...)
			c, err := New(f.srv.URL + basePath)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var waits []time.Duration
			c.after = func(d time.Duration) <-chan time.Time {
				waits = append(waits, d)
				if len(waits) == tc.cancelAt {
					cancel()
					return nil // never fires
				}
				ch := make(chan time.Time, 1)
				ch <- time.Time{}
				return ch
			}
			st, err := c.WaitForCompletion(ctx, "w", tc.interval)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			switch {
			case tc.wantState == "" && st != nil:
				t.Fatalf("status %+v, want none", st)
			case tc.wantState != "" && (st == nil || st.RuntimeStatus != tc.wantState):
				t.Fatalf("status %+v, want %s", st, tc.wantState)
			}
			if !slices.Equal(waits, tc.wantWaits) {
				t.Fatalf("waits %v, want %v", waits, tc.wantWaits)
			}
			for _, r := range f.requests() {
				if r.method != "GET" || r.path != basePath+"/instances/w" || len(r.query) != 0 {
					t.Fatalf("request %+v", r)
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		base    string
		wantErr string
		// wantURL is the URL of Status("x") for a valid base.
		wantURL string
	}{
		{base: "http://127.0.0.1:7071/api/durabletask", wantURL: "http://127.0.0.1:7071/api/durabletask/instances/x"},
		{base: "https://app.example/api/durabletask/", wantURL: "https://app.example/api/durabletask/instances/x"},
		{base: "http://h/api/durable%20task?code=a%26b", wantURL: "http://h/api/durable%20task/instances/x?code=a%26b"},
		{base: "http://h", wantURL: "http://h/instances/x"},
		{base: "/api/durabletask", wantErr: "absolute"},
		{base: "ftp://h/api", wantErr: "absolute"},
		{base: "http://h/api#frag", wantErr: "fragment"},
		{base: "http://u:p@h/api", wantErr: "user"},
		{base: "http://h/%zz", wantErr: "base URL"},
	}
	for _, tc := range tests {
		t.Run(tc.base, func(t *testing.T) {
			c, err := New(tc.base)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.endpoint(nil, "instances", "x"); got != tc.wantURL {
				t.Fatalf("URL %q, want %q", got, tc.wantURL)
			}
			if strings.HasSuffix(c.BaseURL(), "/") {
				t.Fatalf("BaseURL %q keeps the slash", c.BaseURL())
			}
		})
	}
}

func TestWithHTTPClient(t *testing.T) {
	var used bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used = true
		return &http.Response{StatusCode: 202, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	})}
	c, err := New("http://example.invalid/api/durabletask", WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Suspend(t.Context(), "i", ""); err != nil || !used {
		t.Fatalf("Suspend = %v, transport used %v", err, used)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAPIErrorIs(t *testing.T) {
	sentinels := map[int]error{400: ErrBadRequest, 401: ErrUnauthorized, 404: ErrNotFound, 409: ErrConflict, 410: ErrGone, 412: ErrPreconditionFailed}
	all := []error{ErrBadRequest, ErrUnauthorized, ErrNotFound, ErrConflict, ErrGone, ErrPreconditionFailed, ErrStillRunning}
	for _, code := range []int{400, 401, 403, 404, 409, 410, 412, 500} {
		err := error(newAPIError("GET", "http://h/x", code, []byte(`{"error":{"code":"C","message":"m"}}`)))
		for _, s := range all {
			if got, want := errors.Is(err, s), sentinels[code] == s; got != want {
				t.Errorf("%d: errors.Is(%v) = %v, want %v", code, s, got, want)
			}
		}
		if want := "durable API GET http://h/x: " + strconv.Itoa(code) + " C: m"; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err, want)
		}
	}
	long := newAPIError("GET", "u", 500, []byte(strings.Repeat("x", 2*maxErrorText)))
	if len(long.Message) != maxErrorText+3 {
		t.Errorf("long message kept %d bytes", len(long.Message))
	}
	if e := newAPIError("GET", "u", 503, nil); e.Message != "Service Unavailable" || e.Code != "" {
		t.Errorf("empty body: %+v", e)
	}
}

func TestStatusJSONRoundTrip(t *testing.T) {
	in := `{"name":"O","instanceId":"i","runtimeStatus":"Running","input":{"a":1},"customStatus":"step 2","output":null,` +
		`"createdTime":"2026-01-02T03:04:05Z","lastUpdatedTime":"","historyEvents":[{"EventType":"ExecutionStarted","Timestamp":"2026-01-02T03:04:05.123Z","Details":null}]}`
	var st Status
	if err := json.Unmarshal([]byte(in), &st); err != nil {
		t.Fatal(err)
	}
	var cs string
	if st.DecodeCustomStatus(&cs) != nil || cs != "step 2" || !st.LastUpdatedTime.IsZero() || len(st.History) != 1 ||
		st.History[0].Details != "" || st.History[0].Timestamp.Nanosecond() != 123_000_000 {
		t.Fatalf("decoded %+v", st)
	}
	out, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var again Status
	if err := json.Unmarshal(out, &again); err != nil {
		t.Fatal(err)
	}
	if again.Name != st.Name || string(again.Input) != `{"a":1}` || string(again.History[0].Raw) != string(st.History[0].Raw) {
		t.Fatalf("round trip %s", out)
	}
	if err := json.Unmarshal([]byte(`{"createdTime":"yesterday"}`), &st); err == nil || !strings.Contains(err.Error(), "createdTime") {
		t.Fatalf("bad time: %v", err)
	}
}
