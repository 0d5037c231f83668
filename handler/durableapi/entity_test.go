package durableapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// testCounter is the entity of the entity API tests.
var testCounter = durable.NewEntity("Counter", durable.Operations[int]{
	"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
})

// testOther is a second entity, for listing by name.
var testOther = durable.NewEntity("Other", durable.Operations[string]{
	"set": durable.Op(func(ctx *durable.EntityContext[string], v string) error {
		ctx.SetState(v)
		return nil
	}),
})

func entityRegistry(t *testing.T) *durable.Registry {
	t.Helper()
	reg := durable.NewRegistry()
	if err := reg.Add(testCounter, testOther); err != nil {
		t.Fatal(err)
	}
	return reg
}

func entityBackend(t *testing.T) *memory.Backend {
	t.Helper()
	be, err := memory.New(memory.Options{HubName: "EntityAPI"})
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// entityRequest builds a request to the API with an escaped path and body.
func entityRequest(method, escapedPath, body string) *handler.Request {
	u, err := url.Parse("http://127.0.0.1:7071" + escapedPath)
	if err != nil {
		panic(err)
	}
	return &handler.Request{Method: method, URL: u, EscapedPath: u.EscapedPath(), Query: u.Query(),
		Header: http.Header{}, Body: []byte(body)}
}

// TestEntityAPIBadInput: each bad request gets its 4xx JSON error with the
// code and a message naming the problem, and nothing reaches any queue.
func TestEntityAPIBadInput(t *testing.T) {
	be := entityBackend(t)
	api := New(client.New(be, entityRegistry(t), nil), Options{BasePath: "/api/durabletask", HubName: "H"})
	tests := []struct {
		name, method, path, body string
		status                   int
		code, mention            string
	}{
		{"unknown entity", "POST", "/api/durabletask/entities/Nope/k?op=add", "1", 404, CodeNoEntity, `"nope" is not an entity of this app`},
		{"empty key", "POST", "/api/durabletask/entities/Counter/?op=add", "1", 400, CodeBadEntityID, "key is missing"},
		{"key with /", "POST", "/api/durabletask/entities/Counter/a/b?op=add", "1", 400, CodeBadEntityID, "may not contain '/'"},
		{"key with escaped /", "POST", "/api/durabletask/entities/Counter/a%2Fb?op=add", "1", 400, CodeBadEntityID, "may not contain '/'"},
		{"key with control character", "POST", "/api/durabletask/entities/Counter/a%01b?op=add", "1", 400, CodeBadEntityID, "control character U+0001"},
		{"name with @", "POST", "/api/durabletask/entities/Co@unter/k?op=add", "1", 400, CodeBadEntityID, "may not contain '@'"},
		{"body not JSON", "POST", "/api/durabletask/entities/Counter/k?op=add", "five", 400, CodeBadInput, "is not JSON"},
		{"body not UTF-8", "POST", "/api/durabletask/entities/Counter/k?op=add", "\"\xff\"", 400, CodeBadInput, "not valid UTF-8"},
		{"no op", "POST", "/api/durabletask/entities/Counter/k", "1", 400, CodeBadRequest, "query parameter op"},
		{"empty op", "POST", "/api/durabletask/entities/Counter/k?op=", "1", 400, CodeBadRequest, "query parameter op"},
		{"wrong method", "DELETE", "/api/durabletask/entities/Counter/k", "", 405, "MethodNotAllowed", "use GET or POST"},
		{"list with a bad date", "GET", "/api/durabletask/entities/Counter?lastOperationTimeFrom=soon", "", 400, CodeBadRequest, "lastOperationTimeFrom=\"soon\" is not a date"},
		{"list with a bad top", "GET", "/api/durabletask/entities?top=0", "", 400, CodeBadRequest, "top=\"0\""},
		{"list with a bad name", "GET", "/api/durabletask/entities/a%01b", "", 400, CodeBadEntityID, "control character U+0001"},
		{"POST to the list", "POST", "/api/durabletask/entities", "", 405, "MethodNotAllowed", "use GET"},
		{"read bad key", "GET", "/api/durabletask/entities/Counter/a%7Fb", "", 400, CodeBadEntityID, "control character U+007F"},
		{"read never signalled", "GET", "/api/durabletask/entities/Counter/none", "", 404, CodeNotFound, `"@counter@none" does not exist`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := api.Handle(context.Background(), entityRequest(tc.method, tc.path, tc.body))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, resp.Body)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(resp.Body, &e); err != nil {
				t.Fatalf("body %q is not a JSON error: %v", resp.Body, err)
			}
			if e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.mention) {
				t.Fatalf("error %+v, want code %s and a message with %q", e.Error, tc.code, tc.mention)
			}
		})
	}
	for p := range be.PartitionCount() {
		if n := be.Len(be.ControlQueueName(p)); n != 0 {
			t.Errorf("control queue %d holds %d messages after bad requests only", p, n)
		}
	}
}

// TestEntityAPISignalAndRead: signals through the API (names in any case,
// a body with surrounding white space, a key needing escapes) run on a real
// engine, and GET answers the exact sum as the JSON body.
func TestEntityAPISignalAndRead(t *testing.T) {
	api := entityEngineAPI(t)
	const key = "user 1%ü" // escaped in the path
	path := "/api/durabletask/entities/Counter/" + url.PathEscape(key)
	signals := []struct{ path, body string }{
		{path + "?op=add", "5"},
		{strings.Replace(path, "Counter", "COUNTER", 1) + "?op=add", " 7\n"},
		{path + "?op=add", ""}, // no input: add 0
		{path + "?op=add&taskHub=H&connection=Storage", "30"},
	}
	for _, s := range signals {
		resp := api.Handle(context.Background(), entityRequest("POST", s.path, s.body))
		if resp.StatusCode != http.StatusAccepted || len(resp.Body) != 0 {
			t.Fatalf("POST %s %q: status %d body %q, want 202 and no body", s.path, s.body, resp.StatusCode, resp.Body)
		}
	}
	waitEntityGET(t, api, path, "42")
	// The state read through the Go client is the same.
	if n, err := client.ReadEntity(context.Background(), api.c, testCounter, key); err != nil || n != 42 {
		t.Fatalf("ReadEntity = %d, %v; want 42", n, err)
	}
}

// waitEntityGET polls GET path until it answers 200 with the body want.
func waitEntityGET(t *testing.T, api *API, path, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp := api.Handle(context.Background(), entityRequest("GET", path, ""))
		if resp.StatusCode == http.StatusOK && string(resp.Body) == want {
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			return
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: status %d %s", path, resp.StatusCode, resp.Body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: status %d body %s, want 200 and %s", path, resp.StatusCode, resp.Body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// entityEngineAPI is the API over a running engine on the memory backend.
func entityEngineAPI(t *testing.T) *API {
	t.Helper()
	_, _, c := enginetest.Start(t, engine.Options{Backend: entityBackend(t)}, testCounter, testOther)
	return New(c, Options{BasePath: "/api/durabletask", HubName: "H"})
}

// TestEntityAPIList: GET entities[/{name}] lists the entities with state,
// filtered by name and last operation time, with state on fetchState=true,
// paged by top with x-ms-continuation-token; a deleted entity is left out.
func TestEntityAPIList(t *testing.T) {
	api := entityEngineAPI(t)
	before := time.Now().Add(-time.Second)
	for _, s := range []struct{ path, body string }{
		{"Counter/a?op=add", "1"}, {"Counter/b?op=add", "2"}, {"Counter/c?op=add", "3"},
		{"Counter/gone?op=add", "4"}, {"Other/x?op=set", `"hi"`},
	} {
		if resp := api.Handle(context.Background(), entityRequest("POST", "/api/durabletask/entities/"+s.path, s.body)); resp.StatusCode != 202 {
			t.Fatalf("POST %s: %d %s", s.path, resp.StatusCode, resp.Body)
		}
	}
	for k, v := range map[string]string{"a": "1", "b": "2", "c": "3", "gone": "4"} {
		waitEntityGET(t, api, "/api/durabletask/entities/Counter/"+k, v)
	}
	waitEntityGET(t, api, "/api/durabletask/entities/Other/x", `"hi"`)
	if resp := api.Handle(context.Background(), entityRequest("POST", "/api/durabletask/entities/Counter/gone?op=delete", "")); resp.StatusCode != 202 {
		t.Fatalf("delete: %d %s", resp.StatusCode, resp.Body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for api.Handle(context.Background(), entityRequest("GET", "/api/durabletask/entities/Counter/gone", "")).StatusCode != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("Counter/gone still has state after delete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := time.Now().Add(time.Second)

	tests := []struct {
		name, query string
		want        string // entities as name/key[=state], in order
	}{
		{"all", "entities", "counter/a counter/b counter/c other/x"},
		{"by name with state", "entities/COUNTER?fetchState=true", "counter/a=1 counter/b=2 counter/c=3"},
		{"other", "entities/Other?fetchState=TRUE", `other/x="hi"`},
		{"unknown name", "entities/Nope", ""},
		{"paged", "entities/Counter?top=1&fetchState=true", "counter/a=1 counter/b=2 counter/c=3"},
		{"from before", "entities?lastOperationTimeFrom=" + url.QueryEscape(before.UTC().Format(time.RFC3339Nano)), "counter/a counter/b counter/c other/x"},
		{"from after", "entities?lastOperationTimeFrom=" + url.QueryEscape(after.UTC().Format(time.RFC3339Nano)), ""},
		{"to before", "entities?lastOperationTimeTo=" + url.QueryEscape(before.UTC().Format(time.RFC3339Nano)), ""},
		{"to after", "entities/counter?lastOperationTimeTo=" + url.QueryEscape(after.UTC().Format(time.RFC3339Nano)), "counter/a counter/b counter/c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			token, pages := "", 0
			for {
				req := entityRequest("GET", "/api/durabletask/"+tc.query, "")
				if token != "" {
					req.Header.Set("x-ms-continuation-token", token)
				}
				resp := api.Handle(context.Background(), req)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
				}
				var page []EntityPayload
				if err := json.Unmarshal(resp.Body, &page); err != nil {
					t.Fatalf("body %s: %v", resp.Body, err)
				}
				if strings.Contains(tc.query, "top=1") && len(page) > 1 {
					t.Fatalf("page of %d entities with top=1", len(page))
				}
				for _, e := range page {
					lt, err := time.Parse(time.RFC3339Nano, e.LastOperationTime)
					if err != nil || lt.Before(before) || lt.After(after) {
						t.Errorf("lastOperationTime %q (%v) not between the test's start and end", e.LastOperationTime, err)
					}
					s := e.EntityID.Name + "/" + e.EntityID.Key
					if e.State != nil {
						s += "=" + string(e.State)
					}
					got = append(got, s)
				}
				pages++
				if token = resp.Header.Get("x-ms-continuation-token"); token == "" {
					break
				}
				if pages > 10 {
					t.Fatal("more than 10 pages")
				}
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Fatalf("listed %q, want %q", g, tc.want)
			}
			if strings.Contains(tc.query, "top=1") && pages < 3 {
				t.Errorf("%d pages with top=1, want at least 3", pages)
			}
		})
	}
}
