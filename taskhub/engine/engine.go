// Package engine runs a task hub: it owns control-queue partitions, turns
// queued and locally handed-over messages into orchestration episodes
// (replay + checkpoint) and runs activities.
//
// The engine depends only on the backend.Backend contract and on the
// replay core; it knows nothing about Azure or HTTP.
//
// Checkpoint order, designed so a crash at any point is safe:
//  1. send outbound messages (activity work items), so history never
//     records work that has no message;
//  2. append the episode to history, fenced by the sentinel ETag;
//  3. update the Instances row (fenced by its ETag) when the status changes;
//  4. delete the consumed inbound messages.
//
// Messages this process sends to itself are also handed over in memory; the
// queue copy is sent with an initial visibility delay and serves only crash
// recovery, so the happy path never waits for a poll.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/dtrace"
)

// Options configure an Engine. Zero values take the documented defaults.
type Options struct {
	Backend  backend.Backend
	Registry *durable.Registry
	Logger   *slog.Logger
	// MeterProvider receives the engine's metrics (see the README's
	// "Metrics"). Default otel.GetMeterProvider(): the global provider,
	// which forwards to one installed later (telemetry.Setup).
	MeterProvider metric.MeterProvider

	// WorkerID names this process in the partition table. Default: hostname:pid.
	WorkerID string
	// MaxConcurrentOrchestrations bounds episodes running at once. Default 100.
	MaxConcurrentOrchestrations int
	// MaxConcurrentActivities bounds activities running at once. Default 10 × GOMAXPROCS.
	MaxConcurrentActivities int
	// MaxLocalActivityBacklog bounds the activities this worker accepts to
	// run itself (running or waiting for a slot); calls beyond it go to the
	// shared work-item queue for any worker. Default 100 × MaxConcurrentActivities.
	MaxLocalActivityBacklog int
	// MinPollInterval is the first backoff step after an empty poll. Default 50 ms.
	MinPollInterval time.Duration
	// MaxPollInterval caps the polling backoff of idle queues. Work this
	// process sends itself never waits for a poll, and due timers wake their
	// poller, so polls mostly serve other processes. Default 5 s.
	MaxPollInterval time.Duration
	// MessageVisibility is how long a message being processed (or handed
	// over in memory) stays hidden from other consumers before it is renewed.
	// It is also how long a crash delays recovery. Default 1 minute.
	MessageVisibility time.Duration
	// LeaseInterval is how long a partition lease lasts without renewal.
	// Default 30 s.
	LeaseInterval time.Duration
	// StatusFlushDelay defers the Pending→Running update of the Instances
	// row; an orchestration that completes sooner writes only its final
	// status. Default 100 ms.
	StatusFlushDelay time.Duration
	// CacheSize bounds the number of idle instances whose replay state is
	// kept in memory. Default 10,000.
	CacheSize int
	// WarnDequeueCount logs a warning for a message that has been dequeued this many
	// times (a sign that processing keeps failing). Default 10.
	WarnDequeueCount int64
	// ReleaseTimeout bounds what Stop does after its context ends: waiting
	// for interrupted work to unwind, then releasing held messages and
	// partitions (also after a clean drain). Default 2 s.
	ReleaseTimeout time.Duration
	// AppLeaseRenewInterval is how often the task hub's app lease is
	// renewed. Default 25 s, as in Durable Task (the lease lasts 60 s).
	AppLeaseRenewInterval time.Duration
	// MaxDequeueCount is how many times a message that cannot be decoded or
	// processed (or whose instance does not exist) is tried before it is
	// parked as poison; in between it comes back after a growing delay. The
	// instance it belongs to, if any, then fails with a reason naming it.
	// Default 5.
	MaxDequeueCount int64
	// CoalesceBudget is how long episodes that wait only on activities
	// running in this process may stay uncommitted, so that they share one
	// history transaction (see the README's "Coalesced checkpoints"). A
	// negative value commits every episode on its own. Default 20 ms.
	CoalesceBudget time.Duration
	// Version is this app's orchestration version (Durable Functions'
	// host.json defaultVersion), which VersionMatch compares instance
	// versions with. The engine does not stamp it on anything: clients
	// stamp new instances (client.Client.SetDefaultVersion).
	Version string
	// VersionMatch says which instance versions the engine runs. Default
	// MatchNone: all.
	VersionMatch VersionMatch
	// VersionFailure says what happens to an instance VersionMatch refuses.
	// Default FailureReject.
	VersionFailure VersionFailure
	// TracerProvider makes the spans of traced executions (see
	// tracing.go). Default otel.GetTracerProvider(). Spans built from
	// history get the span IDs history implies only with a provider whose
	// ID generator is spanid.Generator, as internal/telemetry installs.
	TracerProvider trace.TracerProvider
}

func (o *Options) setDefaults() error {
	if o.Backend == nil {
		return errors.New("engine: Options.Backend is required")
	}
	if o.Registry == nil {
		return errors.New("engine: Options.Registry is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.WorkerID == "" {
		host, _ := os.Hostname()
		o.WorkerID = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if o.MaxConcurrentOrchestrations <= 0 {
		o.MaxConcurrentOrchestrations = 100
	}
	if o.MaxConcurrentActivities <= 0 {
		o.MaxConcurrentActivities = 10 * runtime.GOMAXPROCS(0)
	}
	if o.MaxLocalActivityBacklog <= 0 {
		o.MaxLocalActivityBacklog = 100 * o.MaxConcurrentActivities
	}
	if o.MinPollInterval <= 0 {
		o.MinPollInterval = 50 * time.Millisecond
	}
	if o.MaxPollInterval <= 0 {
		o.MaxPollInterval = 5 * time.Second
	}
	if o.MaxPollInterval < o.MinPollInterval {
		o.MaxPollInterval = o.MinPollInterval
	}
	if o.MessageVisibility <= 0 {
		o.MessageVisibility = time.Minute
	}
	if o.LeaseInterval <= 0 {
		o.LeaseInterval = 30 * time.Second
	}
	if o.StatusFlushDelay <= 0 {
		o.StatusFlushDelay = 100 * time.Millisecond
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10000
	}
	if o.WarnDequeueCount <= 0 {
		o.WarnDequeueCount = 10
	}
	if o.ReleaseTimeout <= 0 {
		o.ReleaseTimeout = 2 * time.Second
	}
	if o.AppLeaseRenewInterval <= 0 {
		o.AppLeaseRenewInterval = 25 * time.Second
	}
	if o.MaxDequeueCount <= 0 {
		o.MaxDequeueCount = 5
	}
	if o.CoalesceBudget == 0 {
		o.CoalesceBudget = 20 * time.Millisecond
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	return nil
}

// Engine runs orchestrations and activities of one task hub.
type Engine struct {
	opts   Options
	be     backend.Backend
	log    *slog.Logger
	tracer trace.Tracer
	// metrics are the OpenTelemetry instruments (metrics.go).
	metrics *engineMetrics

	ctx    context.Context // cancelled by Stop: no new work is taken
	cancel context.CancelFunc
	// work is the context of in-flight work (activities, episodes,
	// background writes); Stop cancels it when its grace runs out.
	work       context.Context
	cancelWork context.CancelFunc
	wg         sync.WaitGroup // background loops
	bg         inFlight       // background storage calls (deletes, row flushes)
	runs       inFlight       // goroutines processing instance inboxes

	held *heldSet

	orchSlots chan struct{}
	acts      *activityRunner

	mu           sync.Mutex
	owned        map[int]*partitionState // partitions this worker owns
	balanceNow   chan struct{}           // Wake: run an ownership pass now
	instances    map[string]*instance
	idle         *lru
	watchers     map[string][]chan backend.InstanceState
	recent       map[string]backend.InstanceState // recently finished instances, for Watch
	recentIDs    []string                         // FIFO order of recent
	startCalled  bool
	startDone    chan struct{} // closed when Start returns
	firstAttempt chan struct{} // closed when Start's first attempt has ended
	firstOnce    sync.Once
	start        startState
	started      bool
	draining     bool // Stop was called: new activities go to the shared queue
	stopped      bool
	leaseLost    bool // the app lease went to another app: no partition work
	statistics   Stats
	rejected     map[string]string // instance → version whose rejection was logged
	// unknownEntities are the entity instances whose messages were kept
	// because this app does not define them (logged once each).
	unknownEntities sync.Map
	// leftWork: Stop left work for another worker (LeftWork).
	leftWork atomic.Bool
}

// startState is what Ready reports while Start is retrying.
type startState struct {
	attempts int
	lastErr  error
	retryIn  time.Duration
	refused  error // a refusal that ended Start
}

// Stats are counters of notable engine events, for logs and tests.
type Stats struct {
	Episodes          int64
	Checkpoints       int64 // history appends (one per episode, or per coalesced window)
	CoalescedEpisodes int64 // episodes kept uncommitted in a window, to share a later append
	DroppedMessages   int64 // messages given up with a logged reason (also those parked because their instance does not exist)
	PoisonMessages    int64 // messages parked as poison: undecodable, failing, or for no instance
	DeferredMessages  int64 // out-of-order messages put back for later
	CheckpointRetries int64 // episodes abandoned on an ETag conflict
	ActivitiesRun     int64
	VersionRejections int64 // messages put back because their instance's version does not match (FailureReject)
}

// New returns an engine; call Start to run it.
func New(opts Options) (*Engine, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	metrics, err := newEngineMetrics(opts.MeterProvider, opts.Backend.HubName())
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts:       opts,
		be:         opts.Backend,
		log:        opts.Logger.With("worker", opts.WorkerID),
		tracer:     opts.TracerProvider.Tracer(dtrace.ScopeName),
		metrics:    metrics,
		owned:      map[int]*partitionState{},
		instances:  map[string]*instance{},
		idle:       newLRU(),
		watchers:   map[string][]chan backend.InstanceState{},
		recent:     map[string]backend.InstanceState{},
		orchSlots:  make(chan struct{}, opts.MaxConcurrentOrchestrations),
		balanceNow: make(chan struct{}, 1),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.work, e.cancelWork = context.WithCancel(context.Background())
	e.firstAttempt = make(chan struct{})
	e.held = newHeldSet(e)
	e.acts = newActivityRunner(e)
	return e, nil
}

// WorkerID returns this engine's worker identity.
func (e *Engine) WorkerID() string { return e.opts.WorkerID }

// MessageVisibility returns the configured visibility delay for messages
// handed over in memory.
func (e *Engine) MessageVisibility() time.Duration { return e.opts.MessageVisibility }

// Stats returns a snapshot of the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statistics
}

func (e *Engine) isDraining() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.draining
}

func (e *Engine) count(f func(s *Stats)) {
	e.mu.Lock()
	f(&e.statistics)
	e.mu.Unlock()
}

// Bounds of Start's retries while storage cannot be reached.
const (
	startRetryMin       = 100 * time.Millisecond
	startRetryMax       = 5 * time.Second
	startAttemptTimeout = 15 * time.Second
	startLogEvery       = 5 * time.Second // at most one log line per this, unless the reason changes
)

// Start creates the task hub if needed, takes its app lease, claims
// partitions and starts the dispatchers. It returns once the first
// ownership pass is done.
//
// While storage cannot be reached (or a step fails for another transient
// reason) Start retries with a backoff from 100 ms doubling to 5 s, logging
// why (at most one line per 5 s while the reason stays the same), until it
// succeeds, ctx ends or Stop is called; Ready reports the progress. It
// returns at once with an error wrapping backend.ErrHubInUse or
// backend.ErrLayoutMismatch when the hub belongs to another app or has
// another partition count. Live partition leases of another app's workers
// are waited out: this app holds the app lease, so they end soon.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.startCalled {
		e.mu.Unlock()
		return errors.New("engine: already started")
	}
	e.startCalled = true
	e.startDone = make(chan struct{})
	e.mu.Unlock()
	defer close(e.startDone)
	defer e.firstAttemptDone()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.ctx, cancel)() // Stop ends a start still retrying

	delay := startRetryMin
	var lastLogged string
	var lastLogAt time.Time
	suppressed := 0
	began := time.Now()
	attempt := 1
	for ; ; attempt++ {
		permanent, err := e.startAttempt(ctx)
		if err == nil {
			break
		}
		if permanent {
			e.mu.Lock()
			e.start.attempts, e.start.lastErr, e.start.refused = attempt, err, err
			e.mu.Unlock()
			e.firstAttemptDone()
			return fmt.Errorf("engine: start: %w", err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("engine: start gave up after %d attempts over %v: %w (last error: %v)",
				attempt, time.Since(began).Round(time.Millisecond), ctx.Err(), err)
		}
		e.mu.Lock()
		e.start.attempts, e.start.lastErr, e.start.retryIn = attempt, err, delay
		e.mu.Unlock()
		e.firstAttemptDone()
		if msg := err.Error(); msg != lastLogged || time.Since(lastLogAt) >= startLogEvery {
			e.log.Warn("task hub not ready; retrying", "hub", e.be.HubName(), "attempt", attempt,
				"retryIn", delay, "similarAttemptsNotLogged", suppressed, "err", err)
			lastLogged, lastLogAt, suppressed = msg, time.Now(), 0
		} else {
			suppressed++
		}
		if !sleepCtx(ctx, delay) {
			return fmt.Errorf("engine: start gave up after %d attempts over %v: %w (last error: %v)",
				attempt, time.Since(began).Round(time.Millisecond), ctx.Err(), err)
		}
		delay = min(2*delay, startRetryMax)
	}
	e.mu.Lock()
	e.started = true
	e.start = startState{attempts: attempt}
	e.mu.Unlock()
	e.firstAttemptDone()
	if err := e.metrics.observe(e); err != nil {
		e.log.Warn("the engine's gauges are not reported", "err", err)
	}
	e.wg.Add(4)
	go e.partitionLoop()
	go e.held.renewLoop()
	go e.acts.pollLoop()
	go e.appLeaseLoop()
	e.log.Info("task hub engine started", "hub", e.be.HubName(), "partitions", e.be.PartitionCount(),
		"owned", e.OwnedPartitions(), "attempts", attempt)
	return nil
}

// firstAttemptDone tells AwaitReady that Start's first attempt has ended
// and its outcome is recorded.
func (e *Engine) firstAttemptDone() { e.firstOnce.Do(func() { close(e.firstAttempt) }) }

// startAttempt is one try of Start's steps; permanent says that trying
// again cannot help.
func (e *Engine) startAttempt(ctx context.Context) (permanent bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, startAttemptTimeout)
	defer cancel()
	refused := func(err error) bool {
		return errors.Is(err, backend.ErrHubInUse) || errors.Is(err, backend.ErrLayoutMismatch)
	}
	if err := e.be.CreateTaskHub(ctx); err != nil {
		return refused(err), fmt.Errorf("create task hub: %w", err)
	}
	if err := e.be.AcquireAppLease(ctx); err != nil {
		return refused(err), fmt.Errorf("take the app lease: %w", err)
	}
	if err := e.be.CheckPartitionLeases(ctx); err != nil {
		return false, fmt.Errorf("waiting for another app's partition leases to end: %w", err)
	}
	if err := e.balancePartitions(ctx); err != nil {
		// The hub is usable: what this pass could not claim or renew, the
		// partition loop tries again in a moment. Holding readiness back
		// for it would refuse every client call over one failed write.
		e.log.Warn("first partition ownership pass incomplete; retrying in the background", "hub", e.be.HubName(), "err", err)
	}
	return false, nil
}

// Ready returns nil while the engine runs (from a successful Start until
// Stop gives up waiting for in-flight work); otherwise an error wrapping
// backend.ErrUnavailable, a *backend.UnavailableError saying why.
func (e *Engine) Ready() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ue := &backend.UnavailableError{Hub: e.be.HubName()}
	switch st := e.start; {
	case e.started && !e.stopped:
		return nil
	case e.stopped || (e.draining && !e.started):
		ue.Reason = "the engine has stopped"
	case st.refused != nil:
		ue.Reason, ue.Cause = "this app may not process it", st.refused
	case st.lastErr != nil:
		ue.Reason = fmt.Sprintf("starting, attempt %d failed", st.attempts)
		ue.Cause, ue.RetryAfter = st.lastErr, st.retryIn
	default:
		ue.Reason, ue.RetryAfter = "starting", startRetryMin
	}
	return ue
}

// AwaitReady is Ready for callers that arrive while Start makes its first
// attempt: it waits for that attempt to end, at most d (or until ctx ends),
// so that requests made during a normal start-up are served.
func (e *Engine) AwaitReady(ctx context.Context, d time.Duration) error {
	if err := e.Ready(); err == nil {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.firstAttempt:
	case <-t.C:
	case <-ctx.Done():
	}
	return e.Ready()
}

// Stop stops taking new work and drains: running activities finish and
// their results reach history (new activity calls meanwhile go to the
// shared work-item queue), instances finish their episodes, background
// writes complete. It waits for this until ctx ends, its grace.
//
// When the grace runs out, in-flight work is interrupted: activity
// contexts and episode contexts are cancelled, retries stop, and results
// that arrive later are not recorded (the activities run again wherever
// their messages are processed next). Either way Stop then releases the
// messages and partitions it holds so that another worker can take over at
// once, as far as storage allows within Options.ReleaseTimeout. Stop thus
// returns within the grace plus ReleaseTimeout.
//
// It returns nil after a clean stop, and an error when work had to be
// interrupted or something could not be released (it then frees itself
// when its visibility or lease expires).
func (e *Engine) Stop(ctx context.Context) error {
	defer e.metrics.stop()
	e.mu.Lock()
	if e.draining || !e.startCalled {
		e.draining, e.stopped = true, true
		e.mu.Unlock()
		return nil
	}
	e.draining = true
	startDone := e.startDone
	e.mu.Unlock()
	e.cancel()
	done := make(chan struct{})
	go func() {
		<-startDone
		e.wg.Wait()
		e.acts.wait()
		e.waitInstancesIdle()
		e.bg.Wait()
		close(done)
	}()
	var errs []error
	interrupted := false // the grace ran out
	var taken []backend.Receipt
	select {
	case <-done:
	case <-ctx.Done():
		interrupted = true
		e.mu.Lock()
		running, busy := len(e.acts.slots), len(e.instancesActive())
		e.stopped = true
		e.mu.Unlock()
		e.log.Warn("stop: the grace ran out; interrupting in-flight work", "runningActivities", running, "busyInstances", busy)
		errs = append(errs, fmt.Errorf("engine: stop: in-flight work did not finish within the grace (%d activities running, %d instances busy): %w",
			running, busy, ctx.Err()))
		// The messages of interrupted work are released below, with a
		// deadline, rather than by the interrupted code paths.
		taken = e.takeHeld()
		e.leftWork.Store(true)
		e.cancelWork()
	}
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	// Hand over promptly, also when the wait above ran out of time.
	budget := e.opts.ReleaseTimeout
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	if interrupted {
		// Give interrupted work half the budget to unwind.
		t := time.NewTimer(budget / 2)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	// Run the release on its own so that nothing it waits for (a renewal
	// in flight holds its message's lock) can stretch Stop past the budget.
	var relErrs []error
	released := make(chan struct{})
	go func() {
		defer close(released)
		e.closeInstances(rctx)
		taken = append(taken, e.takeHeld()...)
		if len(taken) > 0 {
			e.leftWork.Store(true)
		}
		if failed := e.releaseReceipts(rctx, taken); failed > 0 {
			relErrs = append(relErrs, fmt.Errorf("engine: stop: could not release %d of %d held messages; they reappear when their visibility expires", failed, len(taken)))
		}
		if err := e.releasePartitions(rctx); err != nil {
			relErrs = append(relErrs, fmt.Errorf("engine: stop: %w", err))
		}
	}()
	select {
	case <-released:
	case <-rctx.Done():
	}
	select {
	case <-released:
		errs = append(errs, relErrs...)
	default:
		errs = append(errs, fmt.Errorf("engine: stop: releasing messages and partitions took longer than %v; what is left frees itself when its visibility or lease expires", budget))
	}
	e.cancelWork()
	return errors.Join(errs...)
}

// instancesActive lists the instances being processed; e.mu must be held.
func (e *Engine) instancesActive() []*instance {
	var out []*instance
	for _, inst := range e.instances {
		if inst.active {
			out = append(out, inst)
		}
	}
	return out
}

// takeHeld takes every message this worker holds away from whatever would
// delete, release or renew it, and returns their receipts for Stop to
// release. A message whose renewal or release is in progress right now is
// left to it.
func (e *Engine) takeHeld() []backend.Receipt {
	s := e.held
	s.mu.Lock()
	list := make([]*held, 0, len(s.items))
	for h := range s.items {
		list = append(list, h)
	}
	s.mu.Unlock()
	var out []backend.Receipt
	for _, h := range list {
		if !h.mu.TryLock() {
			continue
		}
		if !h.done {
			h.done = true
			out = append(out, h.receipt)
		}
		h.mu.Unlock()
		s.forget(h)
	}
	return out
}

// releaseReceipts makes messages visible again, in parallel, and reports
// how many could not be released. Messages gone or taken by someone else
// meanwhile do not count as failures.
func (e *Engine) releaseReceipts(ctx context.Context, rs []backend.Receipt) (failed int) {
	var mu sync.Mutex
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, r := range rs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := e.be.SetVisibility(ctx, r, 0)
			if err != nil && !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, backend.ErrConflict) {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// recentCapacity bounds how many finished instances Watch remembers.
const recentCapacity = 4096

// WaitBackground waits until the storage calls that the engine runs off
// the critical path (deleting consumed messages, deferred status writes)
// are done. Benchmarks use it to measure one orchestration in isolation.
func (e *Engine) WaitBackground() { e.bg.Wait() }

// Watch returns a channel that receives the final Instances row of
// instanceID once this engine has finished it (at once if it finished
// recently), whether the engine is processing the instance right now (so
// a notification is expected), and a function to stop watching.
func (e *Engine) Watch(instanceID string) (<-chan backend.InstanceState, bool, func()) {
	ch := make(chan backend.InstanceState, 1)
	e.mu.Lock()
	if st, ok := e.recent[instanceID]; ok {
		e.mu.Unlock()
		ch <- st
		return ch, true, func() {}
	}
	e.watchers[instanceID] = append(e.watchers[instanceID], ch)
	_, tracking := e.instances[instanceID]
	e.mu.Unlock()
	return ch, tracking, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		list := e.watchers[instanceID]
		for i, c := range list {
			if c == ch {
				e.watchers[instanceID] = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(e.watchers[instanceID]) == 0 {
			delete(e.watchers, instanceID)
		}
	}
}

// Status answers a status query from memory: the Instances row that the
// committed history of instanceID implies, when this worker holds a valid
// lease on its partition and has the running instance in its cache.
// Uncommitted episodes (a coalescing window) never show. ok=false means
// ask storage: the instance is not cached here, not owned, not started by
// a commit of this worker yet, or finished (finished rows are read from
// storage, which holds them once they are final).
func (e *Engine) Status(instanceID string) (st backend.InstanceState, ok bool) {
	e.mu.Lock()
	inst := e.instances[instanceID]
	e.mu.Unlock()
	if inst == nil || !e.ownsNow(inst.partition) {
		return st, false
	}
	p := inst.status.Load()
	if p == nil {
		return st, false
	}
	return *p, true
}

// publish sets the row that Status answers with, after a commit.
func (e *Engine) publish(inst *instance) {
	if inst.terminal || inst.start == nil {
		inst.status.Store(nil)
		return
	}
	row := e.desiredRow(inst, inst.row, nil)
	row.ETag = ""
	inst.status.Store(&row)
}

// ForgetFinished drops the remembered final row of instanceID, so that
// Watch waits for the execution a restart or rewind is about to begin.
func (e *Engine) ForgetFinished(instanceID string) {
	e.mu.Lock()
	delete(e.recent, instanceID)
	inst := e.instances[instanceID]
	e.mu.Unlock()
	if inst != nil {
		inst.status.Store(nil) // the row is about to change outside the engine
	}
}

// notifyTerminal tells watchers that an instance finished with row.
func (e *Engine) notifyTerminal(row backend.InstanceState) {
	id := row.InstanceID
	e.mu.Lock()
	list := e.watchers[id]
	delete(e.watchers, id)
	if _, ok := e.recent[id]; !ok {
		e.recentIDs = append(e.recentIDs, id)
	}
	e.recent[id] = row
	if len(e.recentIDs) > recentCapacity {
		delete(e.recent, e.recentIDs[0])
		e.recentIDs = e.recentIDs[1:]
	}
	e.mu.Unlock()
	for _, ch := range list {
		ch <- row
	}
}

// background runs f off the critical path, tracked for Stop (which
// cancels it when its grace runs out).
func (e *Engine) background(f func(ctx context.Context)) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		ctx, cancel := context.WithTimeout(e.work, 30*time.Second)
		defer cancel()
		f(ctx)
	}()
}

// now is the time the engine stamps on events and rows, at the precision
// storage keeps, so that what an orchestrator sees on its first run (and
// what the engine compares in memory) equals what it reads back later.
func now() time.Time { return history.StorageTime(time.Now()) }

// inFlight counts running operations; unlike sync.WaitGroup it may be
// waited on while new operations start.
type inFlight struct {
	mu   sync.Mutex
	n    int
	zero *sync.Cond
}

func (f *inFlight) Add(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.zero == nil {
		f.zero = sync.NewCond(&f.mu)
	}
	f.n += d
	if f.n == 0 {
		f.zero.Broadcast()
	}
}

func (f *inFlight) Done() { f.Add(-1) }

// Wait returns once no operation is running.
func (f *inFlight) Wait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.zero == nil {
		f.zero = sync.NewCond(&f.mu)
	}
	for f.n > 0 {
		f.zero.Wait()
	}
}

// sleepCtx waits for d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
