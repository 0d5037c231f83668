package durable

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

var guidT0 = time.Date(2024, 1, 1, 0, 0, 5, 0, time.UTC)

// TestNewGUIDVectors checks NewGUID against fixed vectors. The
// durabletask-dotnet rows are the golden values of its
// TaskOrchestrationContextWrapperTests (NewGuid_FixedInputs_ProducesStable-
// DeterministicValue and NewGuid_DifferentInstanceId_...); the others were
// computed independently with Python's uuid.uuid5 over the name shown.
func TestNewGUIDVectors(t *testing.T) {
	dotnetTime := time.Date(2023, 5, 6, 7, 8, 9, 123456700, time.UTC)
	tests := []struct {
		name     string
		instance string
		at       time.Time
		counter  int
		want     string
	}{
		{"durabletask-dotnet first", "fixed-instance-id", dotnetTime, 0, "0f353f85-75d2-56f8-89b5-a7773ace7605"},
		{"durabletask-dotnet second", "fixed-instance-id", dotnetTime, 1, "b0fd1465-f3d8-5a7e-98b1-f34137b15060"},
		{"durabletask-dotnet third", "fixed-instance-id", dotnetTime, 2, "12bec829-d5e1-563c-ac70-9806cad148c1"},
		{"durabletask-dotnet other instance", "other-instance-id", dotnetTime, 0, "258d445c-0c1e-594c-a4a1-0a837e4ebe92"},
		// Digits below a tick are cut, as .NET's DateTime has none: same name.
		{"sub-tick digits truncated", "fixed-instance-id", dotnetTime.Add(99 * time.Nanosecond), 0, "0f353f85-75d2-56f8-89b5-a7773ace7605"},
		// The name always uses UTC, whatever the location of the time.
		{"non-UTC location", "fixed-instance-id", dotnetTime.In(time.FixedZone("JST", 9*3600)), 0, "0f353f85-75d2-56f8-89b5-a7773ace7605"},
		// inst1_2024-01-01T00:00:05.0000000Z_0: seven zeros are written.
		{"whole second", "inst1", guidT0, 0, "89931c99-4439-52b7-8bdd-b1ffd66cd056"},
		// inst1_2024-01-01T00:00:05.1234568Z_0: one tick further.
		{"one tick later", "inst1", guidT0.Add(123456800), 0, "3e8dafc0-4f75-5f52-9127-a3f371e176c5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Context{instanceID: tc.instance, currentTime: tc.at, guidCounter: tc.counter}
			if got := c.NewGUID(); got != tc.want {
				t.Fatalf("NewGUID() = %s, want %s", got, tc.want)
			}
			if c.guidCounter != tc.counter+1 {
				t.Fatalf("counter = %d after one call from %d", c.guidCounter, tc.counter)
			}
		})
	}
	// durabletask-dotnet's DnsNamespaceValue, in RFC 4122 byte order (the
	// in-process extension's 9e952959-… differs in the fourth byte).
	if ns := uuidFormat(guidNamespace); ns != "9e952958-5e33-4daf-827f-2fa12937b875" {
		t.Fatalf("namespace = %s", ns)
	}
}

func uuidFormat(u [16]byte) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b.WriteByte('-')
		}
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// guidOrch makes two GUIDs, waits for an activity, and makes two more.
var guidOrch = NewOrchestrator("Guids", func(ctx *Context, _ any) ([]string, error) {
	g := []string{ctx.NewGUID(), ctx.NewGUID()}
	if _, err := hello.Call(ctx, "x").Await(); err != nil {
		return nil, err
	}
	g = append(g, ctx.NewGUID(), ctx.NewGUID())
	return g, nil
})

func TestNewGUID(t *testing.T) {
	// Expected values computed independently (Python uuid.uuid5 in the
	// namespace 9e952958-5e33-4daf-827f-2fa12937b875).
	want := []string{
		"89931c99-4439-52b7-8bdd-b1ffd66cd056", // inst1_2024-01-01T00:00:05.0000000Z_0
		"0edef8bb-b98f-54da-b557-d03e746cd101", // inst1_2024-01-01T00:00:05.0000000Z_1
		"5b771264-3d97-5981-bb56-0a68870fc350", // inst1_2024-01-01T00:01:00.1234567Z_2
		"fdbdab27-d543-521c-9e7b-a67a861f6939", // inst1_2024-01-01T00:01:00.1234567Z_3
	}
	later := time.Date(2024, 1, 1, 0, 1, 0, 123456700, time.UTC)
	episodes := [][]history.Event{
		start(guidT0, "Guids", ""),
		ep(later, evCompleted(0, `""`)),
	}
	d := newDriver(t, guidOrch)
	d.run(episodes[0])
	actions := d.run(episodes[1])
	if len(actions) != 1 || actions[0].Type != history.ExecutionCompleted {
		t.Fatalf("actions = %v", describeActions(actions))
	}
	var got []string
	if err := decodeJSON(actions[0].Result, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GUIDs = %v\nwant    %v", got, want)
	}
	v5 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, g := range got {
		if !v5.MatchString(g) {
			t.Errorf("%s is not an RFC 4122 version-5 UUID", g)
		}
	}
	// A fresh executor replaying the history makes the same GUIDs.
	c := assertReplayDeterministic(t, guidOrch, episodes...)
	if c.Result != actions[0].Result {
		t.Fatalf("replayed result %s, original %s", c.Result, actions[0].Result)
	}
	full := newExecutor(fnOf(t, guidOrch), "inst1")
	defer full.Close()
	if err := full.Replay(d.hist); err != nil {
		t.Fatal(err)
	}
	if full.Completion() == nil || full.Completion().Result != actions[0].Result {
		t.Fatalf("full replay completion = %+v", full.Completion())
	}
}

func TestNewGUIDNonUTCClock(t *testing.T) {
	// The OrchestratorStarted timestamp may carry another location and
	// digits below a tick: the name uses the stored UTC time all the same.
	orch := NewOrchestrator("G", func(ctx *Context, _ any) (string, error) { return ctx.NewGUID(), nil })
	d := newDriver(t, orch)
	tokyo := time.FixedZone("JST", 9*3600)
	evs := start(guidT0.In(tokyo), "G", "")
	for i := range evs {
		evs[i].Timestamp = guidT0.Add(42).In(tokyo) // NewEvent stores UTC ticks; undo that
	}
	actions := d.run(evs)
	if len(actions) != 1 || actions[0].Result != `"89931c99-4439-52b7-8bdd-b1ffd66cd056"` {
		t.Fatalf("actions = %v", describeActions(actions))
	}
}

func TestLoggerSilentWhileReplaying(t *testing.T) {
	var enabled [][2]bool // Enabled(Info), IsReplaying at step 2
	orch := NewOrchestrator("Log", func(ctx *Context, _ any) (string, error) {
		log := ctx.Logger()
		log.Info("step", "n", 1)
		if _, err := hello.Call(ctx, "a").Await(); err != nil {
			return "", err
		}
		log.Info("step", "n", 2)
		enabled = append(enabled, [2]bool{log.Enabled(context.Background(), slog.LevelInfo), ctx.IsReplaying()})
		if _, err := hello.Call(ctx, "b").Await(); err != nil {
			return "", err
		}
		// The handler itself drops records while replaying, even when a
		// caller bypasses Logger's Enabled check.
		r := slog.NewRecord(time.Time{}, slog.LevelWarn, "direct", 0)
		if err := log.Handler().Handle(context.Background(), r); err != nil {
			return "", err
		}
		log.With("k", "v").WithGroup("g").Info("done", "n", 3)
		return "ok", nil
	})
	fn := fnOf(t, orch)
	episodes := [][]history.Event{
		start(t0, "Log", ""),
		ep(t0.Add(time.Second), evCompleted(0, `""`)),
		ep(t0.Add(2*time.Second), evCompleted(1, `""`)),
	}
	newLogged := func() (*executor, *bytes.Buffer) {
		var buf bytes.Buffer
		ex := newExecutor(fn, "inst1")
		ex.SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		})))
		t.Cleanup(ex.Close)
		return ex, &buf
	}

	// Not replaying: each line is logged in its episode, once.
	ex, buf := newLogged()
	wantLines := []string{
		`level=INFO msg=step instanceId=inst1 orchestrator=Log n=1`,
		`level=INFO msg=step instanceId=inst1 orchestrator=Log n=2`,
		`level=WARN msg=direct instanceId=inst1 orchestrator=Log` + "\n" +
			`level=INFO msg=done instanceId=inst1 orchestrator=Log k=v g.n=3`,
	}
	var hist []history.Event
	for i, e := range episodes {
		actions, err := ex.Run(e)
		if err != nil {
			t.Fatal(err)
		}
		hist = append(append(append(hist, e...), actions...), history.NewEvent(history.OrchestratorCompleted, e[0].Timestamp))
		if got, want := buf.String(), strings.Join(wantLines[:i+1], "\n")+"\n"; got != want {
			t.Fatalf("after episode %d the log is\n%s\nwant\n%s", i, got, want)
		}
	}

	// Replaying the first two episodes logs nothing; the new episode logs its line.
	ex2, buf2 := newLogged()
	cut := len(episodes[0]) + 2 + len(episodes[1]) + 2
	if err := ex2.Replay(hist[:cut]); err != nil {
		t.Fatal(err)
	}
	if buf2.Len() != 0 {
		t.Fatalf("logged while replaying:\n%s", buf2)
	}
	if _, err := ex2.Run(episodes[2]); err != nil {
		t.Fatal(err)
	}
	if got, want := buf2.String(), wantLines[2]+"\n"; got != want {
		t.Fatalf("after the new episode the log is\n%s\nwant\n%s", got, want)
	}

	// Enabled is false exactly while replaying: step 2 ran live in ex and
	// replayed in ex2.
	if want := [][2]bool{{true, false}, {false, true}}; !reflect.DeepEqual(enabled, want) {
		t.Fatalf("Enabled/IsReplaying at step 2 = %v, want %v", enabled, want)
	}

	// A fully replayed history logs nothing at all.
	ex3, buf3 := newLogged()
	if err := ex3.Replay(hist); err != nil {
		t.Fatal(err)
	}
	if buf3.Len() != 0 || !ex3.Done() {
		t.Fatalf("full replay: done=%v log=%q", ex3.Done(), buf3)
	}
}

func TestCustomStatus(t *testing.T) {
	type progress struct {
		Step int    `json:"step"`
		Note string `json:"note"`
	}
	var errs []error
	orch := NewOrchestrator("Status", func(ctx *Context, _ any) (string, error) {
		errs = nil
		errs = append(errs, ctx.SetCustomStatus(progress{1, "started"}))
		if _, err := hello.Call(ctx, "a").Await(); err != nil {
			return "", err
		}
		errs = append(errs, ctx.SetCustomStatus(strings.Repeat("x", MaxCustomStatusBytes-2))) // exactly the limit as JSON
		if _, err := hello.Call(ctx, "b").Await(); err != nil {
			return "", err
		}
		errs = append(errs, ctx.SetCustomStatus(strings.Repeat("x", MaxCustomStatusBytes-1))) // one byte over
		errs = append(errs, ctx.SetCustomStatus(func() {}))                                   // not JSON
		if _, err := hello.Call(ctx, "c").Await(); err != nil {
			return "", err
		}
		errs = append(errs, ctx.SetCustomStatus(nil))
		return "ok", nil
	})
	d := newDriver(t, orch)
	d.run(start(t0, "Status", ""))
	if got := d.ex.CustomStatus(); got != `{"step":1,"note":"started"}` || errs[0] != nil {
		t.Fatalf("status = %q, err %v", got, errs[0])
	}
	d.run(ep(t0, evCompleted(0, `""`)))
	if got := d.ex.CustomStatus(); len(got) != MaxCustomStatusBytes || errs[1] != nil {
		t.Fatalf("status of %d bytes, err %v", len(got), errs[1])
	}
	d.run(ep(t0, evCompleted(1, `""`)))
	if !errors.Is(errs[2], ErrCustomStatusTooLarge) || !strings.Contains(errs[2].Error(), "16385 bytes") {
		t.Fatalf("too large: err = %v", errs[2])
	}
	if errs[3] == nil || errors.Is(errs[3], ErrCustomStatusTooLarge) {
		t.Fatalf("unencodable: err = %v", errs[3])
	}
	if got := d.ex.CustomStatus(); len(got) != MaxCustomStatusBytes {
		t.Fatalf("a rejected status replaced the previous one (%d bytes)", len(got))
	}
	d.run(ep(t0, evCompleted(2, `""`)))
	if got := d.ex.CustomStatus(); got != "" || errs[4] != nil {
		t.Fatalf("after nil: status %q, err %v", got, errs[4])
	}
}

func TestContextAccessors(t *testing.T) {
	type seen struct {
		Instance, Execution, Parent, Name, Input string
	}
	var got seen
	orch := NewOrchestrator("Acc", func(ctx *Context, in string) (string, error) {
		var raw any
		if err := ctx.Input(&raw); err != nil {
			return "", err
		}
		got = seen{ctx.InstanceID(), ctx.ExecutionID(), ctx.ParentInstanceID(), ctx.Name(), in}
		return "", nil
	})
	d := newDriver(t, orch)
	evs := start(t0, "Acc", `"hi"`)
	evs[1].Instance = history.OrchestrationInstance{InstanceID: "child-1", ExecutionID: "e9"}
	evs[1].Parent = &history.ParentInstance{Name: "Parent", TaskScheduleID: 3,
		Instance: history.OrchestrationInstance{InstanceID: "parent-1", ExecutionID: "pe"}}
	d.run(evs)
	if want := (seen{"child-1", "e9", "parent-1", "Acc", "hi"}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
