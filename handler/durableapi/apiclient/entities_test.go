package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
)

func TestEntityCalls(t *testing.T) {
	ctx := context.Background()
	op := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	page := []durableapi.EntityPayload{{EntityID: durableapi.EntityIDPayload{Name: "counter", Key: "a/b"},
		LastOperationTime: op.Format(time.RFC3339Nano), State: json.RawMessage(`{"n":5}`)}}
	statusBody := `{"name":"Echo","instanceId":"i1","runtimeStatus":"Completed","input":1,"customStatus":null,"output":1,"createdTime":"2026-01-02T03:04:05Z","lastUpdatedTime":"2026-01-02T03:04:06Z","historyEvents":[]}`
	f := newFakeAPI(t,
		func(*http.Request) *handler.Response {
			r := handler.JSON(http.StatusOK, page)
			r.Header.Set(continuationHeader, "next-1")
			return r
		},
		raw(http.StatusOK, `7`, "Content-Type", "application/json"),
		apiError(http.StatusNotFound, durableapi.CodeNotFound, "entity @counter@x has no state"),
		raw(http.StatusAccepted, ""),
		raw(http.StatusOK, statusBody, "Content-Type", "application/json"),
		checkStatus("v1"),
	)
	c, err := New(f.srv.URL + basePath)
	if err != nil {
		t.Fatal(err)
	}

	list, next, err := c.ListEntitiesPage(ctx, EntityFilter{Name: "Counter", WithState: true, PageSize: 10}, "tok-0")
	if err != nil || next != "next-1" || len(list) != 1 {
		t.Fatalf("ListEntitiesPage = %+v, %q, %v", list, next, err)
	}
	if e := list[0]; e.Name != "counter" || e.Key != "a/b" || !e.LastOperationTime.Equal(op) || string(e.State) != `{"n":5}` {
		t.Fatalf("entity %+v", e)
	}
	if st, err := c.EntityState(ctx, "Counter", "a"); err != nil || string(st) != "7" {
		t.Fatalf("EntityState = %s, %v", st, err)
	}
	_, err = c.EntityState(ctx, "Counter", "x")
	wantAPIError(t, err, http.StatusNotFound, durableapi.CodeNotFound, ErrNotFound)
	if err := c.SignalEntity(ctx, "Counter", "a b", "add", 5); err != nil {
		t.Fatal(err)
	}
	got, err := c.StatusJSON(ctx, "i1", ShowHistoryOutput())
	if err != nil || string(got) != statusBody {
		t.Fatalf("StatusJSON = %s, %v; want the body as sent", got, err)
	}
	if _, err := c.Start(ctx, "Echo", nil, WithInstanceID("v1"), WithVersion("2.0")); err != nil {
		t.Fatal(err)
	}
	checkRequests(t, f.requests(), []want{
		{method: "GET", path: basePath + "/entities/Counter", query: url.Values{"fetchState": {"true"}, "top": {"10"}},
			header: map[string]string{continuationHeader: "tok-0"}},
		{method: "GET", path: basePath + "/entities/Counter/a"},
		{method: "GET", path: basePath + "/entities/Counter/x"},
		{method: "POST", path: basePath + "/entities/Counter/a%20b", query: url.Values{"op": {"add"}}, body: body("5")},
		{method: "GET", path: basePath + "/instances/i1", query: url.Values{"showHistory": {"true"}, "showHistoryOutput": {"true"}}},
		{method: "POST", path: basePath + "/orchestrators/Echo/v1", query: url.Values{"version": {"2.0"}}, body: body("")},
	})
}
