package wake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// Watchdog defaults.
const (
	// DefaultWatchdogCheck is how often a Watchdog reads Busy.
	DefaultWatchdogCheck = time.Second
	// DefaultWatchdogStopDelay is how long after Release a wake for the
	// work a stop left behind becomes visible: the host that ran the
	// stopped worker has stopped listening by then.
	DefaultWatchdogStopDelay = 5 * time.Second
	// DefaultWatchdogMaxAge is when a Watchdog replaces its wake with a
	// fresh one: a wake expires a day after its first visibility, and its
	// visibility cannot be pushed past that.
	DefaultWatchdogMaxAge = 12 * time.Hour
)

// WatchdogOptions configure a Watchdog.
type WatchdogOptions struct {
	// Backend holds the wake queue. Required.
	Backend backend.Backend
	// Busy reports whether this worker holds work that would be hidden
	// from every other worker if it died now (engine.Engine.Busy).
	// Required.
	Busy func() bool
	// Delay is how long the wake stays hidden after each push: until a
	// dead worker's messages and partitions are free again, counted from a
	// push up to Refresh before its death: the engine's MessageVisibility
	// plus the longer of its LeaseInterval and Refresh. Required.
	Delay time.Duration
	// Refresh is how often a busy worker pushes its wake's visibility
	// forward, and how soon after its last push an idle worker deletes it.
	// Default Delay/3, between 1 s and 30 s; at most Delay/2.
	Refresh time.Duration
	// Check is how often Run reads Busy (no storage call). Default 1 s, at
	// most Refresh.
	Check time.Duration
	// StopDelay: see Release. Default DefaultWatchdogStopDelay.
	StopDelay time.Duration
	// MaxAge: a wake this old is replaced by a fresh one. Default
	// DefaultWatchdogMaxAge.
	MaxAge time.Duration
	// Logger receives the warnings of failed calls. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// WatchdogStats count a Watchdog's storage calls.
type WatchdogStats struct {
	Sent    int64 // wakes created
	Pushed  int64 // visibility pushes that succeeded
	Deleted int64 // wakes deleted (or found taken by a host)
	Stale   int64 // receipts found stale: the wake was delivered meanwhile
	Failed  int64 // calls that failed (logged at warn)
}

// Watchdog keeps one wake message of this worker in the wake queue while
// the worker holds work, so that an app scaled to zero is started again if
// the worker dies without a graceful stop.
//
// On Consumption and Flex Consumption the platform may stop an instance
// whenever it sees no function execution (the engine's background work is
// invisible to it), and the Functions host ends a custom handler by killing
// it. What the worker held (received messages, hand-over copies, running
// activities) stays hidden until its visibility runs out, and its
// partitions stay leased until their leases expire; afterwards the work is
// visible again, but nothing would start a worker for it. The watchdog's
// wake is hidden until then: created on the first busy check, its
// visibility is pushed to Delay from now every Refresh while the worker is
// busy (one queue call per Refresh), and it is deleted once the worker is
// idle (none while idle). If the worker dies, the pushes stop and the wake
// becomes visible when the work is free again.
//
// Failed calls are logged at warn level and retried on the next tick; they
// never fail work. A receipt gone stale (a host received the wake and
// deleted it) means a fresh wake is sent on the next busy tick.
type Watchdog struct {
	be        backend.Backend
	busy      func() bool
	delay     time.Duration
	refresh   time.Duration
	check     time.Duration
	stopDelay time.Duration
	maxAge    time.Duration
	log       *slog.Logger
	now       func() time.Time

	mu       sync.Mutex
	receipt  *backend.Receipt // this worker's wake; nil: none
	created  time.Time        // when receipt's wake was sent
	pushed   time.Time        // last successful send or push
	retryAt  time.Time        // no call before then (after a failure)
	released bool
	stats    WatchdogStats
}

// NewWatchdog returns a watchdog; call Run to start it.
func NewWatchdog(opts WatchdogOptions) (*Watchdog, error) {
	switch {
	case opts.Backend == nil:
		return nil, errors.New("wake: WatchdogOptions.Backend is required")
	case opts.Busy == nil:
		return nil, errors.New("wake: WatchdogOptions.Busy is required")
	case opts.Delay < 2*time.Second:
		return nil, fmt.Errorf("wake: WatchdogOptions.Delay is %v; it must be at least 2 s (MessageVisibility + LeaseInterval)", opts.Delay)
	}
	w := &Watchdog{be: opts.Backend, busy: opts.Busy, delay: opts.Delay, refresh: opts.Refresh, check: opts.Check,
		stopDelay: opts.StopDelay, maxAge: opts.MaxAge, log: opts.Logger, now: opts.Now}
	if w.refresh <= 0 {
		w.refresh = min(max(w.delay/3, time.Second), 30*time.Second)
	}
	w.refresh = min(w.refresh, w.delay/2)
	if w.check <= 0 {
		w.check = DefaultWatchdogCheck
	}
	w.check = min(w.check, w.refresh)
	if w.stopDelay <= 0 {
		w.stopDelay = DefaultWatchdogStopDelay
	}
	if w.maxAge <= 0 {
		w.maxAge = DefaultWatchdogMaxAge
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.now == nil {
		w.now = time.Now
	}
	return w, nil
}

// Refresh returns the interval between pushes while busy.
func (w *Watchdog) Refresh() time.Duration { return w.refresh }

// Stats returns a snapshot of the counters.
func (w *Watchdog) Stats() WatchdogStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Run calls Tick every Check interval until ctx ends.
func (w *Watchdog) Run(ctx context.Context) {
	t := time.NewTicker(w.check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Tick(ctx)
		}
	}
}

// Tick runs one step: it reads Busy and, when due, creates, pushes or
// deletes the wake (at most one queue call, two when an old wake is
// replaced). Run calls it; tests call it with their own clock.
func (w *Watchdog) Tick(ctx context.Context) {
	busy := w.busy()
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if w.released || now.Before(w.retryAt) {
		return
	}
	switch {
	case busy && w.receipt == nil:
		w.send(ctx, now, w.delay)
	case w.receipt == nil:
		// Idle, nothing to keep.
	case now.Before(w.pushed.Add(w.refresh)):
		// Busy or not, the wake is fresh enough: deleting it only on
		// this cadence bounds the calls of a worker that flips between
		// busy and idle to two per Refresh.
	case busy && now.Sub(w.created) >= w.maxAge:
		old := *w.receipt
		if w.send(ctx, now, w.delay) {
			w.remove(ctx, old)
		}
	case busy:
		w.push(ctx, now)
	default:
		if w.remove(ctx, *w.receipt) {
			w.receipt = nil
		}
	}
}

// Release ends the watchdog after the engine stopped (Run must have
// returned). When the stop left work for another worker (leftWork: the
// engine gave messages back, interrupted work, or is still busy), the wake
// becomes visible StopDelay from now, sent if there was none, so that a
// worker is started for that work once this host has stopped listening;
// otherwise the wake is deleted: a worker that stops idle leaves nothing
// behind, so a worker woken for nothing does not wake the next one.
func (w *Watchdog) Release(ctx context.Context, leftWork bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.released = true
	now := w.now()
	if !leftWork {
		if w.receipt == nil {
			return nil
		}
		r := *w.receipt
		w.receipt = nil
		if err := w.be.DeleteMessage(ctx, r); err != nil && !errors.Is(err, backend.ErrConflict) {
			w.stats.Failed++
			return fmt.Errorf("wake: watchdog: delete the wake at stop: %w", err)
		}
		w.stats.Deleted++
		return nil
	}
	if w.receipt != nil {
		r, err := w.be.SetVisibility(ctx, *w.receipt, w.stopDelay)
		switch {
		case err == nil:
			w.receipt = &r
			w.stats.Pushed++
			return nil
		case !stale(err):
			w.stats.Failed++
			return fmt.Errorf("wake: watchdog: make the wake visible at stop: %w", err)
		}
		w.stats.Stale++
		w.receipt = nil
	}
	r, err := w.be.SendWake(ctx, backend.WakeWatchdog, w.stopDelay)
	if err != nil {
		w.stats.Failed++
		return fmt.Errorf("wake: watchdog: send a wake at stop: %w", err)
	}
	w.receipt, w.created, w.pushed = &r, now, now
	w.stats.Sent++
	return nil
}

// send creates a wake hidden for delay; w.mu is held.
func (w *Watchdog) send(ctx context.Context, now time.Time, delay time.Duration) bool {
	r, err := w.be.SendWake(ctx, backend.WakeWatchdog, delay)
	if err != nil {
		w.failed(now, "send", err)
		return false
	}
	w.receipt, w.created, w.pushed = &r, now, now
	w.stats.Sent++
	w.log.Debug("watchdog: wake sent", "hub", w.be.HubName(), "visibleIn", delay)
	return true
}

// push hides the wake for Delay from now; w.mu is held.
func (w *Watchdog) push(ctx context.Context, now time.Time) {
	r, err := w.be.SetVisibility(ctx, *w.receipt, w.delay)
	switch {
	case err == nil:
		w.receipt, w.pushed = &r, now
		w.stats.Pushed++
		w.log.Debug("watchdog: wake pushed", "hub", w.be.HubName(), "visibleIn", w.delay)
	case stale(err):
		// A host received the wake (it became visible: pushes failed or
		// were late) and deleted it: a fresh one goes out next tick.
		w.receipt = nil
		w.stats.Stale++
	default:
		w.failed(now, "push the visibility of", err)
	}
}

// remove deletes a wake; w.mu is held. A stale receipt means a host holds
// the wake and deletes it itself.
func (w *Watchdog) remove(ctx context.Context, r backend.Receipt) bool {
	err := w.be.DeleteMessage(ctx, r)
	switch {
	case err == nil:
		w.stats.Deleted++
		w.log.Debug("watchdog: wake deleted", "hub", w.be.HubName())
	case errors.Is(err, backend.ErrConflict):
		w.stats.Stale++
	default:
		w.failed(w.now(), "delete", err)
		return false
	}
	return true
}

// failed logs a failed call; the next attempt is one Refresh later.
func (w *Watchdog) failed(now time.Time, what string, err error) {
	w.stats.Failed++
	w.retryAt = now.Add(w.refresh)
	w.log.Warn("watchdog: could not "+what+" this worker's wake message; retrying", "hub", w.be.HubName(),
		"retryIn", w.refresh, "err", err)
}

// stale reports whether err says the receipt no longer names a wake this
// worker controls.
func stale(err error) bool {
	return errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrConflict)
}
