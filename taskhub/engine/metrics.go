package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/routing"
)

// The engine's OpenTelemetry metrics (see the README's "Metrics"). Every
// synchronous instrument is checked with Enabled before anything is
// computed for it, so with no SDK meter provider installed a measurement
// costs a method call and no allocation; the observable gauges are read
// only when a reader collects, and only then does the backlog gauge make
// its storage calls.
const (
	// MetricEpisodes counts episodes run ({episode}): each replay of an
	// orchestration on new events, or each batch of entity operations.
	MetricEpisodes = "durabletask.episodes"
	// MetricEpisodeDuration is the time from the start of an episode's
	// replay to its checkpoint (or to its coalescing window) (s).
	MetricEpisodeDuration = "durabletask.episode.duration"
	// MetricActivities counts activity executions ({activity}).
	MetricActivities = "durabletask.activities"
	// MetricActivityDuration is the run time of an activity's code (s).
	MetricActivityDuration = "durabletask.activity.duration"
	// MetricQueueWait is the time from when a message became visible (its
	// insertion, or the due time of a timer) to its dequeue by this worker,
	// measured on its first delivery (s).
	MetricQueueWait = "durabletask.queue.wait"
	// MetricQueueBacklog is the approximate message count of a queue this
	// worker polls, hidden messages included ({message}).
	MetricQueueBacklog = "durabletask.queue.backlog"
	// MetricParkedMessages counts messages parked as poison ({message}).
	MetricParkedMessages = "durabletask.messages.parked"
	// MetricInstancesCached is the number of instances whose state this
	// worker holds in memory, busy ones included ({instance}).
	MetricInstancesCached = "durabletask.instances.cached"
	// MetricInstancesActive is the number of instances being processed now
	// (at most MaxConcurrentOrchestrations) ({instance}).
	MetricInstancesActive = "durabletask.instances.active"
	// MetricActivitiesRunning is the number of activities running now (at
	// most MaxConcurrentActivities) ({activity}).
	MetricActivitiesRunning = "durabletask.activities.running"
)

// Attributes of the engine's metrics.
const (
	// AttrType is orchestration or entity (episodes), as the Durable Task
	// spans' durabletask.type.
	AttrType = "durabletask.type"
	// AttrTaskName is the orchestration, entity or activity name.
	AttrTaskName = "durabletask.task.name"
	// AttrOutcome is how an episode ended (completed, failed, terminated,
	// canceled, continued, running, abandoned) or an activity (ok, failed,
	// interrupted).
	AttrOutcome = "durabletask.outcome"
	// AttrQueueKind is control or workitems.
	AttrQueueKind = "durabletask.queue.kind"
	// AttrPartition is a control queue's partition index (backlog only).
	AttrPartition = "durabletask.partition"
	// AttrPoisonReason is why a message was parked: undecodable (it could
	// not be read), undeliverable (its instance does not exist, or it is
	// not a message its target takes) or failing (processing it kept
	// failing, or its activity kept crashing the worker).
	AttrPoisonReason = "durabletask.poison.reason"
)

// Attribute values.
const (
	typeOrchestration = "orchestration"
	typeEntity        = "entity"
	queueControl      = "control"
	queueWorkItems    = "workitems"
	outcomeAbandoned  = "abandoned"
	poisonUndecodable = "undecodable"
	poisonUndeliver   = "undeliverable"
	poisonFailing     = "failing"
)

// meterScope is the instrumentation scope of the engine's metrics.
const meterScope = "github.com/go-durable/durablefunctions/taskhub/engine"

// durationBuckets are the histogram bounds in seconds for episodes,
// activities and queue waits: a millisecond to ten minutes.
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// engineMetrics are the engine's instruments.
type engineMetrics struct {
	meter            metric.Meter
	episodes         metric.Int64Counter
	episodeDuration  metric.Float64Histogram
	activities       metric.Int64Counter
	activityDuration metric.Float64Histogram
	queueWait        metric.Float64Histogram
	parked           metric.Int64Counter
	backlog          metric.Int64ObservableGauge
	cached           metric.Int64ObservableGauge
	active           metric.Int64ObservableGauge
	running          metric.Int64ObservableGauge
	workItemQueue    string // the work-item queue's name, to tell queue kinds apart

	mu  sync.Mutex
	reg metric.Registration // of the gauges' callback while the engine runs
}

func newEngineMetrics(mp metric.MeterProvider, hub string) (*engineMetrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := &engineMetrics{meter: mp.Meter(meterScope), workItemQueue: routing.WorkItemQueue(hub)}
	var errs [10]error
	buckets := metric.WithExplicitBucketBoundaries(durationBuckets...)
	m.episodes, errs[0] = m.meter.Int64Counter(MetricEpisodes, metric.WithUnit("{episode}"),
		metric.WithDescription("Episodes run, by type, orchestration or entity name and outcome."))
	m.episodeDuration, errs[1] = m.meter.Float64Histogram(MetricEpisodeDuration, metric.WithUnit("s"), buckets,
		metric.WithDescription("Time from the start of an episode's replay to its checkpoint."))
	m.activities, errs[2] = m.meter.Int64Counter(MetricActivities, metric.WithUnit("{activity}"),
		metric.WithDescription("Activity executions, by activity name and outcome."))
	m.activityDuration, errs[3] = m.meter.Float64Histogram(MetricActivityDuration, metric.WithUnit("s"), buckets,
		metric.WithDescription("Run time of an activity's code."))
	m.queueWait, errs[4] = m.meter.Float64Histogram(MetricQueueWait, metric.WithUnit("s"), buckets,
		metric.WithDescription("Time from a message becoming visible to its first dequeue by this worker, by queue kind."))
	m.parked, errs[5] = m.meter.Int64Counter(MetricParkedMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Messages parked as poison, by queue kind and reason."))
	m.backlog, errs[6] = m.meter.Int64ObservableGauge(MetricQueueBacklog, metric.WithUnit("{message}"),
		metric.WithDescription("Approximate message count of each control queue this worker owns and of the work-item queue."))
	m.cached, errs[7] = m.meter.Int64ObservableGauge(MetricInstancesCached, metric.WithUnit("{instance}"),
		metric.WithDescription("Instances whose state this worker holds in memory."))
	m.active, errs[8] = m.meter.Int64ObservableGauge(MetricInstancesActive, metric.WithUnit("{instance}"),
		metric.WithDescription("Instances being processed now."))
	m.running, errs[9] = m.meter.Int64ObservableGauge(MetricActivitiesRunning, metric.WithUnit("{activity}"),
		metric.WithDescription("Activities running now."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("engine: metrics: %w", err)
	}
	return m, nil
}

// begin returns the start time of a measured span of work, or the zero
// time when h records nothing (no clock read then).
func begin(h metric.Float64Histogram) time.Time {
	if !h.Enabled(context.Background()) {
		return time.Time{}
	}
	return time.Now()
}

// secondsSince returns the seconds since began, never negative.
func secondsSince(began time.Time) float64 {
	return max(time.Since(began).Seconds(), 0)
}

// episode records an episode of type typ for name with its outcome.
func (m *engineMetrics) episode(typ, name, outcome string, began time.Time) {
	ctx := context.Background()
	counted, timed := m.episodes.Enabled(ctx), !began.IsZero()
	if !counted && !timed {
		return
	}
	attrs := metric.WithAttributes(attribute.String(AttrType, typ), attribute.String(AttrTaskName, name),
		attribute.String(AttrOutcome, outcome))
	if counted {
		m.episodes.Add(ctx, 1, attrs)
	}
	if timed {
		m.episodeDuration.Record(ctx, secondsSince(began), attrs)
	}
}

// episodeOutcome is how the episode of cp leaves its instance.
func episodeOutcome(inst *instance, cp *checkpoint) string {
	switch c := cp.completion; {
	case c != nil && c.Type == history.ContinueAsNew, c == nil && cp.replaced != "":
		return "continued"
	case c != nil:
		switch c.Status {
		case history.StatusCompleted:
			return "completed"
		case history.StatusFailed:
			return "failed"
		case history.StatusTerminated:
			return "terminated"
		case history.StatusCanceled:
			return "canceled"
		}
		return "completed"
	case inst.ex != nil && inst.ex.Suspended():
		return "suspended"
	}
	return "running"
}

// activity records an activity execution.
func (m *engineMetrics) activity(name, outcome string, began time.Time) {
	ctx := context.Background()
	counted, timed := m.activities.Enabled(ctx), !began.IsZero()
	if !counted && !timed {
		return
	}
	attrs := metric.WithAttributes(attribute.String(AttrTaskName, name), attribute.String(AttrOutcome, outcome))
	if counted {
		m.activities.Add(ctx, 1, attrs)
	}
	if timed {
		m.activityDuration.Record(ctx, secondsSince(began), attrs)
	}
}

// dequeued records the queue wait of a received message on its first
// delivery. A redelivered message became visible when an earlier
// receive's visibility ran out, which the queue does not report, so it is
// not measured. The queue reports insertion times in whole seconds: the
// wait of an undelayed message reads up to a second long.
func (m *engineMetrics) dequeued(kind string, r *backend.Received) {
	ctx := context.Background()
	if r.DequeueCount != 1 || r.InsertedAt.IsZero() || !m.queueWait.Enabled(ctx) {
		return
	}
	visible := r.InsertedAt
	if ev := &r.Message.Event; ev.Type == history.TimerFired && ev.FireAt.After(visible) {
		visible = ev.FireAt
	}
	m.queueWait.Record(ctx, secondsSince(visible), metric.WithAttributes(attribute.String(AttrQueueKind, kind)))
}

// parkedMessage records a message parked from queue for reason.
func (m *engineMetrics) parkedMessage(queue, reason string) {
	ctx := context.Background()
	if !m.parked.Enabled(ctx) {
		return
	}
	m.parked.Add(ctx, 1, metric.WithAttributes(attribute.String(AttrQueueKind, m.queueKind(queue)),
		attribute.String(AttrPoisonReason, reason)))
}

func (m *engineMetrics) queueKind(queue string) string {
	if queue == m.workItemQueue {
		return queueWorkItems
	}
	return queueControl
}

// observe registers the gauges' callback for e; stop unregisters it.
func (m *engineMetrics) observe(e *Engine) error {
	reg, err := m.meter.RegisterCallback(e.observeGauges, m.backlog, m.cached, m.active, m.running)
	if err != nil {
		return fmt.Errorf("engine: metrics: %w", err)
	}
	m.mu.Lock()
	m.reg = reg
	m.mu.Unlock()
	return nil
}

func (m *engineMetrics) stop() {
	m.mu.Lock()
	reg := m.reg
	m.reg = nil
	m.mu.Unlock()
	if reg != nil {
		_ = reg.Unregister()
	}
}

// backlogTimeout bounds the storage calls of one backlog observation.
const backlogTimeout = 10 * time.Second

// observeGauges reports the in-process gauges and, while the engine runs,
// the backlog: one queue-length call per owned control queue and one for
// the work-item queue. A queue whose length cannot be read is left out of
// this observation; the error goes to the OpenTelemetry error handler.
func (e *Engine) observeGauges(ctx context.Context, o metric.Observer) error {
	m := e.metrics
	e.mu.Lock()
	running := e.started && !e.stopped
	cached := len(e.instances)
	owned := make([]int, 0, len(e.owned))
	for p := range e.owned {
		owned = append(owned, p)
	}
	e.mu.Unlock()
	o.ObserveInt64(m.cached, int64(cached))
	o.ObserveInt64(m.active, int64(len(e.orchSlots)))
	o.ObserveInt64(m.running, int64(len(e.acts.slots)))
	if !running {
		return nil
	}
	sort.Ints(owned)
	ctx, cancel := context.WithTimeout(ctx, backlogTimeout)
	defer cancel()
	var errs []error
	for _, p := range owned {
		n, err := e.be.ControlQueueLength(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.ObserveInt64(m.backlog, n, metric.WithAttributes(attribute.String(AttrQueueKind, queueControl), attribute.Int(AttrPartition, p)))
	}
	if n, err := e.be.WorkItemQueueLength(ctx); err != nil {
		errs = append(errs, err)
	} else {
		o.ObserveInt64(m.backlog, n, metric.WithAttributes(attribute.String(AttrQueueKind, queueWorkItems)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("engine: backlog metric: %w", err)
	}
	return nil
}

// activityOutcome classifies an activity's result; interrupted means Stop
// ran out of grace while it ran (it runs again).
func activityOutcome(e *Engine, failure *durable.FailureDetails) string {
	switch {
	case e.work.Err() != nil:
		return "interrupted"
	case failure != nil:
		return "failed"
	}
	return "ok"
}

// reasonClass is the metric's reason for parking p.
func (p *poison) reasonClass() string {
	switch {
	case p.undecodable:
		return poisonUndecodable
	case p.undeliverable:
		return poisonUndeliver
	}
	return poisonFailing
}
