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
//   - Upgrading is an eternal orchestration upgraded by ContinueAsNew: at
//     version 1 it continues as new at version 2 (durable.WithNewVersion),
//     at version 2 it returns "version 2 after <input>";
//   - TypedErrors calls Charge, whose typed failures (durable.Error) are
//     retried or not by their type and NonRetriable marker, directly and
//     through the sub-orchestration ChargeChild, and reports what errors.Is
//     and errors.As saw; Charge appends a line to attempts-<key> in
//     CRASHTEST_DIR on every run;
//   - Timeouts calls Block (which waits until its context ends and writes
//     what ended it to cancelled-<key>) and the sub-orchestration Waiter,
//     each WithTimeout(2s), and reports both timeouts;
//   - Counter is an entity of an int: add (int input), reset, get (returns
//     the value); a copy of the sample's, as Orchestrator and Hello are,
//     except that each add takes COUNTER_ADD_DELAY (default none);
//   - CounterAdder, Account, Transfer, Audit and Overdraw: see entities.go;
//   - HttpStart is the library's generic starter, as in the sample.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// wakeTimer waits on a durable timer of its input in seconds and returns
// the timer's fire time (RFC 3339).
var wakeTimer = durable.NewOrchestrator("WakeTimer", func(ctx *durable.Context, seconds int) (string, error) {
	fireAt := ctx.CurrentTime().Add(time.Duration(seconds) * time.Second)
	if _, err := ctx.CreateTimer(fireAt).Await(); err != nil {
		return "", err
	}
	return fireAt.Format(time.RFC3339Nano), nil
})

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
	// TimeoutSeconds bounds the whole call (0 = none); the timer of a call
	// that finishes in time is cancelled.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// httpCallOutput is the output of CallHTTP.
type httpCallOutput struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

var callHTTP = durable.NewOrchestrator("CallHTTP", func(ctx *durable.Context, in httpCallInput) (httpCallOutput, error) {
	req := durable.HTTPRequest{Method: in.Method, URL: in.URL, Body: in.Body}
	req.Headers = in.Headers
	req.Timeout = time.Duration(in.TimeoutSeconds) * time.Second
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

var upgrading = durable.NewOrchestrator("Upgrading", func(ctx *durable.Context, from string) (string, error) {
	if ctx.Version() == "1" {
		return "", ctx.ContinueAsNew("1", durable.WithNewVersion("2"))
	}
	return "version " + ctx.Version() + " after " + from, nil
})

var versionedParent = durable.NewOrchestrator("VersionedParent", func(ctx *durable.Context, gen int) ([]string, error) {
	if gen == 0 {
		return nil, ctx.ContinueAsNew(1)
	}
	child, err := versionEcho.Call(ctx, nil, durable.WithInstanceID(ctx.InstanceID()+"-child")).Await()
	return []string{ctx.Version(), child}, err
})

// ChargeInput is the input of Charge: Mode "busy" fails Fails times with
// a retriable GatewayBusy error, then succeeds; "declined" fails with a
// retriable CardDeclined error; "fatal" fails with a NonRetriable one.
type ChargeInput struct {
	Key   string `json:"key"`
	Mode  string `json:"mode"`
	Fails int    `json:"fails"`
}

// DeclineDetails are the details of a CardDeclined error.
type DeclineDetails struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// errDeclined is the sentinel the orchestrators match CardDeclined with.
var errDeclined = durable.NewError("CardDeclined", "card declined", nil)

var charge = durable.NewActivity("Charge", func(ctx context.Context, in ChargeInput) (string, error) {
	path := filepath.Join(os.Getenv("CRASHTEST_DIR"), "attempts-"+in.Key)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString("attempt\n")
	f.Close()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	attempt := strings.Count(string(b), "\n")
	details := DeclineDetails{Code: 51, Reason: "insufficient funds"}
	switch in.Mode {
	case "busy":
		if attempt <= in.Fails {
			return "", durable.NewError("GatewayBusy", fmt.Sprintf("gateway busy (attempt %d)", attempt), map[string]int{"attempt": attempt})
		}
		return fmt.Sprintf("charged %s on attempt %d", in.Key, attempt), nil
	case "declined":
		return "", durable.NewError("CardDeclined", "card declined", details)
	case "fatal":
		return "", durable.NonRetriable(durable.NewError("CardDeclined", "card declined for good", details))
	}
	return "", fmt.Errorf("Charge: unknown mode %q", in.Mode)
})

// chargeChild charges its input without retries and re-raises the failure.
var chargeChild = durable.NewOrchestrator("ChargeChild", func(ctx *durable.Context, in ChargeInput) (string, error) {
	out, err := charge.Call(ctx, in).Await()
	if err != nil {
		return "", fmt.Errorf("child could not charge: %w", err)
	}
	return out, nil
})

// Seen is what TypedErrors reports about one failed call.
type Seen struct {
	IsDeclined   bool   `json:"isDeclined"`
	Type         string `json:"type"`
	Message      string `json:"message"`
	NonRetriable bool   `json:"nonRetriable"`
	Code         int    `json:"code"`
}

func seen(err error) (Seen, error) {
	var ae *durable.Error
	if !errors.As(err, &ae) {
		return Seen{}, fmt.Errorf("not an application error: %w", err)
	}
	var d DeclineDetails
	if err := ae.Details(&d); err != nil {
		return Seen{}, err
	}
	return Seen{IsDeclined: errors.Is(err, errDeclined), Type: ae.Type, Message: ae.Message, NonRetriable: ae.NonRetriable, Code: d.Code}, nil
}

// TypedErrorsOutput is the output of TypedErrors.
type TypedErrorsOutput struct {
	Busy  string `json:"busy"`
	Fatal Seen   `json:"fatal"`
	Child Seen   `json:"child"`
}

var typedErrors = durable.NewOrchestrator("TypedErrors", func(ctx *durable.Context, key string) (TypedErrorsOutput, error) {
	var out TypedErrorsOutput
	retryAll := durable.RetryPolicy{MaxAttempts: 5, FirstRetryInterval: 200 * time.Millisecond}
	busy, err := charge.Call(ctx, ChargeInput{Key: key + "-busy", Mode: "busy", Fails: 2}, durable.WithRetry(retryAll)).Await()
	if err != nil {
		return out, err
	}
	out.Busy = busy
	// Retried by the policy, but NonRetriable stops it after one attempt.
	_, err = charge.Call(ctx, ChargeInput{Key: key + "-fatal", Mode: "fatal"}, durable.WithRetry(retryAll)).Await()
	if out.Fatal, err = seen(err); err != nil {
		return out, err
	}
	// The README's predicate: a child re-raising CardDeclined is not retried.
	notDeclined := retryAll
	notDeclined.Handle = func(err error) bool { return !errors.Is(err, errDeclined) }
	_, err = chargeChild.Call(ctx, ChargeInput{Key: key + "-child", Mode: "declined"},
		durable.WithRetry(notDeclined), durable.WithInstanceID(ctx.InstanceID()+"-child")).Await()
	if out.Child, err = seen(err); err != nil {
		return out, err
	}
	return out, nil
})

var block = durable.NewActivity("Block", func(ctx context.Context, key string) (string, error) {
	<-ctx.Done()
	cause := ctx.Err().Error()
	if info, ok := durable.ActivityInfoFrom(ctx); ok && !info.Deadline.IsZero() {
		cause += " at deadline " + info.Deadline.Format(time.RFC3339Nano)
	}
	os.WriteFile(filepath.Join(os.Getenv("CRASHTEST_DIR"), "cancelled-"+key), []byte(cause), 0o644)
	return "", ctx.Err()
})

var timeouts = durable.NewOrchestrator("Timeouts", func(ctx *durable.Context, key string) ([]string, error) {
	a := block.Call(ctx, key, durable.WithTimeout(2*time.Second))
	c := durable.CallSubOrchestrator[any](ctx, "Waiter", nil, durable.WithTimeout(2*time.Second), durable.WithInstanceID(ctx.InstanceID()+"-child"))
	_, errA := a.Await()
	_, errC := c.Await()
	var out []string
	for _, err := range []error{errA, errC} {
		var te *durable.TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, durable.ErrTimeout) {
			return nil, fmt.Errorf("want a timeout, got %w", err)
		}
		out = append(out, te.Error())
	}
	return out, nil
})

// counterAddDelay is how long each add takes (COUNTER_ADD_DELAY, default
// none): a crash test stretches the time the adds take.
var counterAddDelay, _ = time.ParseDuration(os.Getenv("COUNTER_ADD_DELAY"))

var counter = durable.NewEntity("Counter", durable.Operations[int]{
	"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		time.Sleep(counterAddDelay)
		ctx.SetState(ctx.State() + n)
		return nil
	}),
	"reset": durable.Op(func(ctx *durable.EntityContext[int], _ any) error {
		ctx.SetState(0)
		return nil
	}),
	"get": durable.OpResult(func(ctx *durable.EntityContext[int], _ any) (int, error) {
		return ctx.State(), nil
	}),
})

func main() {
	funcapp.Main(func(app *funcapp.App) error {
		return app.Handler.HandleHTTP("HttpStart", app.API.HandleStart)
	}, crashTest, step, waiter, echo, wakeTimer, fragile, flaky, load, work, orchestrator, hello, callHTTP,
		ticket, issue, versioned, stepV1, stepV2, versionEcho, versionedParent, upgrading,
		charge, chargeChild, typedErrors, block, timeouts, counter,
		counterAdder, account, transfer, audit, overdraw)
}
