package engine_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// lengthCounting counts the queue-length calls made of its backend.
type lengthCounting struct {
	backend.Backend
	calls atomic.Int64
}

func (l *lengthCounting) ControlQueueLength(ctx context.Context, p int) (int64, error) {
	l.calls.Add(1)
	return l.Backend.ControlQueueLength(ctx, p)
}

func (l *lengthCounting) WorkItemQueueLength(ctx context.Context) (int64, error) {
	l.calls.Add(1)
	return l.Backend.WorkItemQueueLength(ctx)
}

var metricsHello = durable.NewActivity("Hello", func(ctx context.Context, city string) (string, error) {
	return "Hello " + city + "!", nil
})

// metricsOrchestrator greets three cities in parallel, then waits on a
// one-second durable timer.
var metricsOrchestrator = durable.NewOrchestrator("MetricsSample", func(ctx *durable.Context, _ any) ([]string, error) {
	out, err := durable.All(ctx, metricsHello.Call(ctx, "Tokyo"), metricsHello.Call(ctx, "Seattle"), metricsHello.Call(ctx, "London"))
	if err != nil {
		return nil, err
	}
	return out, ctx.Sleep(time.Second)
})

var metricsCounter = durable.NewEntity("MetricsCounter", durable.Operations[int]{
	"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
})

// point is one collected data point.
type point struct {
	attrs map[string]string
	value float64 // sum or gauge value; a histogram's sum
	count uint64  // a histogram's count
}

// collect reads every metric of the engine's scope by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string][]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	attrs := func(s attribute.Set) map[string]string {
		m := map[string]string{}
		for _, kv := range s.ToSlice() {
			m[string(kv.Key)] = kv.Value.Emit()
		}
		return m
	}
	out := map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{attrs: attrs(p.Attributes), value: float64(p.Value)})
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{attrs: attrs(p.Attributes), value: float64(p.Value)})
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{attrs: attrs(p.Attributes), value: p.Sum, count: p.Count})
				}
			default:
				t.Errorf("metric %s has unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// sum adds the values (or, for histograms, the counts) of the points
// whose attributes include want.
func sum(points []point, want map[string]string) (total float64, count uint64) {
	for _, p := range points {
		match := true
		for k, v := range want {
			if p.attrs[k] != v {
				match = false
			}
		}
		if match {
			total += p.value
			count += p.count
		}
	}
	return total, count
}

// TestMetricsOfASampleRun runs an orchestration (three Hello activities,
// two of them through the work-item queue, and a timer), an entity
// signal and an undecodable control message on the memory backend, and
// checks what the engine's metrics recorded.
func TestMetricsOfASampleRun(t *testing.T) {
	be, err := memory.New(memory.Options{HubName: "MetricsHub", PartitionCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	counting := &lengthCounting{Backend: be}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	h := &hub{t: t, name: be.HubName()}
	eng, _ := h.start(engine.Options{Backend: counting, MeterProvider: mp, MaxDequeueCount: 1, MaxLocalActivityBacklog: 1},
		metricsOrchestrator, metricsHello, metricsCounter)
	reg := durable.NewRegistry()
	if err := reg.Add(metricsOrchestrator, metricsHello, metricsCounter); err != nil {
		t.Fatal(err)
	}
	// A client of another process: its start goes through the control queue.
	c := client.New(be, reg, nil)
	id, err := c.StartNew(context.Background(), "MetricsSample", client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SignalEntity(context.Background(), history.EntityID{Name: "MetricsCounter", Key: "k"}, "add", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := be.SendRaw(be.ControlQueueName(0), "not a durable task message", 0); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, id); st.Status != history.StatusCompleted {
		t.Fatalf("status %s output %s", st.Status, st.Output)
	}
	var got map[string][]point
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = collect(t, reader)
		entity, _ := sum(got[engine.MetricEpisodes], map[string]string{engine.AttrType: "entity"})
		parked, _ := sum(got[engine.MetricParkedMessages], nil)
		if entity >= 1 && parked >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no entity episode (%v) or no parked message (%v) recorded", entity, parked)
		}
		time.Sleep(20 * time.Millisecond)
	}

	sample := map[string]string{engine.AttrType: "orchestration", engine.AttrTaskName: "MetricsSample"}
	episodes, _ := sum(got[engine.MetricEpisodes], sample)
	_, timed := sum(got[engine.MetricEpisodeDuration], sample)
	completed, _ := sum(got[engine.MetricEpisodes], map[string]string{engine.AttrTaskName: "MetricsSample", engine.AttrOutcome: "completed"})
	running, _ := sum(got[engine.MetricEpisodes], map[string]string{engine.AttrTaskName: "MetricsSample", engine.AttrOutcome: "running"})
	// The start, the three results (in one to three episodes) and the timer.
	if episodes < 3 || completed != 1 || running != episodes-1 || timed != uint64(episodes) {
		t.Errorf("MetricsSample episodes: %v (%v completed, %v running), %d timed; want at least 3, one completed, the rest running, all timed: %v",
			episodes, completed, running, timed, got[engine.MetricEpisodes])
	}
	entity, _ := sum(got[engine.MetricEpisodes], map[string]string{engine.AttrType: "entity", engine.AttrTaskName: "metricscounter", engine.AttrOutcome: "running"})
	if entity != 1 {
		t.Errorf("entity episodes of metricscounter: %v, want 1: %v", entity, got[engine.MetricEpisodes])
	}

	hello := map[string]string{engine.AttrTaskName: "Hello", engine.AttrOutcome: "ok"}
	activities, _ := sum(got[engine.MetricActivities], hello)
	secs, runs := sum(got[engine.MetricActivityDuration], hello)
	if all, _ := sum(got[engine.MetricActivities], nil); activities != 3 || all != 3 || runs != 3 || secs < 0 || secs > 10 {
		t.Errorf("Hello activities: %v ok of %v, %d timed in %v s; want 3 ok of 3, 3 timed: %v", activities, all, runs, secs, got[engine.MetricActivities])
	}

	for _, kind := range []string{"control", "workitems"} {
		secs, n := sum(got[engine.MetricQueueWait], map[string]string{engine.AttrQueueKind: kind})
		// control: the start, the signal and the timer at least;
		// workitems: the two calls beyond the local backlog of one.
		if min := map[string]uint64{"control": 3, "workitems": 2}[kind]; n < min || secs < 0 || secs > float64(n)*10 {
			t.Errorf("queue waits of %s: %d in %v s, want at least %d of at most 10 s each", kind, n, secs, min)
		}
	}

	parked, _ := sum(got[engine.MetricParkedMessages], map[string]string{engine.AttrQueueKind: "control", engine.AttrPoisonReason: "undecodable"})
	if all, _ := sum(got[engine.MetricParkedMessages], nil); parked != 1 || all != 1 {
		t.Errorf("parked messages: %v undecodable control of %v, want 1 of 1: %v", parked, all, got[engine.MetricParkedMessages])
	}

	// One backlog point per owned partition and one for the work items,
	// read by one queue-length call each during the collection.
	var partitions []string
	for _, p := range got[engine.MetricQueueBacklog] {
		if p.attrs[engine.AttrQueueKind] == "control" {
			partitions = append(partitions, p.attrs[engine.AttrPartition])
		}
		if p.value < 0 {
			t.Errorf("backlog %v < 0", p)
		}
	}
	sort.Strings(partitions)
	owned := fmt.Sprint(eng.OwnedPartitions())
	if fmt.Sprint(partitions) != strings.ReplaceAll(owned, ",", "") || owned != "[0 1]" {
		t.Errorf("backlog points of partitions %v, owned %v; want one per owned partition", partitions, owned)
	}
	if _, n := sum(got[engine.MetricQueueBacklog], map[string]string{engine.AttrQueueKind: "workitems"}); len(got[engine.MetricQueueBacklog]) != 3 {
		t.Errorf("backlog points %v (%d of work items), want 3", got[engine.MetricQueueBacklog], n)
	}
	ctlSecs, ctlN := sum(got[engine.MetricQueueWait], map[string]string{engine.AttrQueueKind: "control"})
	wiSecs, wiN := sum(got[engine.MetricQueueWait], map[string]string{engine.AttrQueueKind: "workitems"})
	t.Logf("MetricsSample: %v episodes (%v completed); Hello: %v ok in %.4f s; queue waits: control %d in %.3f s, workitems %d in %.3f s; backlog points %d",
		episodes, completed, activities, secs, ctlN, ctlSecs, wiN, wiSecs, len(got[engine.MetricQueueBacklog]))
	before := counting.calls.Load()
	collect(t, reader)
	if n := counting.calls.Load() - before; n != 3 {
		t.Errorf("one collection made %d queue-length calls, want 3 (2 partitions, the work items)", n)
	}
	for _, name := range []string{engine.MetricInstancesCached, engine.MetricInstancesActive, engine.MetricActivitiesRunning} {
		if len(got[name]) != 1 || got[name][0].value < 0 {
			t.Errorf("%s: %v, want one point", name, got[name])
		}
	}
	if cached := got[engine.MetricInstancesCached]; len(cached) == 1 && cached[0].value < 1 {
		t.Errorf("instances cached: %v, want the entity at least", cached[0].value)
	}
}

// TestMetricsNoopMakesNoCalls runs the sample with a no-op meter provider,
// and with an SDK one that is never collected: the backlog gauge makes no
// storage call in either case.
func TestMetricsNoopMakesNoCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		mp   metric.MeterProvider
	}{
		{"noop", noop.NewMeterProvider()},
		{"not collected", sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, err := memory.New(memory.Options{HubName: "MetricsNoop"})
			if err != nil {
				t.Fatal(err)
			}
			counting := &lengthCounting{Backend: be}
			h := &hub{t: t, name: be.HubName()}
			_, c := h.start(engine.Options{Backend: counting, MeterProvider: tc.mp}, metricsOrchestrator, metricsHello)
			id, err := c.StartNew(context.Background(), "MetricsSample", client.StartOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st := wait(t, c, id); st.Status != history.StatusCompleted {
				t.Fatalf("status %s output %s", st.Status, st.Output)
			}
			if n := counting.calls.Load(); n != 0 {
				t.Errorf("%d queue-length calls, want none", n)
			}
		})
	}
}
