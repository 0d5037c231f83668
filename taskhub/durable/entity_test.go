package durable

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// errNegative is the application error the test Counter fails with.
var errNegative = NewError("Negative", "negative amount", nil)

// scheduledAt is when the test Counter's "later" operation signals.
var scheduledAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newCounter defines the Counter entity of the tests: add, reset, get (and
// the implicit delete), plus operations that fail after a state change,
// that send signals and starts, and that cannot encode what they send.
func newCounter() *Entity[int] {
	return NewEntity("Counter", Operations[int]{
		"add": Op(func(ctx *EntityContext[int], n int) error {
			if n < 0 {
				return errNegative
			}
			ctx.SetState(ctx.State() + n)
			return nil
		}),
		"reset": Op(func(ctx *EntityContext[int], _ struct{}) error {
			ctx.SetState(0)
			return nil
		}),
		"get": OpResult(func(ctx *EntityContext[int], _ struct{}) (int, error) {
			return ctx.State(), nil
		}),
		"addThenFail": Op(func(ctx *EntityContext[int], n int) error {
			ctx.SetState(ctx.State() + n)
			ctx.Return("not seen")
			return NewError("Boom", "boom", map[string]int{"n": n})
		}),
		"addThenPanic": Op(func(ctx *EntityContext[int], n int) error {
			ctx.SetState(ctx.State() + n)
			panic(fmt.Sprintf("panic after adding %d", n))
		}),
		// notify adds n, tells the entity "@counter@other" and starts
		// "Report"; a negative n fails after sending.
		"notify": Op(func(ctx *EntityContext[int], n int) error {
			ctx.SetState(ctx.State() + n)
			ctx.SignalEntity(NewEntityID("Counter", "other"), "add", n)
			id := ctx.StartOrchestration("Report", n)
			ctx.Return(id)
			if n < 0 {
				return errNegative
			}
			return nil
		}),
		"later": Op(func(ctx *EntityContext[int], n int) error {
			ctx.SignalEntityAt(ctx.ID(), "add", n, scheduledAt)
			return nil
		}),
		"badTarget": Op(func(ctx *EntityContext[int], key string) error {
			ctx.SetState(100)
			ctx.SignalEntity(NewEntityID("Counter", key), "add", 1)
			return nil
		}),
		"badSignal": Op(func(ctx *EntityContext[int], _ struct{}) error {
			ctx.SetState(100)
			ctx.SignalEntity(NewEntityID("Counter", "other"), "add", make(chan int))
			return nil
		}),
	})
}

func counterRegistry(t *testing.T) *Registry {
	t.Helper()
	reg := NewRegistry()
	if err := reg.Add(newCounter()); err != nil {
		t.Fatal(err)
	}
	return reg
}

// call and signal build requests; the request ID is the position.
func call(op, input string) replay.EntityRequest {
	return replay.EntityRequest{Operation: op, Input: input}
}
func signal(op, input string) replay.EntityRequest {
	return replay.EntityRequest{Operation: op, Input: input, IsSignal: true}
}

// runBatch runs requests on entity name/key of reg as the engine would:
// through replay.LookupEntity.
func runBatch(t *testing.T, reg *Registry, name, key string, state *string, reqs ...replay.EntityRequest) replay.EntityBatchResult {
	t.Helper()
	fn, ok := replay.LookupEntity(reg, name)
	if !ok {
		t.Fatalf("entity %q is not registered", name)
	}
	b := replay.EntityBatch{ID: history.NewEntityID(name, key), Requests: append([]replay.EntityRequest(nil), reqs...)}
	if state != nil {
		b.State, b.HasState = *state, true
	}
	for i := range b.Requests {
		if b.Requests[i].RequestID == "" {
			b.Requests[i].RequestID = fmt.Sprintf("req-%d", i)
		}
	}
	return fn(context.Background(), b)
}

func ptr(s string) *string { return &s }

// outcome is a result in short: "=result" for a success, "!Type: message
// part" for a failure.
func outcome(r replay.EntityOperationResult) string {
	if r.Failure != nil {
		return "!" + r.Failure.ErrorType + ": " + r.Failure.ErrorMessage
	}
	return "=" + r.Result
}

func TestEntityBatch(t *testing.T) {
	tests := []struct {
		name  string
		state *string // nil: no state
		reqs  []replay.EntityRequest
		want  []string // outcomes; a failure matches by prefix
		final *string
	}{
		{"operations see the previous state", nil,
			[]replay.EntityRequest{signal("add", "1"), signal("add", "2"), call("get", "")},
			[]string{"=", "=", "=3"}, ptr("3")},
		{"state from a previous batch", ptr("40"),
			[]replay.EntityRequest{call("add", "2"), call("get", "")},
			[]string{"=", "=42"}, ptr("42")},
		{"reset", ptr("40"),
			[]replay.EntityRequest{signal("reset", ""), call("get", "")},
			[]string{"=", "=0"}, ptr("0")},
		{"a failing operation rolls back, the batch goes on", nil,
			[]replay.EntityRequest{signal("add", "1"), call("addThenFail", "10"), call("add", "-1"), signal("add", "1"), call("get", "")},
			[]string{"=", "!Boom: boom", "!Negative: negative amount", "=", "=2"}, ptr("2")},
		{"a panicking operation rolls back, the batch goes on", ptr("5"),
			[]replay.EntityRequest{call("addThenPanic", "10"), signal("add", "1"), call("get", "")},
			[]string{`!panic: entity @counter@c operation "addThenPanic" panicked: panic after adding 10`, "=", "=6"}, ptr("6")},
		{"a signal gets no result", ptr("7"),
			[]replay.EntityRequest{signal("get", ""), call("get", "")},
			[]string{"=", "=7"}, ptr("7")},
		{"delete, then a fresh state", ptr("9"),
			[]replay.EntityRequest{signal("delete", ""), call("get", ""), signal("add", "2"), call("get", "")},
			[]string{"=", "=0", "=", "=2"}, ptr("2")},
		{"delete is the last word", ptr("9"),
			[]replay.EntityRequest{signal("add", "1"), call("DELETE", "")},
			[]string{"=", "="}, nil},
		{"reading no state creates none", nil,
			[]replay.EntityRequest{call("get", "")},
			[]string{"=0"}, nil},
		{"operation names are case-insensitive", nil,
			[]replay.EntityRequest{signal("ADD", "3"), call("Get", "")},
			[]string{"=", "=3"}, ptr("3")},
		{"unknown operation", ptr("1"),
			[]replay.EntityRequest{call("multiply", "2"), call("get", "")},
			[]string{`!UnknownOperationError: entity "counter" (@counter@c) has no operation "multiply"`, "=1"}, ptr("1")},
		{"input that does not fit", ptr("1"),
			[]replay.EntityRequest{call("add", `"two"`), call("add", `{`), call("get", "")},
			[]string{`!InputError: entity "counter" operation "add": input does not fit type int: json: cannot unmarshal string`,
				`!InputError: entity "counter" operation "add": input does not fit type int: unexpected end of JSON input`, "=1"}, ptr("1")},
		{"stored state that does not fit is kept until overwritten", ptr(`"abc"`),
			[]replay.EntityRequest{call("get", ""), call("add", "1"), signal("reset", ""), call("get", "")},
			[]string{`!EntityStateError: entity @counter@c: stored state does not fit type int: json: cannot unmarshal string`,
				`!EntityStateError: entity @counter@c: stored state does not fit type int`, "=", "=0"}, ptr("0")},
		{"a signal to an invalid entity ID fails the operation", ptr("1"),
			[]replay.EntityRequest{call("badTarget", `""`), call("badTarget", `"a/b"`), call("get", "")},
			[]string{`!Error: durable: @counter@c operation "badTarget": signal "add": history: invalid entity ID "@counter@": the entity key is empty`,
				`!Error: durable: @counter@c operation "badTarget": signal "add": history: invalid entity ID "@counter@a/b": the entity key may not contain '/' (at byte 1)`, "=1"}, ptr("1")},
		{"an unencodable signal input fails the operation", ptr("1"),
			[]replay.EntityRequest{call("badSignal", ""), call("get", "")},
			[]string{`!json.UnsupportedTypeError: durable: @counter@c operation "badSignal": input of the signal "add" to @counter@other: durable: cannot encode chan int as JSON`, "=1"}, ptr("1")},
	}
	reg := counterRegistry(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runBatch(t, reg, "Counter", "c", tc.state, tc.reqs...)
			if len(got.Results) != len(tc.reqs) {
				t.Fatalf("%d results for %d requests: %+v", len(got.Results), len(tc.reqs), got.Results)
			}
			for i, r := range got.Results {
				o := outcome(r)
				if w := tc.want[i]; o != w && !(strings.HasPrefix(w, "!") && strings.HasPrefix(o, w)) {
					t.Errorf("request %d (%s %s): got %s, want %s", i, tc.reqs[i].Operation, tc.reqs[i].Input, o, w)
				}
				if r.RequestID != fmt.Sprintf("req-%d", i) || r.IsSignal != tc.reqs[i].IsSignal {
					t.Errorf("request %d: result names request %q (signal %v)", i, r.RequestID, r.IsSignal)
				}
				// The operation's times (its span's), in order, failed or not.
				if r.StartTime.IsZero() || r.EndTime.Before(r.StartTime) || i > 0 && r.StartTime.Before(got.Results[i-1].EndTime) {
					t.Errorf("request %d: times %v..%v (previous ended %v)", i, r.StartTime, r.EndTime, got.Results[max(i-1, 0)].EndTime)
				}
			}
			switch {
			case tc.final == nil && got.HasState:
				t.Errorf("final state %s, want none", got.State)
			case tc.final != nil && (!got.HasState || got.State != *tc.final):
				t.Errorf("final state %q (exists %v), want %s", got.State, got.HasState, *tc.final)
			}
			if len(got.Actions) != 0 {
				t.Errorf("actions %+v, want none", got.Actions)
			}
		})
	}
}

// TestEntityFailureDetails: a failed operation's failure is recorded as an
// activity's would be: type, message, details, stack of a panic.
func TestEntityFailureDetails(t *testing.T) {
	got := runBatch(t, counterRegistry(t), "counter", "c", nil, call("addThenFail", "10"), call("addThenPanic", "1"))
	fd := got.Results[0].Failure
	if want := failureFromError(NewError("Boom", "boom", map[string]int{"n": 10})); !reflect.DeepEqual(fd, want) {
		t.Errorf("failure %+v, want %+v", fd, want)
	}
	if fd.Properties[DetailsProperty].(map[string]any)["n"] != 10.0 {
		t.Errorf("details %v", fd.Properties)
	}
	if got.Results[0].Result != "" {
		t.Errorf("a failed call returned %q", got.Results[0].Result)
	}
	if p := got.Results[1].Failure; p.ErrorType != "panic" || !strings.Contains(p.StackTrace, "entity_test.go") {
		t.Errorf("panic failure %+v lacks the stack", p)
	}
}

// TestEntityAcrossBatches carries the state of one batch into the next as
// JSON, as the engine stores it.
func TestEntityAcrossBatches(t *testing.T) {
	reg := NewRegistry()
	type tally struct {
		Total int            `json:"total"`
		By    map[string]int `json:"by"`
	}
	e := NewEntity("Tally", Operations[tally]{
		"add": Op(func(ctx *EntityContext[tally], in struct {
			Who string
			N   int
		}) error {
			s := ctx.State()
			s.Total += in.N
			s.By[in.Who] += in.N // in place: the map is written back
			ctx.SetState(s)
			return nil
		}),
		"forget": Op(func(ctx *EntityContext[tally], who string) error {
			delete(ctx.State().By, who) // in place only, no SetState
			return nil
		}),
		"forgetThenFail": Op(func(ctx *EntityContext[tally], who string) error {
			delete(ctx.State().By, who) // rolled back with the failure
			return errNegative
		}),
	}).WithInitialState(func() tally { return tally{By: map[string]int{}} })
	if err := reg.Add(e); err != nil {
		t.Fatal(err)
	}
	var state *string
	batches := [][]replay.EntityRequest{
		{signal("add", `{"Who":"ann","N":2}`), signal("add", `{"Who":"bob","N":3}`)},
		{signal("add", `{"Who":"ann","N":5}`)},
		{signal("forgetThenFail", `"ann"`), signal("forget", `"bob"`), signal("forgetThenFail", `"ann"`)},
	}
	wants := []string{`{"total":5,"by":{"ann":2,"bob":3}}`, `{"total":10,"by":{"ann":7,"bob":3}}`, `{"total":10,"by":{"ann":7}}`}
	for i, b := range batches {
		got := runBatch(t, reg, "tally", "k", state, b...)
		for j, r := range got.Results {
			if failed := strings.HasSuffix(b[j].Operation, "ThenFail"); (r.Failure != nil) != failed {
				t.Fatalf("batch %d request %d: failure %v, want failed %v", i, j, r.Failure, failed)
			}
		}
		if !got.HasState || got.State != wants[i] {
			t.Fatalf("batch %d: state %s, want %s", i, got.State, wants[i])
		}
		state = &got.State
	}
}

// TestEntityActions: the signals and starts of successful operations are
// the batch's actions, in order, with IDs that a rerun reproduces; those of
// a failed operation are dropped.
func TestEntityActions(t *testing.T) {
	reg := counterRegistry(t)
	reqs := []replay.EntityRequest{call("notify", "1"), call("notify", "-5"), signal("later", "4"), call("notify", "2")}
	got := runBatch(t, reg, "Counter", "c", nil, reqs...)
	if got.State != "3" {
		t.Errorf("state %s, want 3", got.State)
	}
	type short struct {
		Kind                        replay.EntityActionKind
		Request                     int
		Target, Op, Input, Name, At string
	}
	var shorts []short
	for _, a := range got.Actions {
		s := short{Kind: a.Kind, Request: a.Request, Op: a.Operation, Input: a.Input, Name: a.Name}
		if a.Kind == replay.EntitySignal {
			s.Target = a.Target.String()
		}
		if !a.ScheduledTime.IsZero() {
			s.At = a.ScheduledTime.Format(time.RFC3339)
		}
		shorts = append(shorts, s)
	}
	want := []short{
		{Kind: replay.EntitySignal, Request: 0, Target: "@counter@other", Op: "add", Input: "1"},
		{Kind: replay.EntityStartOrchestration, Request: 0, Input: "1", Name: "Report"},
		{Kind: replay.EntitySignal, Request: 2, Target: "@counter@c", Op: "add", Input: "4", At: "2026-01-02T03:04:05Z"},
		{Kind: replay.EntitySignal, Request: 3, Target: "@counter@other", Op: "add", Input: "2"},
		{Kind: replay.EntityStartOrchestration, Request: 3, Input: "2", Name: "Report"},
	}
	if !reflect.DeepEqual(shorts, want) {
		t.Fatalf("actions\n%+v\nwant\n%+v", shorts, want)
	}
	// The start's instance ID is the call's result; IDs are distinct.
	if res := got.Results[0].Result; res != `"`+got.Actions[1].InstanceID+`"` {
		t.Errorf("notify returned %s, the start has ID %q", res, got.Actions[1].InstanceID)
	}
	ids := map[string]bool{}
	for _, a := range got.Actions {
		id := a.RequestID + a.InstanceID
		if id == "" || ids[id] {
			t.Errorf("action %+v: ID %q empty or repeated", a, id)
		}
		ids[id] = true
	}
	// A rerun of the same batch (after a crash) sends the same IDs.
	// (Only the operations' times differ.)
	again := runBatch(t, reg, "Counter", "c", nil, reqs...)
	for _, b := range []*replay.EntityBatchResult{&again, &got} {
		for i := range b.Results {
			b.Results[i].StartTime, b.Results[i].EndTime = time.Time{}, time.Time{}
		}
	}
	if !reflect.DeepEqual(again, got) {
		t.Errorf("rerun differs:\n%+v\n%+v", again, got)
	}
}

func TestEntityStartOptions(t *testing.T) {
	reg := NewRegistry()
	e := NewEntity("Starter", Operations[struct{}]{
		"start": Op(func(ctx *EntityContext[struct{}], with string) error {
			switch with {
			case "id":
				ctx.StartOrchestration("Job", nil, WithInstanceID("job-1"), WithVersion("v2"))
			case "retry":
				ctx.StartOrchestration("Job", nil, WithRetry(RetryPolicy{MaxAttempts: 2}))
			case "noname":
				ctx.StartOrchestration("", nil)
			}
			return nil
		}),
	})
	if err := reg.Add(e); err != nil {
		t.Fatal(err)
	}
	got := runBatch(t, reg, "starter", "k", nil, call("start", `"id"`), call("start", `"retry"`), call("start", `"noname"`))
	if len(got.Actions) != 1 || got.Actions[0].InstanceID != "job-1" || got.Actions[0].Version == nil || *got.Actions[0].Version != "v2" {
		t.Errorf("actions %+v, want one start of job-1 at v2", got.Actions)
	}
	wantFail := []string{"", "WithRetry and WithTimeout do not apply", "no orchestrator name"}
	for i, w := range wantFail {
		f := got.Results[i].Failure
		if (w == "") != (f == nil) || f != nil && !strings.Contains(f.ErrorMessage, w) {
			t.Errorf("request %d: failure %v, want %q", i, f, w)
		}
	}
}

// TestEntityFunc: the function form dispatches itself, reads input with
// Input, and answers unknown operations with UnknownOperation.
func TestEntityFunc(t *testing.T) {
	reg := NewRegistry()
	e := NewEntityFunc("Greeter", func(ctx *EntityContext[string]) error {
		switch ctx.Operation() {
		case "set":
			var name string
			if err := ctx.Input(&name); err != nil {
				return err
			}
			ctx.SetState(name)
		case "greet":
			ctx.Return("hello " + ctx.State() + " from " + ctx.ID().Key)
		default:
			return ctx.UnknownOperation()
		}
		return nil
	})
	if err := reg.Add(e); err != nil {
		t.Fatal(err)
	}
	got := runBatch(t, reg, "GREETER", "k1", nil, signal("set", `"ann"`), call("greet", ""), call("delete", ""), call("set", "1"))
	want := []string{"=", `="hello ann from k1"`, `!UnknownOperationError: entity "greeter" (@greeter@k1) has no operation "delete"`,
		`!InputError: entity "greeter" operation "set": input does not fit type string: json: cannot unmarshal number`}
	for i, r := range got.Results {
		if o := outcome(r); o != want[i] && !(strings.HasPrefix(want[i], "!") && strings.HasPrefix(o, want[i])) {
			t.Errorf("request %d: %s, want %s", i, o, want[i])
		}
	}
	if got.State != `"ann"` {
		t.Errorf("state %s", got.State)
	}
}

func TestEntityRegistry(t *testing.T) {
	noop := Operations[int]{"x": func(*EntityContext[int]) error { return nil }}
	tests := []struct {
		name    string
		defs    []Definition
		wantErr string
		names   []string
	}{
		{"one", []Definition{NewEntity("Counter", noop)}, "", []string{"counter"}},
		{"two", []Definition{NewEntity("B", noop), NewEntity("a", noop)}, "", []string{"a", "b"}},
		{"same name in another case", []Definition{NewEntity("Counter", noop), NewEntity("COUNTER", noop)},
			`durable: entity "counter" registered twice (as "Counter" and "COUNTER"; entity names are case-insensitive)`, []string{"counter"}},
		{"an activity of the same name is no clash", []Definition{NewEntity("Counter", noop),
			NewActivity("Counter", func(context.Context, int) (int, error) { return 0, nil })}, "", []string{"counter"}},
		{"empty name", []Definition{NewEntity("", noop)}, "durable: cannot register a function with an empty name", []string{}},
		{"@ in the name", []Definition{NewEntity("a@b", noop)}, `durable: entity name "a@b" cannot be registered: history: invalid entity ID "@a@b@key": the entity name may not contain '@' (at byte 1)`, []string{}},
		{"operations that differ in case", []Definition{NewEntity("E", Operations[int]{"add": noop["x"], "Add": noop["x"]})},
			`durable: entity "E" defines operation`, []string{}},
		{"no code", []Definition{NewEntityFunc[int]("E", nil)}, `durable: entity "E" has no code`, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := NewRegistry()
			err := reg.Add(tc.defs...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)) {
				t.Errorf("Add: %v, want %q", err, tc.wantErr)
			}
			if got := reg.EntityNames(); !reflect.DeepEqual(got, tc.names) {
				t.Errorf("EntityNames = %q, want %q", got, tc.names)
			}
			for _, n := range tc.names {
				for _, alias := range []string{n, strings.ToUpper(n)} {
					if _, ok := replay.LookupEntity(reg, alias); !ok {
						t.Errorf("LookupEntity(%q) found nothing", alias)
					}
				}
			}
		})
	}
	if _, ok := replay.LookupEntity(NewRegistry(), "counter"); ok {
		t.Error("LookupEntity found an entity in an empty registry")
	}
	if id := newCounter().ID("K"); id.String() != "@counter@K" {
		t.Errorf("ID = %s", id)
	}
}

// BenchmarkEntityBatch runs batches of 100 "add" signals on the Counter:
// the executor's own cost per operation (decode, run, encode).
func BenchmarkEntityBatch(b *testing.B) {
	reg := NewRegistry()
	if err := reg.Add(newCounter()); err != nil {
		b.Fatal(err)
	}
	fn, _ := replay.LookupEntity(reg, "counter")
	batch := replay.EntityBatch{ID: NewEntityID("counter", "b"), State: "0", HasState: true}
	for i := 0; i < 100; i++ {
		batch.Requests = append(batch.Requests, replay.EntityRequest{Operation: "add", Input: "1", IsSignal: true, RequestID: strconv.Itoa(i)})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := fn(context.Background(), batch)
		if out.State != "100" {
			b.Fatalf("state %s", out.State)
		}
	}
	b.ReportMetric(float64(b.N*len(batch.Requests))/b.Elapsed().Seconds(), "ops/s")
}

// TestEntityLogger: an operation's logger names the entity and operation.
func TestEntityLogger(t *testing.T) {
	var buf bytes.Buffer
	reg := NewRegistry()
	e := NewEntityFunc("Logs", func(ctx *EntityContext[int]) error {
		ctx.Logger().Info("hi")
		return nil
	})
	if err := reg.Add(e); err != nil {
		t.Fatal(err)
	}
	fn, _ := replay.LookupEntity(reg, "logs")
	fn(context.Background(), replay.EntityBatch{ID: NewEntityID("logs", "k"), Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		Requests: []replay.EntityRequest{{Operation: "one"}, {Operation: "two"}}})
	for _, want := range []string{"msg=hi entity=@logs@k operation=one\n", "msg=hi entity=@logs@k operation=two\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
}
