// Command testapp is the function app of the end-to-end tests:
//   - CrashTest calls Step for "one", "two", "three", and Step("two") blocks
//     until the test creates a "release" file, so the test can SIGKILL the
//     process at a known point in the middle of an orchestration (if its
//     context ends first, it creates a "cancelled" file and gives up);
//   - Waiter waits for the event "Go" and returns its payload;
//   - Echo returns its input;
//   - Flaky calls an activity that fails until the test creates a
//     "heal" file (for rewind);
//   - Load calls Work for steps 1..n in sequence, each sleeping a while,
//     and returns "<tag>/<step>" for each; Work appends "<instance> <task>"
//     to the file named by WORKLOG on every run, so that fault tests can
//     count activity executions against history;
//   - Orchestrator and Hello behave as the sample's (Hello/, Orchestrator/):
//     Orchestrator calls Hello for Tokyo, Seattle and London in sequence;
//     they are copies, so that the tests do not depend on the sample app;
//   - CallHTTP makes one durable HTTP call (durable.CallHTTP) described by
//     its input and returns the final status and body;
//   - Ticket (typed input and output, for the typed clients) publishes the
//     custom status {"stage":"waiting"}, waits for the event "Go", then
//     issues two tickets in parallel with Issue (which fails when the
//     input says so) and returns them, with the custom status
//     {"stage":"issued"};
//   - Versioned branches on its orchestration version ("1" or "2"): it
//     calls StepV1 or StepV2, waits for the event "Go", and calls the same
//     activity again, returning "<before>|<event>|<after>";
//   - VersionedParent continues as new once (input 0), then calls
//     VersionEcho (which returns its version) as a sub-orchestration
//     "<id>-child" and returns [its version, the child's];
//   - HttpStart is the library's generic starter, as in the sample.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-durable/durablefunctions/handler/funcapp"
	"github.com/go-durable/durablefunctions/taskhub/durable"
)

var step = durable.NewActivity("Step", func(ctx context.Context, name string) (string, error) {
	dir := os.Getenv("CRASHTEST_DIR")
	if dir == "" {
		return "", errors.New("CRASHTEST_DIR is not set")
	}
	f, err := os.OpenFile(filepath.Join(dir, "runs.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(name + "\n")
	f.Close()
	if err != nil {
		return "", err
	}
	if name == "two" {
		if err := os.WriteFile(filepath.Join(dir, "blocked"), nil, 0o644); err != nil {
			return "", err
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "release")); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				// Told to stop (the app's stop grace ran out): say so.
				os.WriteFile(filepath.Join(dir, "cancelled"), nil, 0o644)
				return "", ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return "done " + name, nil
})

var crashTest = durable.NewOrchestrator("CrashTest", func(ctx *durable.Context, _ any) ([]string, error) {
	var out []string
	for _, name := range []string{"one", "two", "three"} {
		s, err := step.Call(ctx, name).Await()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

var waiter = durable.NewOrchestrator("Waiter", func(ctx *durable.Context, _ any) (any, error) {
	return durable.WaitForExternalEvent[any](ctx, "Go").Await()
})

var echo = durable.NewOrchestrator("Echo", func(ctx *durable.Context, in any) (any, error) { return in, nil })

var fragile = durable.NewActivity("Fragile", func(ctx context.Context, _ any) (string, error) {
	if _, err := os.Stat(filepath.Join(os.Getenv("CRASHTEST_DIR"), "heal")); err != nil {
		return "", errors.New("not healed yet")
	}
	return "healed", nil
})

var flaky = durable.NewOrchestrator("Flaky", func(ctx *durable.Context, _ any) (string, error) {
	first, err := step.Call(ctx, "before").Await()
	if err != nil {
		return "", err
	}
	second, err := fragile.Call(ctx, nil).Await()
	return first + ", " + second, err
})

// LoadInput is the input of Load.
type LoadInput struct {
	Tag     string `json:"tag"`
	Steps   int    `json:"steps"`
	SleepMs int    `json:"sleepMs"`
}

// workInput is the input of Work.
type workInput struct {
	Tag     string `json:"tag"`
	Step    int    `json:"step"`
	SleepMs int    `json:"sleepMs"`
}

var work = durable.NewActivity("Work", func(ctx context.Context, in workInput) (string, error) {
	if path := os.Getenv("WORKLOG"); path != "" {
		info, _ := durable.ActivityInfoFrom(ctx)
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return "", err
		}
		// One short O_APPEND write per run: lines from several processes
		// never interleave.
		_, err = fmt.Fprintf(f, "%s %d\n", info.InstanceID, info.TaskID)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(time.Duration(in.SleepMs) * time.Millisecond):
	}
	return fmt.Sprintf("%s/%d", in.Tag, in.Step), nil
})

var load = durable.NewOrchestrator("Load", func(ctx *durable.Context, in LoadInput) ([]string, error) {
	out := []string{}
	for step := 1; step <= in.Steps; step++ {
		s, err := work.Call(ctx, workInput{Tag: in.Tag, Step: step, SleepMs: in.SleepMs}).Await()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

// hello greets a city: "Tokyo" → "Hello Tokyo!".
var hello = durable.NewActivity("Hello", func(ctx context.Context, city string) (string, error) {
	return "Hello " + city + "!", nil
})

// orchestrator returns ["Hello Tokyo!","Hello Seattle!","Hello London!"].
var orchestrator = durable.NewOrchestrator("Orchestrator", func(ctx *durable.Context, _ any) ([]string, error) {
	var outputs []string
	for _, city := range []string{"Tokyo", "Seattle", "London"} {
		greeting, err := hello.Call(ctx, city).Await()
		if err != nil {
			return nil, err
		}
		outputs = append(outputs, greeting)
	}
	return outputs, nil
})

// httpCallInput is the input of CallHTTP.
type httpCallInput struct {
	Method   string              `json:"method"`
	URL      string              `json:"url"`
	Body     string              `json:"body,omitempty"`
	Headers  durable.HTTPHeaders `json:"headers,omitempty"`  // {"name":"value"} or {"name":["v1","v2"]}
	Resource string              `json:"resource,omitempty"` // managed-identity token for this resource
}

// httpCallOutput is the output of CallHTTP.
type httpCallOutput struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

var callHTTP = durable.NewOrchestrator("CallHTTP", func(ctx *durable.Context, in httpCallInput) (httpCallOutput, error) {
	req := durable.HTTPRequest{Method: in.Method, URL: in.URL, Body: in.Body}
	req.Headers = in.Headers
	if in.Resource != "" {
		req.TokenSource = durable.ManagedIdentityToken(in.Resource)
	}
	resp, err := durable.CallHTTP(ctx, req).Await()
	if err != nil {
		return httpCallOutput{}, err
	}
	return httpCallOutput{Status: resp.StatusCode, Body: resp.Body}, nil
})

// TicketRequest is the input of Ticket and Issue.
type TicketRequest struct {
	Name string `json:"name"`
	Fail bool   `json:"fail"`
}

// TicketProgress is Ticket's custom status.
type TicketProgress struct {
	Stage string `json:"stage"`
	Name  string `json:"name"`
}

var issue = durable.NewActivity("Issue", func(ctx context.Context, r TicketRequest) (string, error) {
	if r.Fail {
		return "", errors.New("no seats left for " + r.Name)
	}
	return "ticket for " + r.Name, nil
})

var ticket = durable.NewOrchestrator("Ticket", func(ctx *durable.Context, r TicketRequest) ([]string, error) {
	if err := ctx.SetCustomStatus(TicketProgress{Stage: "waiting", Name: r.Name}); err != nil {
		return nil, err
	}
	if _, err := durable.WaitForExternalEvent[bool](ctx, "Go").Await(); err != nil {
		return nil, err
	}
	tickets, err := durable.All(ctx, issue.Call(ctx, r), issue.Call(ctx, TicketRequest{Name: r.Name + " (guest)", Fail: r.Fail}))
	if err != nil {
		return nil, err
	}
	return tickets, ctx.SetCustomStatus(TicketProgress{Stage: "issued", Name: r.Name})
})

// stepV1 and stepV2 are the version-specific steps of Versioned.
var (
	stepV1 = durable.NewActivity("StepV1", func(ctx context.Context, when string) (string, error) { return "v1 " + when, nil })
	stepV2 = durable.NewActivity("StepV2", func(ctx context.Context, when string) (string, error) { return "v2 " + when, nil })
)

var versioned = durable.NewOrchestrator("Versioned", func(ctx *durable.Context, _ any) (string, error) {
	var step *durable.Activity[string, string]
	switch ctx.Version() {
	case "1":
		step = stepV1
	case "2":
		step = stepV2
	default:
		return "", fmt.Errorf("no code path for version %q", ctx.Version())
	}
	before, err := step.Call(ctx, "before").Await()
	if err != nil {
		return "", err
	}
	ev, err := durable.WaitForExternalEvent[string](ctx, "Go").Await()
	if err != nil {
		return "", err
	}
	after, err := step.Call(ctx, "after").Await()
	return before + "|" + ev + "|" + after, err
})

var versionEcho = durable.NewOrchestrator("VersionEcho", func(ctx *durable.Context, _ any) (string, error) {
	return ctx.Version(), nil
})

var versionedParent = durable.NewOrchestrator("VersionedParent", func(ctx *durable.Context, gen int) ([]string, error) {
	if gen == 0 {
		return nil, ctx.ContinueAsNew(1)
	}
	child, err := versionEcho.Call(ctx, nil, durable.WithInstanceID(ctx.InstanceID()+"-child")).Await()
	return []string{ctx.Version(), child}, err
})

func main() {
	funcapp.Main(func(app *funcapp.App) error {
		return app.Handler.HandleHTTP("HttpStart", app.API.HandleStart)
	}, crashTest, step, waiter, echo, fragile, flaky, load, work, orchestrator, hello, callHTTP,
		ticket, issue, versioned, stepV1, stepV2, versionEcho, versionedParent)
}
