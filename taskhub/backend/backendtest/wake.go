package backendtest

import (
	"errors"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// testWake checks SendWake: the message names the hub, the reason and the
// due time, stays hidden for its delay, and the queue goes with the hub.
func (s *suite) testWake(t *testing.T) {
	b := s.newBackend(t)
	const delay = 2 * time.Second
	if err := b.SendWake(ctx(t), backend.WakeTimer, delay); err != nil {
		t.Fatal(err)
	}
	if err := b.SendWake(ctx(t), backend.WakeStart, 0); err != nil {
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
	if err := b.SendWake(ctx(t), backend.WakeEvent, 8*24*time.Hour); err == nil {
		t.Error("SendWake with a delay over 7 days succeeded")
	}
	if err := b.DeleteTaskHub(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.SendWake(ctx(t), backend.WakeEvent, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("SendWake after DeleteTaskHub = %v, want ErrNotFound", err)
	}
}
