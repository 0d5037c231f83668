package backendtest

import (
	"errors"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/internal/routing"
)

// testWake checks SendWake: the message names the hub, the reason and the
// due time, stays hidden for its delay, its receipt re-hides and deletes
// it, and the queue goes with the hub.
func (s *suite) testWake(t *testing.T) {
	b := s.newBackend(t)
	const delay = 2 * time.Second
	if _, err := b.SendWake(ctx(t), backend.WakeTimer, delay); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SendWake(ctx(t), backend.WakeStart, 0); err != nil {
		t.Fatal(err)
	}
	got := s.opts.Wakes(t, b)
	if len(got) != 1 || got[0].Reason != backend.WakeStart || got[0].Hub != b.HubName() || got[0].DueTime.IsZero() {
		t.Fatalf("visible wakes right after sending = %+v, want only the start wake of hub %s", got, b.HubName())
	}
	start := got[0]
	if start.DueTime.Location() != time.UTC {
		t.Errorf("dueTime %v is not UTC", start.DueTime)
	}
	var timer backend.WakeMessage
	s.waitFor(t, b, delay, "the delayed wake becomes visible", func() bool {
		got = s.opts.Wakes(t, b)
		for _, w := range got {
			if w.Reason == backend.WakeTimer {
				timer = w
				return true
			}
		}
		return false
	})
	// Sent just before the start wake, the timer wake is due delay later,
	// less the moment between the two sends.
	if d := timer.DueTime.Sub(start.DueTime); d > delay || d < delay-time.Second {
		t.Errorf("timer wake due %v after the start wake, want about %v", d, delay)
	}
	if timer.Hub != b.HubName() || len(got) != 2 {
		t.Errorf("wakes after the delay = %+v", got)
	}
	if _, err := b.SendWake(ctx(t), backend.WakeEvent, 8*24*time.Hour); err == nil {
		t.Error("SendWake with a delay over 7 days succeeded")
	}
	s.testWakeReceipt(t, b)
	if err := b.DeleteTaskHub(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SendWake(ctx(t), backend.WakeEvent, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("SendWake after DeleteTaskHub = %v, want ErrNotFound", err)
	}
}

// testWakeReceipt checks the receipt SendWake returns, as the watchdog
// (wake.Watchdog) uses it: SetVisibility hides the wake longer and makes it
// visible again, an old pop receipt is stale, and DeleteMessage removes it.
func (s *suite) testWakeReceipt(t *testing.T, b backend.Backend) {
	t.Helper()
	watchdogs := func() int {
		n := 0
		for _, w := range s.opts.Wakes(t, b) {
			if w.Reason == backend.WakeWatchdog {
				n++
			}
		}
		return n
	}
	r, err := b.SendWake(ctx(t), backend.WakeWatchdog, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := routing.WakeQueue(b.HubName()); r.Queue != want || r.MessageID == "" || r.PopReceipt == "" {
		t.Fatalf("SendWake receipt = %+v, want a message of %s with a pop receipt", r, want)
	}
	if n := watchdogs(); n != 1 {
		t.Fatalf("%d visible watchdog wakes after sending one without delay", n)
	}
	hidden, err := b.SetVisibility(ctx(t), r, time.Hour)
	if err != nil {
		t.Fatalf("SetVisibility of a wake: %v", err)
	}
	if n := watchdogs(); n != 0 {
		t.Errorf("%d visible watchdog wakes after hiding it for an hour", n)
	}
	if d := hidden.NextVisible.Sub(r.NextVisible); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("the hidden wake's NextVisible %v is %v after its first (%v), want an hour", hidden.NextVisible, d, r.NextVisible)
	}
	if _, err := b.SetVisibility(ctx(t), r, 0); !errors.Is(err, backend.ErrConflict) && !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("SetVisibility with the wake's first pop receipt = %v, want ErrConflict or ErrNotFound (stale)", err)
	}
	shown, err := b.SetVisibility(ctx(t), hidden, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := watchdogs(); n != 1 {
		t.Errorf("%d visible watchdog wakes after making it visible again", n)
	}
	if err := b.DeleteMessage(ctx(t), shown); err != nil {
		t.Fatal(err)
	}
	if n := watchdogs(); n != 0 {
		t.Errorf("%d visible watchdog wakes after deleting it", n)
	}
	if _, err := b.SetVisibility(ctx(t), shown, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("SetVisibility of a deleted wake = %v, want ErrNotFound", err)
	}
}
