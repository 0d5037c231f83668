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
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Options configure an Engine. Zero values take the documented defaults.
type Options struct {
	Backend  backend.Backend
	Registry *durable.Registry
	Logger   *slog.Logger

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
	// MaxDequeueCount is how many times a message that cannot be decoded or
	// processed (or whose instance does not exist) is tried before it is
	// parked as poison; in between it comes back after a growing delay. The
	// instance it belongs to, if any, then fails with a reason naming it.
	// Default 5.
	MaxDequeueCount int64
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
	if o.MaxDequeueCount <= 0 {
		o.MaxDequeueCount = 5
	}
	return nil
}

// Engine runs orchestrations and activities of one task hub.
type Engine struct {
	opts Options
	be   backend.Backend
	log  *slog.Logger

	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // background loops
	bg     inFlight       // background storage calls (deletes, row flushes)
	runs   inFlight       // goroutines processing instance inboxes

	held *heldSet

	orchSlots chan struct{}
	acts      *activityRunner

	mu         sync.Mutex
	owned      map[int]*partitionState // partitions this worker owns
	instances  map[string]*instance
	idle       *lru
	watchers   map[string][]chan backend.InstanceState
	recent     map[string]backend.InstanceState // recently finished instances, for Watch
	recentIDs  []string                         // FIFO order of recent
	started    bool
	draining   bool // Stop was called: new activities go to the shared queue
	stopped    bool
	statistics Stats
}

// Stats are counters of notable engine events, for logs and tests.
type Stats struct {
	Episodes          int64
	DroppedMessages   int64 // messages given up with a logged reason (also those parked because their instance does not exist)
	PoisonMessages    int64 // messages parked as poison: undecodable, failing, or for no instance
	DeferredMessages  int64 // out-of-order messages put back for later
	CheckpointRetries int64 // episodes abandoned on an ETag conflict
	ActivitiesRun     int64
}

// New returns an engine; call Start to run it.
func New(opts Options) (*Engine, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		opts:      opts,
		be:        opts.Backend,
		log:       opts.Logger.With("worker", opts.WorkerID),
		owned:     map[int]*partitionState{},
		instances: map[string]*instance{},
		idle:      newLRU(),
		watchers:  map[string][]chan backend.InstanceState{},
		recent:    map[string]backend.InstanceState{},
		orchSlots: make(chan struct{}, opts.MaxConcurrentOrchestrations),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
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

// Start creates the task hub if needed, claims partitions and starts the
// dispatchers. It returns once the first ownership pass is done.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("engine: already started")
	}
	e.started = true
	e.mu.Unlock()
	if err := e.be.CreateTaskHub(ctx); err != nil {
		return fmt.Errorf("engine: create task hub: %w", err)
	}
	if err := e.balancePartitions(ctx); err != nil {
		e.log.Warn("first partition ownership pass failed; retrying in the background", "err", err)
	}
	e.wg.Add(3)
	go e.partitionLoop()
	go e.held.renewLoop()
	go e.acts.pollLoop()
	e.log.Info("task hub engine started", "hub", e.be.HubName(), "partitions", e.be.PartitionCount(), "owned", e.OwnedPartitions())
	return nil
}

// Stop stops polling, lets running activities finish and their results
// reach history (until ctx ends; new activity calls meanwhile go to the
// shared work-item queue), releases the messages and partitions it holds
// so another worker can take over at once, and returns.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if e.draining || !e.started {
		e.draining, e.stopped = true, true
		e.mu.Unlock()
		return nil
	}
	e.draining = true
	e.mu.Unlock()
	e.cancel()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		e.acts.wait()
		e.waitInstancesIdle()
		e.bg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("engine: stop: %w", ctx.Err())
	}
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	// Hand over promptly even when the wait above ran out of time.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	e.closeInstances(rctx)
	e.releasePartitions(rctx)
	return err
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

// ForgetFinished drops the remembered final row of instanceID, so that
// Watch waits for the execution a restart or rewind is about to begin.
func (e *Engine) ForgetFinished(instanceID string) {
	e.mu.Lock()
	delete(e.recent, instanceID)
	e.mu.Unlock()
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

// background runs f off the critical path, tracked for Stop.
func (e *Engine) background(f func(ctx context.Context)) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
