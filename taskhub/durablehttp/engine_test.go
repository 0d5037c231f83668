package durablehttp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"

	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durablehttp"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// runOnMemory runs orchestrator name with defs on the real engine over the
// in-memory backend and returns its final status and history.
func runOnMemory(t *testing.T, name string, defs ...durable.Definition) (client.Status, []history.Event) {
	t.Helper()
	be, err := memory.New(memory.Options{HubName: "HTTPHub"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, c := enginetest.Start(t, engine.Options{Backend: be, MaxPollInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, defs...)
	id, err := c.StartNew(context.Background(), name, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.WaitForCompletion(ctx, id, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	h, err := be.LoadHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st, h.Events
}

// TestCallHTTPThroughTheEngine follows a server that answers 202 twice
// (relative Location, Retry-After: 0) and then 200, with the built-in
// activity on the real engine: the polls are GETs of Location without
// x-functions-key, each after a durable timer.
func TestCallHTTPThroughTheEngine(t *testing.T) {
	var mu sync.Mutex
	var reqs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := len(reqs)
		reqs = append(reqs, r.Method+" "+r.URL.Path+" key="+r.Header.Get("X-Functions-Key")+" trace="+r.Header.Get("X-Trace"))
		mu.Unlock()
		if n < 2 {
			w.Header().Set("Location", "/status/job1")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result":42}`)
	}))
	defer srv.Close()
	orch := durable.NewOrchestrator("CallIt", func(ctx *durable.Context, _ any) (string, error) {
		resp, err := durable.CallHTTP(ctx, durable.HTTPRequest{
			Method: "POST", URL: srv.URL + "/jobs", Body: "{}",
			Headers: durable.HTTPHeaders{"x-functions-key": {"fkey"}, "X-Trace": {"t"}, "Content-Type": {"application/json"}},
		}).Await()
		if err != nil {
			return "", err
		}
		return resp.Body, nil
	})
	st, evs := runOnMemory(t, "CallIt", orch, durablehttp.Activity())
	if st.Status != history.StatusCompleted || st.Output != `"{\"result\":42}"` {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	mu.Lock()
	got := strings.Join(reqs, "\n")
	mu.Unlock()
	want := "POST /jobs key=fkey trace=t\nGET /status/job1 key= trace=t\nGET /status/job1 key= trace=t"
	if got != want {
		t.Errorf("server saw\n%s\nwant\n%s", got, want)
	}
	count := map[history.EventType]int{}
	for _, ev := range evs {
		count[ev.Type]++
		if ev.Type == history.TaskScheduled && ev.Name != durable.HTTPActivityName {
			t.Errorf("scheduled %q, want %q", ev.Name, durable.HTTPActivityName)
		}
	}
	if count[history.TaskScheduled] != 3 || count[history.TimerCreated] != 2 || count[history.TimerFired] != 2 {
		t.Errorf("history has %d TaskScheduled, %d TimerCreated, %d TimerFired; want 3, 2, 2", count[history.TaskScheduled], count[history.TimerCreated], count[history.TimerFired])
	}
}

// TestCallHTTPWithoutTheActivity: an app that does not register the
// built-in activity fails the instance with a message naming it.
func TestCallHTTPWithoutTheActivity(t *testing.T) {
	orch := durable.NewOrchestrator("CallIt", func(ctx *durable.Context, _ any) (int, error) {
		resp, err := durable.CallHTTP(ctx, durable.HTTPRequest{URL: "http://127.0.0.1:1/"}).Await()
		return resp.StatusCode, err
	})
	st, _ := runOnMemory(t, "CallIt", orch)
	if st.Status != history.StatusFailed || !strings.Contains(st.Output, `durable HTTP needs the built-in activity "BuiltIn::HttpActivity"`) ||
		!strings.Contains(st.Output, `activity "BuiltIn::HttpActivity" is not registered in this app`) {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
}
