package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestMismatchedStart checks Durable Task's rule for a top-level start
// whose Instances row names another execution.
func TestMismatchedStart(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	gen := func(g int32) *int32 { return &g }
	start := func(g *int32, at time.Time) history.Event {
		ev := history.NewEvent(history.ExecutionStarted, at)
		ev.Generation = g
		return ev
	}
	row := func(g int32, status history.OrchestrationStatus, created time.Time) *backend.InstanceState {
		return &backend.InstanceState{ExecutionID: "other", Generation: g, Status: status, CreatedTime: created}
	}
	tests := []struct {
		name    string
		start   history.Event
		row     *backend.InstanceState
		dequeue int64
		want    string // deferStart, or a fragment of the reason to discard
	}{
		{"restart before its row write", start(gen(3), t0), row(2, history.StatusCompleted, t0.Add(-time.Hour)), 1, deferStart},
		{"restart redelivered, row still behind", start(gen(3), t0), row(2, history.StatusCompleted, t0.Add(-time.Hour)), 9, deferStart},
		{"restart whose row never comes", start(gen(3), t0), row(2, history.StatusCompleted, t0.Add(-time.Hour)), 10, "after 10 deliveries"},
		{"no generation (older client)", start(nil, t0), row(0, history.StatusPending, t0.Add(-time.Second)), 3, deferStart},
		{"same generation, the row's start is newer", start(gen(2), t0), row(2, history.StatusRunning, t0.Add(time.Second)), 1, "a newer start of the same generation won"},
		{"same generation, sent after a Pending row", start(gen(0), t0), row(0, history.StatusPending, t0.Add(-time.Second)), 1, "sent after that row was written"},
		{"same generation, older finished row, first look", start(gen(2), t0), row(2, history.StatusCompleted, t0.Add(-time.Second)), 1, deferStart},
		{"same generation, older finished row, redelivered", start(gen(2), t0), row(2, history.StatusCompleted, t0.Add(-time.Second)), 2, "is redelivered"},
		{"same generation, same time, handed over in memory", start(gen(1), t0), row(1, history.StatusRunning, t0), 0, deferStart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mismatchedStart(tc.start, tc.row, tc.dequeue)
			if tc.want == deferStart {
				if got != deferStart {
					t.Fatalf("verdict %q, want it deferred", got)
				}
				return
			}
			if got == deferStart || !strings.Contains(got, tc.want) || !strings.Contains(got, "execution other") {
				t.Fatalf("verdict %q, want a discard naming execution other and saying %q", got, tc.want)
			}
		})
	}
}
