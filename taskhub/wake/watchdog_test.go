package wake_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/wake"
)

// countingHub counts the wake queue calls a watchdog makes, and fails
// them while failing is set.
type countingHub struct {
	*memory.Backend
	calls   atomic.Int64
	failing atomic.Bool
}

var errStorageDown = errors.New("storage unreachable (injected)")

func (c *countingHub) SendWake(ctx context.Context, reason string, delay time.Duration) (backend.Receipt, error) {
	c.calls.Add(1)
	if c.failing.Load() {
		return backend.Receipt{}, errStorageDown
	}
	return c.Backend.SendWake(ctx, reason, delay)
}

func (c *countingHub) SetVisibility(ctx context.Context, r backend.Receipt, d time.Duration) (backend.Receipt, error) {
	c.calls.Add(1)
	if c.failing.Load() {
		return backend.Receipt{}, errStorageDown
	}
	return c.Backend.SetVisibility(ctx, r, d)
}

func (c *countingHub) DeleteMessage(ctx context.Context, r backend.Receipt) error {
	c.calls.Add(1)
	if c.failing.Load() {
		return errStorageDown
	}
	return c.Backend.DeleteMessage(ctx, r)
}

// watchdogRig is a watchdog on a memory hub with a fake clock, driven by
// Tick.
type watchdogRig struct {
	t     *testing.T
	clock *fakeClock
	hub   *countingHub
	busy  atomic.Bool
	w     *wake.Watchdog
	logs  *bytes.Buffer
}

// The figures of the rig: the engine's defaults give MessageVisibility 60
// s + LeaseInterval 30 s, refreshed every 20 s.
const (
	rigDelay   = 90 * time.Second
	rigRefresh = 20 * time.Second
	rigCheck   = time.Second
)

func newWatchdogRig(t *testing.T, opts wake.WatchdogOptions) *watchdogRig {
	t.Helper()
	r := &watchdogRig{t: t, clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, logs: &bytes.Buffer{}}
	mb, err := memory.NewStorage(memory.StorageOptions{Now: r.clock.now}).Open(memory.Options{HubName: "WatchdogHub"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.CreateTaskHub(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.hub = &countingHub{Backend: mb}
	opts.Backend, opts.Busy, opts.Now = r.hub, r.busy.Load, r.clock.now
	opts.Delay, opts.Refresh, opts.Check = rigDelay, rigRefresh, rigCheck
	opts.Logger = slog.New(slog.NewTextHandler(r.logs, nil))
	if r.w, err = wake.NewWatchdog(opts); err != nil {
		t.Fatal(err)
	}
	if got := r.w.Refresh(); got != rigRefresh {
		t.Fatalf("Refresh() = %v, want %v", got, rigRefresh)
	}
	return r
}

// run ticks every rigCheck for d, as Run would.
func (r *watchdogRig) run(d time.Duration) {
	for end := r.clock.now().Add(d); r.clock.now().Before(end); {
		r.clock.advance(rigCheck)
		r.w.Tick(r.t.Context())
	}
}

// wakes returns the wake queue's messages.
func (r *watchdogRig) wakes() []memory.Wake {
	r.t.Helper()
	ws, err := r.hub.Wakes()
	if err != nil {
		r.t.Fatal(err)
	}
	return ws
}

// oneHidden checks that the queue holds exactly one watchdog wake, hidden
// until about Delay after the given push, and returns it.
func (r *watchdogRig) oneHidden(what string, pushedAt time.Time) memory.Wake {
	r.t.Helper()
	ws := r.wakes()
	if len(ws) != 1 || ws[0].Visible || ws[0].Message.Reason != backend.WakeWatchdog {
		r.t.Fatalf("%s: wakes %+v, want one hidden watchdog wake", what, ws)
	}
	if d := ws[0].VisibleAt.Sub(pushedAt); d != rigDelay {
		r.t.Errorf("%s: the wake is visible %v after its push, want %v", what, d, rigDelay)
	}
	return ws[0]
}

// TestWatchdogIdleThroughout: a worker that is never busy makes no call at
// all, also when it stops.
func TestWatchdogIdleThroughout(t *testing.T) {
	r := newWatchdogRig(t, wake.WatchdogOptions{})
	r.run(10 * time.Minute)
	if err := r.w.Release(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if n := r.hub.calls.Load(); n != 0 {
		t.Errorf("%d wake queue calls by an idle worker, want 0", n)
	}
	if ws := r.wakes(); len(ws) != 0 {
		t.Errorf("wakes: %+v", ws)
	}
}

// TestWatchdogBusyThenIdle: the wake is created on the first busy tick,
// pushed once per Refresh while busy (so it never becomes visible), and
// deleted once the worker is idle; then nothing more is called.
func TestWatchdogBusyThenIdle(t *testing.T) {
	r := newWatchdogRig(t, wake.WatchdogOptions{})
	r.run(5 * time.Second)
	r.busy.Store(true)
	r.run(rigCheck)
	created := r.clock.now()
	if n := r.hub.calls.Load(); n != 1 {
		t.Fatalf("%d calls after the first busy tick, want 1 (the send)", n)
	}
	first := r.oneHidden("after the first busy tick", created)
	// Busy for 10 minutes: one push per Refresh, the wake always hidden
	// until Delay after the last one.
	for i := 1; i <= 30; i++ {
		r.run(rigRefresh)
		w := r.oneHidden("while busy", r.clock.now())
		if w.Message != first.Message {
			t.Fatalf("the wake changed while busy: %+v, was %+v", w.Message, first.Message)
		}
	}
	if n, s := r.hub.calls.Load(), r.w.Stats(); n != 31 || s.Sent != 1 || s.Pushed != 30 {
		t.Fatalf("after 10 busy minutes: %d calls, %+v; want 31: one send, 30 pushes", n, s)
	}
	r.busy.Store(false)
	lastPush := r.clock.now()
	r.run(rigRefresh - rigCheck)
	r.oneHidden("idle, before the next refresh tick", lastPush)
	r.run(rigCheck)
	if ws := r.wakes(); len(ws) != 0 {
		t.Fatalf("wakes one Refresh after the worker went idle: %+v, want none", ws)
	}
	r.run(10 * time.Minute)
	if n, s := r.hub.calls.Load(), r.w.Stats(); n != 32 || s.Deleted != 1 {
		t.Errorf("%d calls, %+v; want 32: the delete and nothing while idle", n, s)
	}
	if err := r.w.Release(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if n := r.hub.calls.Load(); n != 32 {
		t.Errorf("%d calls after an idle stop, want still 32", n)
	}
}

// TestWatchdogWorkerDies: when the pushes stop (the process was killed),
// the wake becomes visible Delay after the last push, when the dead
// worker's messages and partitions are free again, not before.
func TestWatchdogWorkerDies(t *testing.T) {
	r := newWatchdogRig(t, wake.WatchdogOptions{})
	r.busy.Store(true)
	r.run(3 * rigRefresh)
	last := r.oneHidden("busy", r.clock.now().Add(-rigRefresh+rigCheck)).VisibleAt
	// No more ticks: the process is gone.
	r.clock.advance(last.Sub(r.clock.now()) - time.Second)
	if ws := r.wakes(); len(ws) != 1 || ws[0].Visible {
		t.Fatalf("a second before it is due: %+v", ws)
	}
	r.clock.advance(time.Second)
	if ws := r.wakes(); len(ws) != 1 || !ws[0].Visible || ws[0].Message.Reason != backend.WakeWatchdog {
		t.Fatalf("when due: %+v, want the visible watchdog wake", ws)
	}
}

// TestWatchdogStaleReceipt: a wake delivered and deleted by a host while
// the worker is still busy (say a push was late) leaves a stale receipt;
// the next push finds it so and the following tick sends a fresh wake.
func TestWatchdogStaleReceipt(t *testing.T) {
	r := newWatchdogRig(t, wake.WatchdogOptions{})
	r.busy.Store(true)
	r.run(rigCheck)
	// The host receives the wake once visible and deletes it.
	r.clock.advance(rigDelay)
	got, err := r.hub.ReceiveWakes(t.Context(), 32, 10*time.Minute)
	if err != nil || len(got) != 1 {
		t.Fatalf("the host received %d wakes (%v), want 1", len(got), err)
	}
	if err := r.hub.Backend.DeleteMessage(t.Context(), got[0]); err != nil {
		t.Fatal(err)
	}
	r.w.Tick(t.Context())
	if s := r.w.Stats(); s.Stale != 1 || s.Sent != 1 {
		t.Fatalf("after pushing a deleted wake: %+v, want one stale receipt", s)
	}
	r.run(rigCheck)
	r.oneHidden("the tick after the stale receipt", r.clock.now())
	if s := r.w.Stats(); s.Sent != 2 || s.Failed != 0 {
		t.Errorf("stats %+v, want a second send and no failure", s)
	}
	if strings.Contains(r.logs.String(), "level=WARN") {
		t.Errorf("a stale receipt was logged as a failure:\n%s", r.logs)
	}
}

// TestWatchdogFailedCalls: a failed call is logged at warn and retried a
// Refresh later; it changes nothing else.
func TestWatchdogFailedCalls(t *testing.T) {
	r := newWatchdogRig(t, wake.WatchdogOptions{})
	r.busy.Store(true)
	r.hub.failing.Store(true)
	r.run(rigCheck)
	if s := r.w.Stats(); s.Failed != 1 || !strings.Contains(r.logs.String(), "level=WARN") || !strings.Contains(r.logs.String(), errStorageDown.Error()) {
		t.Fatalf("after a failed send: %+v, logs:\n%s", s, r.logs)
	}
	r.run(rigRefresh - rigCheck)
	if n := r.hub.calls.Load(); n != 1 {
		t.Fatalf("%d calls within a Refresh of the failure, want 1", n)
	}
	r.hub.failing.Store(false)
	r.run(rigCheck)
	r.oneHidden("the retry", r.clock.now())
	// A failed push keeps the wake and its receipt; the retry pushes it.
	r.hub.failing.Store(true)
	r.run(rigRefresh)
	r.hub.failing.Store(false)
	r.run(rigRefresh)
	r.oneHidden("the pushed retry", r.clock.now())
	if s := r.w.Stats(); s.Failed != 2 || s.Sent != 1 || s.Pushed != 1 {
		t.Errorf("stats %+v, want two failures, one send, one push", s)
	}
}

// TestWatchdogRelease: after a stop that left work, the wake becomes
// visible StopDelay later (sent if the worker had none); after a stop that
// left nothing, it is deleted.
func TestWatchdogRelease(t *testing.T) {
	const stopDelay = 5 * time.Second
	for _, tc := range []struct {
		name     string
		busy     bool // had a wake before the stop
		leftWork bool
		want     int // wakes left, visible StopDelay after the stop
	}{
		{"work left, wake held", true, true, 1},
		{"work left, no wake yet", false, true, 1},
		{"nothing left, wake held", true, false, 0},
		{"nothing left, no wake", false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newWatchdogRig(t, wake.WatchdogOptions{StopDelay: stopDelay})
			r.busy.Store(tc.busy)
			r.run(rigCheck)
			stopped := r.clock.now()
			if err := r.w.Release(t.Context(), tc.leftWork); err != nil {
				t.Fatal(err)
			}
			ws := r.wakes()
			if len(ws) != tc.want {
				t.Fatalf("wakes after Release: %+v, want %d", ws, tc.want)
			}
			if tc.want == 1 && (ws[0].Visible || !ws[0].VisibleAt.Equal(stopped.Add(stopDelay)) || ws[0].Message.Reason != backend.WakeWatchdog) {
				t.Errorf("wake %+v, want a hidden watchdog wake visible at %v", ws[0], stopped.Add(stopDelay))
			}
			// Released: later ticks do nothing, busy or not.
			calls := r.hub.calls.Load()
			r.busy.Store(true)
			r.run(3 * rigRefresh)
			if n := r.hub.calls.Load(); n != calls {
				t.Errorf("%d calls after Release", n-calls)
			}
		})
	}
}

// TestWatchdogReplacesOldWake: a wake older than MaxAge is replaced by a
// fresh one (a wake expires a day after its first visibility).
func TestWatchdogReplacesOldWake(t *testing.T) {
	r := newWatchdogRig(t, wake.WatchdogOptions{MaxAge: 10 * time.Minute})
	r.busy.Store(true)
	r.run(rigCheck)
	first := r.wakes()[0].Message
	r.run(10 * time.Minute)
	ws := r.wakes()
	if len(ws) != 1 || ws[0].Visible {
		t.Fatalf("wakes after MaxAge: %+v, want one hidden", ws)
	}
	if ws[0].Message == first {
		t.Errorf("the wake was not replaced: %+v", ws[0].Message)
	}
	if s := r.w.Stats(); s.Sent != 2 || s.Deleted != 1 {
		t.Errorf("stats %+v, want a second send and the old wake deleted", s)
	}
}

// TestWatchdogRun drives the watchdog with Run and short intervals on the
// real clock: the wake appears while busy and goes once idle.
func TestWatchdogRun(t *testing.T) {
	mb, err := memory.New(memory.Options{HubName: "WatchdogRun"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.CreateTaskHub(t.Context()); err != nil {
		t.Fatal(err)
	}
	var busy atomic.Bool
	w, err := wake.NewWatchdog(wake.WatchdogOptions{Backend: mb, Busy: busy.Load, Delay: 2 * time.Second, Check: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	count := func() int {
		ws, err := mb.Wakes()
		if err != nil {
			t.Fatal(err)
		}
		return len(ws)
	}
	waitCount := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for count() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d wakes, want %d", what, count(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	busy.Store(true)
	waitCount(1, "busy")
	busy.Store(false)
	waitCount(0, "idle")
}

func TestNewWatchdogValidates(t *testing.T) {
	mb, err := memory.New(memory.Options{HubName: "WatchdogOpts"})
	if err != nil {
		t.Fatal(err)
	}
	busy := func() bool { return false }
	for _, tc := range []struct {
		opts wake.WatchdogOptions
		want string
	}{
		{wake.WatchdogOptions{Busy: busy, Delay: time.Minute}, "Backend is required"},
		{wake.WatchdogOptions{Backend: mb, Delay: time.Minute}, "Busy is required"},
		{wake.WatchdogOptions{Backend: mb, Busy: busy, Delay: time.Second}, "Delay is 1s"},
	} {
		if _, err := wake.NewWatchdog(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewWatchdog(%+v) = %v, want an error with %q", tc.opts, err, tc.want)
		}
	}
}
