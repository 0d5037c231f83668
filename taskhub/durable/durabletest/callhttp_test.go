package durabletest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
	"github.com/go-durable/durablefunctions/taskhub/durablehttp"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// startJob posts a job and lets CallHTTP follow its 202 status URL.
func startJob(url string, timeout time.Duration) *durable.Orchestrator[any, string] {
	return durable.NewOrchestrator("StartJob", func(ctx *durable.Context, _ any) (string, error) {
		resp, err := durable.CallHTTP(ctx, durable.HTTPRequest{
			Method: "POST", URL: url, Body: `{"n":1}`, Timeout: timeout,
			Headers: durable.HTTPHeaders{"Content-Type": {"application/json"}, "x-functions-key": {"secret"}},
		}).Await()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, resp.Body), nil
	})
}

// httpMock answers the built-in activity from a script of responses (the
// last one repeats) and keeps the requests it got.
type httpMock struct {
	script []durable.HTTPResponse
	seen   []durable.HTTPActivityRequest
}

func (m *httpMock) install(tr *durabletest.Tester) *durabletest.ActivityMock {
	return durabletest.OnActivityName(tr, durable.HTTPActivityName, func(_ context.Context, in json.RawMessage) (any, error) {
		var req durable.HTTPActivityRequest
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, err
		}
		m.seen = append(m.seen, req)
		return m.script[min(len(m.seen), len(m.script))-1], nil
	})
}

func accepted(location, retryAfter string) durable.HTTPResponse {
	return durable.HTTPResponse{StatusCode: 202, Headers: durable.HTTPHeaders{"Location": {location}, "Retry-After": {retryAfter}}}
}

// TestCallHTTPAsyncPatternMocked: the built-in activity, mocked by name,
// answers 202 twice, then 200. CallHTTP polls the Location with GET and
// without x-functions-key, after durable timers of the Retry-After
// seconds, which the virtual clock skips.
func TestCallHTTPAsyncPatternMocked(t *testing.T) {
	tr := durabletest.New()
	m := &httpMock{script: []durable.HTTPResponse{
		accepted("/jobs/7/status", "15"),
		accepted("https://api.example.com/jobs/7/status", "30"),
		{StatusCode: 200, Body: `{"state":"done"}`, Headers: durable.HTTPHeaders{"Content-Type": {"application/json"}}},
	}}
	mock := m.install(tr)
	res := durabletest.MustRun(t, tr, startJob("https://api.example.com/jobs", 0), nil)
	if res.Output != `200 {"state":"done"}` || res.Elapsed != 45*time.Second || mock.Calls() != 3 {
		t.Fatalf("%q after %v and %d requests", res.Output, res.Elapsed, mock.Calls())
	}
	type sent struct{ method, uri, key, contentType, body string }
	var got []sent
	for _, r := range m.seen {
		got = append(got, sent{r.Method, r.URI, r.Headers.Get("x-functions-key"), r.Headers.Get("Content-Type"), r.Content})
	}
	want := []sent{
		{"POST", "https://api.example.com/jobs", "secret", "application/json", `{"n":1}`},
		{"GET", "https://api.example.com/jobs/7/status", "", "application/json", ""},
		{"GET", "https://api.example.com/jobs/7/status", "", "application/json", ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("requests\n got %v\nwant %v", got, want)
	}
	// In history: a request at 0s, a 15 s timer, a poll at 15s, a 30 s
	// timer, a poll at 45s.
	var at []string
	for _, ev := range res.History {
		switch ev.Type {
		case history.TaskScheduled:
			if ev.Name != durable.HTTPActivityName {
				t.Errorf("task %d is %q", ev.EventID, ev.Name)
			}
			at = append(at, "request@"+ev.Timestamp.Sub(durabletest.DefaultStartTime).String())
		case history.TimerCreated:
			at = append(at, "timer→"+ev.FireAt.Sub(durabletest.DefaultStartTime).String())
		}
	}
	if want := "[request@0s timer→15s request@15s timer→45s request@45s]"; fmt.Sprint(at) != want {
		t.Fatalf("history %v, want %s", at, want)
	}
}

// TestCallHTTPTimeoutMocked: a job that stays at 202 (polled every 50 s)
// fails the call when its 2-minute Timeout passes on the virtual clock;
// each request carries the timeout as a TimeSpan.
func TestCallHTTPTimeoutMocked(t *testing.T) {
	orch := durable.NewOrchestrator("WaitJob", func(ctx *durable.Context, _ any) (string, error) {
		_, err := startJob("https://api.example.com/jobs", 2*time.Minute).Call(ctx, nil).Await()
		if errors.Is(err, durable.ErrTimeout) {
			return fmt.Sprintf("timed out at %v", ctx.CurrentTime().Sub(durabletest.DefaultStartTime)), nil
		}
		return "", fmt.Errorf("want a timeout, got %w", err)
	})
	tr := durabletest.New(startJob("https://api.example.com/jobs", 2*time.Minute))
	m := &httpMock{script: []durable.HTTPResponse{accepted("/jobs/8/status", "50")}}
	mock := m.install(tr)
	res := durabletest.MustRun(t, tr, orch, nil)
	if res.Output != "timed out at 2m0s" || mock.Calls() != 3 {
		t.Fatalf("%q after %d requests", res.Output, mock.Calls())
	}
	for i, r := range m.seen {
		if r.Timeout != "00:02:00" {
			t.Errorf("request %d: timeout %q", i, r.Timeout)
		}
	}
	// The child's call failed at 2m with the timeout; its poll timer due
	// at 2m30s was cancelled, so the child ended at 2m.
	c := res.Children[0]
	if c.Status != history.StatusFailed || c.Failure.ErrorType != "TimeoutError" || c.Elapsed != 2*time.Minute {
		t.Fatalf("child %s after %v: %v", c.Status, c.Elapsed, c.Failure)
	}
}

// jobServer is a local HTTP server for the real built-in activity: POST
// /jobs answers 202 with a relative Location and Retry-After 1; the
// status URL answers 202 (Retry-After 2), then 200.
type jobServer struct {
	mu       sync.Mutex
	requests []string
}

func (s *jobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, fmt.Sprintf("%s %s key=%q", r.Method, r.URL.Path, r.Header.Get("x-functions-key")))
	n := len(s.requests)
	s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/jobs":
		w.Header().Set("Location", "/jobs/1/status")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && r.URL.Path == "/jobs/1/status" && n == 2:
		w.Header().Set("Location", "/jobs/1/status")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && r.URL.Path == "/jobs/1/status":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "job 1 done")
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
	}
}

// TestCallHTTPRealActivity: the real built-in activity of package
// durablehttp makes the requests against a local server inside the
// harness; the Retry-After waits are durable timers on the virtual clock.
func TestCallHTTPRealActivity(t *testing.T) {
	srv := &jobServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	res := durabletest.MustRun(t, durabletest.New(durablehttp.Activity()), startJob(ts.URL+"/jobs", time.Minute), nil)
	if res.Output != "200 job 1 done" || res.Elapsed != 3*time.Second {
		t.Fatalf("%q after %v", res.Output, res.Elapsed)
	}
	srv.mu.Lock()
	got := strings.Join(srv.requests, "; ")
	srv.mu.Unlock()
	if want := `POST /jobs key="secret"; GET /jobs/1/status key=""; GET /jobs/1/status key=""`; got != want {
		t.Fatalf("the server saw\n%s\nwant\n%s", got, want)
	}
	if n := count(res.History, history.TaskCompleted); n != 3 {
		t.Fatalf("%d TaskCompleted, want 3", n)
	}
}
