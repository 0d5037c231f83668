package render

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler/durableapi/apiclient"
)

func TestTable(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		rows   [][]string
		want   string
	}{
		{"aligned", []string{"ID", "NAME"}, [][]string{{"a", "Orchestrator"}, {"longer-id", "X"}},
			"ID         NAME\na          Orchestrator\nlonger-id  X\n"},
		{"colour does not count", []string{"S", "T"}, [][]string{{"\x1b[32mok\x1b[0m", "x"}, {"bad", "y"}},
			"S    T\n\x1b[32mok\x1b[0m   x\nbad  y\n"},
		{"wide runes", []string{"K", "V"}, [][]string{{"é", "1"}}, "K  V\né  1\n"},
		{"header only", []string{"A", "B"}, nil, "A  B\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := Table(&b, tt.header, tt.rows); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", b.String(), tt.want)
			}
		})
	}
}

func TestValueAndDuration(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""}, {"null", "null"}, {" {\n  \"a\": [1, 2]\n} ", `{"a":[1,2]}`},
		{`"` + strings.Repeat("x", 100) + `"`, `"` + strings.Repeat("x", 76) + "..."},
	} {
		if got := Value(json.RawMessage(tt.in)); got != tt.want {
			t.Errorf("Value(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{850 * time.Millisecond, "850ms"}, {2350 * time.Millisecond, "2.35s"}, {184 * time.Second, "3m04s"}, {121 * time.Minute, "2h01m"}, {-5 * time.Millisecond, "-5ms"}} {
		if got := Duration(tt.d); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// events decodes a historyEvents array as the API sends it.
func events(t *testing.T, s string) []apiclient.HistoryEvent {
	t.Helper()
	var evs []apiclient.HistoryEvent
	if err := json.Unmarshal([]byte(s), &evs); err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestTimeline(t *testing.T) {
	tests := []struct {
		name    string
		history string
		want    string
	}{
		{
			name: "activities and completion",
			history: `[
{"EventType":"ExecutionStarted","Timestamp":"2026-01-02T03:04:05.000Z","FunctionName":"Orchestrator","Input":null},
{"EventType":"TaskCompleted","Timestamp":"2026-01-02T03:04:05.250Z","FunctionName":"Hello","ScheduledTime":"2026-01-02T03:04:05.100Z","Result":"Hello Tokyo!","TaskScheduledId":0},
{"EventType":"TaskFailed","Timestamp":"2026-01-02T03:04:07.600Z","FunctionName":"Hello","ScheduledTime":"2026-01-02T03:04:05.300Z","Reason":"boom","FailureDetails":{"ErrorType":"Error","ErrorMessage":"no city"},"TaskScheduledId":1},
{"EventType":"ExecutionCompleted","Timestamp":"2026-01-02T03:04:07.700Z","OrchestrationStatus":"Completed","Result":["Hello Tokyo!"]}]`,
			want: `START         END           DURATION  KIND       NAME          RESULT
03:04:05.000                          started    Orchestrator  input null
03:04:05.100  03:04:05.250  150ms     activity   Hello         "Hello Tokyo!"
03:04:05.300  03:04:07.600  2.30s     activity   Hello         failed: Error: no city
03:04:07.700                          completed  Completed     ["Hello Tokyo!"]
`,
		},
		{
			name: "timers, events, sub-orchestrations, suspension, termination",
			history: `[
{"EventType":"ExecutionStarted","Timestamp":"2026-01-02T03:04:05Z","FunctionName":"Parent","Input":{"n":1}},
{"EventType":"TimerCreated","Timestamp":"2026-01-02T03:04:05.010Z","FireAt":"2026-01-02T03:04:06Z"},
{"EventType":"TimerCreated","Timestamp":"2026-01-02T03:04:05.020Z","FireAt":"2026-01-02T03:05:00Z"},
{"EventType":"TimerFired","Timestamp":"2026-01-02T03:04:06.005Z","FireAt":"2026-01-02T03:04:06Z","TimerId":1},
{"EventType":"EventRaised","Timestamp":"2026-01-02T03:04:07Z","Name":"Approve","Input":true},
{"EventType":"SubOrchestrationInstanceFailed","Timestamp":"2026-01-02T03:04:09Z","FunctionName":"Child","ScheduledTime":"2026-01-02T03:04:08Z","Reason":"child broke","TaskScheduledId":3},
{"EventType":"ExecutionSuspended","Timestamp":"2026-01-02T03:04:10Z","Reason":"pause"},
{"EventType":"ExecutionResumed","Timestamp":"2026-01-02T03:04:11Z","Reason":null},
{"EventType":"ExecutionTerminated","Timestamp":"2026-01-02T03:04:12Z","Input":"enough"}]`,
			want: `START         END           DURATION  KIND           NAME                RESULT
03:04:05.000                          started        Parent              input {"n":1}
03:04:05.010  03:04:06.005  995ms     timer          until 03:04:06.000  fired
03:04:05.020  ...           running   timer          until 03:05:00.000
03:04:07.000                          event          Approve             true
03:04:08.000  03:04:09.000  1.00s     orchestration  Child               failed: child broke
03:04:10.000                          suspended                          pause
03:04:11.000                          resumed
03:04:12.000                          terminated                         "enough"
`,
		},
		{
			name: "calls still running (showScheduled)",
			history: `[
{"EventType":"ExecutionStarted","Timestamp":"2026-01-02T03:04:05Z","FunctionName":"CrashTest","Input":null},
{"EventId":0,"EventType":"TaskScheduled","Timestamp":"2026-01-02T03:04:05.100Z","Name":"Step","Input":"one"},
{"EventType":"TaskCompleted","Timestamp":"2026-01-02T03:04:05.200Z","FunctionName":"Step","ScheduledTime":"2026-01-02T03:04:05.100Z","Result":"done one","TaskScheduledId":0},
{"EventId":1,"EventType":"SubOrchestrationInstanceCreated","Timestamp":"2026-01-02T03:04:05.300Z","Name":"Child","InstanceId":"kid"},
{"EventId":2,"EventType":"TaskScheduled","Timestamp":"2026-01-02T03:04:05.300Z","Name":"Step","Input":"two"}]`,
			want: `START         END           DURATION  KIND           NAME       RESULT
03:04:05.000                          started        CrashTest  input null
03:04:05.100  03:04:05.200  100ms     activity       Step       "done one"
03:04:05.300  ...           running   orchestration  Child
03:04:05.300  ...           running   activity       Step
`,
		},
		{
			name: "a call the instance's end left unfinished",
			history: `[
{"EventType":"ExecutionStarted","Timestamp":"2026-01-02T03:04:05Z","FunctionName":"CrashTest","Input":null},
{"EventId":0,"EventType":"TaskScheduled","Timestamp":"2026-01-02T03:04:05.100Z","Name":"Step","Input":"two"},
{"EventType":"ExecutionTerminated","Timestamp":"2026-01-02T03:04:09Z","Input":"stop"}]`,
			want: `START         END  DURATION  KIND        NAME       RESULT
03:04:05.000                 started     CrashTest  input null
03:04:05.100                 activity    Step       never finished
03:04:09.000                 terminated             "stop"
`,
		},
		{name: "no history", history: `[]`, want: "(no history)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := Timeline(&b, Style{}, events(t, tt.history)); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestFailuresAreRedOnlyWithColour(t *testing.T) {
	steps := []Step{{Start: time.Unix(0, 0), End: time.Unix(1, 0), Kind: "activity", Name: "A", Result: "E: x", Failed: true}}
	if got := TimelineRows(Style{}, steps)[0][5]; got != "failed: E: x" {
		t.Fatalf("plain: %q", got)
	}
	if got := TimelineRows(Style{Color: true}, steps)[0][5]; got != "\x1b[31mfailed: E: x\x1b[0m" {
		t.Fatalf("colour: %q", got)
	}
	if got := (Style{Color: true}).Status("Completed"); got != "\x1b[32mCompleted\x1b[0m" {
		t.Fatalf("status colour: %q", got)
	}
}

func TestSummaryAndInstanceRows(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &apiclient.Status{InstanceID: "i1", Name: "Orchestrator", RuntimeStatus: apiclient.StatusCompleted,
		Input: json.RawMessage("null"), Output: json.RawMessage(`["a"]`), CustomStatus: json.RawMessage(`{"step":2}`),
		CreatedTime: created, LastUpdatedTime: created.Add(time.Second)}
	var b strings.Builder
	if err := Summary(&b, Style{}, st); err != nil {
		t.Fatal(err)
	}
	want := "Instance  i1\nName      Orchestrator\nStatus    Completed\nCreated   2026-01-02T03:04:05Z\nUpdated   2026-01-02T03:04:06Z\nInput     null\nOutput    [\"a\"]\nCustom    {\"step\":2}\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
	rows := InstanceRows(Style{}, []*apiclient.Status{st})
	if strings.Join(rows[0], "|") != "i1|Orchestrator|Completed|2026-01-02T03:04:05Z|2026-01-02T03:04:06Z" {
		t.Fatalf("rows %q", rows)
	}
}
