package history

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The golden JSON below is what Newtonsoft.Json writes for Durable Task's
// entity classes, worked out from their serialization attributes
// (Azure/durabletask@5217032961abf45846f462732a5e2813316e3747):
//   - src/DurableTask.Core/Entities/EventFormat/RequestMessage.cs: members in
//     declaration order; "op", "id", "Timestamp", "Predecessor",
//     "IsLockRequest", "createTrace" always; the rest only when not default.
//   - EventFormat/ResponseMessage.cs, EventFormat/ReleaseMessage.cs,
//     StateFormat/SchedulerState.cs, StateFormat/EntityStatus.cs,
//     StateFormat/MessageSorter.cs, and src/DurableTask.Core/FailureDetails.cs.
// A DateTime is written in Newtonsoft's default ISO form: trailing
// fractional zeros dropped, "Z" for UTC, none for DateTime.MinValue.

var (
	t1 = time.Date(2026, 12, 2, 3, 39, 26, 123456700, time.UTC)
	t0 = time.Date(2026, 12, 2, 3, 39, 25, 500000000, time.UTC)
)

func TestEntityRequestGoldenJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  EntityRequest
		json string
	}{{
		// ClientEntityHelpers.EmitOperationSignal: no parent, no sorter labels.
		name: "client signal",
		req:  EntityRequest{Operation: "add", Signal: true, Input: "5", ID: "0b6b3c4e-1d2f-4a5b-8c9d-0e1f2a3b4c5d"},
		json: `{"op":"add","signal":true,"input":"5","id":"0b6b3c4e-1d2f-4a5b-8c9d-0e1f2a3b4c5d","Timestamp":"0001-01-01T00:00:00","Predecessor":"0001-01-01T00:00:00","IsLockRequest":false,"createTrace":false}`,
	}, {
		name: "orchestration call",
		req: EntityRequest{Operation: "get", ID: "7f2c1a00-0000-4000-8000-000000000001", ParentInstanceID: "orch1",
			ParentExecutionID: "5d1c0e0f4a3b4c2d9e8f7a6b5c4d3e2f", Timestamp: t1, Predecessor: t0},
		json: `{"op":"get","id":"7f2c1a00-0000-4000-8000-000000000001","parent":"orch1","parentExecution":"5d1c0e0f4a3b4c2d9e8f7a6b5c4d3e2f","Timestamp":"2026-12-02T03:39:26.1234567Z","Predecessor":"2026-12-02T03:39:25.5Z","IsLockRequest":false,"createTrace":false}`,
	}, {
		name: "scheduled signal with input needing escapes",
		req: EntityRequest{Operation: "set", Signal: true, Input: `{"a":"<&>"}`, ID: "7f2c1a00-0000-4000-8000-000000000002",
			Due: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)},
		json: `{"op":"set","signal":true,"input":"{\"a\":\"<&>\"}","id":"7f2c1a00-0000-4000-8000-000000000002","due":"2026-12-02T04:00:00Z","Timestamp":"0001-01-01T00:00:00","Predecessor":"0001-01-01T00:00:00","IsLockRequest":false,"createTrace":false}`,
	}, {
		// A lock request forwarded to the second entity of the set (TaskEntityDispatcher.ProcessLockRequest).
		name: "lock request",
		req: EntityRequest{ID: "7f2c1a00-0000-4000-8000-000000000003", ParentInstanceID: "transfer1", ParentExecutionID: "e1",
			Timestamp: t1, LockSet: []EntityID{{"account", "a"}, {"account", "b"}}, Position: 1},
		json: `{"op":null,"id":"7f2c1a00-0000-4000-8000-000000000003","parent":"transfer1","parentExecution":"e1","Timestamp":"2026-12-02T03:39:26.1234567Z","Predecessor":"0001-01-01T00:00:00","lockset":[{"name":"account","key":"a"},{"name":"account","key":"b"}],"pos":1,"IsLockRequest":true,"createTrace":false}`,
	}, {
		name: "tracing fields carried as they are",
		req: EntityRequest{Operation: "add", Signal: true, ID: "7f2c1a00-0000-4000-8000-000000000004",
			ParentTraceContext: json.RawMessage(`{"TraceParent":"00-abc-def-01","TraceState":null}`), CreateTrace: true,
			RequestTime: json.RawMessage(`"2026-12-02T03:39:26.1234567+00:00"`)},
		json: `{"op":"add","signal":true,"id":"7f2c1a00-0000-4000-8000-000000000004","Timestamp":"0001-01-01T00:00:00","Predecessor":"0001-01-01T00:00:00","IsLockRequest":false,"parentTraceContext":{"TraceParent":"00-abc-def-01","TraceState":null},"createTrace":true,"requestTime":"2026-12-02T03:39:26.1234567+00:00"}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			// json.Marshal escapes HTML in a MarshalJSON's output; the
			// events we build use the unescaped form, so compare that.
			ev, err := NewEntityRequestEvent(tc.req, t1)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Input != tc.json {
				t.Errorf("event input\n got %s\nwant %s", ev.Input, tc.json)
			}
			var back EntityRequest
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.req) {
				t.Errorf("round trip\n got %+v\nwant %+v", back, tc.req)
			}
			if back.IsLockRequest() != (tc.req.LockSet != nil) {
				t.Errorf("IsLockRequest = %v", back.IsLockRequest())
			}
		})
	}
}

func TestEntityRequestTolerantDecoding(t *testing.T) {
	// The Durable Functions extension's RequestMessage (JsonProperty names,
	// EntityScheduler/RequestMessage.cs) and minimal messages: absent members
	// take their defaults, unknown ones ("arg" of early versions) are ignored,
	// and times with an offset or without a zone are read as UTC.
	var r EntityRequest
	in := `{"op":"add","id":"7f2c1a00-0000-4000-8000-000000000005","arg":3,"Timestamp":"2026-12-02T04:39:26.5+01:00","Predecessor":"2026-12-02T03:39:25","IsLockRequest":true}`
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	want := EntityRequest{Operation: "add", ID: "7f2c1a00-0000-4000-8000-000000000005",
		Timestamp: time.Date(2026, 12, 2, 3, 39, 26, 500000000, time.UTC), Predecessor: time.Date(2026, 12, 2, 3, 39, 25, 0, time.UTC)}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	for _, bad := range []struct{ in, want string }{
		{`{"op":"add"}`, `no "id"`},
		{`{"op":"add","id":""}`, `no "id"`},
		{`{"id":"x","Timestamp":"yesterday"}`, `"yesterday" is not an ISO 8601 time`},
		{`{"id":"x","Timestamp":5}`, `a time must be a JSON string`},
		{`[1]`, `entity request message`},
	} {
		err := json.Unmarshal([]byte(bad.in), &r)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Unmarshal(%s) = %v, want an error containing %q", bad.in, err, bad.want)
		}
	}
}

func TestEntityResponseGoldenJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp EntityResponse
		json string
	}{
		{"result", EntityResponse{Result: "42"}, `{"result":"42"}`},
		{"null result", EntityResponse{}, `{"result":null}`},
		{"lock acquired", EntityResponse{Result: LockAcquisitionCompleted}, `{"result":"Lock Acquisition Completed"}`},
		{
			// TaskEntityDispatcher: a failed batch answers with the message
			// as result, "entity dispatch failed" and the failure details.
			"failure",
			EntityResponse{Result: "boom", ErrorMessage: "entity dispatch failed", Failure: &FailureDetails{
				ErrorType: "System.InvalidOperationException", ErrorMessage: "boom", StackTrace: "at X",
				InnerFailure: &FailureDetails{ErrorType: "E", ErrorMessage: "inner"}, Properties: map[string]any{"n": 1.0}}},
			`{"result":"boom","exceptionType":"entity dispatch failed","failureDetails":{"ErrorType":"System.InvalidOperationException","ErrorMessage":"boom","StackTrace":"at X","InnerFailure":{"ErrorType":"E","ErrorMessage":"inner","StackTrace":null,"InnerFailure":null,"IsNonRetriable":false,"Properties":null},"IsNonRetriable":false,"Properties":{"n":1}}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := NewEntityResponseEvent("7F2C1A00-0000-4000-8000-000000000006", tc.resp, t1)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != EventRaised || ev.Name != "7f2c1a00-0000-4000-8000-000000000006" || ev.Input != tc.json {
				t.Errorf("event %s %q\n got %s\nwant %s", ev.Type, ev.Name, ev.Input, tc.json)
			}
			back, err := DecodeEntityResponse(ev)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.resp) {
				t.Errorf("round trip\n got %+v\nwant %+v", back, tc.resp)
			}
			if back.IsError() != (tc.resp.ErrorMessage != "") {
				t.Errorf("IsError = %v", back.IsError())
			}
		})
	}
	// The extension's failure form: exceptionType holds the type, result the
	// serialized exception (EntityScheduler/ResponseMessage.cs).
	var r EntityResponse
	if err := json.Unmarshal([]byte(`{"result":"{\"Message\":\"x\"}","exceptionType":"System.Exception"}`), &r); err != nil {
		t.Fatal(err)
	}
	if !r.IsError() || r.ErrorMessage != "System.Exception" || r.Result != `{"Message":"x"}` || r.Failure != nil {
		t.Errorf("extension failure read as %+v", r)
	}
}

func TestEntityReleaseGoldenJSON(t *testing.T) {
	for _, tc := range []struct {
		rel  EntityRelease
		json string
	}{
		{EntityRelease{ParentInstanceID: "transfer1", ID: "7f2c1a00-0000-4000-8000-000000000003"}, `{"parent":"transfer1","id":"7f2c1a00-0000-4000-8000-000000000003"}`},
		// ClientEntityHelpers.EmitUnlockForOrphanedLock.
		{EntityRelease{ParentInstanceID: "gone", ID: "fix-orphaned-lock"}, `{"parent":"gone","id":"fix-orphaned-lock"}`},
		{EntityRelease{}, `{"parent":null,"id":null}`},
	} {
		ev, err := NewEntityReleaseEvent(tc.rel, t1)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Name != "release" || ev.Input != tc.json {
			t.Errorf("%+v: event %q %s, want release %s", tc.rel, ev.Name, ev.Input, tc.json)
		}
		back, err := DecodeEntityRelease(ev)
		if err != nil || back != tc.rel {
			t.Errorf("round trip of %+v = %+v, %v", tc.rel, back, err)
		}
	}
}

func TestEntitySchedulerStateGoldenJSON(t *testing.T) {
	queued := EntityRequest{Operation: "add", Signal: true, Input: "1", ID: "7f2c1a00-0000-4000-8000-000000000007"}
	for _, tc := range []struct {
		name  string
		state EntitySchedulerState
		json  string
	}{
		{"new", EntitySchedulerState{}, `{"sorter":{}}`},
		{"with state", EntitySchedulerState{State: `{"v":"<&>"}`}, `{"exists":true,"state":"{\"v\":\"<&>\"}","sorter":{}}`},
		{
			"locked with a queue and a sorter",
			EntitySchedulerState{
				State: "7", Queue: []EntityRequest{queued}, LockedBy: "transfer1", Suspended: true,
				Sorter: MessageSorter{
					LastSentToInstance: map[string]time.Time{"@counter@b": t1},
					ReceivedFromInstance: map[string]ReceiveBuffer{
						"orch1": {Last: t0, ExecutionID: "e1", Buffered: map[string]EntityRequest{"2026-12-02T03:39:26.1234567Z": queued}},
						"orch2": {},
					},
					ReceiveHorizon: t0, SendHorizon: t1,
				},
			},
			`{"exists":true,"state":"7","queue":[{"op":"add","signal":true,"input":"1","id":"7f2c1a00-0000-4000-8000-000000000007","Timestamp":"0001-01-01T00:00:00","Predecessor":"0001-01-01T00:00:00","IsLockRequest":false,"createTrace":false}],"lockedBy":"transfer1","suspended":true,"sorter":{"LastSentToInstance":{"@counter@b":"2026-12-02T03:39:26.1234567Z"},"ReceivedFromInstance":{"orch1":{"Last":"2026-12-02T03:39:25.5Z","ExecutionId":"e1","Buffered":{"2026-12-02T03:39:26.1234567Z":{"op":"add","signal":true,"input":"1","id":"7f2c1a00-0000-4000-8000-000000000007","Timestamp":"0001-01-01T00:00:00","Predecessor":"0001-01-01T00:00:00","IsLockRequest":false,"createTrace":false}}},"orch2":{"Last":"0001-01-01T00:00:00"}},"ReceiveHorizon":"2026-12-02T03:39:25.5Z","SendHorizon":"2026-12-02T03:39:26.1234567Z"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.state.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.json {
				t.Errorf("\n got %s\nwant %s", got, tc.json)
			}
			back, err := ParseEntitySchedulerState(got)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.state) {
				t.Errorf("round trip\n got %+v\nwant %+v", back, tc.state)
			}
		})
	}
}

func TestEntitySchedulerStateTolerantDecoding(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     EntitySchedulerState
	}{
		{"entity not run yet (null input)", "", EntitySchedulerState{}},
		{"null", "null", EntitySchedulerState{}},
		{"DTFx: no exists flag, no sorter", `{"state":"5"}`, EntitySchedulerState{State: "5"}},
		{"extension: exists without state", `{"exists":true,"sorter":{}}`, EntitySchedulerState{State: "null"}},
		{"extension: exists false", `{"exists":false,"lockedBy":"o"}`, EntitySchedulerState{LockedBy: "o"}},
		{"unknown members", `{"state":"1","future":[1,2]}`, EntitySchedulerState{State: "1"}},
	} {
		got, err := ParseEntitySchedulerState(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if _, err := ParseEntitySchedulerState(`{"queue":[{"op":"x"}]}`); err == nil || !strings.Contains(err.Error(), `no "id"`) {
		t.Errorf("a queued request without id: %v", err)
	}
	if _, err := ParseEntitySchedulerState(`{"state":5}`); err == nil || !strings.Contains(err.Error(), "scheduler state") {
		t.Errorf("a non-string state: %v", err)
	}
}

func TestEntityStatusJSON(t *testing.T) {
	for _, tc := range []struct {
		state EntitySchedulerState
		json  string
	}{
		{EntitySchedulerState{}, `{}`},
		{EntitySchedulerState{State: "1"}, `{"entityExists":true}`},
		{EntitySchedulerState{Queue: make([]EntityRequest, 2), LockedBy: "a&b"}, `{"queueSize":2,"lockedBy":"a&b"}`},
	} {
		got, err := tc.state.Status().Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.json {
			t.Errorf("status of %+v = %s, want %s", tc.state, got, tc.json)
		}
		back, err := ParseEntityStatus(got)
		if err != nil || !reflect.DeepEqual(back, tc.state.Status()) {
			t.Errorf("ParseEntityStatus(%s) = %+v, %v", got, back, err)
		}
	}
	// The extension adds currentOperation (EntityScheduler/EntityStatus.cs); it is kept.
	s, err := ParseEntityStatus(`{"entityExists":true,"currentOperation":{"op":"add","startTime":"2026-12-02T03:39:26Z"}}`)
	if err != nil || !s.EntityExists || string(s.CurrentOperation) != `{"op":"add","startTime":"2026-12-02T03:39:26Z"}` {
		t.Errorf("extension status read as %+v, %v", s, err)
	}
	if _, err := ParseEntityStatus("null!"); err == nil {
		t.Error("ParseEntityStatus accepted bad JSON")
	}
}

func TestEntityEventNames(t *testing.T) {
	due := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	// .NET's "o" format always has seven fractional digits.
	if got := EntityScheduledRequestEventName(due); got != "op@2026-12-02T04:00:00.0000000Z" {
		t.Errorf("scheduled name = %q", got)
	}
	if got := EntityScheduledRequestEventName(t1.In(time.FixedZone("x", 3600))); got != "op@2026-12-02T03:39:26.1234567Z" {
		t.Errorf("scheduled name of a zoned time = %q", got)
	}
	for _, tc := range []struct {
		name string
		kind EntityMessageKind
		due  time.Time
	}{
		{"op", EntityMessageRequest, time.Time{}},
		{"op@2026-12-02T04:00:00.0000000Z", EntityMessageRequest, due},
		{"op@2026-12-02T03:39:26.1234567Z", EntityMessageRequest, t1},
		{"release", EntityMessageRelease, time.Time{}},
		{"continue", EntityMessageContinue, time.Time{}},
		{"7f2c1a00-0000-4000-8000-000000000006", EntityMessageUnknown, time.Time{}},
		{"Release", EntityMessageUnknown, time.Time{}},
	} {
		if got := ClassifyEntityEvent(tc.name); got != tc.kind {
			t.Errorf("ClassifyEntityEvent(%q) = %d, want %d", tc.name, got, tc.kind)
		}
		d, ok := ParseEntityScheduledRequestEventName(tc.name)
		if ok != !tc.due.IsZero() || !d.Equal(tc.due) {
			t.Errorf("ParseEntityScheduledRequestEventName(%q) = %v, %v; want %v", tc.name, d, ok, tc.due)
		}
	}

	ev, err := NewEntityRequestEvent(EntityRequest{Operation: "add", Signal: true, ID: "x", Due: due}, t1)
	if err != nil || ev.Type != EventRaised || ev.Name != "op@2026-12-02T04:00:00.0000000Z" || ev.EventID != -1 || !ev.Timestamp.Equal(t1) {
		t.Errorf("scheduled request event = %+v, %v", ev, err)
	}
	if r, err := DecodeEntityRequest(ev); err != nil || !r.Due.Equal(due) || r.Operation != "add" {
		t.Errorf("DecodeEntityRequest = %+v, %v", r, err)
	}
	c := NewEntityContinueEvent(t1)
	if c.Type != EventRaised || c.Name != "continue" || c.Input != "" {
		t.Errorf("continue event = %+v", c)
	}

	for _, tc := range []struct {
		name   string
		decode func(Event) error
		ev     Event
		want   string
	}{
		{"request named release", func(e Event) error { _, err := DecodeEntityRequest(e); return err },
			Event{Type: EventRaised, Name: "release", Input: `{}`}, `does not name this kind`},
		{"release as EventSent", func(e Event) error { _, err := DecodeEntityRelease(e); return err },
			Event{Type: EventSent, Name: "release", Input: `{}`}, `is a EventSent event`},
		{"request without content", func(e Event) error { _, err := DecodeEntityRequest(e); return err },
			Event{Type: EventRaised, Name: "op"}, `has no content`},
		{"response with bad JSON", func(e Event) error { _, err := DecodeEntityResponse(e); return err },
			Event{Type: EventRaised, Name: "7f2c1a00-0000-4000-8000-000000000006", Input: `{"result":1}`}, `entity response message`},
		{"response named op", func(e Event) error { _, err := DecodeEntityResponse(e); return err },
			Event{Type: EventRaised, Name: "op", Input: `{}`}, `does not name this kind`},
	} {
		if err := tc.decode(tc.ev); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestEntityIDValidate(t *testing.T) {
	for _, tc := range []struct {
		id   EntityID
		want string // "" for valid
	}{
		{EntityID{"counter", "c1"}, ""},
		{EntityID{"counter", "Key@With@Ats and spaces"}, ""},
		{EntityID{"zähler", "schlüssel"}, ""},
		{EntityID{"", "k"}, "the entity name is empty"},
		{EntityID{"counter", ""}, "the entity key is empty"},
		{EntityID{"coun@ter", "k"}, `the entity name may not contain '@' (at byte 4)`},
		{EntityID{"a/b", "k"}, `the entity name may not contain '/' (at byte 1)`},
		{EntityID{"counter", "a/b"}, `the entity key may not contain '/' (at byte 1)`},
		{EntityID{"counter", "a\nb"}, `the entity key has the control character U+000A at byte 1`},
		{EntityID{"counter", "ab\x7f"}, `the entity key has the control character U+007F at byte 2`},
		{EntityID{"coun\tter", "k"}, `the entity name has the control character U+0009 at byte 4`},
		{EntityID{"counter", "a\u0085"}, `the entity key has the control character U+0085 at byte 1`},
		{EntityID{"counter", "a\xffb"}, `the entity key is not valid UTF-8 at byte 1`},
		{EntityID{"counter", "\uFFFD"}, ""},
	} {
		err := tc.id.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v, want valid", tc.id, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidEntityID) {
			t.Errorf("%+v: %v, want an ErrInvalidEntityID containing %q", tc.id, err, tc.want)
		}
	}
	if !IsEntityInstanceID("@counter@k") || IsEntityInstanceID("orch") || IsEntityInstanceID("") {
		t.Error("IsEntityInstanceID is wrong")
	}
}

// TestEntityRequestTraceContext: a request carries its trace context as
// Durable Task's RequestMessage.ParentTraceContext ({"TraceParent",
// "TraceState"}); it survives the message, reads as Durable Task writes it
// (a null TraceState, extra members), and a member that is not one is an
// error naming the request.
func TestEntityRequestTraceContext(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	r := EntityRequest{Operation: "add", Signal: true, ID: "a0e3c8a2-1111-4222-8333-944455556666"}
	if c, err := r.TraceContext(); c != nil || err != nil {
		t.Fatalf("no context: got %+v, %v", c, err)
	}
	if err := r.SetTraceContext(&TraceContext{TraceParent: tp, TraceState: "congo=t61rcWkgMzE"}); err != nil {
		t.Fatal(err)
	}
	if want := `{"TraceParent":"` + tp + `","TraceState":"congo=t61rcWkgMzE"}`; string(r.ParentTraceContext) != want {
		t.Errorf("parentTraceContext %s, want %s", r.ParentTraceContext, want)
	}
	ev, err := NewEntityRequestEvent(r, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeEntityRequest(ev)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := back.TraceContext(); err != nil || c == nil || c.TraceParent != tp || c.TraceState != "congo=t61rcWkgMzE" {
		t.Errorf("after the message: %+v, %v", c, err)
	}
	for raw, want := range map[string]string{
		`{"TraceParent":"` + tp + `","TraceState":null,"Id":null,"SpanId":null,"ActivityStartTime":null}`: "",
		`null`: "none",
	} {
		r.ParentTraceContext = json.RawMessage(raw)
		c, err := r.TraceContext()
		switch {
		case err != nil:
			t.Errorf("%s: %v", raw, err)
		case want == "none" && c != nil, want != "none" && (c == nil || c.TraceParent != tp || c.TraceState != want):
			t.Errorf("%s: got %+v", raw, c)
		}
	}
	for _, raw := range []string{`"00-x"`, `{"TraceState":"a=b"}`} {
		r.ParentTraceContext = json.RawMessage(raw)
		if _, err := r.TraceContext(); err == nil || !strings.Contains(err.Error(), r.ID) {
			t.Errorf("%s: error %v, want one naming the request", raw, err)
		}
	}
	if err := r.SetTraceContext(&TraceContext{TraceParent: tp, TraceState: strings.Repeat("a", MaxTraceStateLength+1)}); err != nil {
		t.Fatal(err)
	}
	if c, _ := r.TraceContext(); c == nil || c.TraceState != "" {
		t.Errorf("a trace state over %d characters is kept: %+v", MaxTraceStateLength, c)
	}
	if r.SetTraceContext(nil); r.ParentTraceContext != nil {
		t.Errorf("SetTraceContext(nil) leaves %s", r.ParentTraceContext)
	}
}
