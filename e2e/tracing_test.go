package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/otlptest"
)

// The caller's W3C trace context in the trace tests.
const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan   = "00f067aa0ba902b7"
	callerParent = "00-" + callerTrace + "-" + callerSpan + "-01"
)

// startReceiver starts an in-test OTLP receiver, closed when the test ends,
// and returns it with the app settings that export to it (batches sent
// every 100 ms).
func startReceiver(t *testing.T) (*otlptest.Receiver, []string) {
	t.Helper()
	r, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + r.HTTPEndpoint(), "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_METRICS_EXPORTER=none", "OTEL_SERVICE_NAME=trace-e2e"}
}

// postWithTraceparent starts orchestration name at base with the caller's
// traceparent header and returns the check-status payload.
func postWithTraceparent(t *testing.T, base, name, body string) checkStatus {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/orchestrators/"+name, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", callerParent)
	req.Header.Set("tracestate", "congo=t61rcWkgMzE")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start %s: %d %s", name, resp.StatusCode, b)
	}
	return decode[checkStatus](t, b)
}

// terminate stops the process pid with SIGTERM (the app flushes its
// telemetry on the way out) and waits until it is gone.
func terminate(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %d: %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A reaped process is gone; a zombie has no /proc/<pid>/cmdline content.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if errors.Is(err, os.ErrNotExist) || (err == nil && len(b) == 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not exit within 30s of SIGTERM", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// traceShape checks the spans of one instance started under the caller's
// traceparent: exactly one trace, the caller's; create_orchestration
// (Producer, child of the caller's span), orchestration (Server, child of
// create), and per activity call a Client span (child of the
// orchestration) with exactly one Server child; the instance ID on every
// span; no span ID twice; nothing else.
func traceShape(t *testing.T, spans []otlptest.Span, orchestration, activity, id string, calls int) {
	t.Helper()
	dump := func() string {
		var b strings.Builder
		for _, s := range spans {
			fmt.Fprintf(&b, "  %s %s id=%s parent=%s trace=%s %v\n", s.Kind, s.Name, s.ID, s.ParentID, s.TraceID, s.Attrs)
		}
		return b.String()
	}
	if len(spans) != 2+2*calls {
		t.Errorf("%d spans, want %d:\n%s", len(spans), 2+2*calls, dump())
	}
	byID := map[string]otlptest.Span{}
	for _, s := range spans {
		if s.TraceID != callerTrace {
			t.Errorf("span %s is in trace %s, want the caller's %s", s.Name, s.TraceID, callerTrace)
		}
		if _, dup := byID[s.ID]; dup {
			t.Errorf("span ID %s twice:\n%s", s.ID, dump())
		}
		byID[s.ID] = s
		if s.Attrs["durabletask.task.instance_id"] != id {
			t.Errorf("span %s has instance ID %q, want %q", s.Name, s.Attrs["durabletask.task.instance_id"], id)
		}
		if s.Resource["service.name"] != "trace-e2e" {
			t.Errorf("span %s has service.name %q", s.Name, s.Resource["service.name"])
		}
	}
	find := func(name string, kind tracepb.Span_SpanKind) []otlptest.Span {
		var out []otlptest.Span
		for _, s := range spans {
			if s.Name == name && s.Kind == kind {
				out = append(out, s)
			}
		}
		return out
	}
	create := find("create_orchestration:"+orchestration, tracepb.Span_SPAN_KIND_PRODUCER)
	orch := find("orchestration:"+orchestration, tracepb.Span_SPAN_KIND_SERVER)
	if len(create) != 1 || len(orch) != 1 {
		t.Fatalf("%d create_orchestration and %d orchestration spans, want 1 each:\n%s", len(create), len(orch), dump())
	}
	if create[0].ParentID != callerSpan || orch[0].ParentID != create[0].ID {
		t.Errorf("create's parent %s (want the caller's %s), orchestration's parent %s (want create %s)",
			create[0].ParentID, callerSpan, orch[0].ParentID, create[0].ID)
	}
	if orch[0].Attrs["durabletask.task.status"] != "Completed" {
		t.Errorf("orchestration span status attribute %q", orch[0].Attrs["durabletask.task.status"])
	}
	clients := find("activity:"+activity, tracepb.Span_SPAN_KIND_CLIENT)
	servers := find("activity:"+activity, tracepb.Span_SPAN_KIND_SERVER)
	if len(clients) != calls || len(servers) != calls {
		t.Errorf("%d client and %d server spans of %s, want %d each:\n%s", len(clients), len(servers), activity, calls, dump())
	}
	for _, c := range clients {
		if c.ParentID != orch[0].ID {
			t.Errorf("activity client span %s has parent %s, want the orchestration %s", c.ID, c.ParentID, orch[0].ID)
		}
		n := 0
		for _, s := range servers {
			if s.ParentID == c.ID {
				n++
				if s.Attrs["durabletask.task.task_id"] != c.Attrs["durabletask.task.task_id"] {
					t.Errorf("server span task %s under client span task %s", s.Attrs["durabletask.task.task_id"], c.Attrs["durabletask.task.task_id"])
				}
			}
		}
		if n != 1 {
			t.Errorf("activity client span %s (task %s) has %d server children, want 1:\n%s", c.ID, c.Attrs["durabletask.task.task_id"], n, dump())
		}
	}
}

// TestTraceThroughHostEmulator runs the sample (HttpStart → Orchestrator →
// Hello ×3) under the host emulator with a traceparent header on the
// request; after the instance completes and the handler has stopped
// cleanly (flushing its spans), the receiver holds the one trace of
// Durable Task's shape below the caller's span.
func TestTraceThroughHostEmulator(t *testing.T) {
	rcv, otel := startReceiver(t)
	host := startHost(t, ".", appEnv(t, azuritetest.HubName(t), otel...))
	cs := postWithTraceparent(t, host.URL(), "Orchestrator", "")
	final := pollStatus(t, cs.StatusQueryGetURI, 60*time.Second)
	if st := decode[statusPayload](t, final.body); st.RuntimeStatus != "Completed" {
		t.Fatalf("final status: %s", final.body)
	}
	terminate(t, host.PID())
	traceShape(t, rcv.Spans(), "Orchestrator", "Hello", cs.ID, 3)
	if errs := host.InvocationErrors(); len(errs) > 0 {
		t.Errorf("the host emulator saw invocation errors: %v", errs)
	}
}

// TestTraceAcrossCrash starts CrashTest (Step one, two, three; two blocks
// until released) with a traceparent header, waits until the receiver has
// step one's client and server spans, SIGKILLs the app while step two
// runs, and lets a restarted process finish the instance. After a clean
// stop the receiver holds the same single trace as an uninterrupted run:
// the killed run of step two left no span (it never ended), its re-run is
// the one server span below step two's client span, and no span is there
// twice. The invariants hold.
func TestTraceAcrossCrash(t *testing.T) {
	rcv, otel := startReceiver(t)
	hub, dir := azuritetest.HubName(t), t.TempDir()
	env := appEnv(t, hub, append([]string{"CRASHTEST_DIR=" + dir, "DURABLE_MESSAGE_VISIBILITY=2s", "DURABLE_LEASE_INTERVAL=3s"}, otel...)...)
	bin := binary(t, "./e2e/testapp")
	p1 := startApp(t, bin, env...)
	cs := postWithTraceparent(t, p1.base, "CrashTest", `"traced"`)
	waitFile(t, p1, filepath.Join(dir, "blocked"), 30*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stepOne := func(spans []otlptest.Span) bool {
		var client, server bool
		for _, s := range spans {
			if s.Name == "activity:Step" && s.Attrs["durabletask.task.task_id"] == "0" {
				client = client || s.Kind == tracepb.Span_SPAN_KIND_CLIENT
				server = server || s.Kind == tracepb.Span_SPAN_KIND_SERVER
			}
		}
		return client && server
	}
	if spans, err := rcv.WaitSpans(ctx, stepOne); err != nil {
		t.Fatalf("step one's spans did not arrive: %v (%d spans)", err, len(spans))
	}
	before := len(rcv.Spans())
	p1.kill()
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p2 := startApp(t, bin, env...)
	statusURL := strings.Replace(cs.StatusQueryGetURI, p1.base, p2.base, 1)
	final := pollStatus(t, statusURL, 60*time.Second)
	const want = `["done one","done two","done three"]`
	if st := decode[statusPayload](t, final.body); st.RuntimeStatus != "Completed" || string(st.Output) != want {
		t.Fatalf("final status: %s", final.body)
	}
	terminate(t, p2.cmd.Process.Pid)
	<-p2.done
	runs, err := os.ReadFile(filepath.Join(dir, "runs.log"))
	if err != nil {
		t.Fatal(err)
	}
	if string(runs) != "one\ntwo\ntwo\nthree\n" {
		t.Fatalf("activity runs:\n%s", runs)
	}
	spans := rcv.Spans()
	t.Logf("%d spans before the kill (create and step one's), %d in all", before, len(spans))
	traceShape(t, spans, "CrashTest", "Step", cs.ID, 3)
	checkInvariants(t, hub, []string{cs.ID}, func(string) string { return want })
}

// TestTraceOfEntities runs the test app's CounterAdder (five add signals
// and a get call to Counter/{key}) and a signal through the HTTP entity
// route, both with the caller's traceparent. After a clean stop the
// receiver holds Durable Task's entity spans in the caller's trace: per
// request an entity:counter:{op} span of its sender (Producer for a
// signal, Client for the call; the HTTP signal's a child of the caller's
// span) with the operation's span (Consumer, Server) as its one child, no
// span ID twice.
func TestTraceOfEntities(t *testing.T) {
	rcv, otel := startReceiver(t)
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, azuritetest.HubName(t), otel...)...)
	const key = "traced"
	cs := postWithTraceparent(t, p.base, "CounterAdder", `{"key":"`+key+`","signals":5}`)
	req, err := http.NewRequest(http.MethodPost, p.base+"/api/durabletask/entities/Counter/"+key+"?op=add", strings.NewReader("1"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", callerParent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("signal: %d %s", resp.StatusCode, b)
	}
	if st := decode[statusPayload](t, pollStatus(t, cs.StatusQueryGetURI, 30*time.Second).body); st.RuntimeStatus != "Completed" {
		t.Fatalf("CounterAdder: %s", st.RuntimeStatus)
	}
	deadline := time.Now().Add(30 * time.Second)
	for entityState(t, p.base, "Counter", key) != "6" {
		if time.Now().After(deadline) {
			t.Fatalf("Counter/%s: state %q, want 6", key, entityState(t, p.base, "Counter", key))
		}
		time.Sleep(50 * time.Millisecond)
	}
	terminate(t, p.cmd.Process.Pid)
	<-p.done

	spans := rcv.Spans()
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s id=%s parent=%s %v\n", s.Kind, s.Name, s.ID, s.ParentID, s.Attrs)
	}
	dump := b.String()
	byID := map[string]otlptest.Span{}
	for _, s := range spans {
		if s.TraceID != callerTrace {
			t.Errorf("span %s is in trace %s, want the caller's", s.Name, s.TraceID)
		}
		if _, dup := byID[s.ID]; dup {
			t.Errorf("span ID %s twice:\n%s", s.ID, dump)
		}
		byID[s.ID] = s
	}
	if len(spans) != 16 {
		t.Errorf("%d spans, want 16 (create, orchestration, 6 signals and a call with their operations):\n%s", len(spans), dump)
	}
	var orch string
	for _, s := range spans {
		if s.Name == "orchestration:CounterAdder" && s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			orch = s.ID
		}
	}
	// Parent → sender kind → count, for the requests and their operations.
	senders := map[string]map[tracepb.Span_SpanKind]int{}
	for _, s := range spans {
		if !strings.HasPrefix(s.Name, "entity:counter:") {
			continue
		}
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_PRODUCER, tracepb.Span_SPAN_KIND_CLIENT:
			if senders[s.ParentID] == nil {
				senders[s.ParentID] = map[tracepb.Span_SpanKind]int{}
			}
			senders[s.ParentID][s.Kind]++
			if s.Attrs["durabletask.event.target_instance_id"] != "@counter@"+key {
				t.Errorf("%s %s targets %q", s.Kind, s.Name, s.Attrs["durabletask.event.target_instance_id"])
			}
			n := 0
			for _, o := range spans {
				if o.ParentID == s.ID {
					n++
					want := tracepb.Span_SPAN_KIND_CONSUMER
					if s.Kind == tracepb.Span_SPAN_KIND_CLIENT {
						want = tracepb.Span_SPAN_KIND_SERVER
					}
					if o.Name != s.Name || o.Kind != want || o.Attrs["durabletask.task.instance_id"] != "@counter@"+key {
						t.Errorf("below %s %s: %s %s (instance %q)", s.Kind, s.Name, o.Kind, o.Name, o.Attrs["durabletask.task.instance_id"])
					}
				}
			}
			if n != 1 {
				t.Errorf("%s %s %s has %d children, want its operation:\n%s", s.Kind, s.Name, s.ID, n, dump)
			}
		}
	}
	if got := senders[orch]; orch == "" || got[tracepb.Span_SPAN_KIND_PRODUCER] != 5 || got[tracepb.Span_SPAN_KIND_CLIENT] != 1 {
		t.Errorf("the orchestration %q sent %v, want 5 signals and a call:\n%s", orch, got, dump)
	}
	if got := senders[callerSpan]; got[tracepb.Span_SPAN_KIND_PRODUCER] != 1 {
		t.Errorf("the caller's span has %v entity requests below it, want the HTTP signal:\n%s", got, dump)
	}
}
