package durable

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// Tests of the orchestration side of entities: the EventSent actions that
// signals, calls and critical sections record, and how responses resolve
// them.

var (
	acctA = NewEntityID("Account", "a")
	acctB = NewEntityID("account", "b")
	acctC = NewEntityID("account", "c")
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// sentRequest decodes the entity request an EventSent action carries.
func sentRequest(t *testing.T, a history.Event) history.EntityRequest {
	t.Helper()
	if a.Type != history.EventSent {
		t.Fatalf("action %v is not an EventSent", describe(a))
	}
	raised := history.NewEvent(history.EventRaised, a.Timestamp)
	raised.Name, raised.Input = a.Name, a.Input
	r, err := history.DecodeEntityRequest(raised)
	if err != nil {
		t.Fatalf("action %v: %v", describe(a), err)
	}
	return r
}

// sentRelease decodes the release an EventSent action carries.
func sentRelease(t *testing.T, a history.Event) history.EntityRelease {
	t.Helper()
	raised := history.NewEvent(history.EventRaised, a.Timestamp)
	raised.Name, raised.Input = a.Name, a.Input
	r, err := history.DecodeEntityRelease(raised)
	if err != nil || a.Type != history.EventSent {
		t.Fatalf("action %v is not a release: %v", describe(a), err)
	}
	return r
}

// evResponse is the response to the request with ID requestID.
func evResponse(t *testing.T, requestID string, r history.EntityResponse) history.Event {
	t.Helper()
	ev, err := history.NewEntityResponseEvent(requestID, r, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// wantRequest is the expected content of one request; the request ID is
// checked for its form, and compared across runs by the tests that need it.
type wantRequest struct {
	eventID     int32
	target      string
	name        string
	operation   string
	signal      bool
	input       string
	timestamp   time.Time
	predecessor time.Time
	due         time.Time
	seq         int64
	predSeq     int64
	lockSet     []EntityID
}

func checkRequests(t *testing.T, label string, actions []history.Event, want []wantRequest) []string {
	t.Helper()
	if len(actions) < len(want) {
		t.Fatalf("%s: %d actions %v, want at least %d requests", label, len(actions), describeActions(actions), len(want))
	}
	var ids []string
	for i, w := range want {
		a := actions[i]
		r := sentRequest(t, a)
		got := wantRequest{eventID: a.EventID, target: a.InstanceID, name: a.Name, operation: r.Operation, signal: r.Signal,
			input: r.Input, timestamp: r.Timestamp, predecessor: r.Predecessor, due: r.Due, seq: r.Seq, predSeq: r.PredSeq, lockSet: r.LockSet}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s: request %d\n  got  %+v\n  want %+v", label, i, got, w)
		}
		if !guidRE.MatchString(r.ID) {
			t.Errorf("%s: request %d has the ID %q, not a lowercase version-5 GUID", label, i, r.ID)
		}
		if r.ParentInstanceID != "inst1" || r.ParentExecutionID != "exec1" || r.Position != 0 {
			t.Errorf("%s: request %d: parent %q/%q position %d, want inst1/exec1 0", label, i, r.ParentInstanceID, r.ParentExecutionID, r.Position)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

// signalsAndCalls sends a mix of requests: labels and numbers per entity,
// a scheduled signal outside the order, a due time in the past sent at
// once, and two calls.
var signalsAndCalls = NewOrchestrator("SignalsAndCalls", func(ctx *Context, _ any) ([]int, error) {
	now := ctx.CurrentTime()
	for _, err := range []error{
		ctx.SignalEntity(acctA, "add", 1),
		ctx.SignalEntity(acctA, "add", 2),
		ctx.SignalEntity(acctB, "reset", nil),
		ctx.SignalEntityAt(acctA, "add", 3, now.Add(time.Hour)),
		ctx.SignalEntityAt(acctA, "add", 4, now.Add(-time.Hour)),
	} {
		if err != nil {
			return nil, err
		}
	}
	x, err := CallEntity[int](ctx, acctA, "get", nil).Await()
	if err != nil {
		return nil, err
	}
	y, err := CallEntity[int](ctx, acctA, "get", map[string]string{"a": "<&>"}).Await()
	return []int{x, y}, err
})

func TestEntityRequestsRecorded(t *testing.T) {
	d := newDriver(t, signalsAndCalls)
	tick := 100 * time.Nanosecond
	first := d.run(start(t0, signalsAndCalls.Name(), ""))
	ids := checkRequests(t, "episode 1", first, []wantRequest{
		{eventID: 0, target: "@account@a", name: "op", operation: "add", signal: true, input: "1", timestamp: t0, seq: 1},
		{eventID: 1, target: "@account@a", name: "op", operation: "add", signal: true, input: "2", timestamp: t0.Add(tick), predecessor: t0, seq: 2, predSeq: 1},
		{eventID: 2, target: "@account@b", name: "op", operation: "reset", signal: true, timestamp: t0, seq: 3},
		{eventID: 3, target: "@account@a", name: "op@2026-11-26T11:00:00.0000000Z", operation: "add", signal: true, input: "3", due: t0.Add(time.Hour)},
		{eventID: 4, target: "@account@a", name: "op", operation: "add", signal: true, input: "4", timestamp: t0.Add(2 * tick), predecessor: t0.Add(tick), seq: 5, predSeq: 2},
		{eventID: 5, target: "@account@a", name: "op", operation: "get", timestamp: t0.Add(3 * tick), predecessor: t0.Add(2 * tick), seq: 6, predSeq: 5},
	})
	if len(first) != 6 {
		t.Fatalf("episode 1: %v, want the 6 requests only", describeActions(first))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("request IDs repeat: %v", ids)
		}
		seen[id] = true
	}
	// The call waits for its response: signals and calls are no tasks the
	// engine answers by ID.
	for id := int32(0); id < 6; id++ {
		if st := d.ex.TaskState(id); st != replay.TaskResolved {
			t.Errorf("TaskState(%d) = %v, want TaskResolved (no pending task)", id, st)
		}
	}

	t1 := t0.Add(time.Minute)
	second := d.run(ep(t1, evResponse(t, ids[5], history.EntityResponse{Result: "7"})))
	ids2 := checkRequests(t, "episode 2", second, []wantRequest{
		// The clock moved past the last label: the timestamp is the time.
		{eventID: 6, target: "@account@a", name: "op", operation: "get", input: `{"a":"\u003c\u0026\u003e"}`, timestamp: t1, predecessor: t0.Add(3 * tick), seq: 7, predSeq: 6},
	})
	third := d.run(ep(t1.Add(time.Second), evResponse(t, ids2[0], history.EntityResponse{Result: "9"})))
	expectActions(t, "episode 3", third, act{Type: history.ExecutionCompleted, ID: 7, Result: "[7,9]", Status: history.StatusCompleted})

	// The whole history replays with no new action.
	assertReplayDeterministic(t, signalsAndCalls,
		start(t0, signalsAndCalls.Name(), ""),
		ep(t1, evResponse(t, ids[5], history.EntityResponse{Result: "7"})),
		ep(t1.Add(time.Second), evResponse(t, ids2[0], history.EntityResponse{Result: "9"})))
}

// TestEntityRequestIDsSurviveARerun: an episode lost in a crash and run
// again later, at another time, sends the same request IDs, so that the
// entity can tell the copies apart from new requests.
func TestEntityRequestIDsSurviveARerun(t *testing.T) {
	idsAt := func(at time.Time) []string {
		ex := newExecutor(fnOf(t, signalsAndCalls), "inst1")
		defer ex.Close()
		actions, err := ex.Run(start(at, signalsAndCalls.Name(), ""))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range actions {
			ids = append(ids, sentRequest(t, a).ID)
		}
		return ids
	}
	before, after := idsAt(t0), idsAt(t0.Add(5*time.Second))
	if len(before) != 6 || !reflect.DeepEqual(before, after) {
		t.Fatalf("request IDs at t0 %v, at t0+5s %v: want the same 6", before, after)
	}
	// The NewGUID sequence is untouched by requests.
	g := NewOrchestrator("G", func(ctx *Context, _ any) (string, error) {
		if err := ctx.SignalEntity(acctA, "add", 1); err != nil {
			return "", err
		}
		return ctx.NewGUID(), nil
	})
	plain := NewOrchestrator("G", func(ctx *Context, _ any) (string, error) { return ctx.NewGUID(), nil })
	withSignal := newDriver(t, g).run(start(t0, "G", ""))
	without := newDriver(t, plain).run(start(t0, "G", ""))
	if withSignal[1].Result != without[0].Result {
		t.Errorf("NewGUID after a signal = %s, without = %s", withSignal[1].Result, without[0].Result)
	}
}

// errOverdrawn is the sentinel of an application error an entity operation fails with.
var errOverdrawn = NewError("Overdrawn", "overdrawn", nil)

func TestEntityCallResponses(t *testing.T) {
	overdrawn := failureFromError(NewError("Overdrawn", "account a is overdrawn by 5", map[string]int{"by": 5}))
	for _, tc := range []struct {
		name  string
		resp  history.EntityResponse
		check func(t *testing.T, n int, err error)
	}{
		{"a result", history.EntityResponse{Result: "42"}, func(t *testing.T, n int, err error) {
			if err != nil || n != 42 {
				t.Fatalf("got %d, %v; want 42", n, err)
			}
		}},
		{"no result", history.EntityResponse{}, func(t *testing.T, n int, err error) {
			if err != nil || n != 0 {
				t.Fatalf("got %d, %v; want 0", n, err)
			}
		}},
		{"a typed failure", history.EntityResponse{ErrorMessage: "account a is overdrawn by 5", Failure: overdrawn}, func(t *testing.T, _ int, err error) {
			var tf *TaskFailedError
			var app *Error
			var details struct{ By int }
			if !errors.As(err, &tf) || !errors.As(err, &app) || !errors.Is(err, errOverdrawn) {
				t.Fatalf("error %T %v: not a TaskFailedError matching Overdrawn", err, err)
			}
			if tf.Kind != "entity" || tf.TaskName != `"withdraw" on @account@a` || tf.TaskID != 0 || app.Type != "Overdrawn" ||
				app.Details(&details) != nil || details.By != 5 {
				t.Fatalf("failure %+v / %+v details %+v", tf, app, details)
			}
			if want := `entity operation "withdraw" on @account@a (task 0) failed: Overdrawn: account a is overdrawn by 5`; err.Error() != want {
				t.Fatalf("message %q, want %q", err.Error(), want)
			}
		}},
		{"a failure with a message only", history.EntityResponse{ErrorMessage: "entity dispatch failed"}, func(t *testing.T, _ int, err error) {
			var tf *TaskFailedError
			if !errors.As(err, &tf) || tf.Failure.ErrorType != "EntityOperationFailed" || tf.Failure.ErrorMessage != "entity dispatch failed" {
				t.Fatalf("error %T %v", err, err)
			}
		}},
		{"a result of another type", history.EntityResponse{Result: `"x"`}, func(t *testing.T, _ int, err error) {
			var re *ResultError
			if !errors.As(err, &re) || re.Of != `entity operation "withdraw" on @account@a` {
				t.Fatalf("error %T %v, want a ResultError naming the operation", err, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n int
			var callErr error
			orch := NewOrchestrator("Withdraw", func(ctx *Context, _ any) (int, error) {
				n, callErr = CallEntity[int](ctx, acctA, "withdraw", 5).Await()
				return n, nil
			})
			d := newDriver(t, orch)
			req := sentRequest(t, d.run(start(t0, "Withdraw", ""))[0])
			done := d.run(ep(t0.Add(time.Second), evResponse(t, req.ID, tc.resp)))
			if len(done) != 1 || done[0].Type != history.ExecutionCompleted {
				t.Fatalf("after the response: %v", describeActions(done))
			}
			tc.check(t, n, callErr)
		})
	}
}

// TestEntityResponsesDroppedWhenNotAwaited: a second copy of a response
// (a duplicate delivery), also one that arrives after a replay, and a
// response to no request of this execution reach no call, no event wait
// and no buffer; an ordinary event named like a GUID still does.
func TestEntityResponsesDroppedWhenNotAwaited(t *testing.T) {
	const stray = "0f8fad5b-d9cb-469f-a165-70867728950e"
	orch := NewOrchestrator("Twice", func(ctx *Context, _ any) ([]string, error) {
		x, err := CallEntity[string](ctx, acctA, "get", nil).Await()
		if err != nil {
			return nil, err
		}
		y, err := CallEntity[string](ctx, acctA, "get", nil).Await()
		if err != nil {
			return nil, err
		}
		z, err := WaitForExternalEvent[string](ctx, stray).Await()
		return []string{x, y, z}, err
	})
	d := newDriver(t, orch)
	first := d.run(start(t0, "Twice", ""))
	r1 := sentRequest(t, first[0])
	resp1 := evResponse(t, r1.ID, history.EntityResponse{Result: `"one"`})
	strayResp := evResponse(t, stray, history.EntityResponse{Result: `"stray"`})
	ep2 := ep(t0.Add(time.Second), resp1, resp1, strayResp)
	second := d.run(ep2)
	if len(second) != 1 {
		t.Fatalf("episode 2: %v, want the second call only", describeActions(second))
	}
	r2 := sentRequest(t, second[0])
	if len(d.ex.arrivals) != 0 || len(d.ex.buffered[stray]) != 0 {
		t.Fatalf("dropped responses were buffered: %v", d.ex.arrivals)
	}
	ep3 := ep(t0.Add(2*time.Second), resp1, evResponse(t, r2.ID, history.EntityResponse{Result: `"two"`}),
		evResponse(t, r2.ID, history.EntityResponse{Result: `"again"`}), strayResp, evRaised(stray, `"event"`))
	done := d.run(ep3)
	expectActions(t, "episode 3", done, act{Type: history.ExecutionCompleted, ID: 2, Result: `["one","two","event"]`, Status: history.StatusCompleted})
	// Replayed, the executor drops the same copies (ep3's copy of resp1
	// comes after a replay of the episode that applied it).
	assertReplayDeterministic(t, orch, start(t0, "Twice", ""), ep2, ep3)

	for _, tc := range []struct {
		name, event, input string
		response           bool
	}{
		{"a response", stray, `{"result":"1"}`, true},
		{"a failure", stray, `{"result":null,"exceptionType":"boom"}`, true},
		{"a DTFx failure", stray, `{"failureDetails":{"ErrorType":"x"}}`, true},
		{"a GUID event with other content", stray, `{"amount":1}`, false},
		{"a GUID event with a string", stray, `"x"`, false},
		{"an upper-case GUID", "0F8FAD5B-D9CB-469F-A165-70867728950E", `{"result":"1"}`, false},
		{"no GUID", "approve", `{"result":"1"}`, false},
	} {
		if got := looksLikeEntityResponse(tc.event, tc.input); got != tc.response {
			t.Errorf("%s: looksLikeEntityResponse(%q, %s) = %v, want %v", tc.name, tc.event, tc.input, got, tc.response)
		}
	}
}

// transfer moves an amount between two accounts inside a critical
// section, calling both at once, and releases the locks itself.
var transfer = NewOrchestrator("Transfer", func(ctx *Context, amount int) ([]any, error) {
	cs, err := ctx.LockEntities(acctB, acctA, NewEntityID("ACCOUNT", "b"))
	if err != nil {
		return nil, err
	}
	in := ctx.InCriticalSection()
	from := CallEntity[int](ctx, acctA, "add", -amount)
	to := CallEntity[int](ctx, acctB, "add", amount)
	balances, err := All(ctx, from, to)
	if err != nil {
		return nil, err
	}
	// A response frees its entity for the next call.
	again, err := CallEntity[int](ctx, acctA, "get", nil).Await()
	if err != nil {
		return nil, err
	}
	cs.Release()
	cs.Release()
	return []any{in, ctx.InCriticalSection(), cs.Entities(), balances, again}, nil
})

func TestEntityCriticalSection(t *testing.T) {
	d := newDriver(t, transfer)
	ep1 := start(t0, "Transfer", "5")
	first := d.run(ep1)
	lockIDs := checkRequests(t, "episode 1", first, []wantRequest{
		{eventID: 0, target: "@account@a", name: "op", timestamp: t0, seq: 1, lockSet: []EntityID{acctA, acctB}},
	})
	if len(first) != 1 {
		t.Fatalf("episode 1: %v, want the lock request only", describeActions(first))
	}
	if !d.ex.ctx.InCriticalSection() {
		t.Error("not in a critical section while the lock request is pending")
	}
	t1 := t0.Add(time.Second)
	ep2 := ep(t1, evResponse(t, lockIDs[0], history.EntityResponse{Result: history.LockAcquisitionCompleted}))
	second := d.run(ep2)
	callIDs := checkRequests(t, "episode 2", second, []wantRequest{
		// The lock request was the last message to a.
		{eventID: 1, target: "@account@a", name: "op", operation: "add", input: "-5", timestamp: t1, predecessor: t0, seq: 2, predSeq: 1},
		{eventID: 2, target: "@account@b", name: "op", operation: "add", input: "5", timestamp: t1, seq: 3},
	})
	t2 := t1.Add(time.Second)
	ep3 := ep(t2, evResponse(t, callIDs[1], history.EntityResponse{Result: "15"}), evResponse(t, callIDs[0], history.EntityResponse{Result: "5"}))
	third := d.run(ep3)
	checkRequests(t, "episode 3", third, []wantRequest{
		{eventID: 3, target: "@account@a", name: "op", operation: "get", timestamp: t2, predecessor: t1, seq: 4, predSeq: 2},
	})
	getID := sentRequest(t, third[0]).ID
	ep4 := ep(t2.Add(time.Second), evResponse(t, getID, history.EntityResponse{Result: "5"}))
	fourth := d.run(ep4)
	if len(fourth) != 3 {
		t.Fatalf("episode 4: %v, want two releases and the completion", describeActions(fourth))
	}
	for i, target := range []string{"@account@a", "@account@b"} {
		a := fourth[i]
		rel := sentRelease(t, a)
		if a.EventID != int32(4+i) || a.Name != "release" || a.InstanceID != target || rel != (history.EntityRelease{ParentInstanceID: "inst1", ID: lockIDs[0]}) {
			t.Errorf("release %d: %v %+v", i, describe(a), rel)
		}
	}
	expectActions(t, "completion", fourth[2:], act{Type: history.ExecutionCompleted, ID: 6,
		Result: `[true,false,[{"name":"account","key":"a"},{"name":"account","key":"b"}],[5,15],5]`, Status: history.StatusCompleted})
	assertReplayDeterministic(t, transfer, ep1, ep2, ep3, ep4)
}

// TestEntityLocksReleasedAtTheEnd: locks still held when the orchestrator
// ends are released just before its completion, however it ends; a
// signal sent before a ContinueAsNew is sent too.
func TestEntityLocksReleasedAtTheEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(ctx *Context) (string, error)
		status history.OrchestrationStatus
	}{
		{"return", func(*Context) (string, error) { return "done", nil }, history.StatusCompleted},
		{"error", func(*Context) (string, error) { return "", errors.New("gave up") }, history.StatusFailed},
		{"panic", func(*Context) (string, error) { panic("boom") }, history.StatusFailed},
		{"ContinueAsNew", func(ctx *Context) (string, error) {
			if err := ctx.SignalEntity(acctC, "add", 1); err != nil {
				return "", err
			}
			_ = CallActivity[string](ctx, "Audit", nil) // abandoned with the execution
			return "", ctx.ContinueAsNew(1)
		}, history.StatusContinuedAsNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orch := NewOrchestrator("Hold", func(ctx *Context, _ any) (string, error) {
				if _, err := ctx.LockEntities(acctA, acctB); err != nil {
					return "", err
				}
				return tc.end(ctx)
			})
			d := newDriver(t, orch)
			lock := sentRequest(t, d.run(start(t0, "Hold", ""))[0])
			got := d.run(ep(t0.Add(time.Second), evResponse(t, lock.ID, history.EntityResponse{Result: history.LockAcquisitionCompleted})))
			var shape []string
			for _, a := range got {
				shape = append(shape, a.Type.String()+" "+a.Name+" "+a.InstanceID)
			}
			want := []string{"EventSent release @account@a", "EventSent release @account@b", history.ExecutionCompleted.String() + "  "}
			if tc.status == history.StatusContinuedAsNew {
				want = []string{"EventSent op @account@c", "EventSent release @account@a", "EventSent release @account@b", "ContinueAsNew  "}
			}
			if !reflect.DeepEqual(shape, want) {
				t.Fatalf("actions %q, want %q", shape, want)
			}
			if c := got[len(got)-1]; c.Status != tc.status {
				t.Fatalf("completion %v, want %v", describe(c), tc.status)
			}
			for _, a := range got[len(got)-3 : len(got)-1] {
				if rel := sentRelease(t, a); rel.ID != lock.ID || rel.ParentInstanceID != "inst1" {
					t.Errorf("release %+v, want the lock request's ID %s", rel, lock.ID)
				}
			}
		})
	}
}

// TestEntityLockFailure: a lock request answered with a failure (or with
// anything but the lock acquisition) fails LockEntities and releases what
// was granted.
func TestEntityLockFailure(t *testing.T) {
	for _, resp := range []history.EntityResponse{
		{ErrorMessage: "entity dispatch failed"},
		{Result: "5"},
	} {
		var lockErr error
		orch := NewOrchestrator("L", func(ctx *Context, _ any) (bool, error) {
			_, lockErr = ctx.LockEntities(acctA)
			return ctx.InCriticalSection(), nil
		})
		d := newDriver(t, orch)
		lock := sentRequest(t, d.run(start(t0, "L", ""))[0])
		got := d.run(ep(t0.Add(time.Second), evResponse(t, lock.ID, resp)))
		expectActions(t, "after the answer", got, act{Type: history.EventSent, ID: 1, Name: "release", InstanceID: "@account@a"},
			act{Type: history.ExecutionCompleted, ID: 2, Result: "false", Status: history.StatusCompleted})
		if lockErr == nil || !strings.Contains(lockErr.Error(), "lock of @account@a") {
			t.Errorf("response %+v: LockEntities error %v", resp, lockErr)
		}
	}
}

// TestEntityLockingRules: every rule of critical sections gives a
// *LockingRulesError naming the rule and the entity, and sends nothing;
// so do invalid arguments, with their own errors.
func TestEntityLockingRules(t *testing.T) {
	badInput := make(chan int)
	for _, tc := range []struct {
		name   string
		locked bool // the code runs inside a critical section over a and b
		do     func(ctx *Context) error
		rule   string // "" = not a locking rule; want is then in the message
		want   string
	}{
		{"nested critical section", true, func(ctx *Context) error { _, err := ctx.LockEntities(acctC); return err },
			"must not enter another critical section", "LockEntities: must not enter another critical section from within a critical section (the critical section holds @account@a, @account@b)"},
		{"call to an entity not locked", true, func(ctx *Context) error { return CallEntity[int](ctx, acctC, "get", nil).Err() },
			"if it is not one of the locked entities", `CallEntity "get" on @account@c: must not call`},
		{"two calls at once to one locked entity", true, func(ctx *Context) error {
			if err := CallEntity[int](ctx, acctA, "get", nil).Err(); err != nil {
				return errors.New("the first call failed: " + err.Error())
			}
			return CallEntity[int](ctx, NewEntityID("Account", "a"), "get", nil).Err()
		}, "while a prior call to the same entity is still pending", `CallEntity "get" on @account@a`},
		{"signal to a locked entity", true, func(ctx *Context) error { return ctx.SignalEntity(acctB, "add", 1) },
			"must not signal a locked entity from a critical section", `SignalEntity "add" on @account@b`},
		{"scheduled signal to a locked entity", true, func(ctx *Context) error {
			return ctx.SignalEntityAt(acctB, "add", 1, ctx.CurrentTime().Add(time.Hour))
		}, "must not signal a locked entity", `SignalEntity "add" on @account@b`},
		{"sub-orchestration", true, func(ctx *Context) error { return CallSubOrchestrator[int](ctx, "Child", nil).Err() },
			"must not call a sub-orchestrator from a critical section", `CallSubOrchestrator "Child"`},
		{"no entities to lock", false, func(ctx *Context) error { _, err := ctx.LockEntities(); return err },
			"", "LockEntities needs at least one entity"},
		{"an invalid entity to lock", false, func(ctx *Context) error { _, err := ctx.LockEntities(acctA, NewEntityID("account", "")); return err },
			"", "entity 1: history: invalid entity ID \"@account@\": the entity key is empty"},
		{"a signal to an invalid entity", false, func(ctx *Context) error { return ctx.SignalEntity(NewEntityID("a/b", "k"), "add", 1) },
			"", `the entity name may not contain '/'`},
		{"a signal without operation", false, func(ctx *Context) error { return ctx.SignalEntity(acctA, "", 1) },
			"", "SignalEntity to @account@a: the operation name is empty"},
		{"a signal with an input that does not encode", false, func(ctx *Context) error { return ctx.SignalEntity(acctA, "add", badInput) },
			"", `SignalEntity "add" on @account@a: input: durable: cannot encode chan int`},
		{"a call to an invalid entity", false, func(ctx *Context) error { return CallEntity[int](ctx, EntityID{}, "get", nil).Err() },
			"", "the entity name is empty"},
		{"a call with an input that does not encode", false, func(ctx *Context) error { return CallEntity[int](ctx, acctA, "add", badInput).Err() },
			"", "input: durable: cannot encode chan int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got error
			orch := NewOrchestrator("Rules", func(ctx *Context, _ any) (int, error) {
				if tc.locked {
					cs, err := ctx.LockEntities(acctA, acctB)
					if err != nil {
						return 0, err
					}
					defer cs.Release()
				}
				got = tc.do(ctx)
				return 0, nil
			})
			d := newDriver(t, orch)
			actions := d.run(start(t0, "Rules", ""))
			nextID := int32(0)
			if tc.locked {
				lock := sentRequest(t, actions[0])
				actions = d.run(ep(t0.Add(time.Second), evResponse(t, lock.ID, history.EntityResponse{Result: history.LockAcquisitionCompleted})))
				nextID = 1
				if strings.HasPrefix(tc.name, "two calls") {
					// the first call is sent
					if a := actions[0]; a.Type != history.EventSent || a.Name != "op" || sentRequest(t, a).Operation != "get" {
						t.Fatalf("first call: %v", describe(a))
					}
					actions, nextID = actions[1:], 2
				}
				if len(actions) != 3 || actions[0].Name != "release" || actions[1].Name != "release" {
					t.Fatalf("actions %v, want only the two releases and the completion", describeActions(actions))
				}
				actions = actions[2:]
			}
			expectActions(t, "actions", actions, act{Type: history.ExecutionCompleted, ID: nextID + 2*boolInt(tc.locked), Status: history.StatusCompleted})
			if got == nil {
				t.Fatal("no error")
			}
			var lr *LockingRulesError
			if isRule := errors.As(got, &lr); isRule != (tc.rule != "") {
				t.Fatalf("error %T %v: LockingRulesError %v, want %v", got, got, isRule, tc.rule != "")
			}
			if lr != nil && (lr.ErrorType() != "LockingRulesViolation" || !strings.Contains(lr.Rule, tc.rule)) {
				t.Errorf("rule %q (type %s), want %q", lr.Rule, lr.ErrorType(), tc.rule)
			}
			if !strings.Contains(got.Error(), tc.want) {
				t.Errorf("message %q, want it to contain %q", got.Error(), tc.want)
			}
		})
	}
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// TestEntitySignalsAllowedInCriticalSection: signals to entities that are
// not locked, and calls of activities, are allowed inside a critical
// section (and replay the same).
func TestEntitySignalsAllowedInCriticalSection(t *testing.T) {
	orch := NewOrchestrator("Allowed", func(ctx *Context, _ any) (string, error) {
		cs, err := ctx.LockEntities(acctA)
		if err != nil {
			return "", err
		}
		if err := ctx.SignalEntity(acctB, "add", 1); err != nil {
			return "", err
		}
		s, err := CallActivity[string](ctx, "Audit", nil).Await()
		cs.Release()
		return s, err
	})
	d := newDriver(t, orch)
	ep1 := start(t0, "Allowed", "")
	lock := sentRequest(t, d.run(ep1)[0])
	ep2 := ep(t0.Add(time.Second), evResponse(t, lock.ID, history.EntityResponse{Result: history.LockAcquisitionCompleted}))
	got := d.run(ep2)
	expectActions(t, "in the section", got, act{Type: history.EventSent, ID: 1, Name: "op", InstanceID: "@account@b"}, scheduled(2, "Audit", ""))
	ep3 := ep(t0.Add(2*time.Second), evCompleted(2, `"ok"`))
	expectActions(t, "end", d.run(ep3), act{Type: history.EventSent, ID: 3, Name: "release", InstanceID: "@account@a"}, completedWith(4, `"ok"`))
	assertReplayDeterministic(t, orch, ep1, ep2, ep3)
}

// TestEntityNonDeterminism: code that sends another entity message than
// history records fails the replay.
func TestEntityNonDeterminism(t *testing.T) {
	d := newDriver(t, signalsAndCalls)
	d.run(start(t0, signalsAndCalls.Name(), ""))
	timerInstead := NewOrchestrator(signalsAndCalls.Name(), func(ctx *Context, _ any) (int, error) {
		return 0, ctx.Sleep(time.Minute)
	})
	ex := newExecutor(fnOf(t, timerInstead), "inst1")
	defer ex.Close()
	var nd *NonDeterminismError
	if err := ex.Replay(d.hist); !errors.As(err, &nd) || !strings.Contains(nd.Recorded, `EventSent "op" (task 0)`) {
		t.Fatalf("replay with a timer instead of the signal: %v", err)
	}
}
