package engine

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// recordAll makes every synchronous measurement the engine makes.
func recordAll(m *engineMetrics, r *backend.Received) {
	began := begin(m.episodeDuration)
	m.episode(typeOrchestration, "Orchestrator", "running", began)
	began = begin(m.activityDuration)
	m.activity("Hello", "ok", began)
	m.dequeued(queueControl, r)
	m.parkedMessage("hub-workitems", poisonFailing)
}

// TestMetricsCostNothingWhenDisabled checks that with the no-op provider,
// and with the global provider while no SDK is installed (what the app
// runs with when no OTEL_* variable is set), a measurement allocates
// nothing and reads no clock.
func TestMetricsCostNothingWhenDisabled(t *testing.T) {
	r := &backend.Received{DequeueCount: 1, InsertedAt: time.Now(), Message: backend.Message{Event: history.NewEvent(history.TimerFired, time.Now())}}
	for _, tc := range []struct {
		name string
		mp   metric.MeterProvider
	}{{"noop", noop.NewMeterProvider()}, {"global without SDK", otel.GetMeterProvider()}} {
		m, err := newEngineMetrics(tc.mp, "hub")
		if err != nil {
			t.Fatal(err)
		}
		if !begin(m.episodeDuration).IsZero() || !begin(m.activityDuration).IsZero() {
			t.Errorf("%s: a duration is timed", tc.name)
		}
		if n := testing.AllocsPerRun(1000, func() { recordAll(m, r) }); n != 0 {
			t.Errorf("%s: %v allocations per round of measurements, want 0", tc.name, n)
		}
	}
}

// BenchmarkMetricsDisabled is the cost of one round of the engine's
// measurements (an episode, an activity, a dequeue, a parked message)
// when no SDK is installed.
func BenchmarkMetricsDisabled(b *testing.B) {
	m, err := newEngineMetrics(otel.GetMeterProvider(), "hub")
	if err != nil {
		b.Fatal(err)
	}
	r := &backend.Received{DequeueCount: 1, InsertedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		recordAll(m, r)
	}
}

// BenchmarkMetricsEnabled is BenchmarkMetricsDisabled with an SDK meter
// provider, for comparison.
func BenchmarkMetricsEnabled(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() { _ = mp.Shutdown(b.Context()) }()
	m, err := newEngineMetrics(mp, "hub")
	if err != nil {
		b.Fatal(err)
	}
	r := &backend.Received{DequeueCount: 1, InsertedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		recordAll(m, r)
	}
}
