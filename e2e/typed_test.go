package e2e

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler/durableapi/apiclient"
)

// The types of the test app's Ticket orchestrator as another program
// declares them: only their JSON has to match.
type ticketRequest struct {
	Name string `json:"name"`
	Fail bool   `json:"fail"`
}

type ticketProgress struct {
	Stage string `json:"stage"`
	Name  string `json:"name"`
}

var ticketOrch = apiclient.Orchestrator[ticketRequest, []string]{Name: "Ticket"}

// TestTypedClientAgainstTheApp drives the test app on Azurite through the
// typed layer of apiclient: a typed start, the typed custom status while
// the instance waits and after it finished, the typed output, a failed
// instance's error with the activity's failure inside, and an output read
// into a type it does not fit.
func TestTypedClientAgainstTheApp(t *testing.T) {
	p, _ := testApp(t)
	waitReady(t, p)
	c, err := apiclient.New(p.base + "/api/durabletask")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()

	// start begins a Ticket, waits until it reports that it waits, and
	// lets it go on.
	start := func(t *testing.T, req ticketRequest, opts ...apiclient.StartOption) *apiclient.Instance[[]string] {
		t.Helper()
		inst, err := apiclient.Start(ctx, c, ticketOrch, req, opts...)
		if err != nil {
			t.Fatal(err)
		}
		inst.PollInterval = 50 * time.Millisecond
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := inst.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			progress, err := apiclient.CustomStatus[ticketProgress](st)
			if err != nil {
				t.Fatal(err)
			}
			if progress.Stage == "waiting" {
				if progress.Name != req.Name || st.RuntimeStatus != apiclient.StatusRunning {
					t.Fatalf("while waiting: %+v, custom status %+v", st, progress)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Ticket never reported that it waits; last status %+v", st)
			}
			time.Sleep(20 * time.Millisecond) // poll again
		}
		if err := c.RaiseEvent(ctx, inst.ID(), "Go", true); err != nil {
			t.Fatal(err)
		}
		return inst
	}

	t.Run("typed output and custom status", func(t *testing.T) {
		inst := start(t, ticketRequest{Name: "ann"}, apiclient.WithInstanceID("typed-ann"))
		got, err := inst.Wait(ctx)
		if want := []string{"ticket for ann", "ticket for ann (guest)"}; err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Wait = %q, %v; want %q", got, err, want)
		}
		st, err := inst.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		progress, err := apiclient.CustomStatus[ticketProgress](st)
		if err != nil || progress != (ticketProgress{Stage: "issued", Name: "ann"}) || st.RuntimeStatus != apiclient.StatusCompleted {
			t.Fatalf("final status %+v, custom status %+v, %v", st, progress, err)
		}
		// The same instance read through Get.
		again, err := apiclient.Get(ctx, c, ticketOrch, "typed-ann")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := again.Wait(ctx); err != nil || len(out) != 2 {
			t.Fatalf("Wait via Get = %q, %v", out, err)
		}
	})

	t.Run("failed instance", func(t *testing.T) {
		inst := start(t, ticketRequest{Name: "bob", Fail: true})
		out, err := inst.Wait(ctx)
		var fe *apiclient.FailedError
		if !errors.As(err, &fe) || !errors.Is(err, apiclient.ErrFailed) || out != nil {
			t.Fatalf("Wait = %q, %v; want a FailedError", out, err)
		}
		inner := fe.Failure.InnerFailure
		if fe.InstanceID != inst.ID() || fe.Name != "Ticket" || fe.Failure.ErrorType != "TaskFailedError" ||
			!strings.Contains(fe.Failure.ErrorMessage, `activity "Issue"`) ||
			inner == nil || !strings.HasPrefix(inner.ErrorMessage, "no seats left for bob") {
			t.Fatalf("failure %+v, inner %+v", fe.Failure, inner)
		}
	})

	t.Run("output that does not fit", func(t *testing.T) {
		inst := start(t, ticketRequest{Name: "cy"})
		if _, err := inst.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		asMap, err := apiclient.Get(ctx, c, apiclient.Orchestrator[ticketRequest, map[string]int]{Name: "Ticket"}, inst.ID())
		if err != nil {
			t.Fatal(err)
		}
		m, err := asMap.Wait(ctx)
		var de *apiclient.DecodeError
		if !errors.As(err, &de) || de.Type != "map[string]int" || de.What != "output" || m != nil ||
			!strings.Contains(err.Error(), `does not fit type map[string]int`) || !strings.Contains(string(de.JSON), "ticket for cy") {
			t.Fatalf("Wait = %v, %v; want a DecodeError naming map[string]int", m, err)
		}
		if _, err := apiclient.Get(ctx, c, apiclient.Orchestrator[any, string]{Name: "Echo"}, inst.ID()); !errors.Is(err, apiclient.ErrOtherOrchestrator) {
			t.Fatalf("Get as another orchestrator: %v", err)
		}
	})
}
