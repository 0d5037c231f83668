package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/telemetry"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestMain(m *testing.M) { azuritetest.Main(m) }

func TestShares(t *testing.T) {
	keys := entityKeys("k", 3)
	if want := []string{"k-0", "k-1", "k-2"}; strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("entityKeys = %v, want %v", keys, want)
	}
	for _, tt := range []struct {
		n    int
		want []int
	}{{9, []int{3, 3, 3}}, {10, []int{4, 3, 3}}, {11, []int{4, 4, 3}}, {1, []int{1, 0, 0}}} {
		got := shares(keys, tt.n)
		for i, k := range keys {
			if got[k] != tt.want[i] {
				t.Errorf("shares(3 keys, %d)[%s] = %d, want %d", tt.n, k, got[k], tt.want[i])
			}
		}
	}
}

// callHistory builds an orchestration history: episodes at the given
// offsets (ms), each with the events of its step.
func callHistory(t *testing.T, steps [][]history.Event, at []int) []history.Event {
	t.Helper()
	base := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	var out []history.Event
	for i, evs := range steps {
		out = append(out, history.NewEvent(history.OrchestratorStarted, base.Add(time.Duration(at[i])*time.Millisecond)))
		out = append(out, evs...)
		out = append(out, history.NewEvent(history.OrchestratorCompleted, base.Add(time.Duration(at[i])*time.Millisecond)))
	}
	return out
}

func TestCallLatencies(t *testing.T) {
	send := func(id string, signal bool) history.Event {
		raised, err := history.NewEntityRequestEvent(history.EntityRequest{Operation: "get", Signal: signal, ID: id}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ev := history.NewEvent(history.EventSent, time.Now())
		ev.InstanceID, ev.Name, ev.Input = "@counter@k", raised.Name, raised.Input
		return ev
	}
	answer := func(id string) history.Event {
		ev, err := history.NewEntityResponseEvent(id, history.EntityResponse{Result: "1"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	const a, b, s = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b", "00000000-0000-4000-8000-00000000000c"
	// Episode 1 signals and calls a; 2 gets a's answer and calls b; 3 gets b's.
	h := callHistory(t, [][]history.Event{{send(s, true), send(a, false)}, {answer(a), send(b, false)}, {answer(b)}}, []int{0, 7, 19})
	lat, err := callLatencies(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 2 || lat[0] != 7*time.Millisecond || lat[1] != 12*time.Millisecond {
		t.Errorf("latencies = %v, want [7ms 12ms] (the signal is no call)", lat)
	}
	for _, tt := range []struct {
		name  string
		steps [][]history.Event
		want  string
	}{
		{"unanswered", [][]history.Event{{send(a, false)}, {answer(b)}}, "call 1 (request " + a + ") has no response"},
		{"same episode", [][]history.Event{{send(a, false), answer(a)}, {}}, "answered in the episode that sent it"},
		{"sent twice", [][]history.Event{{send(a, false)}, {send(a, false)}}, "sent twice"},
	} {
		if _, err := callLatencies(callHistory(t, tt.steps, []int{0, 5})); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// TestEntityWorkloads runs the entity workloads at tiny sizes against
// Azurite through the assembled app and checks that their figures come
// from real runs.
func TestEntityWorkloads(t *testing.T) {
	conn := azuritetest.ConnectionString(t)
	root, err := azuritetest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"-storage", conn, "-entity-signals", "12", "-entity-keys", "3", "-entity-clients", "4",
		"-entity-orchs", "3", "-entity-orch-signals", "4", "-entity-calls", "5", "-entity-repeat", "1", "-entity-timeout", "45s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, closeApp, err := assemble(ctx, cfg, conn, root, telemetry.Providers{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeApp()
	b.progress = io.Discard

	// Signals through HTTP over 3 Counters: each holds its share.
	keys := entityKeys("http", 3)
	r, err := b.signalHTTP(ctx, keys, 12, 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.n != 12 || r.sends != 12 || r.elapsed <= 0 || r.sendTime <= 0 || r.sendTime > r.elapsed || r.rate() <= 0 {
		t.Errorf("HTTP run = %+v, want 12 signals sent before they were all applied", r)
	}
	for _, k := range keys {
		if v, err := client.ReadEntity(ctx, b.watch, counterEntity, k); err != nil || v != 4 {
			t.Errorf("Counter %s = %d, %v; want 4", k, v, err)
		}
	}

	// Signals from 3 orchestrations into one Counter.
	r, err = b.signalOrch(ctx, []string{"orch"}, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.n != 12 || r.sends != 3 || r.elapsed <= 0 {
		t.Errorf("orchestration run = %+v, want 12 signals from 3 orchestrations", r)
	}
	if v, err := client.ReadEntity(ctx, b.watch, counterEntity, "orch"); err != nil || v != 12 {
		t.Errorf("Counter orch = %d, %v; want 12", v, err)
	}

	// Calls: one latency per call, each > 0.
	c, err := b.callEntities(ctx, "calls", 5)
	if err != nil {
		t.Fatal(err)
	}
	if c.calls != 5 || len(c.lat) != 5 || c.outside <= 0 {
		t.Fatalf("call run = %+v, want 5 latencies", c)
	}
	for i, d := range c.lat {
		if d <= 0 || d > c.outside {
			t.Errorf("call %d took %v (the whole run %v)", i+1, d, c.outside)
		}
	}

	// The whole set, as the bench runs it: every figure in the summary.
	b.sum = summary{}
	if err := b.entities(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for i, k := range b.sum.keys {
		got[k] = b.sum.vals[i]
	}
	for _, k := range []string{"e1_http_one_signals_per_s", "e1_http_one_sent_per_s", "e2_http_many_signals_per_s", "e3_orch_one_signals_per_s",
		"e3_orch_many_signals_per_s", "e1_http_one_calls_per_signal", "e4_call_p50_ms", "e4_call_p90_ms", "e4_call_p99_ms", "e4_call_mean_ms", "e4_call_outside_ms"} {
		if v, ok := got[k].(float64); !ok || v <= 0 {
			t.Errorf("summary %s = %v, want a positive figure", k, got[k])
		}
	}
	if got["goal_entity_signals_per_s"] != goalSignalsPerS || got["df_entity_ops_per_s"] != dfOpsPerS || got["e4_calls"] != 5 {
		t.Errorf("summary = %s", b.sum.json())
	}
}
