package e2e

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/otlptest"
)

// latestPoints keeps the last point of each metric and attribute set:
// the SDK exports cumulative sums and gauges, so the last is the total.
func latestPoints(points []otlptest.Point) map[string]otlptest.Point {
	out := map[string]otlptest.Point{}
	for _, p := range points {
		keys := slices.Sorted(maps.Keys(p.Attrs))
		var b strings.Builder
		b.WriteString(p.Metric)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, p.Attrs[k])
		}
		out[b.String()] = p
	}
	return out
}

// metricsSummary is what the test checks of the received metrics.
type metricsSummary struct {
	helloOK, helloTimed float64
	episodes, completed float64
	storage             map[string]float64 // operation → requests
	backlogPartitions   []string
	backlogWorkItems    bool
	serviceNames        map[string]bool
	pointsSeen          int
}

func summarize(points []otlptest.Point) metricsSummary {
	s := metricsSummary{storage: map[string]float64{}, serviceNames: map[string]bool{}, pointsSeen: len(points)}
	for _, p := range points {
		s.serviceNames[p.Resource["service.name"]] = true
	}
	latest := latestPoints(points)
	for _, p := range latest {
		switch p.Metric {
		case "durabletask.activities":
			if p.Attrs["durabletask.task.name"] == "Hello" && p.Attrs["durabletask.outcome"] == "ok" {
				s.helloOK += p.Value
			}
		case "durabletask.activity.duration":
			if p.Attrs["durabletask.task.name"] == "Hello" {
				s.helloTimed += float64(p.Count)
			}
		case "durabletask.episodes":
			if p.Attrs["durabletask.task.name"] == "Orchestrator" {
				s.episodes += p.Value
				if p.Attrs["durabletask.outcome"] == "completed" {
					s.completed += p.Value
				}
			}
		case "durabletask.storage.requests":
			s.storage[p.Attrs["durabletask.storage.operation"]] += p.Value
		}
	}
	// The backlog of the last export: one point per owned partition.
	last := map[string]bool{}
	for i := len(points) - 1; i >= 0; i-- {
		p := points[i]
		if p.Metric != "durabletask.queue.backlog" {
			continue
		}
		key := p.Attrs["durabletask.queue.kind"] + "/" + p.Attrs["durabletask.partition"]
		if last[key] {
			break // the export before
		}
		last[key] = true
		if p.Attrs["durabletask.queue.kind"] == "workitems" {
			s.backlogWorkItems = true
		} else {
			s.backlogPartitions = append(s.backlogPartitions, p.Attrs["durabletask.partition"])
		}
	}
	sort.Strings(s.backlogPartitions)
	return s
}

// TestMetricsExportedOverOTLP runs the sample app with OTLP metrics
// (traces off) against an in-test receiver: one run of the sample shows
// up as three Hello activities, the orchestrator's episodes, storage calls
// of the queue and table kinds, and a backlog point per owned partition,
// all under the configured service.name.
func TestMetricsExportedOverOTLP(t *testing.T) {
	t.Parallel()
	rcv, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	hub := azuritetest.HubName(t)
	p := startApp(t, binary(t, "."), appEnv(t, hub,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+rcv.HTTPEndpoint(),
		"OTEL_TRACES_EXPORTER=none",
		"OTEL_METRIC_EXPORT_INTERVAL=300",
		"OTEL_SERVICE_NAME=durable-e2e-metrics",
		"DURABLE_PARTITION_COUNT=2",
	)...)
	defer p.stop()
	waitReady(t, p)

	runSample(t, p.base)

	var s metricsSummary
	deadline := time.Now().Add(15 * time.Second)
	for {
		s = summarize(rcv.Points())
		if s.helloOK == 3 && s.completed == 1 && len(s.backlogPartitions) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s of exports: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s.helloOK != 3 || s.helloTimed != 3 {
		t.Errorf("Hello activities: %v ok, %v timed; want 3 and 3", s.helloOK, s.helloTimed)
	}
	if s.episodes < 2 || s.completed != 1 {
		t.Errorf("Orchestrator episodes: %v (%v completed), want at least 2, one completed", s.episodes, s.completed)
	}
	for _, op := range []string{"queue.send", "queue.receive", "queue.delete", "table.batch", "table.insert", "table.query", "blob.lease"} {
		if s.storage[op] <= 0 {
			t.Errorf("no %s storage requests counted: %v", op, s.storage)
		}
	}
	if fmt.Sprint(s.backlogPartitions) != "[0 1]" || !s.backlogWorkItems {
		t.Errorf("backlog points of partitions %v (work items: %v), want [0 1] and the work items", s.backlogPartitions, s.backlogWorkItems)
	}
	if len(s.serviceNames) != 1 || !s.serviceNames["durable-e2e-metrics"] {
		t.Errorf("service.name of the points: %v, want durable-e2e-metrics only", s.serviceNames)
	}
	t.Logf("after %d points: Hello %v ok, Orchestrator %v episodes, storage requests by kind %v", s.pointsSeen, s.helloOK, s.episodes, s.storage)
}
