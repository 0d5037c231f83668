package durabletest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// MustRun is Run for tests: it runs with tb's context and stops the test
// with tb.Fatal, showing the error and the history, unless the
// orchestration completed and passed the determinism check.
func MustRun[In, Out any](tb testing.TB, tr *Tester, orch *durable.Orchestrator[In, Out], input In, opts ...RunOption) *Result[Out] {
	tb.Helper()
	res, err := Run(tb.Context(), tr, orch, input, opts...)
	if err != nil {
		if res != nil {
			tb.Fatalf("%v\nhistory of instance %q:\n%s", err, res.ID, FormatHistory(res.History))
		}
		tb.Fatal(err)
	}
	return res
}

// FormatHistory renders events one per line, for test failure messages:
// position, type, the task's sequence number, name and payload.
func FormatHistory(events []history.Event) string {
	var b strings.Builder
	for i, ev := range events {
		fmt.Fprintf(&b, "%3d %s %s", i, ev.Timestamp.Format(time.RFC3339Nano), ev.Type)
		switch ev.Type {
		case history.TaskScheduled, history.TimerCreated, history.SubOrchestrationInstanceCreated, history.EventSent,
			history.ExecutionCompleted, history.ContinueAsNew:
			fmt.Fprintf(&b, " #%d", ev.EventID)
		case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
			fmt.Fprintf(&b, " of #%d", ev.TaskScheduledID)
		case history.TimerFired:
			fmt.Fprintf(&b, " of #%d", ev.TimerID)
		}
		if ev.Name != "" {
			fmt.Fprintf(&b, " %q", ev.Name)
		}
		if ev.Type.EndsExecution() {
			fmt.Fprintf(&b, " %s", ev.Status)
		}
		for _, p := range []struct{ k, v string }{{"input", ev.Input}, {"result", ev.Result}, {"instance", ev.InstanceID}} {
			if p.v != "" {
				fmt.Fprintf(&b, " %s=%s", p.k, replay.AbbrevText(p.v))
			}
		}
		if !ev.FireAt.IsZero() {
			fmt.Fprintf(&b, " fireAt=%s", ev.FireAt.Format(time.RFC3339Nano))
		}
		if ev.Failure != nil {
			fmt.Fprintf(&b, " failure=%q", replay.AbbrevText(ev.Failure.String()))
		}
		b.WriteByte('\n')
	}
	return b.String()
}
