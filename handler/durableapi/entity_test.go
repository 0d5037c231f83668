package durableapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

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

func entityRegistry(t *testing.T) *durable.Registry {
	t.Helper()
	reg := durable.NewRegistry()
	if err := reg.Add(testCounter); err != nil {
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
		{"read without key", "GET", "/api/durabletask/entities/Counter/", "", 400, CodeBadEntityID, "key is missing"},
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
	be := entityBackend(t)
	reg := entityRegistry(t)
	eng, err := engine.New(engine.Options{Backend: be, Registry: reg, MaxPollInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		eng.Stop(ctx)
	})
	api := New(client.New(be, reg, eng), Options{BasePath: "/api/durabletask", HubName: "H"})
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp := api.Handle(context.Background(), entityRequest("GET", path, ""))
		if resp.StatusCode == http.StatusOK && string(resp.Body) == "42" {
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			break
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET: status %d %s", resp.StatusCode, resp.Body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET: status %d body %s, want 200 and 42", resp.StatusCode, resp.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The state read through the Go client is the same.
	if n, err := client.ReadEntity(context.Background(), api.c, testCounter, key); err != nil || n != 42 {
		t.Fatalf("ReadEntity = %d, %v; want 42", n, err)
	}
}
