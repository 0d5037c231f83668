package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"

	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// The typed layer is tested against the real management API over a real
// engine on the in-memory backend: the wire format is the server's own.

type order struct {
	Item  string `json:"item"`
	Count int    `json:"count"`
}

type receipt struct {
	Lines []string `json:"lines"`
	Total int      `json:"total"`
}

type progress struct {
	Stage string `json:"stage"`
}

var pack = durable.NewActivity("Pack", func(_ context.Context, o order) (string, error) {
	if o.Item == "unobtainium" {
		return "", errors.New("out of stock")
	}
	return fmt.Sprintf("%d x %s", o.Count, o.Item), nil
})

// fulfilDef is the app's definition; fulfil is how a remote program names it.
var fulfilDef = durable.NewOrchestrator("Fulfil", func(ctx *durable.Context, o order) (receipt, error) {
	if o.Item == "wait" {
		if err := ctx.SetCustomStatus(progress{Stage: "waiting for go"}); err != nil {
			return receipt{}, err
		}
		if _, err := durable.WaitForExternalEvent[string](ctx, "go").Await(); err != nil {
			return receipt{}, err
		}
	}
	lines, err := durable.All(ctx, pack.Call(ctx, o), pack.Call(ctx, order{Item: o.Item, Count: o.Count + 1}))
	if err != nil {
		return receipt{}, err
	}
	return receipt{Lines: lines, Total: 2*o.Count + 1}, nil
})

var (
	fulfil      = Orchestrator[order, receipt]{Name: "Fulfil"}
	fulfilAsInt = Orchestrator[order, int]{Name: "Fulfil"}
	echoTyped   = Orchestrator[string, string]{Name: "Echo"}
)

var echoDef = durable.NewOrchestrator("Echo", func(_ *durable.Context, s string) (string, error) { return s, nil })

// realAPI serves the management API of an engine on the in-memory backend
// and returns a client of it.
func realAPI(t *testing.T) *Client {
	t.Helper()
	be, err := memory.New(memory.Options{HubName: "ApiTyped"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, local := enginetest.Start(t, engine.Options{Backend: be}, fulfilDef, pack, echoDef)
	a := durableapi.New(local, durableapi.Options{BasePath: basePath, HubName: be.HubName(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if len(body) == 0 {
			body = nil
		}
		req := asHandlerRequest(r)
		req.EscapedPath, req.Body, req.Params = r.URL.EscapedPath(), body, map[string]string{}
		writeResponse(w, a.Handle(r.Context(), req))
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL + basePath)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTypedOverTheRealAPI(t *testing.T) {
	c := realAPI(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	t.Run("start and wait", func(t *testing.T) {
		inst, err := Start(ctx, c, fulfil, order{Item: "tea", Count: 2}, WithInstanceID("tea-1"))
		if err != nil {
			t.Fatal(err)
		}
		inst.PollInterval = 20 * time.Millisecond
		if inst.ID() != "tea-1" || inst.Name() != "Fulfil" || inst.Links == nil || !strings.Contains(inst.Links.StatusQueryGetURI, "/instances/tea-1") {
			t.Fatalf("handle %q %q %+v", inst.ID(), inst.Name(), inst.Links)
		}
		got, err := inst.Wait(ctx)
		if want := (receipt{Lines: []string{"2 x tea", "3 x tea"}, Total: 5}); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Wait = %+v, %v; want %+v", got, err, want)
		}
		st, err := inst.Status(ctx)
		if err != nil || st.RuntimeStatus != StatusCompleted || st.Output.Total != 5 || st.Err() != nil ||
			string(st.Raw.Input) != `{"item":"tea","count":2}` {
			t.Fatalf("Status = %+v, %v", st, err)
		}
		if _, err := Start(ctx, c, echoTyped, "again", WithInstanceID("tea-1")); err != nil {
			t.Fatalf("a finished ID is replaced: %v", err)
		}
	})

	t.Run("custom status", func(t *testing.T) {
		inst, err := Start(ctx, c, fulfil, order{Item: "wait", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		inst.PollInterval = 20 * time.Millisecond
		var p progress
		deadline := time.Now().Add(20 * time.Second)
		for p.Stage == "" {
			if time.Now().After(deadline) {
				t.Fatal("the custom status never appeared")
			}
			st, err := inst.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p, err = CustomStatus[progress](st); err != nil {
				t.Fatal(err)
			}
			if p.Stage == "" {
				time.Sleep(10 * time.Millisecond) // poll again
			}
		}
		if p.Stage != "waiting for go" {
			t.Fatalf("custom status %+v", p)
		}
		raw, err := c.Status(ctx, inst.ID())
		if err != nil {
			t.Fatal(err)
		}
		_, err = CustomStatus[int](raw)
		var de *DecodeError
		if !errors.As(err, &de) || de.What != "custom status" || de.Type != "int" || !strings.Contains(err.Error(), "does not fit type int") {
			t.Fatalf("custom status into int: %v", err)
		}
		if err := c.RaiseEvent(ctx, inst.ID(), "go", "now"); err != nil {
			t.Fatal(err)
		}
		if got, err := inst.Wait(ctx); err != nil || got.Total != 3 {
			t.Fatalf("Wait = %+v, %v", got, err)
		}
	})

	t.Run("failed", func(t *testing.T) {
		inst, err := Start(ctx, c, fulfil, order{Item: "unobtainium", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		inst.PollInterval = 20 * time.Millisecond
		_, err = inst.Wait(ctx)
		var fe *FailedError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFailed) || errors.Is(err, ErrTerminated) {
			t.Fatalf("Wait err = %v, want a FailedError", err)
		}
		if fe.Failure.ErrorType != "TaskFailedError" || fe.Failure.InnerFailure == nil ||
			fe.Failure.InnerFailure.ErrorMessage != "out of stock" || fe.InstanceID != inst.ID() || fe.Name != "Fulfil" {
			t.Fatalf("failure %+v (inner %+v)", fe.Failure, fe.Failure.InnerFailure)
		}
	})

	t.Run("terminated", func(t *testing.T) {
		inst, err := Start(ctx, c, fulfil, order{Item: "wait"})
		if err != nil {
			t.Fatal(err)
		}
		inst.PollInterval = 20 * time.Millisecond
		if err := c.Terminate(ctx, inst.ID(), "no longer needed"); err != nil {
			t.Fatal(err)
		}
		_, err = inst.Wait(ctx)
		var te *TerminatedError
		if !errors.As(err, &te) || !errors.Is(err, ErrTerminated) || errors.Is(err, ErrCanceled) || te.Reason != "no longer needed" {
			t.Fatalf("Wait err = %v, want a TerminatedError with the reason", err)
		}
	})

	t.Run("output does not fit", func(t *testing.T) {
		asInt, err := Get(ctx, c, fulfilAsInt, "tea-1")
		if !errors.Is(err, ErrOtherOrchestrator) || asInt != nil {
			t.Fatalf("Get of the restarted Echo instance: %v", err)
		}
		inst, err := Start(ctx, c, fulfil, order{Item: "cup", Count: 0})
		if err != nil {
			t.Fatal(err)
		}
		inst.PollInterval = 20 * time.Millisecond
		if _, err := inst.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if asInt, err = Get(ctx, c, fulfilAsInt, inst.ID()); err != nil {
			t.Fatal(err)
		}
		n, err := asInt.Wait(ctx)
		var de *DecodeError
		if !errors.As(err, &de) || de.What != "output" || de.Type != "int" || n != 0 || !strings.Contains(string(de.JSON), `"total":1`) {
			t.Fatalf("Wait = %d, %v; want a DecodeError naming int", n, err)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		if _, err := Get(ctx, c, fulfil, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of an unknown ID: %v", err)
		}
		if _, err := Start(ctx, c, Orchestrator[int, int]{Name: "Missing"}, 1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Start of an unknown orchestrator: %v", err)
		}
		if _, err := Start(ctx, c, Orchestrator[int, int]{}, 1); err == nil || !strings.Contains(err.Error(), "no Name") {
			t.Fatalf("Start without a name: %v", err)
		}
	})
}

// TestTypedFailureWithoutHistoryDetails: a server whose history carries no
// failure details (an older app, another implementation) still gives the
// type and message from the status output.
func TestTypedFailureWithoutHistoryDetails(t *testing.T) {
	failed := state("f", history.StatusFailed, "", "TaskFailedError: activity broke: out of stock")
	f := newFakeAPI(t, status(failed), status(failed))
	c, err := New(f.srv.URL + basePath)
	if err != nil {
		t.Fatal(err)
	}
	inst := &Instance[string]{c: c, id: "f", name: "Echo"}
	_, err = inst.Wait(t.Context())
	var fe *FailedError
	if !errors.As(err, &fe) || fe.Failure.ErrorType != "TaskFailedError" || fe.Failure.ErrorMessage != "activity broke: out of stock" {
		t.Fatalf("Wait err = %v (%+v)", err, fe)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[1].query.Get("showHistory") != "true" || reqs[1].query.Get("showInput") != "false" {
		t.Fatalf("requests %+v", reqs)
	}
}
