package azurestorage

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestHistoryRowRoundTripEveryEventType(t *testing.T) {
	for i, ev := range sampleEvents() {
		t.Run(ev.Type.String(), func(t *testing.T) {
			e, err := eventEntity("order^042", i, "exec-1", &ev)
			if err != nil {
				t.Fatal(err)
			}
			data, err := e.marshal()
			if err != nil {
				t.Fatal(err)
			}
			r, err := parseRow(data)
			if err != nil {
				t.Fatal(err)
			}
			if pk, _ := r.str("PartitionKey"); pk != "order^042" {
				t.Errorf("PartitionKey = %q", pk)
			}
			if rk, _ := r.str("RowKey"); rk != rowKey(i) {
				t.Errorf("RowKey = %q, want %q", rk, rowKey(i))
			}
			if exec, _ := r.str(colExecutionID); exec != "exec-1" {
				t.Errorf("ExecutionId = %q", exec)
			}
			got, err := eventFromRow(r)
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Errorf("round trip mismatch\n got %#v\nwant %#v\nrow %s", got, ev, data)
			}
		})
	}
}

func TestHistoryRowColumns(t *testing.T) {
	events := sampleEvents()
	byType := map[history.EventType]*history.Event{}
	for i := range events {
		byType[events[i].Type] = &events[i]
	}
	tests := []struct {
		event history.EventType
		want  []string // fragments of the row JSON
		not   []string
	}{
		{history.ExecutionStarted, []string{
			`"EventType":"ExecutionStarted"`, `"EventId":-1`, `"IsPlayed":false`,
			`"_Timestamp":"2024-05-01T10:00:01.1234567Z","_Timestamp@odata.type":"Edm.DateTime"`,
			`"OrchestrationInstance":"{\"InstanceId\":\"order/42\",\"ExecutionId\":\"aae3f9da0b1c4d5e8f9a0b1c2d3e4f50\"}"`,
			`"ParentInstance":"{\"Name\":\"Parent\",\"OrchestrationInstance\":{\"InstanceId\":\"parent-1\",\"ExecutionId\":\"e-parent\"},\"TaskScheduleId\":7,\"Version\":\"1.0\"}"`,
			`"Tags":"{\"owner\":\"team-a\",\"ünï\":\"cödé\"}"`,
			`"ParentTraceContext":"{\"TraceParent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\",\"TraceState\":\"congo=t61rcWkgMzE\",` +
				`\"Id\":\"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01\",\"SpanId\":\"00f067aa0ba902b7\",` +
				`\"ActivityStartTime\":\"2024-05-01T10:00:01.7654321+00:00\"}"`, `"Generation":3`, `"GenerateNewTrace":false`,
			`"ScheduledStartTime":"2024-05-01T10:00:30.0000001Z","ScheduledStartTime@odata.type":"Edm.DateTime"`,
			`"ExecutionId":"exec-1"`,
		}, []string{`"Correlation"`, `$type`}},
		{history.TaskScheduled, []string{`"EventType":"TaskScheduled"`, `"EventId":0`, `"Name":"SayHello"`, `"Version":""`, `"Tags":"{\"k\":\"v\"}"`}, nil},
		{history.TaskCompleted, []string{`"TaskScheduledId":0`, `"Result":"\"Hello Tokyo!\""`}, nil},
		{history.TaskFailed, []string{`"TaskScheduledId":1`, `"Reason":"activity failed"`,
			`"FailureDetails":"{\"ErrorType\":\"System.InvalidOperationException\"`, `\"InnerFailure\":{\"ErrorType\":\"Inner\"`,
			`\"Properties\":{\"attempt\":3,\"code\":\"E42\"}`}, []string{`$type`}},
		{history.ExecutionCompleted, []string{`"OrchestrationStatus":"Failed"`}, nil},
		{history.TimerFired, []string{`"TimerId":3`, `"FireAt":"2024-05-01T10:00:50.9999999Z","FireAt@odata.type":"Edm.DateTime"`}, nil},
		{history.SubOrchestrationInstanceCreated, []string{`"InstanceId":"child-1"`, `"ClientSpanId":"6e0c63257de34c92"`}, nil},
		{history.TaskScheduled, []string{`"ParentTraceContext":"{\"TraceParent\":\"00-0af7651916cd43dd8448eb211c80319c-53995c3f42cd8ad8-00\",` +
			`\"TraceState\":null,\"Id\":null,\"SpanId\":null,\"ActivityStartTime\":null}"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.event.String(), func(t *testing.T) {
			e, err := eventEntity("pk", 1, "exec-1", byType[tt.event])
			if err != nil {
				t.Fatal(err)
			}
			data, err := e.marshal()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(data), w) {
					t.Errorf("row lacks %s:\n%s", w, data)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(string(data), n) {
					t.Errorf("row must not contain %s:\n%s", n, data)
				}
			}
		})
	}

	// Absent nested values are the literal "null"; empty payloads are absent.
	ev := history.NewEvent(history.ExecutionCompleted, ts(0, 0))
	e, _ := eventEntity("pk", 0, "x", &ev)
	data, _ := e.marshal()
	if !strings.Contains(string(data), `"FailureDetails":"null"`) || strings.Contains(string(data), `"Result"`) {
		t.Errorf("row %s", data)
	}
}

func TestEntityLimits(t *testing.T) {
	big := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name    string
		build   func(e *entity)
		wantErr string
		tooBig  bool
	}{
		{"string at the limit", func(e *entity) { e.str("Input", big(32768)) }, "", false},
		{"string above the limit", func(e *entity) { e.str("Input", big(32769)) }, "property Input", true},
		{"surrogate pairs count twice", func(e *entity) { e.str("Input", strings.Repeat("🎉", 16385)) }, "32770 UTF-16 code units", true},
		{"binary at the limit", func(e *entity) { e.binary("Body", make([]byte, 65536)) }, "", false},
		{"binary above the limit", func(e *entity) { e.binary("Body", make([]byte, 65537)) }, "property Body", true},
		{"entity above 1 MiB", func(e *entity) {
			for i := range 17 {
				e.str(fmt.Sprintf("P%d", i), big(32000))
			}
		}, "the table limit is 1048576", true},
		{"252 properties", func(e *entity) {
			for i := range 252 {
				e.int32(fmt.Sprintf("P%d", i), 1)
			}
		}, "", false},
		{"253 properties", func(e *entity) {
			for i := range 253 {
				e.int32(fmt.Sprintf("P%d", i), 1)
			}
		}, "253 properties", false},
		{"date before 1601", func(e *entity) { e.time("When", time.Date(1600, 12, 31, 0, 0, 0, 0, time.UTC)) }, "before 1601", false},
		{"zero date is omitted", func(e *entity) { e.time("When", time.Time{}) }, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &entity{pk: "pk", rk: "rk"}
			tt.build(e)
			_, err := e.marshal()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrPayloadTooLarge) != tt.tooBig {
				t.Fatalf("errors.Is(%v, ErrPayloadTooLarge) = %v, want %v", err, !tt.tooBig, tt.tooBig)
			}
		})
	}
}

func TestEventEntityTooLarge(t *testing.T) {
	ev := history.NewEvent(history.TaskCompleted, ts(0, 0))
	ev.Result = `"` + strings.Repeat("a", 40000) + `"`
	e, err := eventEntity("pk", 0, "x", &ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.marshal(); !errors.Is(err, ErrPayloadTooLarge) || !strings.Contains(err.Error(), "property Result") {
		t.Fatalf("error %v, want ErrPayloadTooLarge naming Result", err)
	}
}

func TestInstanceRowRoundTrip(t *testing.T) {
	s := &Store{hub: "MyHub"}
	tests := []backend.InstanceState{
		{
			InstanceID: "order/42?x", Name: "MyOrch", Version: "1", ExecutionID: "e1",
			Input: `{"a":1}`, Output: `"done"`, CustomStatus: `{"step":3}`,
			CreatedTime: ts(1, 1), LastUpdatedTime: ts(2, 2), CompletedTime: ts(3, 3), ScheduledStartTime: ts(4, 4),
			Status: history.StatusCompleted, Generation: 2, Tags: map[string]string{"k": "v"},
		},
		{InstanceID: "minimal", Name: "Orch", Status: history.StatusPending, CreatedTime: ts(5, 0)},
	}
	for _, st := range tests {
		t.Run(st.InstanceID, func(t *testing.T) {
			e, err := s.instanceEntity(&st, false)
			if err != nil {
				t.Fatal(err)
			}
			data, err := e.marshal()
			if err != nil {
				t.Fatal(err)
			}
			r, err := parseRow(data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := instanceFromRow(r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, st) {
				t.Errorf("round trip mismatch\n got %#v\nwant %#v\nrow %s", got, st, data)
			}
			for _, w := range []string{`"RuntimeStatus":"` + st.Status.String() + `"`, `"TaskHubName":"MyHub"`, `"RowKey":""`,
				`"CreatedTime@odata.type":"Edm.DateTime"`, `"Generation":`} {
				if !strings.Contains(string(data), w) {
					t.Errorf("row lacks %s: %s", w, data)
				}
			}
			if st.CustomStatus == "" && !strings.Contains(string(data), `"CustomStatus":"null","`) {
				t.Errorf("absent custom status must be stored as \"null\": %s", data)
			}
			if st.Tags == nil && !strings.Contains(string(data), `"Tags":"null"`) {
				t.Errorf("absent tags must be stored as \"null\": %s", data)
			}
			if st.CompletedTime.IsZero() && strings.Contains(string(data), "CompletedTime") {
				t.Errorf("zero CompletedTime must be omitted: %s", data)
			}
		})
	}
}

func TestInstanceFilter(t *testing.T) {
	tests := []struct {
		name string
		q    backend.InstanceQuery
		want string
	}{
		{"all", backend.InstanceQuery{}, ""},
		{"statuses", backend.InstanceQuery{Statuses: []history.OrchestrationStatus{history.StatusRunning, history.StatusPending}},
			"(RuntimeStatus eq 'Running' or RuntimeStatus eq 'Pending')"},
		{"created range", backend.InstanceQuery{CreatedFrom: ts(0, 0), CreatedTo: ts(59, 5)},
			"(CreatedTime ge datetime'2024-05-01T10:00:00Z') and (CreatedTime le datetime'2024-05-01T10:00:59.0000005Z')"},
		{"prefix", backend.InstanceQuery{InstanceIDPrefix: "O'Brien/"},
			"(PartitionKey ge 'O''Brien^0' and PartitionKey lt 'O''Brien^1')"},
		{"everything", backend.InstanceQuery{Statuses: []history.OrchestrationStatus{history.StatusFailed}, CreatedFrom: ts(0, 0), InstanceIDPrefix: "ab"},
			"(RuntimeStatus eq 'Failed') and (CreatedTime ge datetime'2024-05-01T10:00:00Z') and (PartitionKey ge 'ab' and PartitionKey lt 'ac')"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := instanceFilter(&tt.q); got != tt.want {
				t.Errorf("filter\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestPrefixUpperBound(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{{"ab", "ac", true}, {"aü", "aý", true}, {"a\uffff", "", false}, {"a🎉", "", false}, {"a\ud7ff", "", false}}
	for _, tt := range tests {
		got, ok := prefixUpperBound(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("prefixUpperBound(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestContinuationToken(t *testing.T) {
	pk, rk := "1!8!YWJj", "1!4!"
	token := formatContinuation(&pk, &rk)
	gotPK, gotRK, err := parseContinuation(token)
	if err != nil || gotPK != pk || gotRK != rk {
		t.Fatalf("parseContinuation(%q) = %q, %q, %v", token, gotPK, gotRK, err)
	}
	empty := ""
	if got := formatContinuation(nil, nil); got != "" {
		t.Errorf("no keys gave %q", got)
	}
	if got := formatContinuation(&empty, &empty); got != "" {
		t.Errorf("empty keys gave %q", got)
	}
	if _, _, err := parseContinuation("not a token!"); err == nil {
		t.Error("bad token accepted")
	}
}
