package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// The bench defines its own copy of the sample (the module root's Hello,
// Orchestrator and HttpStart), with the same names and behaviour, so that
// it measures the library and not whatever the sample becomes.

// sampleCities are the sample's inputs, greeted in this order.
var sampleCities = []string{"Tokyo", "Seattle", "London"}

// sampleWant is the sample orchestration's output.
var sampleWant = []string{"Hello Tokyo!", "Hello Seattle!", "Hello London!"}

// helloActivity greets a city: "Tokyo" → "Hello Tokyo!".
var helloActivity = durable.NewActivity("Hello", func(ctx context.Context, city string) (string, error) {
	return "Hello " + city + "!", nil
})

// sampleOrchestrator calls Hello for the three cities in sequence.
var sampleOrchestrator = durable.NewOrchestrator("Orchestrator", func(ctx *durable.Context, _ any) ([]string, error) {
	var outputs []string
	for _, city := range sampleCities {
		greeting, err := helloActivity.Call(ctx, city).Await()
		if err != nil {
			return nil, err
		}
		outputs = append(outputs, greeting)
	}
	return outputs, nil
})

// incActivity returns x+1. While a stepRecorder is armed it also records
// when the activity with input x first ran.
var incActivity = durable.NewActivity("Inc", func(ctx context.Context, x int) (int, error) {
	if r := armed.Load(); r != nil {
		r.mark(x)
	}
	return x + 1, nil
})

// echoActivity returns its input.
var echoActivity = durable.NewActivity("Echo", func(ctx context.Context, x int) (int, error) {
	return x, nil
})

// sequenceOrchestrator starts at 0 and calls Inc n times in a row; it
// returns n.
var sequenceOrchestrator = durable.NewOrchestrator("Sequence", func(ctx *durable.Context, n int) (int, error) {
	x := 0
	for i := 0; i < n; i++ {
		var err error
		if x, err = incActivity.Call(ctx, x).Await(); err != nil {
			return 0, err
		}
	}
	return x, nil
})

// fanOutOrchestrator calls Echo(1..n) in parallel and returns the sum,
// n(n+1)/2.
var fanOutOrchestrator = durable.NewOrchestrator("FanOut", func(ctx *durable.Context, n int) (int, error) {
	tasks := make([]*durable.Task[int], n)
	for i := range tasks {
		tasks[i] = echoActivity.Call(ctx, i+1)
	}
	values, err := durable.All(ctx, tasks...)
	if err != nil {
		return 0, err
	}
	sum := 0
	for _, v := range values {
		sum += v
	}
	return sum, nil
})

// counterEntity is the bench's copy of the sample's Counter: "add" adds
// its int input, "reset" sets 0, "get" returns the state.
var counterEntity = durable.NewEntity("Counter", durable.Operations[int]{
	"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
	"reset": durable.Op(func(ctx *durable.EntityContext[int], _ struct{}) error {
		ctx.SetState(0)
		return nil
	}),
	"get": durable.OpResult(func(ctx *durable.EntityContext[int], _ struct{}) (int, error) {
		return ctx.State(), nil
	}),
})

// signalerInput is the input of EntitySignaler.
type signalerInput struct {
	Keys    []string `json:"keys"`    // the Counters, signalled round-robin
	First   int      `json:"first"`   // the run-wide index of this orchestration's first signal
	Signals int      `json:"signals"` // how many it sends
}

// signalerOrchestrator sends Signals "add" 1 signals: its j-th to Counter
// Keys[(First+j) mod len(Keys)]. It returns Signals.
var signalerOrchestrator = durable.NewOrchestrator("EntitySignaler", func(ctx *durable.Context, in signalerInput) (int, error) {
	if len(in.Keys) == 0 {
		return 0, fmt.Errorf("EntitySignaler: no keys to signal")
	}
	for j := 0; j < in.Signals; j++ {
		id := counterEntity.ID(in.Keys[(in.First+j)%len(in.Keys)])
		if err := ctx.SignalEntity(id, "add", 1); err != nil {
			return 0, err
		}
	}
	return in.Signals, nil
})

// callerInput is the input of EntityCaller.
type callerInput struct {
	Key   string `json:"key"`   // a fresh Counter
	Calls int    `json:"calls"` // sequential "get" calls
}

// callerOrchestrator signals "add" 1 to a fresh Counter, then calls "get"
// on it Calls times in sequence; each must return 1 (a sender's requests
// run in the order sent). It returns Calls.
var callerOrchestrator = durable.NewOrchestrator("EntityCaller", func(ctx *durable.Context, in callerInput) (int, error) {
	id := counterEntity.ID(in.Key)
	if err := ctx.SignalEntity(id, "add", 1); err != nil {
		return 0, err
	}
	for i := 0; i < in.Calls; i++ {
		v, err := durable.CallEntity[int](ctx, id, "get", nil).Await()
		if err != nil {
			return 0, fmt.Errorf("call %d: %w", i+1, err)
		}
		if v != 1 {
			return 0, fmt.Errorf("call %d: get returned %d, want 1 (the signal sent before it)", i+1, v)
		}
	}
	return in.Calls, nil
})

// definitions are the functions the bench registers.
var definitions = []durable.Definition{sampleOrchestrator, helloActivity, sequenceOrchestrator, fanOutOrchestrator, incActivity, echoActivity,
	counterEntity, signalerOrchestrator, callerOrchestrator}

// httpStart is the bench's copy of the sample's client function: POST
// /api/orchestrators/{functionName} starts that orchestrator with the body
// as input and answers 202 with the check-status payload.
func httpStart(c *client.Client, api *durableapi.API) handler.HTTPFunc {
	return func(ctx context.Context, req *handler.Request) *handler.Response {
		id, err := c.StartNew(ctx, req.Params["functionName"], client.StartOptions{RawInput: string(req.Body)})
		if err != nil {
			return api.ClientError(err)
		}
		return api.CheckStatusResponse(req, id)
	}
}

// armed is the stepRecorder that incActivity reports to, if any.
var armed atomic.Pointer[stepRecorder]

// stepRecorder keeps, for each input x of a long sequence, when its
// activity first ran (an activity may run more than once: at least once).
type stepRecorder struct {
	first   []atomic.Int64 // UnixNano; 0 = not yet
	repeats atomic.Int64   // runs of an x that had run before
	outside atomic.Int64   // inputs outside 0..n-1
}

func newStepRecorder(n int) *stepRecorder { return &stepRecorder{first: make([]atomic.Int64, n)} }

func (r *stepRecorder) mark(x int) {
	if x < 0 || x >= len(r.first) {
		r.outside.Add(1)
		return
	}
	if !r.first[x].CompareAndSwap(0, time.Now().UnixNano()) {
		r.repeats.Add(1)
	}
}

// recorded counts the inputs whose activity has run.
func (r *stepRecorder) recorded() int {
	n := 0
	for i := range r.first {
		if r.first[i].Load() != 0 {
			n++
		}
	}
	return n
}

// windows returns the mean time per activity over the first w activities
// and over the last w: the time from the start of activity i to the start
// of activity i+w, divided by w. Every activity must have been recorded,
// in input order.
func (r *stepRecorder) windows(w int) (first, last time.Duration, err error) {
	n := len(r.first)
	if w <= 0 || n < 2*w {
		return 0, 0, fmt.Errorf("window of %d activities needs at least %d activities, have %d", w, 2*w, n)
	}
	t := make([]int64, n)
	for i := range r.first {
		if t[i] = r.first[i].Load(); t[i] == 0 {
			return 0, 0, fmt.Errorf("activity with input %d never ran", i)
		}
		if i > 0 && t[i] < t[i-1] {
			return 0, 0, fmt.Errorf("activity with input %d ran before input %d: the sequence is out of order", i, i-1)
		}
	}
	first = time.Duration(t[w]-t[0]) / time.Duration(w)
	last = time.Duration(t[n-1]-t[n-1-w]) / time.Duration(w)
	return first, last, nil
}

// checkSample checks an orchestration output (JSON text) against the
// sample's.
func checkSample(output string) error {
	var got []string
	if err := json.Unmarshal([]byte(output), &got); err != nil {
		return fmt.Errorf("output %s is not a JSON array of strings: %w", output, err)
	}
	if !slices.Equal(got, sampleWant) {
		return fmt.Errorf("output %s, want %q", output, sampleWant)
	}
	return nil
}

// checkInt checks an orchestration output (JSON text) against want.
func checkInt(output string, want int) error {
	var got int
	if err := json.Unmarshal([]byte(output), &got); err != nil {
		return fmt.Errorf("output %s is not an integer: %w", output, err)
	}
	if got != want {
		return fmt.Errorf("output %d, want %d", got, want)
	}
	return nil
}
