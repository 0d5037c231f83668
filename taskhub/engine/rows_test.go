package engine

import (
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestJudgeRowNeverReplacesNewerOrFinishedRows(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	done := t0.Add(time.Minute)
	row := func(exec string, st history.OrchestrationStatus, pos int) *backend.InstanceState {
		r := &backend.InstanceState{ExecutionID: exec, Status: st, HistoryPosition: pos, CreatedTime: t0, ETag: "e"}
		if st.IsTerminal() {
			r.CompletedTime, r.Output = done, `"out"`
		}
		return r
	}
	want := func(exec string, st history.OrchestrationStatus, pos int) backend.InstanceState {
		return *row(exec, st, pos)
	}
	basis := rowBasis{executionID: "A", started: t0}
	tests := []struct {
		name   string
		stored *backend.InstanceState
		want   backend.InstanceState
		basis  rowBasis
		verd   rowVerdict
	}{
		{"no row yet", nil, want("A", history.StatusRunning, 4), basis, rowWrite},
		{"client's pending row", row("A", history.StatusPending, 0), want("A", history.StatusRunning, 4), basis, rowWrite},
		{"older running row", row("A", history.StatusRunning, 4), want("A", history.StatusCompleted, 9), basis, rowWrite},
		{"same row again", row("A", history.StatusCompleted, 9), want("A", history.StatusCompleted, 9), basis, rowCurrent},
		{"stale flush over a completed row (DTFx #1252)", row("A", history.StatusCompleted, 9), want("A", history.StatusRunning, 4), basis, rowNewer},
		{"stale flush over a newer running row", row("A", history.StatusRunning, 12), want("A", history.StatusRunning, 4), basis, rowNewer},
		{"completed row never replaced by another final status", row("A", history.StatusCompleted, 9), want("A", history.StatusFailed, 9), basis, rowNewer},
		{"row of a newer execution", &backend.InstanceState{ExecutionID: "B", Status: history.StatusPending, CreatedTime: t0.Add(time.Second)}, want("A", history.StatusRunning, 4), basis, rowNewer},
		{"row of the execution we continued as new", row("OLD", history.StatusRunning, 30), want("A", history.StatusRunning, 4), rowBasis{executionID: "A", started: t0, replaced: "OLD"}, rowWrite},
		{"row of an older execution (lost ContinueAsNew write)", &backend.InstanceState{ExecutionID: "OLD", Status: history.StatusRunning, CreatedTime: t0.Add(-time.Hour)}, want("A", history.StatusRunning, 4), basis, rowWrite},
		{"rewind replaces the failed execution", row("OLD", history.StatusFailed, 9), want("A", history.StatusRunning, 11), rowBasis{executionID: "A", started: t0, replaced: "OLD"}, rowWrite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := judgeRow(tc.stored, tc.want, tc.basis); got != tc.verd {
				t.Fatalf("judgeRow = %v, want %v", got, tc.verd)
			}
		})
	}
}

func TestRowsAgreeAtStoragePrecision(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	a := backend.InstanceState{ExecutionID: "A", Status: history.StatusCompleted, CompletedTime: t0.Truncate(100 * time.Nanosecond), HistoryPosition: 9}
	b := a
	b.CompletedTime = t0
	if !rowsAgree(&a, b) {
		t.Fatal("rows differing below 100 ns should agree")
	}
	b.CompletedTime = t0.Add(time.Millisecond)
	if rowsAgree(&a, b) {
		t.Fatal("rows with other completion times should not agree")
	}
}
